"""``effdyn compare``: the prediction next to what gradient descent really does.

Both sides start from the same weights (:func:`~effdyn.problem.initial_params`). Measured,
with the definitions of docs/theory/measuring.md:

- ``t_escape``: the first ``t = k·lr`` at which the training loss is 10% below its start —
  the rule ``predict`` applies to the leading-order loss, so the ratio compares like with
  like; the ratio to ``T*`` is given too.
- the *initial stage* ends at the first step where either assumption of the leading-order
  model fails: the largest first-layer pre-activation ``max |w_k·x̃_i|`` reaches
  :data:`INITIAL_STAGE_PREACTIVATION` (``σ(s) ≈ c_p s^p`` no longer holds: for tanh,
  ``tanh(0.3)/0.3 = 0.97``), or the loss has dropped by :data:`INITIAL_STAGE_LOSS_DROP`
  (the residual is no longer ``≈ −y``). Condensation is a statement about this stage
  (docs/theory/measuring.md#initial-stage: a few percent of ``T*`` later the first neuron
  has already turned away), so directions are measured there, and again at the end of training.
- at each of those times: the grown neurons (norm ≥ 10% of the largest and ≥ 2× their
  initial norm), their alignment with the predicted directions (``max_j |cos|``), and the
  number of lines / orientations at stated clustering thresholds.
- for two-layer networks, the first neuron to grow (largest growth ratio at the initial
  stage) against the predicted one (smallest per-neuron ``T*``).

For a two-layer CNN (docs/theory/cnn.md#misalignment) ``measured["kernels"]`` holds every
kernel's alignment with the predicted ``±u₁`` at the measured escape step (median/min
``|cos|``, the median misalignment ``sin∠(W_β, u₁)``, whether each kernel took its predicted
orientation), and ``ratios["misalignment_over_predicted"]`` compares it with
``predicted["misalignment"]``; ``kernels.png`` draws the learned kernels beside ``u₁``.

``DIR/result.json`` holds ``predicted``, ``measured`` and ``ratios``; the figures are PNGs
in ``DIR``. The JSON holds no timings, so the same problem gives the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .analysis.condensation import (
    COMPARE_THRESHOLDS,
    cosine_matrix,
    escape_time,
    grown_mask,
    stage_summary,
)
from .analysis.orientations import unit_rows
from .claims import paper_claim
from .dynamics.blowup import SolverOptions
from .dynamics.predict import predict
from .kinds import kind_of
from .problem import Problem, initial_leaves
from .staircase.measured import measured_stages
from .training import Capture, save_run, summary_of, train

INITIAL_STAGE_PREACTIVATION = 0.3
INITIAL_STAGE_LOSS_DROP = 0.01
ESCAPE_FRACTION = 0.1
STAGE_CAPTURE = Capture(
    loss_drop=INITIAL_STAGE_LOSS_DROP, max_preactivation=INITIAL_STAGE_PREACTIVATION
)
"""The initial-stage rule as a training trigger (docs/theory/measuring.md#initial-stage)."""
ESCAPE_CAPTURE = Capture(loss_drop=ESCAPE_FRACTION)
"""The 10% escape step (docs/theory/measuring.md#escape-time)."""
THRESHOLDS = COMPARE_THRESHOLDS
"""Clustering thresholds (distance ``1 − |cos|`` for lines, ``1 − cos`` for orientations)."""


def compare(
    problem: Problem,
    out: str | Path,
    *,
    opts: SolverOptions | None = None,
    thresholds: tuple[float, ...] = THRESHOLDS,
    figures: bool = True,
    progress: bool = False,
) -> dict:
    """Predict, train, measure; write ``out/result.json``, ``out/train.npz`` and figures."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kind = kind_of(problem)
    predicted = predict(problem, opts, progress=progress)
    extra = [Capture(at_step=step) for step in kind.capture_steps(problem, predicted)]
    run = train(problem, progress=progress, capture=(STAGE_CAPTURE, ESCAPE_CAPTURE, *extra))
    save_run(run, out, names=problem.leaf_names())
    leaf = kind.main_leaf(problem, predicted)

    def rows(leaves):  # the units of the measured leaf (W1's neurons for the built-in kinds)
        return kind.unit_rows(problem, leaves, leaf)

    w1_initial = rows(initial_leaves(problem))
    directions = np.asarray(predicted["directions"].get(leaf) or np.zeros((0, w1_initial.shape[1])))

    stage_step = _initial_stage_step(run)
    stage_params = run.params_at(stage_step)
    stage_w1 = rows(stage_params)
    t_esc = escape_time(run.t, run.loss, ESCAPE_FRACTION)
    measured = {
        "t_escape": None if t_esc is None else float(t_esc),
        "initial_stage": {
            "step": int(stage_step),
            "t": float(run.t[stage_step]),
            "max_preactivation": float(run.max_preactivation[stage_step]),
            **stage_summary(stage_w1, w1_initial, directions, thresholds),
        },
        "final": {
            "step": int(len(run.t) - 1),
            "t": float(run.t[-1]),
            "loss": float(run.loss[-1]) if np.isfinite(run.loss[-1]) else None,
            **stage_summary(rows(run.params), w1_initial, directions, thresholds),
        },
        "training": summary_of(run),
    }
    if problem.model.depth == 2 and predicted.get("per_neuron", {}).get("first") is not None:
        growth = np.linalg.norm(stage_w1, axis=1) / np.linalg.norm(w1_initial, axis=1)
        measured["first_neuron"] = int(np.argmax(growth))
    if leaf != "W1":
        measured["leaf"] = leaf
    staircase, staircase_note = _predicted_stages(problem, progress)
    measured["stages"] = [st.to_json() for st in measured_stages(run.t, run.loss)]
    units = kind.measure(problem, run, predicted, t_esc, stage_w1, float(run.t[stage_step]))
    measured.update(units.measured)
    measured["initial_stage"].update(units.initial_stage)
    predicted_json = predicted.to_json()
    ratios = _ratios(predicted, measured)
    if staircase is not None:
        predicted_json.update(_stages_keys(staircase))
        ratios["stage_times"] = _stage_ratios(predicted_json, measured["stages"])
    elif staircase_note:
        predicted_json["stages_note"] = staircase_note
    result = {
        "problem": problem.source,
        "setting": kind.setting(problem),
        "predicted": predicted_json,
        "measured": measured,
        "ratios": ratios,
        "paper_claim": paper_claim(problem),
        "definitions": {
            "t_escape": f"first t = k·lr with loss ≤ {1 - ESCAPE_FRACTION:g}·loss(0)",
            "initial_stage": "first step with max_{i,k} |w_k·x̃_i| ≥ "
            f"{INITIAL_STAGE_PREACTIVATION} or loss ≤ {1 - INITIAL_STAGE_LOSS_DROP:g}·loss(0)",
            "grown": "norm ≥ 0.1·max norm and ≥ 2·initial norm",
            "alignment": "max over predicted first-layer directions of |cos|",
            "thresholds": "lines: 1 − |cos|; orientations: 1 − cos (average linkage)",
            "stages": "drops between consecutive plateaus of the training loss, each at the "
            "midpoint crossing of the two levels (docs/theory/staircases.md#measured-staircase)",
        },
    }
    result["definitions"].update(units.definitions)
    if figures:
        result["figures"] = _figures(
            kind.setting(problem),
            run,
            predicted,
            measured,
            (stage_w1, rows(run.params)),
            (w1_initial, directions),
            out,
        )
        if staircase is not None:
            result["figures"].append(
                _stages_figure(kind.setting(problem), run, predicted_json, out)
            )
        if units.escape_params is not None:
            result["figures"].append(_kernel_figure(problem, units.escape_params, predicted, out))
    (out / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True, allow_nan=False))
    return result


def _predicted_stages(problem, progress: bool = False):
    """``(staircase, None)`` where a method applies, else ``(None, why)``."""
    from .errors import EffdynError
    from .staircase import stages

    try:
        return stages(problem, progress=progress), None
    except EffdynError as err:
        return None, str(err)


def _stages_keys(staircase) -> dict:
    """``predicted.stages`` (times in the problem's own ``t``), ``stages_method`` and
    ``stages_time_unit`` (the unit of ``t_limit``, the method's own times)."""
    found = staircase.to_json()
    scale = found.get("log_inv_alpha") if found["time_unit"] != "t" else 1.0
    rows = []
    for stage in found["stages"]:
        row = dict(stage)
        if found["time_unit"] != "t":
            row["t_limit"] = stage["t"]
            row["t"] = None if scale is None else stage["t"] * scale
        rows.append(row)
    return {
        "stages": rows,
        "stages_method": found["method"],
        "stages_time_unit": found["time_unit"],
        "stages_warnings": found["warnings"],
    }


def _stage_ratios(predicted: dict, measured: list) -> list:
    """For each measured stage, the predicted stage whose drop spans the measured midpoint
    level (drops closer than the measured staircase resolves are one measured stage) and
    the ratio of the measured to the predicted drop time."""
    out = []
    for i, m in enumerate(measured):
        middle = 0.5 * (m["loss_before"] + m["loss_after"])
        match = next(
            (
                j
                for j, p in enumerate(predicted["stages"])
                if p["loss_after"] <= middle <= p["loss_before"]
            ),
            None,
        )
        ratio = None if match is None else _ratio(m["t"], predicted["stages"][match]["t"])
        out.append({"measured_stage": i, "predicted_stage": match, "ratio": ratio})
    return out


def _stages_figure(setting, run, predicted, out: Path) -> str:
    from . import plotting

    ax = plotting.plot_staircase(
        run.t,
        run.loss,
        [s["t"] for s in predicted["stages"]],
        [predicted["stages"][0]["loss_before"]] + [s["loss_after"] for s in predicted["stages"]]
        if predicted["stages"]
        else [],
        title=f"{setting} · {predicted['stages_method']}",
    )
    return Path(plotting.save_figure(ax, out / "stages.png")).name


def _stage_end(run) -> int | None:
    """First step at which the initial stage has ended (see module doc), or None."""
    return STAGE_CAPTURE.first_step(run.loss, run.max_preactivation)


def initial_stage_end(run) -> int | None:
    """The step of ``run`` at which the initial stage ended (the rule of the module doc:
    pre-activation 0.3 or a 1% loss drop), or None — for callers that already hold a run
    (:func:`initial_stage` trains one)."""
    return _stage_end(run)


def _initial_stage_step(run) -> int:
    end = _stage_end(run)
    return len(run.t) - 1 if end is None else end


def initial_stage(problem: Problem, steps: int):
    """``(W1, step)`` at the end of the initial stage, training at most ``steps`` steps;
    ``(None, None)`` if the stage has not ended by then. The rule ``compare`` uses."""
    run = train(
        problem,
        steps=steps,
        n_snapshots=2,
        stop_below=1 - INITIAL_STAGE_LOSS_DROP,
        capture=(STAGE_CAPTURE,),
    )
    end = _stage_end(run)
    if end is None:
        return None, None
    return run.params_at(end)[0], end


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else float(a) / float(b)


def _ratios(predicted: dict, measured: dict) -> dict:
    ratios = {
        "escape_over_predicted_escape": _ratio(measured["t_escape"], predicted["t_escape"]),
        "escape_over_t_star": _ratio(measured["t_escape"], predicted["t_star"]),
    }
    kernels = measured.get("kernels")
    if kernels is not None and predicted.get("misalignment"):
        ratios["misalignment_over_predicted"] = kernels["misalignment"] / predicted["misalignment"]
    if "first_neuron" in measured:
        ratios["first_neuron_matches"] = (
            measured["first_neuron"] == predicted["per_neuron"]["first"]
        )
    return ratios


def _kernel_figure(problem: Problem, params, predicted: dict, out: Path) -> str:
    """The learned kernels at escape drawn as images beside the predicted ``u₁``."""
    from . import plotting

    kernels = predicted["model"]
    channels_in = kernels["image_shape"][0]
    k = problem.model.kernel
    ax = plotting.plot_kernels(
        params[0],
        np.asarray(predicted["u1"]),
        (channels_in, k, k),
        title=f"kernels at escape · {kind_of(problem).setting(problem)}",
    )
    return Path(plotting.save_figure(ax, out / "kernels.png")).name


def _figures(setting, run, predicted, measured, units, initial, out: Path) -> list[str]:
    """Cosine heatmaps of the grown units (initial stage, end), the angle-norm plot (2-d
    units), the loss with the escape times, and the units' alignment with the predicted
    directions; ``units`` = (initial stage, final), ``initial`` = (units at 0, directions)."""
    from . import plotting

    names = []
    w1, w_final = units
    w1_initial, directions = initial
    grown = grown_mask(w1, w1_initial)
    if grown.sum() >= 2:
        matrix, _ = cosine_matrix(w1[grown], order="cluster")
        ax = plotting.plot_cosine_heatmap(matrix, title=f"initial stage · {setting}")
        names.append(plotting.save_figure(ax, out / "cosine_initial.png"))
    final_grown = grown_mask(w_final, w1_initial)
    if final_grown.sum() >= 2:
        matrix, _ = cosine_matrix(w_final[final_grown], order="cluster")
        ax = plotting.plot_cosine_heatmap(matrix, title=f"end of training · {setting}")
        names.append(plotting.save_figure(ax, out / "cosine_final.png"))
    if w1.shape[1] == 2:
        ax = plotting.plot_angle_norm(
            w1, directions if len(directions) else None, title=f"initial stage · {setting}"
        )
        names.append(plotting.save_figure(ax, out / "angle_norm.png"))
    ax = plotting.plot_loss(
        run.t,
        run.loss,
        measured["t_escape"],
        predicted["t_escape"],
        predicted["t_star"],
        title=setting,
    )
    names.append(plotting.save_figure(ax, out / "loss.png"))
    if grown.sum() and len(directions):
        rows, _ = unit_rows(w1[grown])
        ax = plotting.plot_direction_alignment(rows, directions, title=f"initial stage · {setting}")
        names.append(plotting.save_figure(ax, out / "alignment.png"))
    return [Path(n).name for n in names]
