"""Loss staircases (docs/theory/staircases.md): the exact deep-linear modes against
quadrature and gradient descent, the Pesme–Flammarion limit against an independent
implementation and gradient descent, the measured staircase against a closed-form curve,
and ``effdyn stages``."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.integrate import quad

from effdyn.errors import EffdynError
from effdyn.problem import problem_from_dict
from effdyn.staircase import measured_stages, stages
from effdyn.training import train

SINGULAR = (3.0, 2.0, 1.0)


def _whitened(n=32, d=4, d_out=3, seed=0):
    """Inputs with ⟨xxᵀ⟩ = I exactly and targets with ⟨yxᵀ⟩ = Z = U diag(s) V_3ᵀ."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, d)))
    x = math.sqrt(n) * q
    u, _ = np.linalg.qr(rng.standard_normal((d_out, d_out)))
    v, _ = np.linalg.qr(rng.standard_normal((d, d)))
    z = u @ np.diag(SINGULAR) @ v[:, :3].T
    return x, x @ z.T, u, v[:, :3]


def _spectral(u, v, depth, width, a0, seed=1):
    """Balanced weights on Z's singular vectors: P = a0^L U Vᵀ, W_{l+1}ᵀW_{l+1} = W_l W_lᵀ."""
    rng = np.random.default_rng(seed)
    bases = [np.linalg.qr(rng.standard_normal((width, 3)))[0] for _ in range(depth - 1)]
    leaves = [a0 * bases[0] @ v.T]
    leaves += [a0 * bases[l] @ bases[l - 1].T for l in range(1, depth - 1)]
    leaves.append(a0 * u @ bases[-1].T)
    return leaves


def _linear_problem(tmp_path, depth, a0, *, lr=1e-3, steps=1000, width=5):
    x, y, u, v = _whitened()
    leaves = _spectral(u, v, depth, width, a0)
    path = tmp_path / f"init{depth}.npz"
    np.savez(path, **{f"W{l + 1}": w for l, w in enumerate(leaves)})
    table = {
        "model": {"depth": depth, "width": width, "activation": "x", "bias": False},
        "data": {"x": x.tolist(), "y": y.tolist()},
        "init": {"path": str(path)},
        "train": {"lr": lr, "steps": steps},
    }
    return problem_from_dict(table, source="<test>", base_dir=tmp_path)


def _quadrature_drop(s, a0, depth):
    """∫ da / (a^{L−1}(s − a^L)) from a0 to the midpoint, in log a (independent of effdyn)."""
    a1 = ((1 - 1 / math.sqrt(2)) * s) ** (1 / depth)
    value, _ = quad(
        lambda w: 1.0 / (math.exp(w) ** (depth - 2) * (s - math.exp(w) ** depth)),
        math.log(a0),
        math.log(a1),
        epsabs=0,
        epsrel=1e-12,
        limit=400,
    )
    return value


# (depth, a0, lr, steps): a0 small enough that the plateaus separate, runs long enough
# to reach the last plateau
SPECTRAL = [(2, 1e-5, 2e-3, 8000), (3, 0.05, 4e-3, 7000), (4, 0.15, 4e-3, 9000)]


@pytest.mark.parametrize(("depth", "a0", "lr", "steps"), SPECTRAL)
def test_exact_modes_match_quadrature_and_gradient_descent(tmp_path, depth, a0, lr, steps):
    problem = _linear_problem(tmp_path, depth, a0, lr=lr, steps=steps)
    found = stages(problem)
    assert found.method == "exact-modes" and found.time_unit == "t"
    assert [s.learned for s in found.stages] == [[0], [1], [2]]  # larger modes first
    expected = [_quadrature_drop(s, a0, depth) for s in SINGULAR]
    np.testing.assert_allclose(found.times, expected, rtol=1e-6)
    # plateau levels: ½⟨|y|²⟩ = ½Σs², less ½s_k² per learned mode
    squares = np.square(SINGULAR)
    levels = 0.5 * (squares.sum() - np.cumsum([0.0, *squares]))  # 7, 2.5, 0.5, 0
    np.testing.assert_allclose([s.loss_before for s in found.stages], levels[:3], rtol=1e-9)
    np.testing.assert_allclose(
        [s.loss_after for s in found.stages], levels[1:], rtol=1e-9, atol=1e-12
    )
    run = train(problem, n_snapshots=2)
    measured = measured_stages(run.t, run.loss)
    assert len(measured) == 3
    np.testing.assert_allclose([s.t for s in measured], expected, rtol=0.02)


def test_exact_modes_are_detected_not_declared(tmp_path):
    """A random (not spectral) initialization is not the exact-modes setting: the chained
    prediction takes over and says why; inputs that are not whitened are refused."""
    problem = _linear_problem(tmp_path, 2, 1e-3)
    noisy = problem.with_(init={"path": None, "scale": 1e-6})
    found = stages(noisy)
    assert found.method == "chained"
    assert "not balanced" in found.notes[0] or "not on Z's singular vectors" in found.notes[0]
    x, y, _, _ = _whitened()
    stretched = problem.with_(data={"x": (x * [1, 1, 1, 1.01]).tolist(), "y": y.tolist()})
    with pytest.raises(EffdynError, match="not whitened"):
        stages(stretched)


def _random_linear(depth, eps, lr, steps, width=6, seed=0):
    x, y, _, _ = _whitened()
    table = {
        "model": {"depth": depth, "width": width, "activation": "x", "bias": False},
        "data": {"x": x.tolist(), "y": y.tolist()},
        "init": {"scale": eps, "seed": seed},
        "train": {"lr": lr, "steps": steps},
    }
    return problem_from_dict(table, source="<test>")


@pytest.mark.parametrize(
    ("depth", "eps", "lr", "steps", "checked"),
    [(2, 1e-6, 5e-3, 3600, 3), (3, 1e-3, 0.02, 60000, 2)],
)
def test_chained_deep_linear_matches_gradient_descent(depth, eps, lr, steps, checked):
    """Random small initialization on whitened data: every predicted drop (depth 2, ε = 1e-6;
    the first two at depth 3, ε = 1e-3) within 10% of GD's, modes in the same order."""
    problem = _random_linear(depth, eps, lr, steps)
    found = stages(problem)
    assert found.method == "chained" and found.time_unit == "t"
    order = [s.learned[0] for s in found.stages]
    assert order == [0, 1, 2]
    run = train(problem, n_snapshots=2)
    measured = measured_stages(run.t, run.loss)
    assert len(measured) >= checked
    predicted = np.array(found.times[:checked])
    gd = np.array([s.t for s in measured[:checked]])
    np.testing.assert_allclose(predicted, gd, rtol=0.10)
    # GD's plateaus are the saddles' levels, in the predicted order of the modes
    np.testing.assert_allclose(
        [s.loss_after for s in measured[:checked]],
        [s.loss_after for s in found.stages[:checked]],
        rtol=0.05,
        atol=1e-3,
    )


# --- diagonal networks: an independent implementation of the limit -------------------------


def _constrained_fit(x, y, active, signs):
    """min ‖Xβ − y‖² over supp β ⊆ A, β_i s_i ≥ 0, by enumerating every support."""
    best, best_value = np.zeros(x.shape[1]), 0.5 * y @ y
    for r in range(1, len(active) + 1):
        for support in itertools.combinations(active, r):
            cols = list(support)
            coef = np.linalg.lstsq(x[:, cols], y, rcond=None)[0]
            if np.any(coef * signs[cols] < 0):
                continue
            beta = np.zeros(x.shape[1])
            beta[cols] = coef
            value = 0.5 * np.sum((x @ beta - y) ** 2)
            if value < best_value - 1e-14:
                best, best_value = beta, value
    return best


def _reference_limit(x, y, jumps=20):
    """Pesme & Flammarion's limit, written out step by step."""
    n, d = x.shape
    s, beta, t = np.zeros(d), np.zeros(d), 0.0
    on = np.zeros(d, bool)
    out = []
    for _ in range(jumps):
        g = x.T @ (x @ beta - y) / n
        g[np.abs(g) < 1e-13] = 0.0
        times = []
        for i in range(d):
            if g[i] == 0 or (on[i] and np.sign(g[i]) != np.sign(s[i])):
                times.append(np.inf)
            elif on[i]:
                times.append(1.0 / abs(g[i]))
            else:
                times.append(((0.5 if g[i] < 0 else -0.5) - s[i]) / -g[i])
        k = int(np.argmin(times))
        if not np.isfinite(times[k]):
            break
        s = s - times[k] * g
        s[k] = 0.5 * np.sign(s[k])
        on = np.abs(np.abs(s) - 0.5) < 1e-12
        t += times[k]
        new = _constrained_fit(x, y, list(np.flatnonzero(on)), np.sign(s))
        out.append((t, new, [i for i in range(d) if beta[i] != 0 and new[i] == 0]))
        beta = new
    return out


def _sparse_problem(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((12, 6))
    truth = np.zeros(6)
    truth[:3] = rng.standard_normal(3)
    return x, x @ truth


@pytest.mark.parametrize("seed", [15, 23, 3])
def test_pesme_flammarion_limit_matches_an_independent_implementation(seed):
    from effdyn.staircase.diagonal import limit

    x, y = _sparse_problem(seed)
    found = limit(x, y)
    reference = _reference_limit(x, y)
    assert len(found) == len(reference)
    for jump, (t, beta, left) in zip(found, reference, strict=True):
        assert jump.t == pytest.approx(t, rel=1e-8)
        np.testing.assert_allclose(jump.beta, beta, rtol=1e-8, atol=1e-10)
        assert list(jump.left) == left
    if seed in (15, 23):  # a coordinate leaves the active set (the sign constraint binds)
        assert any(j.left for j in found)
    # it ends at an interpolant (n > d here: the least-squares fit, loss 0)
    assert found[-1].loss_after == pytest.approx(0.0, abs=1e-20)


def test_rank_deficient_active_set_is_refused():
    from effdyn.staircase.diagonal import limit

    x = np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    y = np.array([1.0, 2.0, 0.1])
    with pytest.raises(EffdynError, match="linearly dependent"):
        limit(x, y)


def _diagonal_problem(x, y, alpha, lr, steps):
    table = {
        "model": {"kind": "diagonal"},
        "data": {"x": x.tolist(), "y": y.tolist()},
        "init": {"scale": alpha},
        "train": {"lr": lr, "steps": steps},
    }
    return problem_from_dict(table, source="<test>")


def test_gradient_descent_approaches_the_limit_as_alpha_shrinks():
    """Midpoint crossings of GD (small lr) in t/log(1/α) against the limit's jump times:
    the distance shrinks as log(1/α) grows (the approach is O(1/log(1/α)))."""
    x, y = _sparse_problem(15)
    limit = stages(_diagonal_problem(x, y, 1e-4, 1.0, 1))
    assert limit.method == "pesme-flammarion" and limit.time_unit == "t/log(1/alpha)"
    levels = [limit.stages[0].loss_before] + [s.loss_after for s in limit.stages]
    jumps = np.array(limit.times)
    distances = []
    for alpha in (1e-4, 1e-8, 1e-16):
        scale = math.log(1 / alpha)
        lr = 0.01
        steps = int(1.15 * jumps[-1] * scale / lr)
        run = train(_diagonal_problem(x, y, alpha, lr, steps), n_snapshots=2)
        crossings = []
        for before, after in zip(levels[:-1], levels[1:], strict=True):
            middle = 0.5 * (before + after)
            below = np.flatnonzero(run.loss <= middle)
            crossings.append(run.t[below[0]] / scale if below.size else np.inf)
        distances.append(float(np.max(np.abs(np.array(crossings) - jumps))))
    assert distances[0] > distances[1] > distances[2]
    # and at the rate O(1/log(1/α)) of the limit: distance·log(1/α) stays put
    scaled = [d * math.log(1 / a) for d, a in zip(distances, (1e-4, 1e-8, 1e-16), strict=True)]
    assert max(scaled) / min(scaled) < 1.25


# --- the measured staircase --------------------------------------------------------------


def test_measured_stages_find_the_midpoints_of_a_closed_form_staircase():
    """R(t) = c + Σ_k h_k σ(−κ(t − τ_k)): plateaus c + Σ_{j≥k} h_j, midpoints at τ_k."""
    t = np.linspace(0, 30, 30001)
    heights, centres = (1.0, 0.5, 0.2), (5.0, 12.0, 22.0)
    pairs = zip(heights, centres, strict=True)
    loss = 0.05 + sum(h / (1 + np.exp(4.0 * (t - c))) for h, c in pairs)
    found = measured_stages(t, loss)
    assert [round(s.t, 3) for s in found] == list(centres)
    np.testing.assert_allclose([s.loss_before for s in found], [1.75, 0.75, 0.25], rtol=1e-5)
    np.testing.assert_allclose([s.loss_after for s in found], [0.75, 0.25, 0.05], rtol=1e-6)


# --- the command ---------------------------------------------------------------------------


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "effdyn.cli", *args], capture_output=True, text=True
    )


def test_stages_command_one_stage_for_rank_one_z(tmp_path):
    """A deep linear network with scalar output: Z has rank one, so one stage."""
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.standard_normal((20, 3)))
    x = math.sqrt(20) * q
    y = x @ np.array([0.6, -1.2, 0.4])
    v = np.array([0.6, -1.2, 0.4]) / np.linalg.norm([0.6, -1.2, 0.4])
    hidden = np.linalg.qr(rng.standard_normal((4, 1)))[0]
    a0 = 1e-3
    np.savez(tmp_path / "w.npz", W1=a0 * hidden @ v[None], W2=a0 * hidden.T)
    (tmp_path / "p.toml").write_text(
        "[model]\ndepth = 2\nwidth = 4\nactivation = 'x'\nbias = false\n"
        f"[data]\nx = {x.tolist()}\ny = {y.tolist()}\n[init]\npath = 'w.npz'\n"
    )
    proc = _cli("stages", str(tmp_path / "p.toml"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["method"] == "exact-modes" and len(out["stages"]) == 1
    s = float(np.linalg.norm([0.6, -1.2, 0.4]))
    assert out["stages"][0]["t"] == pytest.approx(_quadrature_drop(s, a0, 2), rel=1e-6)
    assert out["stages"][0]["learned"] == [0]


def test_stages_command_refuses_a_kind_without_a_method(tmp_path):
    (tmp_path / "cnn.toml").write_text(
        "[model]\nkind = 'cnn'\nchannels = 2\nkernel = 2\nactivation = 'tanh'\n"
        "[data]\nx = [[[0.1, 0.2], [0.3, 0.4]], [[0.5, -0.1], [0.2, 0.0]]]\ny = [1.0, -1.0]\n"
    )
    proc = _cli("stages", str(tmp_path / "cnn.toml"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "stages are not available for kind 'cnn'" in lines[0]


@pytest.mark.parametrize(
    ("model", "init", "message"),
    [
        ({"kind": "diagonal", "depth": 2}, {}, "key 'depth' is not used by kind = 'diagonal'"),
        ({"kind": "diagonal", "loss": "logistic"}, {}, "square loss"),
        ({"kind": "diagonal"}, {"scales": [0.1, 0.1]}, "key 'scales' is not used"),
    ],
)
def test_diagonal_problem_errors(model, init, message):
    table = {"model": model, "data": {"x": [[1.0, 0.0], [0.0, 1.0]], "y": [1.0, 0.5]}}
    if init:
        table["init"] = init
    with pytest.raises(EffdynError, match=message):
        problem_from_dict(table)


def test_diagonal_network_starts_at_alpha_and_trains():
    from effdyn.problem import initial_leaves

    problem = _diagonal_problem(np.eye(3), np.array([1.0, -0.5, 0.2]), 1e-3, 0.05, 4000)
    u, v = initial_leaves(problem)
    np.testing.assert_array_equal(u, np.full(3, 1e-3))
    np.testing.assert_array_equal(v, np.full(3, 1e-3))
    run = train(problem, n_snapshots=2)
    beta = run.params[0] ** 2 - run.params[1] ** 2
    np.testing.assert_allclose(beta, [1.0, -0.5, 0.2], atol=1e-6)


def test_compare_puts_the_measured_staircase_beside_the_predicted_one(tmp_path):
    from effdyn.compare import compare

    problem = _random_linear(2, 1e-6, 5e-3, 3600)
    result = compare(problem, tmp_path / "cmp")
    predicted, measured = result["predicted"], result["measured"]
    assert predicted["stages_method"] == "chained" and predicted["stages_time_unit"] == "t"
    assert len(predicted["stages"]) == len(measured["stages"]) == 3
    pairs = result["ratios"]["stage_times"]
    assert [p["predicted_stage"] for p in pairs] == [0, 1, 2]
    np.testing.assert_allclose([p["ratio"] for p in pairs], 1.0, atol=0.10)
    assert "stages.png" in result["figures"] and (tmp_path / "cmp" / "stages.png").exists()
    # where no method applies the measured staircase is still there, with the reason
    tanh = problem.with_(
        model={"activation": "tanh", "depth": 3, "widths": [4, 4]}, train={"steps": 50}
    )
    other = compare(tanh, tmp_path / "tanh", figures=False)
    assert (
        "stages" not in other["predicted"]
        and "no staircase method" in other["predicted"]["stages_note"]
    )
    assert isinstance(other["measured"]["stages"], list)


def test_random_initialization_with_scalar_output_has_one_stage():
    """Z = ⟨y xᵀ⟩ of a scalar output has rank one: the chained staircase has one stage."""
    rng = np.random.default_rng(5)
    x = math.sqrt(24) * np.linalg.qr(rng.standard_normal((24, 3)))[0]
    y = x @ np.array([0.8, -0.5, 1.1])
    table = {
        "model": {"depth": 3, "width": 5, "activation": "x", "bias": False},
        "data": {"x": x.tolist(), "y": y.tolist()},
        "init": {"scale": 1e-2, "seed": 2},
    }
    found = stages(problem_from_dict(table))
    assert found.method == "chained" and len(found.stages) == 1
    assert found.stages[0].loss_after == pytest.approx(0.0, abs=1e-12)


def test_compare_on_a_diagonal_network_converts_the_limit_to_its_time(tmp_path):
    from effdyn.compare import compare

    x, y = _sparse_problem(15)
    alpha = 1e-8
    problem = _diagonal_problem(x, y, alpha, 0.01, int(1.15 * 3.2 * math.log(1 / alpha) / 0.01))
    result = compare(problem, tmp_path / "diag", figures=False)
    predicted = result["predicted"]
    assert predicted["stages_method"] == "pesme-flammarion"
    for stage in predicted["stages"]:
        assert stage["t"] == pytest.approx(stage["t_limit"] * math.log(1 / alpha), rel=1e-12)
    # the first two jumps (t/log(1/α) = 0.72, 0.77) are one drop at α = 1e-8, and the third
    # is under 2% of the whole drop: the measured staircase sees one drop here
    measured = result["measured"]["stages"]
    assert len(measured) >= 1
    assert measured[0]["t"] / math.log(1 / alpha) == pytest.approx(0.73, abs=0.05)
    assert result["ratios"]["stage_times"][0]["predicted_stage"] in (0, 1)


def test_spectral_balanced_initialization_is_detected_as_such():
    """``spectral_balanced`` gives P = Σ a_k^L u_k v_kᵀ and W_{l+1}ᵀW_{l+1} = W_l W_lᵀ."""
    from effdyn.staircase.modes import detect, spectral_balanced

    x, y, u, v = _whitened()
    z = y.T @ x / len(x)
    a0 = np.array([0.1, 0.2, 0.3])
    leaves = spectral_balanced(z, 3, 5, a0, seed=4)
    product = leaves[2] @ leaves[1] @ leaves[0]
    us, s, vts = np.linalg.svd(z)
    np.testing.assert_allclose(product, us[:, :3] @ np.diag(a0**3) @ vts[:3], atol=1e-14)
    for lower, upper in zip(leaves[:-1], leaves[1:], strict=True):
        np.testing.assert_allclose(upper.T @ upper, lower @ lower.T, atol=1e-14)
    modes, reason = detect(x, y, leaves)
    assert reason == "" and np.allclose(modes.a0, a0) and np.allclose(modes.s, SINGULAR)


def test_staircase_cards_pass_and_draw_into_a_new_folder(tmp_path):
    """The report gives each card a folder that does not exist yet."""
    from effdyn.cards import load_cards, run_card

    cards = load_cards()
    for name in ("staircase_diagonal", "staircase_deep_linear_random"):
        result = run_card(cards[name], quick=True, out_dir=tmp_path / "cards" / name)
        assert result.passed, result.error or result.outcome.summary
        assert (tmp_path / "cards" / name / f"{name}.png").exists()
