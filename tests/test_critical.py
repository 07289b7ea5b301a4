"""Critical orientations of two-layer neurons (docs/theory/effective-dynamics.md#two-layer), checked
independently.

Every expected value here is computed in this file from the definition
``F(w) = (1/n) Σ_i y_i (w·x̃_i)^p`` — by dense sampling on the circle refined with scipy,
by a hand-built ``z`` or ``M``, by multi-start optimisation, or by a hand-written gradient —
never taken from :mod:`effdyn.dynamics.critical`.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize, minimize_scalar

from effdyn.dynamics import critical
from effdyn.dynamics.critical import (
    CriticalOrientation,
    critical_orientations,
    neuron_potential,
    stable_orientations,
)

# --------------------------------------------------------------------------------------------
# independent reference computations
# --------------------------------------------------------------------------------------------


def F_ref(p, xt, y, w):
    """F(w) by an explicit loop over samples (w of shape (D,) or (m, D))."""
    w = np.asarray(w, dtype=float)
    total = np.zeros(w.shape[:-1])
    for xi, yi in zip(xt, y, strict=True):
        total = total + yi * (w @ xi) ** p
    return total / len(y)


def grad_F_ref(p, xt, y, w):
    """∇F(w) = (p/n) Σ_i y_i (w·x̃_i)^{p−1} x̃_i, by hand."""
    g = np.zeros(xt.shape[1])
    for xi, yi in zip(xt, y, strict=True):
        g += p * yi * (w @ xi) ** (p - 1) * xi
    return g / len(y)


def scale_ref(p, xt, y):
    """(1/n) Σ |y_i| |x̃_i|^p ≥ max |F| on the sphere: the reference for "relative"."""
    return float(np.mean(np.abs(y) * np.linalg.norm(xt, axis=1) ** p))


def circle_extrema(p, xt, y, m=200_000):
    """Every local max/min of φ ↦ F(cos φ, sin φ): dense grid, then bounded Brent on ±F.

    Returns a list of (unit vector, "max" | "min").
    """
    phi = np.arange(m) * (2 * np.pi / m)
    f = F_ref(p, xt, y, np.stack([np.cos(phi), np.sin(phi)], axis=1))
    prev, nxt = np.roll(f, 1), np.roll(f, -1)
    found = []
    h = 2 * np.pi / m
    for kind, mask, sgn in (
        ("max", (f > prev) & (f >= nxt), -1.0),
        ("min", (f < prev) & (f <= nxt), 1.0),
    ):
        for k in np.flatnonzero(mask):
            res = minimize_scalar(
                lambda t, s=sgn: s * float(F_ref(p, xt, y, np.array([np.cos(t), np.sin(t)]))),
                bounds=(phi[k] - 2 * h, phi[k] + 2 * h),
                method="bounded",
                options={"xatol": 1e-13},
            )
            found.append((np.array([np.cos(res.x), np.sin(res.x)]), kind))
    return found


def assert_same_set(returned, expected, p):
    assert len(returned) <= 2 * p
    assert len(returned) == len(expected), (
        [c.kind for c in returned],
        [k for _, k in expected],
    )
    used = set()
    for u, kind in expected:
        hits = [
            i
            for i, c in enumerate(returned)
            if float(u @ c.direction) >= 1 - 1e-9 and c.kind == kind and i not in used
        ]
        assert len(hits) == 1, (u, kind, [(c.direction, c.kind) for c in returned])
        used.add(hits[0])


def assert_critical(p, xt, y, points):
    """Unit norm, value = F(u), tangential gradient zero to 1e-8 relative, sorted."""
    ref = p * scale_ref(p, xt, y)
    for c in points:
        u = c.direction
        assert abs(np.linalg.norm(u) - 1) < 1e-12
        assert c.value == pytest.approx(float(F_ref(p, xt, y, u)), abs=1e-12 * ref)
        g = grad_F_ref(p, xt, y, u)
        tangential = g - (u @ g) * u
        assert np.linalg.norm(tangential) <= 1e-8 * ref, (p, u, tangential)
        assert c.attracts == {"max": 1, "min": -1}.get(c.kind, 0)
    values = [c.value for c in points]
    assert values == sorted(values, reverse=True)


# --------------------------------------------------------------------------------------------
# data sets
# --------------------------------------------------------------------------------------------


def with_bias(x):
    return np.stack([x, np.ones_like(x)], axis=1)


def fig5_data():
    """docs/theory/experiments.md#settings-from-the-papers, Zhou 2022 Fig. 5: 40 points of sin 3x +
    sin(6x)/2 on [−1, 1.5]."""
    x = np.linspace(-1.0, 1.5, 40)
    return with_bias(x), np.sin(3 * x) + np.sin(6 * x) / 2


def random_bias_data(seed, n):
    rng = np.random.default_rng(seed)
    return with_bias(rng.uniform(-2, 2, n)), rng.uniform(-1, 1, n)


def random_plain_2d(seed, n):
    """2-d input without bias: the second coordinate is not 1."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)), rng.normal(size=n)


DATA_2D = {
    "fig5": fig5_data,
    "rand10": lambda: random_bias_data(1, 10),
    "rand25": lambda: random_bias_data(2, 25),
    "plain2d": lambda: random_plain_2d(3, 15),
}

# --------------------------------------------------------------------------------------------
# 1. D = 2 against a dense grid
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DATA_2D))
@pytest.mark.parametrize("p", [1, 2, 3, 4, 5])
def test_circle_matches_grid(name, p):
    xt, y = DATA_2D[name]()
    returned = critical_orientations(p, xt, y)
    assert returned is not None
    assert_same_set(returned, circle_extrema(p, xt, y), p)


@pytest.mark.parametrize("name", sorted(DATA_2D))
@pytest.mark.parametrize("p", [1, 2])
def test_circle_polynomial_solver_for_low_p(name, p):
    """The D = 2 root solver (used for p >= 3) also gets p = 1, 2 right (not only ±ẑ, eigh)."""
    xt, y = DATA_2D[name]()
    returned = [
        CriticalOrientation(u, float(F_ref(p, xt, y, u)), kind, 0)
        for u, kind in critical._orientations_d2(p, xt, y, 1e-10)
    ]
    assert_same_set(returned, circle_extrema(p, xt, y), p)


def test_fig5_counts():
    """Zhou 2022: at most p lines; on the Fig. 5 data the bound 2p is reached for p <= 4."""
    xt, y = fig5_data()
    counts = [len(critical_orientations(p, xt, y)) for p in range(1, 6)]
    assert all(c <= 2 * p for p, c in zip(range(1, 6), counts, strict=True))
    assert counts[:4] == [2, 4, 6, 8]


# --------------------------------------------------------------------------------------------
# 2. p = 1: ±z/|z|
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("D", [1, 2, 3, 6])
def test_p1_is_plus_minus_z(D):
    rng = np.random.default_rng(10 + D)
    n = 30
    xt = rng.normal(size=(n, D))
    y = rng.normal(size=n)
    z = np.zeros(D)
    for i in range(n):
        z += y[i] * xt[i]
    z /= n
    zhat = z / np.sqrt(np.sum(z**2))
    pts = critical_orientations(1, xt, y[:, None])
    assert [c.kind for c in pts] == ["max", "min"]
    np.testing.assert_allclose(pts[0].direction, zhat, atol=1e-13)
    np.testing.assert_allclose(pts[1].direction, -zhat, atol=1e-13)
    assert pts[0].value == pytest.approx(np.sqrt(np.sum(z**2)), rel=1e-12)
    assert pts[1].value == pytest.approx(-np.sqrt(np.sum(z**2)), rel=1e-12)
    assert [c.attracts for c in pts] == [1, -1]


# --------------------------------------------------------------------------------------------
# 3. p = 2, D = 4: eigenvectors of M, the max is the global max
# --------------------------------------------------------------------------------------------


def test_p2_eigenvectors_and_global_max():
    rng = np.random.default_rng(7)
    n, d = 50, 3
    xt = np.concatenate([rng.normal(size=(n, d)), np.ones((n, 1))], axis=1)
    y = np.sin(xt[:, :d].sum(axis=1)) + 0.3 * rng.normal(size=n)
    M = np.zeros((4, 4))
    for i in range(n):
        M += y[i] * np.outer(xt[i], xt[i])
    M /= n

    def rayleigh(w, s):
        return s * (w @ M @ w) / (w @ w)

    best = {}
    for s in (-1.0, 1.0):  # s = −1: maximise, s = +1: minimise
        runs = [
            minimize(rayleigh, rng.normal(size=4), args=(s,), method="BFGS", tol=1e-14)
            for _ in range(40)
        ]
        r = min(runs, key=lambda r: r.fun)
        best[s] = (r.x / np.linalg.norm(r.x), s * r.fun)

    pts = critical_orientations(2, xt, y)
    assert len(pts) == 8
    assert [c.kind for c in pts] == ["max"] * 2 + ["saddle"] * 4 + ["min"] * 2
    norm_M = np.linalg.norm(M, 2)
    # global max / min from the optimiser
    assert pts[0].value == pytest.approx(best[-1.0][1], abs=1e-9 * norm_M)
    assert abs(pts[0].direction @ best[-1.0][0]) >= 1 - 1e-8
    assert pts[-1].value == pytest.approx(best[1.0][1], abs=1e-9 * norm_M)
    assert abs(pts[-1].direction @ best[1.0][0]) >= 1 - 1e-8
    for c in pts:
        u = c.direction
        lam = float(F_ref(2, xt, y, u))
        assert np.linalg.norm(M @ u - lam * u) <= 1e-10 * norm_M
        assert c.value == pytest.approx(lam, abs=1e-12 * norm_M)
    # both signs of every eigenvector
    for a, b in zip(pts[0::2], pts[1::2], strict=True):
        np.testing.assert_allclose(a.direction, -b.direction, atol=1e-15)
    assert stable_orientations(pts, +1) == pts[:2]
    assert stable_orientations(pts, -1) == pts[-2:]


# --------------------------------------------------------------------------------------------
# 4. every returned direction is a critical point
# --------------------------------------------------------------------------------------------


CASES_CRITICAL = [
    (1, "rand", 5),
    (2, "rand", 4),
    (2, "rand", 2),
    *[(p, name, 2) for p in (3, 4, 5) for name in sorted(DATA_2D)],
]


@pytest.mark.parametrize(("p", "name", "D"), CASES_CRITICAL)
def test_returned_directions_are_critical(p, name, D):
    if name == "rand":
        rng = np.random.default_rng(100 * p + D)
        xt, y = rng.normal(size=(20, D)), rng.normal(size=20)
    else:
        xt, y = DATA_2D[name]()
    pts = critical_orientations(p, xt, y)
    assert pts
    assert_critical(p, xt, y, pts)


def test_hand_gradient_matches_finite_difference():
    """The test's own ∇F agrees with a central difference of the test's own F."""
    rng = np.random.default_rng(5)
    xt, y = rng.normal(size=(12, 3)), rng.normal(size=12)
    w = rng.normal(size=3)
    for p in (1, 2, 3, 4):
        h = 1e-5
        fd = np.array(
            [(F_ref(p, xt, y, w + h * e) - F_ref(p, xt, y, w - h * e)) / (2 * h) for e in np.eye(3)]
        )
        np.testing.assert_allclose(grad_F_ref(p, xt, y, w), fd, rtol=1e-7, atol=1e-9)


def test_neuron_potential_shapes():
    rng = np.random.default_rng(6)
    xt, y = rng.normal(size=(9, 3)), rng.normal(size=9)
    W = rng.normal(size=(4, 5, 3))
    for p in (1, 3):
        got = neuron_potential(p, xt, y[:, None], W)
        assert got.shape == (4, 5)
        np.testing.assert_allclose(got, F_ref(p, xt, y, W.reshape(-1, 3)).reshape(4, 5))
        single = neuron_potential(p, xt, y, W[0, 0])
        assert np.shape(single) == ()
        assert float(single) == pytest.approx(float(F_ref(p, xt, y, W[0, 0])))
    with pytest.raises(ValueError):
        neuron_potential(2, xt, y, np.ones(2))


# --------------------------------------------------------------------------------------------
# 5. no closed form, bad input, F ≡ 0
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [3, 4])
def test_no_closed_form_returns_none(p):
    rng = np.random.default_rng(p)
    xt, y = rng.normal(size=(10, 3)), rng.normal(size=10)
    assert critical_orientations(p, xt, y) is None
    assert stable_orientations(None, 1) == []


@pytest.mark.parametrize(
    ("p", "xt", "y"),
    [
        (2, np.ones((5, 2)), np.ones((5, 2))),  # two output columns
        (0, np.ones((5, 2)), np.ones(5)),  # p < 1
        (1.5, np.ones((5, 2)), np.ones(5)),  # p not an integer
        (2, np.ones((5, 2)), np.ones(4)),  # n mismatch
        (2, np.ones(5), np.ones(5)),  # xt not (n, D)
        (2, np.ones((5, 2)), np.ones((5, 1, 1))),  # y of rank 3
        (2, np.full((5, 2), np.nan), np.ones(5)),  # not finite
    ],
)
def test_bad_input_raises_value_error(p, xt, y):
    with pytest.raises(ValueError) as err:
        critical_orientations(p, xt, y)
    assert "\n" not in str(err.value)


def test_two_columns_message():
    with pytest.raises(ValueError, match="output columns"):
        critical_orientations(1, np.ones((3, 2)), np.ones((3, 2)))


@pytest.mark.parametrize(("p", "D"), [(1, 2), (1, 4), (2, 2), (2, 5), (3, 2), (5, 2), (3, 3)])
def test_zero_targets_give_empty(p, D):
    xt = np.random.default_rng(0).normal(size=(8, D))
    assert critical_orientations(p, xt, np.zeros(8)) == []


def test_constant_on_circle_gives_empty():
    """M = I/2 (x̃ = e1, e2 with y = 1): F = |w|²/2 is constant on the circle."""
    xt = np.eye(2)
    y = np.ones(2)
    assert critical_orientations(2, xt, y) == []
    assert critical._orientations_d2(2, xt, y, 1e-10) == []


def test_stable_orientations_selects_by_sign():
    xt, y = fig5_data()
    pts = critical_orientations(3, xt, y)
    plus, minus = stable_orientations(pts, 1), stable_orientations(pts, -1)
    assert plus and all(c.kind == "max" for c in plus)
    assert minus and all(c.kind == "min" for c in minus)
    # p odd: F(−u) = −F(u), so the minima are the negated maxima
    for c in plus:
        assert any(np.allclose(-c.direction, m.direction) for m in minus)
    with pytest.raises(ValueError):
        stable_orientations(pts, 0)


def test_result_is_immutable():
    xt, y = fig5_data()
    c = critical_orientations(2, xt, y)[0]
    assert isinstance(c, CriticalOrientation)
    with pytest.raises(AttributeError):
        c.kind = "min"
    with pytest.raises(ValueError):
        c.direction[0] = 2.0


# --------------------------------------------------------------------------------------------
# 6. property: never more than 2p, always critical, the global extrema are found
# --------------------------------------------------------------------------------------------


@st.composite
def small_1d_problems(draw):
    n = draw(st.integers(3, 20))
    floats = st.floats(-2, 2, allow_nan=False, allow_infinity=False)
    x = np.array(draw(st.lists(floats, min_size=n, max_size=n)))
    ys = st.floats(-1, 1, allow_nan=False, allow_infinity=False)
    y = np.array(draw(st.lists(ys, min_size=n, max_size=n)))
    p = draw(st.integers(1, 5))
    return p, with_bias(x), y


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_1d_problems())
def test_property_at_most_2p_and_critical(problem):
    p, xt, y = problem
    pts = critical_orientations(p, xt, y)
    assert pts is not None
    assert len(pts) <= 2 * p
    assert_critical(p, xt, y, pts)
    # completeness of the extremes: the sampled max/min of F on the circle are reached
    phi = np.linspace(0, 2 * np.pi, 721)
    f = F_ref(p, xt, y, np.stack([np.cos(phi), np.sin(phi)], axis=1))
    ref = scale_ref(p, xt, y)
    if f.max() - f.min() > 1e-6 * ref:
        assert pts
        assert max(c.value for c in pts) >= f.max() - 1e-9 * ref
        assert min(c.value for c in pts) <= f.min() + 1e-9 * ref


@pytest.mark.parametrize("p", [2, 3, 4])
def test_one_dimensional_sphere(p):
    """D = 1: the sphere is {−1, +1}; both points, max/min by value, degenerate when equal."""
    x = np.array([[0.5], [-1.0], [2.0]])
    y = np.array([1.0, -0.5, 0.25])
    m = sum(yi * xi[0] ** p for xi, yi in zip(x, y, strict=True)) / 3
    pts = critical_orientations(p, x, y)
    assert sorted(float(c.direction[0]) for c in pts) == [-1.0, 1.0]
    if p % 2 == 0:
        assert [c.kind for c in pts] == ["degenerate"] * 2
        assert all(c.value == pytest.approx(m) for c in pts)
    else:
        assert [c.kind for c in pts] == ["max", "min"]
        assert pts[0].value == pytest.approx(abs(m))
        assert pts[0].direction[0] == np.sign(m)
