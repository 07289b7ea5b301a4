"""The row-wise batched integrator (effdyn.dynamics.rowwise) against closed forms and scipy.

- A linear system y' = M y from several initial conditions stopped at t = 1 (t carried as a
  state): every row equals expm(M) y₀ to the tolerance.
- The method is scipy's DOP853 with its step-size rule: on y' = y² the accepted steps of
  every row equal those of ``solve_ivp(method="DOP853")`` within one (event vs. t_bound).
- Rows are independent: a row solved beside a very different row gives the same answer and
  the same step count as alone.
- Status codes (``effdyn.results.Result``): a row already done at the start, a row whose
  field is NaN, and max_steps.
- The vendored DOP853 tableau (effdyn.dynamics.dop853_tableau) satisfies the order
  conditions in exact arithmetic — every rooted tree up to order 8 for the 8th-order
  weights, up to order 5 (and not 6) for the embedded 5th-order solution, up to order 3 for
  the 3rd-order one — and equals scipy's copy of the same published table.
"""

from __future__ import annotations

from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from effdyn._jax import float64
from effdyn.dynamics import dop853_tableau as tableau
from effdyn.dynamics import rowwise
from effdyn.results import Result


@pytest.fixture(autouse=True)
def _in_float64():
    """integrate_rows is traced in the caller's precision: these tests compute in float64."""
    with float64():
        yield


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
    assert np.all(np.asarray(out["status"]) == Result.CONVERGED)
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
    [
        ("done_at_start", Result.CONVERGED),
        ("nan_field", Result.NONFINITE),
        ("few_steps", Result.MAX_STEPS),
        ("leaves_domain", Result.STOPPED),
    ],
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
    elif case == "leaves_domain":  # both rows blow up; alive fails at y ≥ 10 first
        y0 = jnp.array([[1.0], [2.0]])
        alive = lambda y: y[:, 0] < 10.0  # noqa: E731
    else:
        kwargs["max_steps"] = 3
    out = rowwise.integrate_rows(f, y0, done=done, alive=alive, **kwargs)
    status = np.asarray(out["status"])
    if case == "nan_field":
        assert [Result(int(c)) for c in status] == [Result.CONVERGED, expected]
    elif case == "leaves_domain":
        assert [Result(int(c)) for c in status] == [expected] * 2
        y_end = np.asarray(out["y"])[:, 0]
        assert np.all(y_end >= 10.0) and np.all(y_end < 1e3)  # frozen where it left
    elif case == "few_steps":
        assert [Result(int(c)) for c in status] == [expected] * 2
        np.testing.assert_array_equal(np.asarray(out["attempts"]), 3)
    else:
        assert [Result(int(c)) for c in status] == [expected] * 2
        np.testing.assert_array_equal(np.asarray(out["steps"]), 0)


# --- the vendored tableau ------------------------------------------------------------------


def rooted_trees(order: int) -> list:
    """All rooted trees with ``order`` vertices, each a sorted tuple of its subtrees."""
    if order == 1:
        return [()]
    trees = set()
    for children in _forests(order - 1, order - 1):
        trees.add(tuple(sorted(children)))
    return sorted(trees)


def _forests(size: int, largest: int) -> list:
    """Multisets of trees with ``size`` vertices in all, each tree of at most ``largest``."""
    if size == 0:
        return [[]]
    out = []
    for first in range(min(size, largest), 0, -1):
        for tree in rooted_trees(first):
            for rest in _forests(size - first, first):
                # keep each multiset once: trees of the same size in non-increasing order
                if rest and sum_size(rest[0]) == first and rest[0] > tree:
                    continue
                out.append([tree, *rest])
    return out


def sum_size(tree) -> int:
    return 1 + sum(sum_size(child) for child in tree)


def density(tree) -> int:
    """γ(t) = |t| · Π γ(children)."""
    out = sum_size(tree)
    for child in tree:
        out *= density(child)
    return out


def exact_tableau():
    n = tableau.N_STAGES
    a = [[Fraction(0)] * n for _ in range(n)]
    for (i, j), value in tableau.exact("a").items():
        a[i][j] = value
    c = [Fraction(0)] * n
    for i, value in tableau.exact("c").items():
        c[i] = value
    return a, c


def weights(name: str) -> list:
    out = [Fraction(0)] * tableau.N_STAGES
    for i, value in tableau.exact(name).items():
        out[i] = value
    return out


def residuals(a, b, order: int) -> list:
    """``Σ b_i Φ_i(t) − 1/γ(t)`` for every rooted tree ``t`` of the given order, with the
    stage weights ``Φ(t) = Π_children A Φ(child)`` (Butcher's order conditions)."""
    memo = {}

    def phi(tree):
        if tree not in memo:
            vec = [Fraction(1)] * len(b)
            for child in tree:
                inner = phi(child)
                vec = [
                    v * sum(aij * x for aij, x in zip(row, inner, strict=True))
                    for v, row in zip(vec, a, strict=True)
                ]
            memo[tree] = vec
        return memo[tree]

    return [
        sum(bi * p for bi, p in zip(b, phi(t), strict=True)) - Fraction(1, density(t))
        for t in rooted_trees(order)
    ]


def test_tree_counts():
    # 1, 1, 2, 4, 9, 20, 48, 115 rooted trees (OEIS A000081): the generator misses none
    assert [len(rooted_trees(q)) for q in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]


def test_rows_of_a_sum_to_c():
    a, c = exact_tableau()
    for i in range(tableau.N_STAGES):
        assert abs(sum(a[i]) - c[i]) < Fraction(1, 10**28), i
    assert c[0] == 0 and c[-1] == 1


def test_eighth_order_conditions():
    """Σ b = 1, Σ b c = 1/2, Σ b c² = 1/3, Σ b a c = 1/6, … : all 200 trees of order ≤ 8."""
    a, _ = exact_tableau()
    b = weights("b")
    worst = max(abs(r) for q in range(1, 9) for r in residuals(a, b, q))
    assert worst < Fraction(1, 10**26), float(worst)  # the published digits: ~30


def test_embedded_orders():
    """b̂₅ = b − E5 has order 5 exactly; b̂₃ (bhh) has order 3 exactly."""
    a, _ = exact_tableau()
    b, er = weights("b"), weights("er")
    b5 = [bi - ei for bi, ei in zip(b, er, strict=True)]
    assert max(abs(r) for q in range(1, 6) for r in residuals(a, b5, q)) < Fraction(1, 10**26)
    assert max(abs(r) for r in residuals(a, b5, 6)) > Fraction(1, 10**6)
    b3 = weights("bhh")
    assert max(abs(r) for q in range(1, 4) for r in residuals(a, b3, q)) < Fraction(1, 10**26)
    assert max(abs(r) for r in residuals(a, b3, 4)) > Fraction(1, 10**6)


def test_float_arrays_are_the_exact_values_rounded():
    a, c = exact_tableau()
    np.testing.assert_array_equal(tableau.A, np.array([[float(x) for x in row] for row in a]))
    np.testing.assert_array_equal(tableau.C, [float(x) for x in c])
    np.testing.assert_array_equal(tableau.B, [float(x) for x in weights("b")])
    np.testing.assert_array_equal(tableau.E5[:-1], [float(x) for x in weights("er")])
    e3 = [float(x - y) for x, y in zip(weights("b"), weights("bhh"), strict=True)]
    np.testing.assert_allclose(tableau.E3[:-1], e3, rtol=1e-15, atol=1e-16)
    assert tableau.E3[-1] == tableau.E5[-1] == 0.0


def test_tableau_equals_scipys_copy():
    """The only use of scipy's private module: every vendored coefficient against it."""
    from scipy.integrate._ivp import dop853_coefficients as scipy_dop

    n = tableau.N_STAGES
    assert scipy_dop.N_STAGES == n
    pairs = [
        (tableau.A, scipy_dop.A[:n, :n]),
        (tableau.C, scipy_dop.C[:n]),
        (tableau.B, scipy_dop.B),
        (tableau.E3, scipy_dop.E3),
        (tableau.E5, scipy_dop.E5),
    ]
    for ours, theirs in pairs:
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=0)
