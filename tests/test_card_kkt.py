"""The kkt_directions card: its KKT-point finder, its Clarke residual and its judgement.

Nothing here trains a network: the finder and the residual are checked against closed forms
and a brute-force search over the sphere, and the judgement on small hand-made measurements.
"""

import importlib.util

import numpy as np
import pytest

from effdyn.cards import THEORY_DIR, load_cards


@pytest.fixture(scope="module")
def kkt():
    """The card's module (cards are files in theory/, loaded by path)."""
    spec = importlib.util.spec_from_file_location("card_kkt", THEORY_DIR / "kkt_directions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fibonacci_sphere(count):
    """``count`` nearly uniform unit vectors in R³ (spacing ≈ √(4π/count))."""
    i = np.arange(count) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / count)
    azimuth = np.pi * (1.0 + 5.0**0.5) * i
    return np.stack(
        [np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1
    )


def _relu_objective(u, xt, y):
    """``F(u) = mean_i y_i max(u·x̃_i, 0)``, written out again (independent of the card)."""
    return np.array([np.mean(y * np.maximum(xt @ v, 0.0)) for v in np.atleast_2d(u)])


def test_positive_labels_in_a_cone_have_the_normalized_mean_as_maximum(kkt):
    """y ≡ 1 and every x̃_i near (0, 0, 1): all samples stay active around m = ⟨x̃⟩, so
    F(u) = u·m there and the maximum is u = m/|m| with F = |m|; F ≥ 0 has no minimum < 0."""
    rng = np.random.default_rng(3)
    xt = kkt.lift(0.2 * rng.uniform(-1.0, 1.0, size=(8, 2)))
    y = np.ones(8)
    mean = xt.mean(axis=0)
    plus = kkt.kkt_points(xt, y, +1, starts=30)
    assert 1.0 - plus[0] @ (mean / np.linalg.norm(mean)) < 1e-12
    assert kkt.objective(plus[0], xt, y) == pytest.approx(np.linalg.norm(mean), rel=1e-12)
    assert len(kkt.kkt_points(xt, y, -1, starts=30)) == 0


@pytest.mark.parametrize("case", ["card", "labels"])
def test_best_kkt_points_are_the_extremes_of_F_on_a_dense_sphere(kkt, case):
    """The top KKT point of each sign is F's max (min) over 40 000 points of the sphere, to the
    grid's resolution — on the card's data the maximum lies on a kink, so this also checks
    that kink maxima are found."""
    if case == "card":
        x, y = kkt.make_data(30, 0)
    else:
        rng = np.random.default_rng(11)
        x, y = rng.standard_normal((12, 2)), rng.choice([-1.0, 1.0], size=12)
    xt = kkt.lift(x)
    grid = _fibonacci_sphere(40_000)
    values = _relu_objective(grid, xt, y)
    for sign in (+1, -1):
        points = kkt.kkt_points(xt, y, sign, starts=60)
        best = sign * _relu_objective(points[0], xt, y)[0]
        dense = np.max(sign * values)
        assert best >= dense - 1e-12  # nothing on the grid beats the KKT point
        assert best - dense < 5e-3 * np.abs(values).max()  # and the grid comes close to it
        nearest = grid[np.argmax(sign * values)]
        assert 1.0 - nearest @ points[0] < 5e-3


def test_clarke_residual_is_zero_on_a_kink_with_a_valid_subgradient(kkt):
    """u = e₁ and x̃₁ = e₂ (kinked, y₁ = 1), x̃₂ = (1, −1, 0) (active, y₂ = 1): the Clarke
    gradient (1/2)[(1, −1, 0) + c (0, 1, 0)] is parallel to u at c = 1 ∈ [0, 1]."""
    u = np.array([1.0, 0.0, 0.0])
    xt = np.array([[0.0, 1.0, 0.0], [1.0, -1.0, 0.0]])
    y = np.array([1.0, 1.0])
    out = kkt.clarke_residual(u, xt, y, 1e-9)
    assert out["kinked"] == 1 and out["margin"] == 0.0
    assert out["residual"] < 1e-12
    assert out["coefficients"] == pytest.approx([1.0])
    # one-sided (c = 0): z = (1/2)(1, −1, 0), sine of 45°
    assert kkt.clarke_residual(u, xt, y, -1.0)["residual"] == pytest.approx(2**-0.5)


def test_clarke_residual_is_positive_when_the_subgradient_would_need_c_outside_0_1(kkt):
    """With x̃₂ = (1, −2, 0) the cancelling coefficient is c = 2 ∉ [0, 1]: the best is c = 1,
    g = (1/2)(1, −1, 0), residual sin 45°."""
    u = np.array([1.0, 0.0, 0.0])
    xt = np.array([[0.0, 1.0, 0.0], [1.0, -2.0, 0.0]])
    out = kkt.clarke_residual(u, xt, np.array([1.0, 1.0]), 1e-9)
    assert out["coefficients"] == pytest.approx([1.0])
    assert out["residual"] == pytest.approx(2**-0.5)


def test_clarke_residual_of_a_generic_point_is_its_plain_angle(kkt):
    """Off the kinks the residual is |(I − uuᵀ) z_P| / |z_P| (computed here directly)."""
    x, y = kkt.make_data(30, 0)
    xt = kkt.lift(x)
    u = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    z = ((xt @ u > 0) * y) @ xt / len(y)
    plain = np.linalg.norm(z - (z @ u) * u) / np.linalg.norm(z)
    out = kkt.clarke_residual(u, xt, y, 1e-6)
    assert out["kinked"] == 0
    assert out["residual"] == pytest.approx(plain, rel=1e-12)
    assert out["residual"] > 0.1


def _measurement(residuals, gaps, slope, inverse_rate=1.0):
    """A hand-made measurement in the shape :func:`measure` returns."""
    neurons = [
        {"residual": r, "cos_gap": g, "margin": 1e-3} for r, g in zip(residuals, gaps, strict=True)
    ]
    return {
        "neurons": neurons,
        "slope": slope,
        "inverse_rate": inverse_rate,
        "escaped": True,
        "directions_eps": 1e-5,
        "kkt_plus": [{"u": [1.0, 0.0, 0.0], "F": 1.0}],
        "kkt_minus": [],
        "runs": [],
    }


def test_the_judgement_uses_the_cards_expected_value_and_tolerance(kkt):
    card = load_cards()["kkt_directions"]
    assert card.expected == 0.0 and card.tolerance == 0.02
    good = _measurement([0.003, 0.002, 0.004], [1e-5, 2e-5, 0.0], slope=1.01)
    outcome = kkt.judge(card, good)
    assert outcome.passed and outcome.measured == pytest.approx(0.003)
    assert not kkt.judge(card.with_(expected=0.1), good).passed  # a wrong expected value fails
    assert not kkt.judge(card.with_(tolerance=1e-3), good).passed  # so does a tighter tolerance
    assert kkt.judge(card.with_(expected=0.01, tolerance=0.01), good).passed


def test_the_judgement_fails_on_far_directions_a_wrong_slope_or_no_neurons(kkt):
    card = load_cards()["kkt_directions"]
    assert not kkt.judge(card, _measurement([0.003], [0.2], slope=1.0)).passed
    assert not kkt.judge(card, _measurement([0.003], [0.0], slope=2.0)).passed  # rate λ*/2
    assert not kkt.judge(card, _measurement([0.003], [0.0], slope=None)).passed
    assert not kkt.judge(card, _measurement([], [], slope=1.0)).passed
    assert kkt.judge(card, _measurement([0.003], [0.0], slope=1.09)).passed
