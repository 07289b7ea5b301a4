"""The unit-by-unit chained staircase of two-layer networks
(docs/theory/staircases.md#two-layer-networks): its first escape against the closed-form
blow-up of a balanced unit, its drop against an independent gradient-flow solve, its drops
and learned units against gradient descent, and its one-line refusals."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from effdyn.data import load_dataset
from effdyn.errors import EffdynError
from effdyn.problem import problem_from_dict
from effdyn.staircase import measured_stages, stages
from effdyn.staircase.units import SWITCH
from effdyn.training import Capture, train


def _fig5(activation, width, scale, lr, steps, seed=0, **extra):
    table = {
        "model": {"depth": 2, "width": width, "activation": activation, **extra},
        "data": {"dataset": "zhou2022-fig5"},
        "init": {"scale": scale, "seed": seed},
        "train": {"optimizer": "gd", "lr": lr, "steps": steps},
    }
    return problem_from_dict(table)


def _fig5_inputs():
    x, y = load_dataset("zhou2022-fig5")
    return np.hstack([x, np.ones_like(x)]), y[:, 0]


def test_first_escape_of_a_balanced_square_unit_is_the_closed_form(tmp_path):
    """σ(s) = s² is its own leading part. A unit w = r u, a = r/√2 on the top eigenvector u
    of M = ⟨y x̃x̃ᵀ⟩ (eigenvalue λ) stays balanced: a' = λr², r' = √2 λ r², so
    r(t) = r0/(1 − √2 λ r0 t). It escapes when a·rms((w·x̃)²) = SWITCH·rms(y), i.e. at
    r_s³ rms((u·x̃)²)/√2 = SWITCH·rms(y): t_s = (1/r0 − 1/r_s)/(√2 λ)."""
    xt, y = _fig5_inputs()
    lam, vecs = np.linalg.eigh((xt * y[:, None]).T @ xt / len(y))
    lam, u = lam[-1], vecs[:, -1]
    r0 = 1e-2
    feature = np.sqrt(np.mean((xt @ u) ** 4))
    r_s = (math.sqrt(2) * SWITCH * np.sqrt(np.mean(y**2)) / feature) ** (1 / 3)
    t_s = (1 / r0 - 1 / r_s) / (math.sqrt(2) * lam)
    path = tmp_path / "init.npz"
    np.savez(path, W1=(r0 * u)[None, :], W2=np.array([[r0 / math.sqrt(2)]]))
    table = {
        "model": {"depth": 2, "width": 1, "activation": "x**2"},
        "data": {"dataset": "zhou2022-fig5"},
        "init": {"path": str(path)},
        "train": {"lr": 0.01, "steps": int(3 * t_s / 0.01)},
    }
    found = stages(problem_from_dict(table, base_dir=tmp_path))
    assert found.method == "chained" and len(found.stages) == 1
    stage = found.stages[0]
    assert stage.learned == {"W1": [0], "W2": [0]}
    assert stage.extra["escapes"][0] == pytest.approx(t_s, rel=1e-8)
    assert stage.loss_before == pytest.approx(0.5 * np.mean(y**2), rel=1e-12)

    # The same unit under the exact gradient flow of the whole (one-unit) network, solved
    # here with numpy and scipy. It feeds f from t = 0, where the prediction lets it in at
    # its switch: while r grows to r_s the residual is lower by O(r³), which delays the
    # exact flow by O(r_s²/λ) ≈ 0.2 here (2e-4 of the time measured); the test allows 1e-3.
    def field(_, s):
        w, a = s[:2], s[2]
        h = xt @ w
        r = y - a * h**2
        return np.concatenate([np.mean((r * 2 * a * h)[:, None] * xt, axis=0), [np.mean(r * h**2)]])

    middle = 0.5 * (stage.loss_before + stage.loss_after)

    def crossing(_, s):
        return 0.5 * np.mean((y - s[2] * (xt @ s[:2]) ** 2) ** 2) - middle

    crossing.terminal = True
    exact = solve_ivp(
        field,
        (0, 3 * t_s),
        np.concatenate([r0 * u, [r0 / math.sqrt(2)]]),
        method="DOP853",
        rtol=1e-11,
        atol=1e-14,
        events=crossing,
    )
    assert exact.t_events[0].size == 1
    assert stage.t == pytest.approx(float(exact.t_events[0][0]), rel=1e-3)


def test_xtanh_drops_and_learned_units_match_gradient_descent():
    """x·tanh x (p = 2) on the Fig. 5 data: units blow up one at a time, each in the
    residual the earlier ones left. Gradient descent at lr = 0.05 lags gradient flow by
    O(lr·rate) on these time scales, and the prediction leads it by the O(r_s²/λ) of the
    closed-form test: the measured gaps are 3e-4 (times) and 5e-6 (plateau levels); the test
    allows 5e-3 and 1e-4. The units it learns are the ones whose output grows in each drop of
    the real run."""
    problem = _fig5("x*tanh(x)", 40, 2e-3, 0.05, 50_000)
    found = stages(problem)
    assert found.method == "chained" and found.time_unit == "t"
    predicted = found.stages
    assert len(predicted) == 2
    k_between = int(0.5 * (predicted[0].t + predicted[1].t) / 0.05)
    run = train(problem, capture=[Capture(at_step=k_between)])
    measured = measured_stages(run.t, run.loss)
    assert len(measured) == 2
    for p, m in zip(predicted, measured, strict=True):
        assert m.t / p.t == pytest.approx(1.0, abs=5e-3)
        assert m.loss_after == pytest.approx(p.loss_after, rel=1e-4)

    xt = problem.inputs()

    def outputs(params):
        w1, w2 = params
        return np.abs(w2[0]) * np.sqrt(np.mean((xt @ w1.T * np.tanh(xt @ w1.T)) ** 2, axis=0))

    before = outputs(run.params_at(0))
    between = outputs(run.captured[0][1])
    after = outputs(run.params)
    first, second = (s.learned["W1"] for s in predicted)
    assert first == [int(np.argmax(between - before))]
    assert second == [int(np.argmax(after - between))]
    # and the first is not simply the second of the initial race: the per-neuron solve of
    # effdyn predict (an independent solver) ranks the units by their T* in the target y
    from effdyn import predict

    ranked = np.argsort(
        [np.inf if t is None else t for t in predict(problem)["per_neuron"]["t_star"]]
    )
    assert ranked[0] == first[0]


def test_a_unit_that_never_escapes_within_the_training_time_gives_no_stage():
    found = stages(_fig5("x*tanh(x)", 10, 1e-3, 0.05, 100))
    assert found.stages == () and "no unit escapes" in found.notes[0]
    # the prediction is gradient flow: an Adam run's t = k·lr is not its clock, and it says so
    adam = _fig5("x*tanh(x)", 10, 1e-3, 0.05, 100).with_(train={"optimizer": "adam"})
    assert any("not gradient-flow time" in note for note in stages(adam).notes)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"activation": "sigmoid"}, "needs σ(0) = 0"),
        ({"depth": 3, "activation": "tanh"}, "of depth 3"),
    ],
)
def test_refusals_are_one_line_with_exit_code_2(tmp_path, model, message):
    table = {
        "model": {"depth": 2, "width": 4, "activation": "tanh", **model},
        "data": {"dataset": "zhou2022-fig5"},
        "init": {"scale": 1e-3},
    }
    with pytest.raises(EffdynError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stages(problem_from_dict(table))
    path = tmp_path / "p.toml"
    lines = [
        f"[{section}]" + "".join(f"\n{k} = {json.dumps(v)}" for k, v in keys.items())
        for section, keys in table.items()
    ]
    path.write_text("\n\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "effdyn.cli", "stages", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_the_report_puts_the_staircase_study_beside_gradient_descent(tmp_path, monkeypatch):
    """``reproduce`` runs each study through ``compare`` and tabulates every measured drop
    beside the predicted one spanning its midpoint level, with the figure."""
    from effdyn import report

    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "study.toml").write_text(
        '[model]\ndepth = 2\nwidth = 40\nactivation = "x*tanh(x)"\n\n'
        '[data]\ndataset = "zhou2022-fig5"\n\n[init]\nscale = 2e-3\nseed = 0\n\n'
        '[train]\noptimizer = "gd"\nlr = 0.05\nsteps = 50000\n'
    )
    monkeypatch.setattr(report, "EXAMPLES", examples)
    monkeypatch.setattr(report, "COMPARISONS", [])
    monkeypatch.setattr(report, "STUDIES", [("study.toml", "x·tanh x, width 40")])
    summary = report.reproduce(tmp_path / "out", quick=True, cards=["staircase_diagonal"])
    study = summary["studies"][0]
    assert [p["predicted_stage"] for p in study["stage_times"]] == [0, 1]
    for pair in study["stage_times"]:
        assert pair["ratio"] == pytest.approx(1.0, abs=5e-3)
    text = (tmp_path / "out" / "report.md").read_text()
    section = text[text.index("## Staircase study") : text.index("## References")]
    rows = [
        line for line in section.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")
    ]
    assert len(rows) == 2 and all(
        f"{p['ratio']:.4f}" in row for p, row in zip(study["stage_times"], rows, strict=True)
    )
    assert (tmp_path / "out" / "study" / "study" / "stages.png").exists()
