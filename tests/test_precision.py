"""float64 without a global switch (docs/precision.md).

``import effdyn`` leaves ``jax_enable_x64`` as the user set it, and effdyn's entry points
compute in float64 inside JAX's scoped ``jax.enable_x64(True)``. The programs run in fresh
interpreters, so no other test's imports can have touched the flag. The independent check
that a result really is float64: the same call in a program that switched x64 on globally
gives the same numbers to 1e-10 relative (a float32 computation differs at ~1e-6).
"""

import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from effdyn.symbolic import derive
from effdyn.symbolic.bridge import jax_field

# A float32 user program that calls effdyn; ``GLOBAL_X64`` is replaced by True/False.
PROGRAM = textwrap.dedent(
    """
    import json
    import jax
    jax.config.update("jax_enable_x64", GLOBAL_X64)
    import jax.numpy as jnp
    import numpy as np
    import effdyn

    mine = jnp.ones(3)
    rng = np.random.default_rng(0)
    xt = np.c_[rng.uniform(-1, 1, size=(6, 2)), np.ones(6)]
    y = rng.normal(size=(6, 1))
    theta = (rng.normal(size=(4, 3)), rng.normal(size=(1, 4)))
    d = effdyn.derive(["x*tanh(x)"])
    field = effdyn.jax_field(d)(0.0, theta, (xt, y))
    x = np.linspace(-1.0, 1.0, 9)[:, None]
    problem = effdyn.problem_from_dict(
        {
            "model": {"depth": 2, "width": 3, "activation": "x*tanh(x)"},
            "data": {"x": x.tolist(), "y": np.sin(2 * x[:, 0] + 0.3).tolist()},
            "init": {"scale": 1e-2, "seed": 0},
        }
    )
    t_star = effdyn.predict(problem)["t_star"]
    print(json.dumps({
        "user_dtype": str(mine.dtype),
        "user_dtype_after": str((mine + 1.0).dtype),
        "x64": bool(jax.config.jax_enable_x64),
        "field_dtypes": [str(g.dtype) for g in field],
        "field": [np.asarray(g).ravel().tolist() for g in field],
        "t_star": t_star,
    }))
    """
)


def _python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_import_leaves_the_flag_off():
    code = "import jax, effdyn, effdyn.symbolic.bridge; print(jax.config.jax_enable_x64)"
    assert _python(code) == "False"


def test_a_float32_program_gets_float64_results_and_keeps_its_float32():
    user = json.loads(_python(PROGRAM.replace("GLOBAL_X64", "False")))
    ref = json.loads(_python(PROGRAM.replace("GLOBAL_X64", "True")))
    # the user's program is untouched
    assert user["user_dtype"] == user["user_dtype_after"] == "float32"
    assert user["x64"] is False
    assert ref["user_dtype"] == "float64" and ref["x64"] is True
    # the bridge's field: float64, the same numbers as under the global switch
    assert user["field_dtypes"] == ["float64", "float64"]
    for got, want in zip(user["field"], ref["field"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)
    # predict's T* (needs predict, model and blowup to compute inside the scoped context)
    assert ref["t_star"] is not None and user["t_star"] is not None
    assert abs(user["t_star"] / ref["t_star"] - 1) <= 1e-10


def test_jax_field_is_float64_inside_a_float32_scope():
    """Depth 2, tanh (p = 1, c = 1): E = ⟨y W2 W1 x̃⟩, so ∇E = (W2ᵀ z, z W1ᵀ) with z = ⟨y x̃ᵀ⟩,
    computed here in numpy float64; a float32 field would be off at ~1e-7."""
    rng = np.random.default_rng(3)
    xt = np.c_[rng.uniform(-1, 1, size=(8, 3)), np.ones(8)]
    y = rng.normal(size=(8, 1))
    w1, w2 = rng.normal(size=(5, 4)), rng.normal(size=(1, 5))
    z = y.T @ xt / len(xt)
    with jax.enable_x64(False):
        field = jax_field(derive(["tanh(x)"]))
        got = field(0.0, (w1, w2), (xt, y))
        got_f32 = field(0.0, (jnp.asarray(w1), jnp.asarray(w2)), (xt, y))
        assert jnp.asarray(w1).dtype == np.float32
    assert [g.dtype for g in got] == [np.float64, np.float64]
    np.testing.assert_allclose(np.asarray(got[0]), w2.T @ z, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.asarray(got[1]), z @ w1.T, rtol=1e-13, atol=1e-15)
    # float32 weights are widened, not recomputed in float32: the field of the rounded weights
    w1r, w2r = (np.asarray(w, dtype=np.float32).astype(np.float64) for w in (w1, w2))
    assert [g.dtype for g in got_f32] == [np.float64, np.float64]
    np.testing.assert_allclose(np.asarray(got_f32[0]), w2r.T @ z, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.asarray(got_f32[1]), z @ w1r.T, rtol=1e-13, atol=1e-15)
