"""The row-wise batched integrator (effdyn.dynamics.rowwise) against closed forms and scipy.

- A linear system y' = M y from several initial conditions stopped at t = 1 (t carried as a
  state): every row equals expm(M) y₀ to the tolerance.
- The method is scipy's DOP853 with its step-size rule: on y' = y² the accepted steps of
  every row equal those of ``solve_ivp(method="DOP853")`` within one (event vs. t_bound).
- Rows are independent: a row solved beside a very different row gives the same answer and
  the same step count as alone.
- Status codes: a row already done at the start, a row whose field is NaN, and max_steps.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from effdyn.dynamics import rowwise

M = np.array([[-0.5, 2.0, 0.0], [-2.0, -0.5, 0.3], [0.0, -0.3, -1.0]])


def linear_rows(y0, t_end=1.0, rtol=1e-10, atol=1e-13):
    """y' = M y with the time as a second leaf; stop once t ≥ t_end."""
    m = jnp.asarray(M)

    def f(y):
        x, t = y
        return x @ m.T, jnp.ones_like(t)

    y = (jnp.asarray(y0), jnp.zeros(len(y0)))
    return rowwise.integrate_rows(
        f,
        y,
        done=lambda y, fy: y[1] >= t_end,
        alive=lambda y: jnp.ones(y[1].shape, bool),
        rtol=rtol,
        atol=atol,
        max_steps=10_000,
    )


def test_linear_system_matches_matrix_exponential(x64):
    rng = np.random.default_rng(1)
    y0 = rng.standard_normal((5, 3))
    out = linear_rows(y0)
    x, t = (np.asarray(a) for a in out["y"])
    assert np.all(np.asarray(out["status"]) == rowwise.DONE)
    for i in range(len(y0)):
        exact = expm(M * t[i]) @ y0[i]  # the row stopped at its own t ≥ 1
        np.testing.assert_allclose(x[i], exact, rtol=1e-8, atol=1e-10)


def quadratic_rows(y0, stop):
    """y' = y² (blow-up at 1/y₀) until y ≥ stop, row by row."""
    return rowwise.integrate_rows(
        lambda y: y**2,
        jnp.asarray(y0)[:, None],
        done=lambda y, fy: y[:, 0] >= stop,
        alive=lambda y: jnp.all(jnp.isfinite(y), axis=1),
        rtol=1e-8,
        atol=1e-12,
        max_steps=10_000,
    )


def test_steps_are_scipys_dop853(x64):
    y0 = np.array([0.5, 1.0, 2.0, 3.0])
    stop = 1e6
    out = quadratic_rows(y0, stop)
    steps = np.asarray(out["steps"])
    for i, v in enumerate(y0):
        event = lambda t, y: y[0] - stop  # noqa: E731
        event.terminal = True
        sol = solve_ivp(
            lambda t, y: y**2, (0, 10 / v), [v], method="DOP853", rtol=1e-8, atol=1e-12,
            events=event,
        )  # fmt: skip
        scipy_steps = len(sol.t) - 1  # accepted steps (the last one ends at the event)
        assert abs(int(steps[i]) - scipy_steps) <= 1, (v, steps[i], scipy_steps)
        # the exact solution y(τ) = y₀ / (1 − y₀ τ), read as τ = 1/y₀ − 1/y(τ) (y itself is
        # ill-conditioned near the blow-up: δy/y = y δτ)
        tau, y_end = float(out["tau"][i]), float(out["y"][i, 0])
        assert abs(tau - (1 / v - 1 / y_end)) <= 1e-8 / v


def test_rows_do_not_interact(x64):
    alone = quadratic_rows(np.array([0.7]), 1e4)
    together = quadratic_rows(np.array([0.7, 50.0, 1e-3]), 1e4)
    assert int(alone["steps"][0]) == int(together["steps"][0])
    np.testing.assert_allclose(float(alone["tau"][0]), float(together["tau"][0]), rtol=1e-14)


@pytest.mark.parametrize(
    "case, expected",
    [("done_at_start", rowwise.DONE), ("nan_field", rowwise.NONFINITE), ("few_steps", 3)],
)
def test_status_codes(x64, case, expected):
    y0 = jnp.array([[1.0], [-2.0]])
    kwargs = dict(rtol=1e-8, atol=1e-12, max_steps=10_000)
    done = lambda y, fy: y[:, 0] >= 1e3  # noqa: E731
    alive = lambda y: jnp.all(jnp.isfinite(y), axis=1)  # noqa: E731
    f = lambda y: y**2  # noqa: E731
    if case == "done_at_start":
        done = lambda y, fy: y[:, 0] >= -5.0  # noqa: E731
    elif case == "nan_field":
        f = lambda y: jnp.where(y < -1.5, jnp.nan, y**2)  # noqa: E731  (row 2 only)
    else:
        kwargs["max_steps"] = 3
    out = rowwise.integrate_rows(f, y0, done=done, alive=alive, **kwargs)
    status = np.asarray(out["status"])
    if case == "nan_field":
        np.testing.assert_array_equal(status, [rowwise.DONE, rowwise.NONFINITE])
    elif case == "few_steps":
        np.testing.assert_array_equal(status, rowwise.OUT_OF_STEPS)
        np.testing.assert_array_equal(np.asarray(out["attempts"]), 3)
    else:
        np.testing.assert_array_equal(status, expected)
        np.testing.assert_array_equal(np.asarray(out["steps"]), 0)
