"""``effdyn compare``: the prediction next to what gradient descent really does.

Both sides start from the same weights (:func:`~effdyn.problem.initial_params`). Measured,
with the definitions of docs/theory/measuring.md#condensation-metrics:

- ``t_escape``: the first ``t = k·lr`` at which the training loss is 10% below its start —
  the rule ``predict`` applies to the leading-order loss, so the ratio compares like with
  like; the ratio to ``T*`` is given too.
- the *initial stage* ends at the first step where either assumption of the leading-order
  model fails: the largest first-layer pre-activation ``max |w_k·x̃_i|`` reaches
  :data:`INITIAL_STAGE_PREACTIVATION` (``σ(s) ≈ c_p s^p`` no longer holds: for tanh,
  ``tanh(0.3)/0.3 = 0.97``), or the loss has dropped by :data:`INITIAL_STAGE_LOSS_DROP`
  (the residual is no longer ``≈ −y``). Condensation is a statement about this stage
  (docs/theory/experiments.md#what-to-expect: a few percent of ``T*`` later the first neuron has
  already turned away), so
  directions are measured there, and again at the end of training.
- at each of those times: the grown neurons (norm ≥ 10% of the largest and ≥ 2× their
  initial norm), their alignment with the predicted directions (``max_j |cos|``), and the
  number of lines / orientations at stated clustering thresholds.
- for two-layer networks, the first neuron to grow (largest growth ratio at the initial
  stage) against the predicted one (smallest per-neuron ``T*``).

For a two-layer CNN (docs/theory/cnn.md#effective-dynamics) ``measured["kernels"]`` holds every
kernel's alignment
with the predicted ``±u₁`` at the measured escape step (median/min ``|cos|``, the median
misalignment ``sin∠(W_β, u₁)``, whether each kernel took its predicted orientation), and
``ratios["misalignment_over_predicted"]`` compares it with ``predicted["misalignment"]``;
``kernels.png`` draws the learned kernels beside ``u₁``.

``DIR/result.json`` holds ``predicted``, ``measured`` and ``ratios``; the figures are PNGs
in ``DIR``. The JSON holds no timings, so the same problem gives the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .analysis.condensation import (
    alignment_summary,
    cosine_matrix,
    count_condensation,
    escape_time,
    grown_mask,
)
from .analysis.orientations import unit_rows
from .claims import paper_claim
from .dynamics.blowup import SolverOptions
from .dynamics.predict import predict
from .problem import Problem, initial_params
from .training import save_run, summary_of, train

INITIAL_STAGE_PREACTIVATION = 0.3
INITIAL_STAGE_LOSS_DROP = 0.01
ESCAPE_FRACTION = 0.1
THRESHOLDS = (1e-3, 1e-2, 5e-2)
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
    predicted = predict(problem, opts, progress=progress)
    run = train(problem, progress=progress)
    save_run(run, out)
    w1_initial = initial_params(problem)[0]
    directions = np.asarray(predicted["directions"].get("W1") or np.zeros((0, w1_initial.shape[1])))

    stage_step = _initial_stage_step(run)
    stage_params = _params_at(problem, run, stage_step)
    t_esc = escape_time(run.t, run.loss, ESCAPE_FRACTION)
    measured = {
        "t_escape": None if t_esc is None else float(t_esc),
        "initial_stage": {
            "step": int(stage_step),
            "t": float(run.t[stage_step]),
            "max_preactivation": float(run.max_preactivation[stage_step]),
            **_stage(stage_params[0], w1_initial, directions, thresholds),
        },
        "final": {
            "step": int(len(run.t) - 1),
            "t": float(run.t[-1]),
            "loss": float(run.loss[-1]) if np.isfinite(run.loss[-1]) else None,
            **_stage(run.params[0], w1_initial, directions, thresholds),
        },
        "training": summary_of(run),
    }
    if problem.model.depth == 2 and predicted.get("per_neuron", {}).get("first") is not None:
        growth = np.linalg.norm(stage_params[0], axis=1) / np.linalg.norm(w1_initial, axis=1)
        measured["first_neuron"] = int(np.argmax(growth))
    escape_params = None
    if problem.model.kind == "cnn":
        escape_params, measured["kernels"] = _cnn_kernels(problem, run, predicted, t_esc)
        measured["initial_stage"]["kernels"] = _kernel_alignment(
            problem, stage_params[0], predicted, float(run.t[stage_step])
        )
    result = {
        "problem": problem.source,
        "setting": _setting(problem),
        "predicted": predicted,
        "measured": measured,
        "ratios": _ratios(predicted, measured),
        "paper_claim": paper_claim(problem),
        "definitions": {
            "t_escape": f"first t = k·lr with loss ≤ {1 - ESCAPE_FRACTION:g}·loss(0)",
            "initial_stage": "first step with max_{i,k} |w_k·x̃_i| ≥ "
            f"{INITIAL_STAGE_PREACTIVATION} or loss ≤ {1 - INITIAL_STAGE_LOSS_DROP:g}·loss(0)",
            "grown": "norm ≥ 0.1·max norm and ≥ 2·initial norm",
            "alignment": "max over predicted first-layer directions of |cos|",
            "thresholds": "lines: 1 − |cos|; orientations: 1 − cos (average linkage)",
        },
    }
    if problem.model.kind == "cnn":
        result["definitions"]["kernels"] = (
            "every kernel (row of W1, bias last) at the measured escape step (and at the "
            "initial stage): |cos| with u1 and misalignment sin∠(W_β, ±u1), median over "
            "kernels; misalignment_effective: the same on the exact linear effective "
            "solution at the same t. Past the initial stage the residual −⟨f·∂f⟩ of the "
            "loss (dropped by the effective dynamics) turns kernels away from u1 by an "
            "ε-independent amount, so at small ε measure the rate at the initial stage"
        )
    if figures:
        result["figures"] = _figures(problem, run, predicted, measured, stage_params, out)
        if escape_params is not None:
            result["figures"].append(_kernel_figure(problem, escape_params, predicted, out))
    (out / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True, allow_nan=False))
    return result


def _stage_end(run) -> int | None:
    """First step at which the initial stage has ended (see module doc), or None."""
    ended = (run.max_preactivation >= INITIAL_STAGE_PREACTIVATION) | (
        run.loss <= (1 - INITIAL_STAGE_LOSS_DROP) * run.loss[0]
    )
    over = np.flatnonzero(ended)
    return int(over[0]) if over.size else None


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
    run = train(problem, steps=steps, n_snapshots=2, stop_below=1 - INITIAL_STAGE_LOSS_DROP)
    end = _stage_end(run)
    if end is None:
        return None, None
    return _params_at(problem, run, end)[0], end


def _params_at(problem: Problem, run, step: int):
    """``θ`` at ``step``: training is deterministic, so rerunning ``step`` steps gives it."""
    if step == 0:
        return initial_params(problem)
    if step == len(run.t) - 1:
        return run.params
    return train(problem, steps=step, n_snapshots=2).params


def _stage(w1, w1_initial, directions, thresholds) -> dict:
    grown = grown_mask(w1, w1_initial)
    units, _ = unit_rows(w1[grown])
    align = alignment_summary(units, directions) if len(directions) else None
    return {
        "n_grown": int(grown.sum()),
        "alignment": _finite(align),
        "counts": count_condensation(w1[grown], thresholds) if grown.sum() else [],
    }


def _kernel_alignment(problem: Problem, w1, predicted: dict, t: float) -> dict:
    """Every CNN kernel at time ``t`` against ``±u₁``: median/min ``|cos|``, the median
    misalignment, and (p = 1) the median misalignment of the exact linear effective
    solution at the same ``t`` (``misalignment_effective``: like with like)."""
    from .dynamics.cnn import kernel_misalignment, linear_solution, patch_correlation

    u1 = np.asarray(predicted["u1"])
    sines = kernel_misalignment(w1, u1)
    cos = np.sqrt(np.clip(1.0 - sines**2, 0.0, 1.0))
    out = {
        "median_abs_cos": float(np.median(cos)),
        "min_abs_cos": float(np.min(cos)),
        "misalignment": float(np.median(sines)),
        "n": int(len(sines)),
    }
    if predicted.get("coefficient") is not None:
        z = patch_correlation(problem.patches(), problem.data.y)
        w1_t, _ = linear_solution(z, predicted["coefficient"], *initial_params(problem), t)
        out["misalignment_effective"] = float(np.median(kernel_misalignment(w1_t, u1)))
    return out


def _cnn_kernels(problem: Problem, run, predicted: dict, t_esc) -> tuple:
    """``(W1 and W2 at the measured escape step, the kernels' alignment there)`` — or the
    end of training when the loss never dropped by 10% (``at`` says which)."""
    if t_esc is None:
        step, at = len(run.t) - 1, "end of training (no escape)"
    else:
        step, at = int(round(t_esc / run.lr)), "escape"
    params = _params_at(problem, run, step)
    kernels = {"at": at, "step": step, "t": float(run.t[step])}
    kernels.update(_kernel_alignment(problem, params[0], predicted, float(run.t[step])))
    if predicted.get("misalignment_exponent") is not None:
        orientations = np.sign(params[0] @ np.asarray(predicted["u1"]))
        kernels["orientations_match"] = float(np.mean(orientations == predicted["orientations"]))
    return params, kernels


def _finite(d):
    if d is None:
        return None
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


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


def _setting(problem: Problem) -> str:
    m = problem.model
    acts = ", ".join(dict.fromkeys(m.activations))
    eps = ", ".join(f"{s:g}" for s in dict.fromkeys(problem.init.scales))
    if m.kind == "cnn":
        stride = f", stride {m.stride}" if m.stride != 1 else ""
        return (
            f"{problem.data.name}, CNN {m.channels} kernels {m.kernel}×{m.kernel}{stride}, "
            f"{acts}, ε = {eps}, {problem.train.optimizer} lr {problem.train.lr:g}"
        )
    return (
        f"{problem.data.name}, depth {m.depth}, width {'/'.join(map(str, m.widths))}, "
        f"{acts}, ε = {eps}, {problem.train.optimizer} lr {problem.train.lr:g}"
    )


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
        title=f"kernels at escape · {_setting(problem)}",
    )
    return Path(plotting.save_figure(ax, out / "kernels.png")).name


def _figures(problem, run, predicted, measured, stage_params, out: Path) -> list[str]:
    from . import plotting

    setting = _setting(problem)
    names = []
    w1 = stage_params[0]
    grown = grown_mask(w1, initial_params(problem)[0])
    directions = np.asarray(predicted["directions"].get("W1") or [])
    if grown.sum() >= 2:
        matrix, _ = cosine_matrix(w1[grown], order="cluster")
        ax = plotting.plot_cosine_heatmap(matrix, title=f"initial stage · {setting}")
        names.append(plotting.save_figure(ax, out / "cosine_initial.png"))
    final_grown = grown_mask(run.params[0], initial_params(problem)[0])
    if final_grown.sum() >= 2:
        matrix, _ = cosine_matrix(run.params[0][final_grown], order="cluster")
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
        units, _ = unit_rows(w1[grown])
        ax = plotting.plot_direction_alignment(
            units, directions, title=f"initial stage · {setting}"
        )
        names.append(plotting.save_figure(ax, out / "alignment.png"))
    return [Path(n).name for n in names]
