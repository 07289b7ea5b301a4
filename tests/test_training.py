"""Training the real network: forward pass, gradient steps, the compiled loop, run files.

Expected values never come from JAX: the forward pass and loss are written out in numpy
(``np.tanh``), gradients come from central finite differences of the numpy loss or from the
hand-derived depth-2 formulas below, and GD/Adam trajectories from plain numpy loops.

Depth 2, ``f = a σ(W x̃)ᵀ``-style with ``a = W2`` (1×m), ``h = σ(x̃ Wᵀ)`` (n×m) and the
residual ``r = f − y`` (n×1), the loss ``R = (1/2n) Σ r²`` has

    ∂R/∂a = (1/n) rᵀ h,        ∂R/∂W = (1/n) ((r a) ⊙ σ'(x̃ Wᵀ))ᵀ x̃.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import rich.console

from effdyn.errors import EffdynError
from effdyn.problem import initial_params, problem_from_dict
from effdyn.results import Result
from effdyn.training import TrainRun, load_run, loss_function, network, save_run, train
from effdyn.training import loop as loop_module

ACTS = {
    "tanh(x)": (np.tanh, lambda s: 1.0 - np.tanh(s) ** 2),
    "x*tanh(x)": (lambda s: s * np.tanh(s), lambda s: np.tanh(s) + s * (1.0 - np.tanh(s) ** 2)),
}


def _data(n=12, d=2, d_out=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 1.5, (n, d))
    y = np.sin(x @ np.arange(1.0, d + 1.0))[:, None] + 0.3 * np.arange(d_out)
    return x, y


def _problem(activation="tanh(x)", depth=2, width=6, scale=0.5, x=None, y=None, **train):
    if x is None:
        x, y = _data()
    return problem_from_dict(
        {
            "model": {"depth": depth, "width": width, "activation": activation},
            "data": {"x": x.tolist(), "y": y.tolist()},
            "init": {"scale": scale, "seed": 3},
            "train": train,
        }
    )


def _fig5(width=10, scale=0.1, **train):
    """Zhou et al. 2022 Fig. 5 data (40 points of 1-d input), a two-layer tanh net."""
    return problem_from_dict(
        {
            "model": {"depth": 2, "width": width, "activation": "tanh(x)"},
            "data": {"dataset": "zhou2022-fig5"},
            "init": {"scale": scale, "seed": 0},
            "train": train,
        }
    )


# numpy references ------------------------------------------------------------------------


def np_forward(params, x, sigmas):
    """f with the bias handled explicitly: the LAST column of W1 multiplies the constant 1."""
    w1 = params[0]
    a = sigmas[0](x @ w1[:, :-1].T + w1[:, -1])
    for w, sigma in zip(params[1:-1], sigmas[1:], strict=True):
        a = sigma(a @ w.T)
    return a @ params[-1].T


def np_loss(params, x, y, sigmas):
    r = np_forward(params, x, sigmas) - y
    return 0.5 * np.mean(np.sum(r * r, axis=1))


def np_grad_depth2(params, x, y, activation="tanh(x)"):
    """The hand-derived depth-2 gradient (module docstring)."""
    sigma, dsigma = ACTS[activation]
    w, a = params
    xt = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    s = xt @ w.T
    r = sigma(s) @ a.T - y
    n = len(x)
    return ((r @ a) * dsigma(s)).T @ xt / n, r.T @ sigma(s) / n


def fd_grad(loss, params, h=1e-5):
    """Central finite differences of a numpy loss, entry by entry."""
    grads = []
    for l, w in enumerate(params):
        g = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            plus = [p.copy() for p in params]
            minus = [p.copy() for p in params]
            plus[l][idx] += h
            minus[l][idx] -= h
            g[idx] = (loss(plus) - loss(minus)) / (2 * h)
        grads.append(g)
    return grads


# network() --------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh(x)", "x*tanh(x)"])
@pytest.mark.parametrize("depth", [2, 3])
def test_network_matches_numpy_forward(activation, depth):
    x, y = _data(n=9, d=3, d_out=2)
    p = _problem(activation, depth, width=5, x=x, y=y)
    params = initial_params(p)
    xt = p.inputs()
    assert np.array_equal(xt[:, -1], np.ones(len(x)))  # bias column last
    sigmas = [ACTS[activation][0]] * (depth - 1)
    expected = np_forward(params, x, sigmas)
    got = np.asarray(network(p)(params, xt))
    assert got.shape == (9, 2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)
    # the activations can also be given directly, one per hidden layer
    got = np.asarray(network([activation] * (depth - 1))(params, xt))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)
    loss = float(loss_function(network(p))(params, xt, y))
    np.testing.assert_allclose(loss, np_loss(params, x, y, sigmas), rtol=1e-13)


def test_network_mixed_activations_and_errors():
    x, y = _data(n=7, d=2)
    p = problem_from_dict(
        {
            "model": {"depth": 3, "widths": [4, 3], "activation": ["x*tanh(x)", "tanh(x)"]},
            "data": {"x": x.tolist(), "y": y.tolist()},
            "init": {"scale": 0.7},
        }
    )
    params = initial_params(p)
    sigmas = [ACTS["x*tanh(x)"][0], np.tanh]
    got = np.asarray(network(p)(params, p.inputs()))
    np.testing.assert_allclose(got, np_forward(params, x, sigmas), rtol=0, atol=1e-13)
    with pytest.raises(EffdynError, match="depth 3"):
        network(p)(params[:2], p.inputs())


# one step ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("activation", "depth"), [("tanh(x)", 2), ("x*tanh(x)", 3)])
def test_one_gd_step_is_minus_lr_times_finite_difference_gradient(activation, depth):
    x, y = _data(n=8, d=2)
    lr = 0.1
    p = _problem(activation, depth, width=4, x=x, y=y)
    params0 = initial_params(p)
    sigmas = [ACTS[activation][0]] * (depth - 1)
    g = fd_grad(lambda ps: np_loss(ps, x, y, sigmas), params0)
    run = train(p, steps=1, lr=lr, optimizer="gd")
    assert run.steps == 1 and run.result is Result.COMPLETED
    for w0, w1, gl in zip(params0, run.params, g, strict=True):
        np.testing.assert_allclose((w0 - w1) / lr, gl, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(run.loss[0], np_loss(params0, x, y, sigmas), rtol=1e-13)
    np.testing.assert_allclose(run.loss[1], np_loss(run.params, x, y, sigmas), rtol=1e-13)


def test_one_gd_step_matches_hand_derived_depth2_gradient():
    x, y = _data(n=10, d=3)
    lr = 0.05
    p = _problem("tanh(x)", 2, width=7, x=x, y=y)
    params0 = initial_params(p)
    gw, ga = np_grad_depth2(params0, x, y)
    run = train(p, steps=1, lr=lr, optimizer="gd")
    np.testing.assert_allclose(run.params[0], params0[0] - lr * gw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(run.params[1], params0[1] - lr * ga, rtol=0, atol=1e-12)


# train() ----------------------------------------------------------------------------------


def test_train_partial_chunk_time_loss_and_snapshots():
    """2503 steps in chunks of 1000: one trace, and the whole run equals a numpy GD loop."""
    lr, steps = 0.05, 2503
    p = _fig5(width=9)  # a width no other test uses: its chunk function is traced here
    x, y = p.data.x, p.data.y
    before = loop_module._TRACES[0]
    run = train(p, steps=steps, lr=lr, optimizer="gd", chunk=1000, n_snapshots=40)
    assert loop_module._TRACES[0] - before == 1  # compiled once, the partial chunk included
    train(p, steps=17, lr=0.01, optimizer="gd", chunk=1000)  # shorter run: chunk = 17
    before = loop_module._TRACES[0]
    train(p, steps=1200, lr=0.02, optimizer="gd", chunk=1000, n_snapshots=40)
    assert loop_module._TRACES[0] == before  # same chunk and shapes: reused, even with new lr

    assert run.result is Result.COMPLETED and run.steps == steps == run.steps_requested
    assert np.array_equal(run.t, np.arange(steps + 1) * lr)
    params0 = initial_params(p)
    sigmas = [np.tanh]
    np.testing.assert_allclose(run.loss[0], np_loss(params0, x, y, sigmas), rtol=1e-13)
    assert np.all(np.diff(run.loss[:300]) < 0)  # small lr: GD decreases the loss early on

    # numpy gradient descent with the hand-derived gradient, every step
    params, losses = list(params0), []
    for _ in range(steps):
        losses.append(np_loss(params, x, y, sigmas))
        gw, ga = np_grad_depth2(params, x, y)
        params = [params[0] - lr * gw, params[1] - lr * ga]
    losses.append(np_loss(params, x, y, sigmas))
    np.testing.assert_allclose(run.loss, losses, rtol=1e-10)
    for got, want in zip(run.params, params, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)

    s = run.snapshot_steps
    assert s[0] == 0 and s[-1] == steps and np.all(np.diff(s) > 0)
    assert len(s) <= 40
    ratios = s[2:][s[1:-1] >= 30] / s[1:-1][s[1:-1] >= 30]  # away from integer rounding
    assert ratios.max() / ratios.min() < 1.3
    assert np.all(np.abs(ratios - steps ** (1 / 38)) < 0.1)
    for layer, (snaps, w) in enumerate(zip(run.snapshots, run.params, strict=True)):
        assert snaps.shape == (len(s), *w.shape)
        assert np.array_equal(snaps[0], params0[layer])
        assert np.array_equal(snaps[-1], w)
    for i, k in enumerate(s):  # each snapshot is θ at its step: its loss is loss[k]
        snap = [snaps[i] for snaps in run.snapshots]
        np.testing.assert_allclose(np_loss(snap, x, y, sigmas), run.loss[k], rtol=1e-12)
    assert np.array_equal(run.snapshot_t, s * lr)


def test_adam_matches_numpy_adam():
    x, y = _data(n=10, d=2)
    lr, steps = 0.01, 5
    p = _problem("tanh(x)", 2, width=5, x=x, y=y)
    run = train(p, steps=steps, lr=lr, optimizer="adam")
    b1, b2, eps = 0.9, 0.999, 1e-8
    params = list(initial_params(p))
    m = [np.zeros_like(w) for w in params]
    v = [np.zeros_like(w) for w in params]
    losses = []
    for k in range(1, steps + 1):
        losses.append(np_loss(params, x, y, [np.tanh]))
        grads = np_grad_depth2(params, x, y)
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1**k), v[i] / (1 - b2**k)
            params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    losses.append(np_loss(params, x, y, [np.tanh]))
    assert run.optimizer == "adam" and run.steps == steps
    for got, want in zip(run.params, params, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    np.testing.assert_allclose(run.loss, losses, rtol=1e-10)


def test_defaults_come_from_the_problem():
    p = _fig5(width=10, lr=0.02, steps=30, optimizer="adam")
    run = train(p)
    assert (run.optimizer, run.lr, run.steps_requested, run.steps) == ("adam", 0.02, 30, 30)
    np.testing.assert_allclose(run.t[-1], 0.6)


def test_deterministic_arrays_and_json(tmp_path):
    p = _fig5(width=10)
    runs = [train(p, steps=300, lr=0.1, optimizer="gd", chunk=128) for _ in range(2)]
    a, b = runs
    for name in ("t", "loss", "snapshot_steps"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    for wa, wb in zip(a.params + a.snapshots, b.params + b.snapshots, strict=True):
        assert np.array_equal(wa, wb)
    extra = {"problem": "fig5", "epsilon": np.float64(0.1), "nan": float("nan")}
    save_run(a, tmp_path / "one", extra=extra)
    save_run(b, tmp_path / "two", extra=extra)
    text = (tmp_path / "one" / "result.json").read_bytes()
    assert text == (tmp_path / "two" / "result.json").read_bytes()
    summary = json.loads(text)
    assert summary["nan"] is None and summary["problem"] == "fig5"
    assert summary["steps"] == 300 and summary["t_final"] == pytest.approx(30.0)
    assert summary["initial_loss"] == float(a.loss[0])
    assert summary["final_loss"] == float(a.loss[-1])
    assert list(summary) == sorted(summary)


def test_save_and_load_round_trip(tmp_path):
    p = _problem("x*tanh(x)", 3, width=4)
    run = train(p, steps=40, lr=0.05, optimizer="gd", n_snapshots=8)
    save_run(run, tmp_path / "run")
    with np.load(tmp_path / "run" / "train.npz") as data:
        names = set(data.files)
        assert data["snapshots_W2"].shape == (len(run.snapshot_steps), 4, 4)
        assert np.array_equal(data["snapshot_t"], run.snapshot_steps * run.lr)
    assert {"t", "loss", "W1", "W2", "W3", "snapshot_steps", "snapshots_W1"} <= names
    back = load_run(tmp_path / "run")
    assert isinstance(back, TrainRun)
    assert (back.result, back.message, back.optimizer, back.lr) == (
        run.result,
        run.message,
        run.optimizer,
        run.lr,
    )
    assert back.steps_requested == 40 and back.steps == 40
    for x, y in zip(back.params + back.snapshots, run.params + run.snapshots, strict=True):
        assert np.array_equal(x, y)
    assert np.array_equal(back.loss, run.loss) and np.array_equal(back.t, run.t)
    with pytest.raises(EffdynError, match="overwrite"):
        save_run(run, tmp_path / "x", extra={"result": "fine"})
    with pytest.raises(EffdynError, match="no training run"):
        load_run(tmp_path / "missing")


def test_nonfinite_loss_is_a_result(tmp_path):
    p = _fig5(width=10, scale=1.0)
    run = train(p, steps=5000, lr=1e6, optimizer="gd", chunk=500)
    assert run.result is Result.NONFINITE
    k = run.steps
    assert k < 5000 and len(run.t) == len(run.loss) == k + 1
    assert np.all(np.isfinite(run.loss[:-1])) and not np.isfinite(run.loss[-1])
    assert "\n" not in run.message and f"step {k}" in run.message and "lr" in run.message
    assert run.snapshot_steps[-1] == k
    assert all(np.array_equal(s[-1], w) for s, w in zip(run.snapshots, run.params, strict=True))
    save_run(run, tmp_path)
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["final_loss"] is None and summary["result"] == "nonfinite"
    assert load_run(tmp_path).result is Result.NONFINITE


def test_throw_raises_on_a_nonfinite_loss():
    """throw=True: a diverging run (lr 1e6) raises with the run's message; throw=False
    returns the code."""
    p = _fig5(width=10, scale=1.0)
    quiet = train(p, steps=200, lr=1e6, optimizer="gd", chunk=50)
    assert quiet.result is Result.NONFINITE and quiet.result.failed
    with pytest.raises(EffdynError) as err:
        train(p, steps=200, lr=1e6, optimizer="gd", chunk=50, throw=True)
    assert str(err.value) == quiet.message and f"step {quiet.steps}" in str(err.value)


def test_throw_never_raises_on_an_outcome():
    """COMPLETED and STOPPED are outcomes: throw=True returns them."""
    p = _fig5(width=10, scale=0.1)
    done = train(p, steps=20, lr=0.1, chunk=10, throw=True)
    assert done.result is Result.COMPLETED and done.steps == 20
    stopped = train(p, steps=20000, lr=0.1, chunk=200, stop_below=0.5, throw=True)
    assert stopped.result is Result.STOPPED and stopped.steps < 20000


def test_stop_below_ends_after_the_chunk_where_the_loss_dropped():
    chunk = 200
    p = _fig5(width=10, scale=0.1)
    run = train(p, steps=20000, lr=0.1, optimizer="gd", chunk=chunk, stop_below=0.5)
    assert run.result is Result.STOPPED
    k = run.steps
    assert k < 20000 and k % chunk == 0 and len(run.loss) == k + 1
    assert run.loss[k - chunk : k].min() < 0.5 * run.loss[0]  # dropped in the last chunk
    assert np.all(run.loss[: k - chunk] >= 0.5 * run.loss[0])  # and not before
    assert run.snapshot_steps[-1] == k and "\n" not in run.message


def test_progress_bar_runs(capsys, monkeypatch):
    """progress=True draws the bar (on a captured terminal console standing in for stderr)
    and leaves stdout empty; progress=False draws nothing."""
    screens, real_console = [], rich.console.Console

    def terminal(*args, stderr=False, **kwargs):
        assert stderr  # the bar goes to stderr, never stdout
        screens.append(io.StringIO())
        return real_console(file=screens[-1], force_terminal=True, width=100)

    monkeypatch.setattr(rich.console, "Console", terminal)
    run = train(_fig5(width=10), steps=30, lr=0.1, chunk=10, progress=True)
    assert run.result is Result.COMPLETED
    assert len(screens) == 1
    drawn = screens[0].getvalue()
    assert "training (gd)" in drawn and "30/30" in drawn  # the bar reached its end
    assert capsys.readouterr().out == ""
    train(_fig5(width=10), steps=30, lr=0.1, chunk=10, progress=False)
    assert len(screens) == 1  # no console, no bar
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": float("inf")}, "lr"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"n_snapshots": 1}, "n_snapshots"),
        ({"chunk": 0}, "chunk"),
        ({"stop_below": 0.0}, "stop_below"),
        ({"stop_below": float("nan")}, "stop_below"),
    ],
)
def test_bad_arguments(option, words):
    with pytest.raises(EffdynError, match=words) as err:
        train(_fig5(width=10), **option)
    assert "\n" not in str(err.value)


def test_max_preactivation_is_recorded_every_step():
    """max_{i,k} |w_k·x̃_i| at θ_0 and θ_K, computed with numpy."""
    from effdyn.problem import initial_params, problem_from_dict
    from effdyn.training import train

    problem = problem_from_dict(
        {
            "model": {"depth": 2, "width": 7, "activation": "tanh"},
            "data": {"dataset": "zhou2022-fig5"},
            "init": {"scale": 0.1, "seed": 3},
        }
    )
    run = train(problem, steps=50, lr=0.05, chunk=20)
    xt = problem.inputs()
    w0 = initial_params(problem)[0]
    assert run.max_preactivation.shape == run.loss.shape
    assert run.max_preactivation[0] == pytest.approx(np.max(np.abs(xt @ w0.T)), rel=1e-14)
    assert run.max_preactivation[-1] == pytest.approx(
        np.max(np.abs(xt @ run.params[0].T)), rel=1e-14
    )
