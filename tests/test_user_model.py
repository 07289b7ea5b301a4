"""User models (``kind = "jax"``, docs/user-models.md): every bad input is one line on
stderr and exit code 2; a user model that IS a built-in network gives the built-in kind's
prediction; training uses the problem's loss; leaves keep their names through ``train.npz``."""

import json
import textwrap

import numpy as np
import pytest

from effdyn.dynamics.predict import predict
from effdyn.errors import EffdynError
from effdyn.problem import initial_leaves, load_problem, problem_from_dict
from effdyn.training import load_run, save_run, train

TANH_MODEL = """
import jax.numpy as jnp

def template():
    return {"W1": jnp.zeros((8, 6)), "W2": jnp.zeros((1, 8))}

def apply(params, x):
    xt = jnp.concatenate([x, jnp.ones((x.shape[0], 1))], axis=1)
    return jnp.tanh(jnp.tanh(xt @ params["W1"].T)) @ params["W2"].T
"""


def _write(tmp_path, source: str, toml_extra: str = "", data: str | None = None) -> str:
    (tmp_path / "model.py").write_text(textwrap.dedent(source))
    data = data or 'dataset = "zhou2022-fig2"'
    (tmp_path / "p.toml").write_text(
        textwrap.dedent(
            f"""
            [model]
            kind = "jax"
            file = "model.py"
            {toml_extra}

            [data]
            {data}

            [init]
            scale = 1e-3
            seed = 0

            [train]
            lr = 0.05
            steps = 200
            """
        )
    )
    return str(tmp_path / "p.toml")


def _one_line_error(cli, problem: str, *needles: str) -> str:
    code, out, err = cli("derive", problem)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("effdyn: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


BAD_MODELS = {
    "missing_function": (
        "import jax.numpy as jnp\ndef template():\n    return {'W': jnp.zeros((2, 5))}\n",
        ("defines no 'apply'",),
    ),
    "raises_inside_apply": (
        "import jax.numpy as jnp\n"
        "def template():\n    return {'W': jnp.zeros((2, 5))}\n"
        "def apply(params, x):\n    return x @ params['W']\n",
        ("raised TypeError", "model.py line 5"),
    ),
    "wrong_output_shape": (
        "import jax.numpy as jnp\n"
        "def template():\n    return {'W': jnp.zeros((2, 5))}\n"
        "def apply(params, x):\n    return (x @ params['W'].T)[:3]\n",
        ("returned shape (3, 2)", "must return (n,) or (n, K)"),
    ),
    "nonfinite_output": (
        "import jax.numpy as jnp\n"
        "def template():\n    return {'W': jnp.zeros((1, 5))}\n"
        "def apply(params, x):\n    return jnp.log(x @ params['W'].T * 0.0)\n",
        ("non-finite value",),
    ),
    "template_not_arrays": (
        "import jax.numpy as jnp\n"
        "def template():\n    return {'W': 'not an array'}\n"
        "def apply(params, x):\n    return x\n",
        ("not a pytree of arrays", "'W'"),
    ),
    "import_error": (
        "import jax.numpy as jnp\nraise RuntimeError('boom')\n",
        ("raised RuntimeError", "model.py line 2", "boom"),
    ),
    "not_smooth_not_homogeneous": (
        # relu mixed with tanh: Taylor mode at 0 gives wrong coefficients; validation refuses
        "import jax, jax.numpy as jnp\n"
        "def template():\n    return {'W1': jnp.zeros((6, 5)), 'W2': jnp.zeros((1, 6))}\n"
        "def apply(params, x):\n"
        "    h = jax.nn.relu(x @ params['W1'].T) + jnp.tanh(x @ params['W1'].T)\n"
        "    return h @ params['W2'].T\n",
        ("validation failed",),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_a_bad_user_model_is_one_line_and_exit_2(tmp_path, cli, case):
    source, needles = BAD_MODELS[case]
    _one_line_error(cli, _write(tmp_path, source), *needles)


def test_a_missing_model_file_is_one_line_and_exit_2(tmp_path, cli):
    path = tmp_path / "p.toml"
    path.write_text(
        '[model]\nkind = "jax"\nfile = "nowhere.py"\n[data]\ndataset = "zhou2022-fig2"\n'
        "[init]\nscale = 1e-3\n"
    )
    _one_line_error(cli, str(path), "nowhere.py")


def test_labels_that_do_not_fit_the_loss_are_one_line(tmp_path, cli):
    # zhou2022-fig2 targets are real numbers, not ±1
    _one_line_error(cli, _write(tmp_path, TANH_MODEL, 'loss = "logistic"'), "logistic")


def test_a_user_tanh_network_predicts_the_fully_connected_t_star(tmp_path):
    """The same depth-3 network written as a user model and as ``kind = "fc"``, from the same
    initialization (same leaf order and shapes): the automatic engine and the symbolic one
    solve the same field, so T* agrees to 1e-8."""
    user = load_problem(_write(tmp_path, _depth3_model()))
    fc = problem_from_dict(
        {
            "model": {"kind": "fc", "depth": 3, "width": 8, "activation": "tanh"},
            "data": {"dataset": "zhou2022-fig2"},
            "init": {"scale": 1e-3, "seed": 0},
        }
    )
    for a, b in zip(initial_leaves(user), initial_leaves(fc), strict=True):
        np.testing.assert_array_equal(a, b)
    p_user, p_fc = predict(user), predict(fc)
    assert p_user["degree"] == p_fc["degree"] == 3
    assert p_user["t_star"] == pytest.approx(p_fc["t_star"], rel=1e-8)
    if p_fc["t_escape"] is None:  # on these data the loss never drops by 10%: both say so
        assert p_user["t_escape"] is None
    else:
        assert p_user["t_escape"] == pytest.approx(p_fc["t_escape"], rel=1e-6)
    assert p_user["active_parameters"] == ["W1", "W2", "W3"]


def _depth3_model() -> str:
    return """
    import jax.numpy as jnp

    def template():
        return {"W1": jnp.zeros((8, 6)), "W2": jnp.zeros((8, 8)), "W3": jnp.zeros((1, 8))}

    def apply(params, x):
        xt = jnp.concatenate([x, jnp.ones((x.shape[0], 1))], axis=1)
        h = jnp.tanh(xt @ params["W1"].T)
        return jnp.tanh(h @ params["W2"].T) @ params["W3"].T
    """


def test_training_a_user_model_uses_the_loss_and_keeps_leaf_names(tmp_path):
    """GD on a user model minimizes the problem's loss: the recorded loss equals the logistic
    loss computed here with numpy at θ_0 and at the final θ; ``train.npz`` reads back the
    leaves by name."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3))
    y = np.sign(x[:, 0] + 0.3)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    source = """
    import jax.numpy as jnp

    def template():
        return {"hidden": {"W_in": jnp.zeros((5, 3))}, "w_out": jnp.zeros((5,))}

    def apply(params, x):
        return jnp.tanh(x @ params["hidden"]["W_in"].T) @ params["w_out"]
    """
    problem = load_problem(_write(tmp_path, source, 'loss = "logistic"', data='path = "d.npz"'))
    assert problem.leaf_names() == ("hidden/W_in", "w_out")
    run = train(problem, steps=50, lr=0.5)

    def logistic(leaves):
        w_in, w_out = leaves
        f = np.tanh(x @ w_in.T) @ w_out
        return float(np.mean(np.log1p(np.exp(-y * f))))

    assert run.loss[0] == pytest.approx(logistic(initial_leaves(problem)), rel=1e-12)
    assert run.loss[-1] == pytest.approx(logistic(run.params), rel=1e-12)
    save_run(run, tmp_path / "run", names=problem.leaf_names())
    back = load_run(tmp_path / "run")
    np.testing.assert_array_equal(back.params[0], run.params[0])
    with np.load(tmp_path / "run" / "train.npz") as data:
        assert list(data["leaf_names"]) == ["hidden/W_in", "w_out"]
        np.testing.assert_array_equal(data["w_out"], run.params[1])


def test_cli_predict_reports_per_leaf_keys(tmp_path, cli):
    code, out, err = cli("predict", _write(tmp_path, _depth3_model()), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["engine"] == "automatic" and r["degree"] == 3 and r["field_degree"] == 2
    assert set(r["n_orientations"]) == {"W1", "W2", "W3"}
    assert all(len(r["directions"][k]) == r["n_orientations"][k] for k in r["directions"])


def test_effective_model_refuses_an_inhomogeneous_energy(tmp_path):
    """Two leaves at different exponents that enter E at different degrees: no rescaled-time
    solve; predict says why (docs/theory/automatic.md#per-leaf-exponents)."""
    source = """
    import jax.numpy as jnp

    def template():
        return {"a": jnp.zeros((3,)), "b": jnp.zeros((3,))}

    def apply(params, x):
        return (x @ params["a"]) ** 2 + (x @ params["b"]) ** 4
    """
    path = _write(tmp_path, source, data='path = "d.npz"')
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] ** 2))
    text = (
        (tmp_path / "p.toml")
        .read_text()
        .replace("scale = 1e-3", "scale = 1e-3\nexponents = { a = 2, b = 1 }")
    )
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(EffdynError, match="not homogeneous"):
        predict(load_problem(path))


def test_functions_with_custom_derivative_rules_pass_through_taylor_mode(tmp_path):
    """``jax.nn.relu`` carries a custom derivative rule; the engine runs its body, and a ReLU
    network is positively homogeneous (q = 2, f(cθ) = c²f(θ)). ``jax.nn.softplus`` is
    smooth but its body (``logaddexp``: a max and an abs) has kinks at 0 that cancel: Taylor
    mode gives wrong coefficients there and the validation refuses it, while
    ``log1p(exp(s)) − log 2`` (σ'(0) = 1/2) gives q = 2 as for tanh."""
    from effdyn.kinds import kind_of

    relu = """
    import jax, jax.numpy as jnp

    def template():
        return {"W1": jnp.zeros((6, 5)), "W2": jnp.zeros((1, 6))}

    def apply(params, x):
        return ACT(x @ params["W1"].T) @ params["W2"].T
    """
    problem = load_problem(_write(tmp_path, relu.replace("ACT", "jax.nn.relu")))
    ex = kind_of(problem).derivation(problem)
    assert ex.degree == 2 and ex.model_homogeneous and not ex.smooth
    problem = load_problem(
        _write(tmp_path, relu.replace("ACT", "(lambda s: jax.nn.softplus(s) - jnp.log(2.0))"))
    )
    with pytest.raises(EffdynError, match="validation failed"):
        kind_of(problem).derivation(problem)
    smooth = relu.replace(
        'ACT(x @ params["W1"].T)', '(jnp.log1p(jnp.exp(x @ params["W1"].T)) - jnp.log(2.0))'
    )
    problem = load_problem(_write(tmp_path, smooth))
    ex = kind_of(problem).derivation(problem)
    assert ex.degree == 2 and not ex.model_homogeneous and ex.smooth and ex.drift == ()
