"""Phase diagrams: parametrization, theory boundaries, RD, exact batching, slopes, physics.

Expected values never come from the code under test: κ and κ' are formed by hand from the
scales, gradient-descent steps of the tiny RD case are written out in numpy (ReLU, depth 2:
with ``h = relu(x̃ W1ᵀ)``, ``f = μ h aᵀ``, ``r = f − y``, ``R = (1/2n) Σ r²``,

    ∂R/∂a = (μ/n) rᵀ h,      ∂R/∂W1 = (μ/n) ((r a) ⊙ 1[x̃ W1ᵀ > 0])ᵀ x̃ ),

and the slopes of synthetic power laws are the exponents put in. The physics tests compare
with Luo et al. 2021, arXiv 2007.07497 (two-layer, ReLU, γ' = 0: slopes −0.506, 0.007, 0.372 at
γ = 0.5, 1, 1.75) and with the finding of Zhou et al. 2022, arXiv 2205.12101, that the two
hidden layers of one three-layer network can sit in different regimes.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from effdyn.phase import (
    evaluate_points,
    plot_phase_diagram,
    point_shape,
    slopes,
    theory_regime,
    three_layer,
    two_layer,
)
from effdyn.phase.regimes import fit_slope, measured_regime, relative_distance, train_batch
from effdyn.problem import problem_from_dict
from effdyn.results import Result

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAPER_SLOPES = {0.5: -0.506, 1.0: 0.007, 1.75: 0.372}  # Luo et al. 2021, ReLU, γ' = 0


def _fig5(activation="relu", depth=2):
    return problem_from_dict(
        {
            "model": {"depth": depth, "width": 10, "activation": activation},
            "data": {"dataset": "zhou2022-fig5"},
        }
    )


def _tiny():
    rng = np.random.default_rng(7)
    x = rng.uniform(-1.0, 1.0, (5, 2))
    y = np.sin(x @ np.array([1.0, 2.0]))[:, None]
    return problem_from_dict(
        {
            "model": {"depth": 2, "width": 3, "activation": "relu"},
            "data": {"x": x.tolist(), "y": y.tolist()},
        }
    )


# ---------------------------------------------------------------------------------------------
# Parametrization


def test_parametrization_recovers_kappas():
    rng = np.random.default_rng(0)
    for _ in range(50):
        gamma, gamma_prime = rng.uniform(-1, 3), rng.uniform(-2, 2)
        m = int(rng.integers(2, 100_000))
        alpha, beta1, beta2 = two_layer.scales(gamma, gamma_prime, m)
        kappa, kappa_prime = (
            beta1 * beta2 / alpha,
            beta1 / beta2,
        )  # by hand (docs/theory/phase-diagrams.md#two-layer)
        assert -math.log(kappa) / math.log(m) == pytest.approx(gamma, abs=1e-10)
        assert -math.log(kappa_prime) / math.log(m) == pytest.approx(gamma_prime, abs=1e-10)
        assert alpha == 1.0
        assert two_layer.exponents(alpha, beta1, beta2, m) == pytest.approx((gamma, gamma_prime))
        theta0 = m * (beta1**2 + beta2**2) / alpha**2
        assert two_layer.learning_rate(gamma, gamma_prime, m) == pytest.approx(
            0.5 / max(theta0, 1.0), rel=1e-12
        )


def test_initial_params_have_the_scales():
    m = 4000
    w1, w2 = two_layer.initial_params(1.2, 0.3, m, seed=3, input_dim=2)
    _, beta1, beta2 = two_layer.scales(1.2, 0.3, m)
    assert w1.shape == (m, 2) and w2.shape == (1, m)
    assert np.std(w1) == pytest.approx(beta2, rel=0.05)
    assert np.std(w2) == pytest.approx(beta1, rel=0.05)
    e = {"gamma_1": 0.2, "gamma_2": 0.7, "gamma_3": 1.1, "gamma_out": 0.0}
    v1, v2, v3 = three_layer.initial_params(e, 300, seed=1, input_dim=2)
    assert (v1.shape, v2.shape, v3.shape) == ((300, 2), (300, 300), (1, 300))
    assert np.std(v2) == pytest.approx(300**-0.7, rel=0.02)
    eps = [300**-0.2, 300**-0.7, 300**-1.1]
    theta0 = 300**2 * ((eps[0] * eps[1]) ** 2 + (eps[0] * eps[2]) ** 2 + (eps[1] * eps[2]) ** 2)
    assert three_layer.learning_rate(e, 300) == pytest.approx(0.5 / max(theta0, 1.0))


def test_width_must_be_an_integer_above_one():
    with pytest.raises(ValueError, match="width"):
        two_layer.scales(1.0, 0.0, 1)


# ---------------------------------------------------------------------------------------------
# Theory


@pytest.mark.parametrize(
    "gamma, gamma_prime, regime",
    [
        (0.5, 0.0, "linear"),  # NTK
        (1.0, 0.0, "critical"),  # mean-field / Xavier
        (0.5, 0.5, "linear"),  # LeCun / He
        (1.75, 0.0, "condensed"),
        (1.0, -0.7, "critical"),  # γ = 1, γ' ≤ 0
        (1.5, 0.5, "critical"),  # γ' = γ − 1 > 0
        (1.5, 0.4, "condensed"),  # just below the line
        (1.5, 0.6, "linear"),  # just above
        (0.99, -1.0, "linear"),
        (1.01, -1.0, "condensed"),
        (3.0, 2.5, "linear"),
    ],
)
def test_theory_regime(gamma, gamma_prime, regime):
    assert theory_regime(gamma, gamma_prime) == regime


def test_named_inits_in_theory():
    regimes = {name: theory_regime(*point) for name, point in two_layer.NAMED_INITS.items()}
    assert regimes == {
        "NTK": "linear",
        "mean-field": "critical",
        "Xavier": "critical",
        "LeCun/He": "linear",
    }


def test_measured_regime_threshold():
    assert [measured_regime(s) for s in (-0.5, -0.1, 0.05, 0.1, 0.4)] == [
        "linear",
        "critical",
        "critical",
        "critical",
        "condensed",
    ]
    assert measured_regime(math.nan) == "unknown"
    assert measured_regime(0.15, threshold=0.2) == "critical"


# ---------------------------------------------------------------------------------------------
# RD and training


def test_relative_distance_by_hand():
    a = np.array([[3.0, 4.0]])
    b = np.array([[0.0, 4.0]])
    assert relative_distance(b, a) == pytest.approx(3.0 / 5.0, rel=1e-15)


def test_rd_of_a_tiny_run_matches_numpy_gd():
    base = _tiny()
    xt, y = base.inputs(), base.data.y
    n, m, steps = xt.shape[0], 3, 4
    point = {"gamma": 0.3, "gamma_prime": -0.2, "width": m, "seed": 5}
    options = {"max_steps": steps, "tol": 1e-12, "lr_scale": 0.7}
    (result,) = evaluate_points("two_layer", base, [point], train_options=options)

    w1_0, a_0 = two_layer.initial_params(0.3, -0.2, m, 5, xt.shape[1])
    _, beta1, beta2 = two_layer.scales(0.3, -0.2, m)
    lr = 0.7 / max(m * (beta1**2 + beta2**2), 1.0)
    w1, a = w1_0.copy(), a_0.copy()
    loss = []
    for _ in range(steps):
        pre = xt @ w1.T
        h = np.maximum(pre, 0.0)
        r = h @ a.T - y
        loss.append(0.5 * np.mean(r**2))
        grad_a = r.T @ h / n
        grad_w1 = ((r @ a) * (pre > 0)).T @ xt / n
        w1, a = w1 - lr * grad_w1, a - lr * grad_a
    final = 0.5 * np.mean((np.maximum(xt @ w1.T, 0.0) @ a.T - y) ** 2)

    assert result["error"] is None
    assert result["steps"] == steps
    assert result["lr"] == pytest.approx(lr, rel=1e-14)
    rd_w1 = np.linalg.norm(w1 - w1_0) / np.linalg.norm(w1_0)
    rd_a = np.linalg.norm(a - a_0) / np.linalg.norm(a_0)
    assert result["rd_W1"] == pytest.approx(rd_w1, rel=1e-12)
    assert result["rd_W2"] == pytest.approx(rd_a, rel=1e-12)
    assert result["final_loss_ratio"] == pytest.approx(final / loss[0], rel=1e-12)


def test_stop_at_tolerance_keeps_the_parameters_of_that_step():
    base = _fig5()
    point = {"gamma": 0.5, "gamma_prime": 0.0, "width": 20, "seed": 0}
    (free,) = evaluate_points("two_layer", base, [point], train_options={"max_steps": 3000})
    assert free["final_loss_ratio"] <= 0.5
    # A tolerance reached on the way: the run stops at the first step at or below it.
    (stop,) = evaluate_points(
        "two_layer", base, [point], train_options={"max_steps": 3000, "tol": 0.5}
    )
    assert stop["steps"] < free["steps"]
    assert stop["final_loss_ratio"] <= 0.5
    (before,) = evaluate_points(
        "two_layer", base, [point], train_options={"max_steps": stop["steps"] - 1, "tol": 1e-9}
    )
    assert before["final_loss_ratio"] > 0.5  # the loss one step earlier was still above


def test_batch_equals_points_alone():
    base = _fig5()
    points = [
        {"gamma": 0.5, "gamma_prime": 0.0, "width": 30, "seed": 0},
        {"gamma": 1.75, "gamma_prime": 0.0, "width": 30, "seed": 1},
        {"gamma": 1.0, "gamma_prime": 0.5, "width": 30, "seed": 2},
        {"gamma": 0.25, "gamma_prime": -0.5, "width": 30, "seed": 0},
    ]
    options = {"max_steps": 1500, "tol": 0.05, "chunk": 400}
    batch = evaluate_points("two_layer", base, points, train_options=options)
    alone = [evaluate_points("two_layer", base, [p], train_options=options)[0] for p in points]
    assert len({r["steps"] for r in batch}) > 1  # members stopped at different steps
    for b, a in zip(batch, alone, strict=True):
        assert b["steps"] == a["steps"] and b["error"] is None and a["error"] is None
        for key in ("rd_W1", "rd_W2", "final_loss_ratio", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-12, abs=0)


def test_three_layer_batch_equals_points_alone():
    base = _fig5(depth=3)
    points = [
        {"gamma_1": 0.5, "gamma_2": 0.5, "width": 12, "seed": 0},
        {"gamma_1": 0.8, "gamma_2": 0.3, "gamma_3": 0.7, "width": 12, "seed": 1},
    ]
    options = {"max_steps": 300}
    batch = evaluate_points("three_layer", base, points, train_options=options)
    alone = [evaluate_points("three_layer", base, [p], train_options=options)[0] for p in points]
    for b, a in zip(batch, alone, strict=True):
        assert set(b) == {"rd_W1", "rd_W2", "rd_W3", "final_loss_ratio", "steps", "lr", "error"}
        for key in ("rd_W1", "rd_W2", "rd_W3", "final_loss_ratio"):
            assert b[key] == pytest.approx(a[key], rel=1e-12, abs=0)


def test_nonfinite_point_is_an_error_value_and_leaves_the_others_alone():
    base = _fig5()
    good = [
        {"gamma": 0.5, "gamma_prime": 0.0, "width": 25, "seed": 0},
        {"gamma": 1.5, "gamma_prime": 0.0, "width": 25, "seed": 1},
    ]
    bad = {"gamma": 0.5, "gamma_prime": 0.0, "width": 25, "seed": 2, "lr": 1e6}
    options = {"max_steps": 500}
    mixed = evaluate_points("two_layer", base, [good[0], bad, good[1]], train_options=options)
    alone = evaluate_points("two_layer", base, good, train_options=options)
    error = mixed[1]["error"]
    assert isinstance(error, str) and "\n" not in error and "non-finite" in error
    assert math.isnan(mixed[1]["rd_W1"]) and math.isnan(mixed[1]["final_loss_ratio"])
    assert mixed[1]["lr"] == 1e6
    for m_, a in zip([mixed[0], mixed[2]], alone, strict=True):
        assert m_["error"] is None
        assert m_["rd_W1"] == pytest.approx(a["rd_W1"], rel=1e-12, abs=0)
        assert m_["steps"] == a["steps"]
    # A huge learning rate for everyone, through train_options.
    (only,) = evaluate_points("two_layer", base, [good[0]], train_options={"lr": 1e6})
    assert "non-finite" in only["error"] and math.isnan(only["rd_W2"])


def test_member_statuses_are_result_codes():
    """A member at its tolerance is CONVERGED, one still running at max_steps MAX_STEPS, one
    whose loss overflows NONFINITE; the run computes in float64 even where the caller's
    context is float32 (docs/precision.md)."""
    import jax

    base = _fig5()
    xt, y = base.inputs(), base.data.y
    m = 20
    w1, w2 = two_layer.initial_params(0.5, 0.0, m, 0, xt.shape[1])
    params0 = (np.stack([w1] * 3), np.stack([w2] * 3))
    lr = two_layer.learning_rate(0.5, 0.0, m)
    with jax.enable_x64(False):
        run = train_batch(
            ("relu",), params0, [1.0, 1.0, 1.0], [lr, lr * 1e-6, 1e6], xt, y,
            tol=0.5, max_steps=400, chunk=100,
        )  # fmt: skip
    codes = [Result.from_value(c) for c in run.status]
    assert codes == [Result.CONVERGED, Result.MAX_STEPS, Result.NONFINITE]
    assert run.steps[1] == 400 and run.steps[0] < 400
    assert all(isinstance(w, np.ndarray) and w.dtype == np.float64 for w in run.params)


def test_interface_errors():
    base = _fig5()
    p = {"gamma": 1.0, "gamma_prime": 0.0, "width": 10, "seed": 0}
    assert point_shape("two_layer", p) == ("two_layer", 10)
    assert point_shape("three_layer", {"width": 7}) == ("three_layer", 7)
    assert evaluate_points("two_layer", base, []) == []
    with pytest.raises(ValueError, match="one shape"):
        evaluate_points("two_layer", base, [p, {**p, "width": 11}])
    with pytest.raises(ValueError, match="unknown train option"):
        evaluate_points("two_layer", base, [p], train_options={"lr_scal": 1.0})
    with pytest.raises(ValueError, match="kind"):
        point_shape("four_layer", p)


# ---------------------------------------------------------------------------------------------
# Slopes


def test_slopes_of_synthetic_power_laws():
    exponents = {(0.5, 0.0): (-0.5, -0.3), (1.75, 0.0): (0.4, 0.05), (1.0, 1.0): (0.0, 0.7)}
    results = []
    for (g, gp), (s1, s2) in exponents.items():
        for m in (50, 200, 800, 3200):
            for seed, c in ((0, 0.7), (1, 1.9), (2, 1.1)):  # seed-dependent prefactor
                point = {"gamma": g, "gamma_prime": gp, "width": m, "seed": seed}
                results.append((point, {"rd_W1": c * m**s1, "rd_W2": 2 * c * m**s2}))
    # A failed point is left out of its group's fit.
    bad = {"gamma": 0.5, "gamma_prime": 0.0, "width": 400, "seed": 0}
    results.append((bad, {"rd_W1": math.nan, "rd_W2": math.nan, "error": "non-finite"}))
    groups = slopes("two_layer", results)
    assert len(groups) == 3
    for group in groups:
        s1, s2 = exponents[(group["gamma"], group["gamma_prime"])]
        assert group["slopes"]["W1"] == pytest.approx(s1, abs=1e-12)
        assert group["slopes"]["W2"] == pytest.approx(s2, abs=1e-12)
        assert group["regime"] == {"W1": measured_regime(s1), "W2": measured_regime(s2)}
        assert group["n_seeds"] == 3 and group["widths"][0] == 50
        assert set(group) == {"gamma", "gamma_prime", "slopes", "regime", "widths", "n_seeds"}
    # Averaging log RD over seeds: different seed counts per width do not bias the slope.
    assert fit_slope([10, 10, 100], [1.0, 4.0, 20.0]) == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(fit_slope([10, 10], [1.0, 2.0]))


def test_three_layer_slopes_and_figures(tmp_path):
    results = []
    for g1 in (0.4, 0.8):
        for g2 in (0.3, 0.9):
            for m in (20, 80):
                point = {"gamma_1": g1, "gamma_2": g2, "gamma_3": 0.5, "gamma_out": 0.0}
                rd = {"rd_W1": m ** (g1 - 0.5), "rd_W2": m ** (0.5 - g2), "rd_W3": m**-0.2}
                results.append(({**point, "width": m, "seed": 0}, rd))
    groups = slopes("three_layer", results)
    assert len(groups) == 4
    for group in groups:
        assert group["slopes"]["W1"] == pytest.approx(group["gamma_1"] - 0.5, abs=1e-12)
        assert group["slopes"]["W3"] == pytest.approx(-0.2, abs=1e-12)
    assert three_layer.plane_name(groups)[:2] == ("gamma_1", "gamma_2")
    out = plot_phase_diagram(groups, "three_layer", tmp_path / "a" / "three.png", "synthetic")
    assert open(out, "rb").read()[:8] == PNG_SIGNATURE

    two = slopes(
        "two_layer",
        [
            ({"gamma": g, "gamma_prime": gp, "width": m, "seed": 0}, {"rd_W1": m ** (g - 1)})
            for g in (0.5, 1.0, 1.75)
            for gp in (-0.5, 0.5)
            for m in (10, 100)
        ],
    )
    path = tmp_path / "two.png"
    assert plot_phase_diagram(two, "two_layer", path, "synthetic RD = m^(γ−1)") == str(path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 5000


def test_a_full_two_layer_grid_is_drawn_as_cells_of_its_slopes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import QuadMesh

    from effdyn.phase.plot import _heatmap, _is_grid

    gammas, primes = (0.5, 1.0, 2.0), (-0.5, 0.0, 0.5, 1.0)
    results = [
        ({"gamma": g, "gamma_prime": gp, "width": m, "seed": 0}, {"rd_W1": m ** (g - gp)})
        for g in gammas
        for gp in primes
        for m in (10, 100)
        if (g, gp) != (2.0, 1.0)  # one cell without points: no group, not a grid
    ]
    assert not _is_grid(slopes("two_layer", results), "gamma_prime", "gamma")
    results += [({"gamma": 2.0, "gamma_prime": 1.0, "width": 10, "seed": 0}, {"rd_W1": 1.0})]
    groups = slopes("two_layer", results)  # that cell now has one width: a NaN slope
    assert _is_grid(groups, "gamma_prime", "gamma")
    fig, ax = plt.subplots()
    _heatmap(ax, groups, "W1", "gamma_prime", "gamma", "S")
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    cells = np.ma.masked_invalid(mesh.get_array()).reshape(len(gammas), len(primes))
    expected = np.array([[g - gp for gp in primes] for g in gammas])  # rows γ, columns γ'
    assert np.allclose(cells[:2], expected[:2], atol=1e-12)
    assert np.allclose(cells[2, :3], expected[2, :3], atol=1e-12) and cells.mask[2, 3]
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Physics


def test_two_layer_relu_slope_signs():
    """ReLU, γ' = 0: RD(W1) shrinks with width at γ = 0.5 (linear) and grows at γ = 1.75
    (condensed). Small widths and a shortened run keep this fast; the quantitative check
    against the paper is the slow test below."""
    base = _fig5()
    results = []
    for m in (50, 200, 800):
        points = [{"gamma": g, "gamma_prime": 0.0, "width": m, "seed": 0} for g in (0.5, 1.75)]
        out = evaluate_points("two_layer", base, points, train_options={"max_steps": 20_000})
        results += list(zip(points, out, strict=True))
    fitted = {g["gamma"]: g["slopes"]["W1"] for g in slopes("two_layer", results)}
    assert fitted[0.5] < -0.1, fitted
    assert fitted[1.75] > 0.1, fitted


@pytest.mark.slow
def test_two_layer_relu_slopes_match_luo_2021():
    """The recipe (lr = 0.5/max(m(β1²+β2²), 1), GD to 1e-3 of the initial loss or 60000
    steps, zhou2022-fig5 data, widths 100/400/1600, seeds 0 and 1) against the paper's slopes
    (measured there at widths 1000…40000): within 0.15."""
    base = _fig5()
    start = time.perf_counter()
    results = []
    for m in (100, 400, 1600):
        points = [
            {"gamma": g, "gamma_prime": 0.0, "width": m, "seed": s}
            for g in PAPER_SLOPES
            for s in (0, 1)
        ]
        results += list(zip(points, evaluate_points("two_layer", base, points), strict=True))
    fitted = {g["gamma"]: g["slopes"]["W1"] for g in slopes("two_layer", results)}
    print(f"slopes {fitted} in {time.perf_counter() - start:.0f} s")
    for gamma, paper in PAPER_SLOPES.items():
        assert abs(fitted[gamma] - paper) <= 0.15, (gamma, fitted[gamma], paper)


def test_three_layer_layers_in_different_regimes():
    """Zhou et al. 2022: the two hidden layers of one network can sit in different regimes.
    At :data:`~effdyn.phase.three_layer.MIXED_SETTING` (ReLU, zhou2022-fig5 data) the first
    hidden layer's input weights condense (slope > 0.1) while the second's stay linear
    (slope < −0.1). About 20 s: the members reach the tolerance in ~5000 steps."""
    base = _fig5(depth=3)
    results = []
    for m in three_layer.MIXED_WIDTHS:
        points = [{**three_layer.MIXED_SETTING, "width": m, "seed": s} for s in (0, 1)]
        results += list(zip(points, evaluate_points("three_layer", base, points), strict=True))
    (group,) = slopes("three_layer", results)
    print(group["slopes"])
    assert group["slopes"]["W1"] > 0.1 and group["slopes"]["W2"] < -0.1, group["slopes"]
