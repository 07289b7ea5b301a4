"""Theory against real training (docs/commands.md#compare; docs/theory/measuring.md).

Each comparison runs once per module (fixtures) and several tests read it. Tolerances:

- condensation is measured at the end of the initial stage (largest pre-activation 0.3,
  where tanh(s)/s = 0.97): grown neurons must lie on the predicted directions to median
  |cos| ≥ 0.99 — the residual comes from the initial random part (relative size ε/|w|) and
  from the O(s²) corrections of σ, both small there;
- escape times: GD at step lr is gradient flow up to O(lr·rate) per unit time, and the
  leading-order field is exact up to O(ε^r): the ratio must lie within 5% of 1 for the
  sharp 1-d races (p ≥ 2) and within [0.8, 1.2] for depth 3, approaching 1 as ε shrinks.
"""

import json
import math

import numpy as np
import pytest

from effdyn.compare import compare
from effdyn.problem import load_problem, problem_from_dict


def _fc(dataset, activation, depth, width, eps, lr, steps, optimizer="gd"):
    return problem_from_dict(
        {
            "model": {"depth": depth, "width": width, "activation": activation},
            "data": {"dataset": dataset},
            "init": {"scale": eps, "seed": 0},
            "train": {"optimizer": optimizer, "lr": lr, "steps": steps},
        }
    )


@pytest.fixture(scope="module")
def fig2_tanh_small(tmp_path_factory):
    problem = load_problem("examples/fig2_tanh_small.toml")
    return problem, compare(problem, tmp_path_factory.mktemp("fig2"), figures=False)


def test_fig2_tanh_grown_neurons_lie_on_plus_minus_z(fig2_tanh_small):
    problem, r = fig2_tanh_small
    stage = r["measured"]["initial_stage"]
    xt, y = problem.inputs(), problem.data.y
    zhat = (y.T @ xt)[0] / np.linalg.norm(y.T @ xt)
    predicted = np.array(r["predicted"]["directions"]["W1"])
    assert max(abs(predicted @ zhat)) == pytest.approx(1.0, abs=1e-12)  # ±z, from the theory
    assert stage["n_grown"] >= 10
    assert stage["alignment"]["median_abs_cos"] >= 0.99
    assert stage["counts"][0]["lines"] == 1


# (activation, p, ε, steps): ε small enough for each multiplicity's race to be sharp while
# T*/lr stays affordable (T* ∝ ε^{−(p−1)}).
RACES = {
    "tanh(x)": (1, 1e-4, 3000),
    "x*tanh(x)": (2, 1e-3, 33000),
    "x**2*tanh(x)": (3, 1e-2, 56000),
}


@pytest.fixture(scope="module", params=sorted(RACES))
def fig5(request, tmp_path_factory):
    p, eps, steps = RACES[request.param]
    problem = _fc("zhou2022-fig5", request.param, 2, 100, eps, 0.05, steps)
    return p, compare(problem, tmp_path_factory.mktemp("fig5"), figures=False)


def test_fig5_grown_neurons_lie_on_predicted_critical_orientations(fig5):
    p, r = fig5
    stage = r["measured"]["initial_stage"]
    assert r["predicted"]["n_orientations"] <= 2 * p
    assert stage["n_grown"] >= 1
    assert stage["alignment"]["median_abs_cos"] >= 0.99
    assert stage["alignment"]["min_abs_cos"] >= 0.99  # none off the predicted orientations
    assert all(c["orientations"] <= 2 * p for c in stage["counts"])


def test_fig5_escape_is_a_race_won_by_the_smallest_t_star(fig5):
    p, r = fig5
    if p == 1:
        pytest.skip("p = 1: linear dynamics, no finite-time race")
    assert r["ratios"]["first_neuron_matches"]
    assert r["ratios"]["escape_over_t_star"] == pytest.approx(1.0, abs=0.05)


@pytest.fixture(scope="module")
def depth3(tmp_path_factory):
    out = {}
    for eps, steps in ((3e-3, 9000), (1e-3, 25000)):
        problem = _fc("zhou2022-fig2", "tanh", 3, 8, eps, 0.01, steps)
        out[eps] = compare(problem, tmp_path_factory.mktemp("d3"), figures=False)
    return out


def test_depth3_escape_over_t_star_tends_to_one(depth3):
    ratios = {eps: r["ratios"]["escape_over_t_star"] for eps, r in depth3.items()}
    assert all(0.8 <= q <= 1.2 for q in ratios.values())
    assert abs(ratios[1e-3] - 1) < abs(ratios[3e-3] - 1)
    # T*(ε) ∝ ε^{−(k−1)} with k = 2 (same seed, so θ0 = ε θ̄): T* ε is constant
    t_stars = {eps: r["predicted"]["t_star"] for eps, r in depth3.items()}
    assert t_stars[1e-3] * 1e-3 == pytest.approx(t_stars[3e-3] * 3e-3, rel=1e-8)


def _recount(w1, w1_initial, threshold, *, lines):
    """Clusters among the grown rows, recounted independently of effdyn: numpy for the
    grown mask (norm ≥ 10% of the largest and ≥ 2× its initial norm) and scipy's average
    linkage, cut at ``threshold`` in ``1 − |cos|`` (lines) or ``1 − cos`` (orientations)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    norms = np.linalg.norm(w1, axis=1)
    grown = (norms >= 0.1 * norms.max()) & (norms >= 2.0 * np.linalg.norm(w1_initial, axis=1))
    units = w1[grown] / norms[grown, None]
    if len(units) < 2:
        return len(units)
    cos = np.clip(units @ units.T, -1.0, 1.0)
    dist = np.maximum(1.0 - (np.abs(cos) if lines else cos), 0.0)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    return int(fcluster(tree, t=threshold, criterion="distance").max())


@pytest.mark.parametrize(("name", "lines"), [("tanh", 1), ("xtanh", 2), ("x2tanh", 3)])
def test_paper_fig2_adam_counts_are_reported_beside_the_claim(tmp_path, name, lines):
    r = compare(load_problem(f"examples/fig2_{name}.toml"), tmp_path, figures=False)
    assert r["paper_claim"]["lines"] == lines
    assert r["measured"]["training"]["optimizer"] == "adam"
    counts = r["measured"]["final"]["counts"]
    assert [c["threshold"] for c in counts] == [1e-3, 1e-2, 5e-2]
    # The reported counts are the saved weights' own: recount them from train.npz.
    saved = np.load(tmp_path / "train.npz")
    w1, w1_initial = saved["W1"], saved["snapshots_W1"][0]
    for c in counts:
        assert c["lines"] == _recount(w1, w1_initial, c["threshold"], lines=True)
        assert c["orientations"] == _recount(w1, w1_initial, c["threshold"], lines=False)


def test_same_problem_gives_identical_result_json(tmp_path):
    problem = load_problem("examples/fig2_tanh.toml")
    compare(problem, tmp_path / "a")
    compare(problem, tmp_path / "b")
    a = (tmp_path / "a" / "result.json").read_bytes()
    assert a == (tmp_path / "b" / "result.json").read_bytes()
    r = json.loads(a)
    assert set(r) >= {"predicted", "measured", "ratios"}
    assert {f for f in r["figures"]} >= {"loss.png", "cosine_final.png"}
    assert all(math.isfinite(v) for v in r["measured"]["training"].values() if isinstance(v, float))


def test_initial_stage_reads_the_captured_step_of_one_run():
    """The initial stage ends at the first step with max pre-activation ≥ 0.3 or a 1% loss
    drop (docs/theory/measuring.md#initial-stage); its W1, kept inside the training run, is
    the final W1 of a fresh run of exactly that many steps."""
    from effdyn.compare import initial_stage
    from effdyn.training import train

    problem = _fc("zhou2022-fig5", "tanh", 2, 12, 0.05, 0.1, 600)
    w1, step = initial_stage(problem, 600)
    run = train(problem, steps=600, n_snapshots=2)
    ended = (run.max_preactivation >= 0.3) | (run.loss <= 0.99 * run.loss[0])
    assert step == int(np.flatnonzero(ended)[0]) and 0 < step < 600
    fresh = train(problem, steps=step, n_snapshots=2).params[0]
    np.testing.assert_allclose(w1, fresh, rtol=0, atol=1e-12)
