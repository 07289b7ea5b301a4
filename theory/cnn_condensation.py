"""Card: the kernels of a two-layer CNN condense on ±u₁ at small initialization.

Zhou et al. 2023, arXiv 2305.09947; the misalignment rate: docs/theory/cnn.md#misalignment.
"""

import math
from pathlib import Path

import numpy as np

from effdyn.analysis.condensation import escape_time
from effdyn.cards import Card, Outcome, within
from effdyn.compare import initial_stage_end
from effdyn.data.datasets import load_dataset
from effdyn.dynamics.cnn import kernel_misalignment, linear_solution, patch_correlation
from effdyn.dynamics.predict import predict
from effdyn.problem import initial_params, problem_from_dict
from effdyn.training import train

RUN_TO = 1.15
"""Each GD run lasts RUN_TO × the predicted t_escape (the measured escape is within a few %)."""
CHUNK = 100
"""GD steps per compiled call (fixed, so that runs of different lengths share one compile)."""
MIN_MEDIAN_COS = 0.95
"""Acceptance: the learned kernels align with ±u₁ with median |cos| ≥ 0.95 …"""
ESCAPE_TOLERANCE = 0.1
"""… and the measured escape / predicted t_escape lies in [0.9, 1.1]."""


def _data(case):
    if case.get("images") is None:
        return {"dataset": case["dataset"]}
    x, y = load_dataset(case["dataset"])
    return {"x": x[: case["images"]], "y": y[: case["images"]]}


def _problem(case, eps, steps):
    return problem_from_dict(
        {
            "model": {
                "kind": "cnn",
                "channels": case["channels"],
                "kernel": case["kernel"],
                "activation": case["act"],
            },
            "data": _data(case),
            "init": {"scale": eps, "seed": case.get("seed", 0)},
            "train": {"optimizer": "gd", "lr": case["lr"], "steps": steps},
        },
        source=f"<card cnn_condensation: {_name(case)}>",
    )


def _name(case):
    images = "" if case.get("images") is None else f" (first {case['images']} images)"
    k = case["kernel"]
    return f"{case['dataset']}{images}, {case['channels']} kernels {k}×{k}, {case['act']}"


def measure(case, eps):
    """Predict; train GD to RUN_TO × t_escape; the kernels at the end of the initial stage
    and at the measured escape step, each beside the exact linear effective solution."""
    problem = _problem(case, eps, 1)
    pred = predict(problem)
    steps = math.ceil(RUN_TO * pred["t_escape"] / case["lr"])
    run = train(problem, steps=steps, n_snapshots=2, chunk=CHUNK)
    t_gd = escape_time(run.t, run.loss, 0.1)
    row = {
        "epsilon": eps,
        "t_escape_predicted": pred["t_escape"],
        "t_escape_textbook": pred["t_escape_textbook"],
        "t_escape_gd": t_gd,
        "escape_over_predicted_escape": None if t_gd is None else t_gd / pred["t_escape"],
        "misalignment_predicted": pred["misalignment"],
        "steps": steps,
    }
    stage = initial_stage_end(run)
    if t_gd is None or stage is None:
        return row, pred, None
    u1 = np.asarray(pred["u1"])
    z = patch_correlation(problem.patches(), problem.data.y)
    params0 = initial_params(problem)
    w1_esc = None
    for name, step in (("stage", stage), ("escape", round(t_gd / case["lr"]))):
        # Training is deterministic: rerunning to a step gives the kernels there.
        w1 = train(problem, steps=step, n_snapshots=2, chunk=CHUNK).params[0]
        effective, _ = linear_solution(z, pred["coefficient"], *params0, step * case["lr"])
        sines = kernel_misalignment(w1, u1)
        row[name] = {
            "step": step,
            "t": step * case["lr"],
            "median_abs_cos": float(np.median(np.sqrt(1.0 - sines**2))),
            "min_abs_cos": float(np.min(np.sqrt(1.0 - sines**2))),
            "misalignment": float(np.median(sines)),
            "misalignment_effective": float(np.median(kernel_misalignment(effective, u1))),
        }
        w1_esc = w1
    return row, pred, w1_esc


def run(card, settings, out_dir):
    cases = []
    for case in settings["cases"]:
        rows, last = [], None
        for eps in case["eps"]:
            row, pred, w1 = measure(case, eps)
            rows.append(row)
            if w1 is not None:
                last = (eps, w1, pred)
        exponent = last[2]["misalignment_exponent"] if last else float("nan")
        good = [r for r in rows if "stage" in r]
        slope = float("nan")
        if len(good) >= 2:
            slope = float(
                np.polyfit(
                    np.log([r["epsilon"] for r in good]),
                    np.log([r["stage"]["misalignment"] for r in good]),
                    1,
                )[0]
            )
        cases.append(
            {
                "case": _name(case),
                **{k: v for k, v in case.items() if k != "eps"},
                "epsilons": case["eps"],
                "singular_values": last[2]["singular_values"][:3] if last else None,
                "exponent_predicted": exponent,
                "slope": slope,
                "slope_over_exponent": slope / exponent,
                "rows": rows,
                "_last": last,
            }
        )
    figures = []
    if out_dir is not None:
        figures = _figures(cases, Path(out_dir))
    for c in cases:
        c.pop("_last")
    ratios = [c["slope_over_exponent"] for c in cases]
    worst = max(ratios, key=lambda r: abs(r - card.expected) if math.isfinite(r) else math.inf)
    escapes = [r["escape_over_predicted_escape"] for c in cases for r in c["rows"]]
    coses = [
        r["escape"]["median_abs_cos"] if "escape" in r else math.nan
        for c in cases
        for r in c["rows"]
    ]
    escape_ok = all(e is not None and abs(e - 1.0) <= ESCAPE_TOLERANCE for e in escapes)
    cos_ok = all(c >= MIN_MEDIAN_COS for c in coses)
    passed = bool(within(worst, card.expected, card.tolerance) and escape_ok and cos_ok)

    def fmt(v, spec=".4f"):
        return "—" if v is None else format(v, spec)

    parts = []
    for c in cases:
        esc = ", ".join(fmt(r["escape_over_predicted_escape"]) for r in c["rows"])
        cos = ", ".join(fmt(r["escape"]["median_abs_cos"]) for r in c["rows"] if "escape" in r)
        eps = ", ".join(f"{e:g}" for e in c["epsilons"])
        parts.append(
            f"{c['case']}, GD lr {c['lr']:g}, ε = {eps}: misalignment slope {c['slope']:.3f} vs "
            f"1 − s₂/s₁ = {c['exponent_predicted']:.3f} (ratio {c['slope_over_exponent']:.3f}); "
            f"escape / predicted t_escape {esc}; median |cos(W_β, ±u₁)| at escape {cos}"
        )
    return Outcome(
        measured=float(f"{worst:.4g}") if math.isfinite(worst) else None,
        passed=passed,
        summary="; ".join(parts)
        + f" — escape within ±{ESCAPE_TOLERANCE}: {escape_ok}; median |cos| ≥ "
        f"{MIN_MEDIAN_COS}: {cos_ok}",
        details={
            "cases": cases,
            "escape_ok": escape_ok,
            "median_cos_ok": cos_ok,
            "definitions": {
                "t_escape_gd": "first t = k·lr with loss ≤ 0.9·loss(0)",
                "stage": "end of the initial stage (effdyn.compare: pre-activation 0.3 or a 1% "
                "loss drop)",
                "misalignment": "median over kernels of sin∠(W_β, u₁)",
                "misalignment_effective": "the same on the exact linear effective solution "
                "at the same t",
                "slope": "least-squares slope of log(misalignment at the initial stage) "
                "against log ε",
            },
        },
        figures=figures,
    )


def _figures(cases, out_dir):
    from effdyn import plotting

    plt = plotting._pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for j, c in enumerate(cases):
        good = [r for r in c["rows"] if "stage" in r]
        eps = np.array([r["epsilon"] for r in good])
        for name, marker, label in (
            ("stage", "o", "initial stage"),
            ("escape", "s", "escape (10% drop)"),
        ):
            ax.loglog(
                eps,
                [r[name]["misalignment"] for r in good],
                marker,
                color=f"C{j}",
                mfc="none" if name == "escape" else None,
                label=f"{c['case']}: GD at {label}",
            )
            ax.loglog(
                eps,
                [r[name]["misalignment_effective"] for r in good],
                ":",
                color=f"C{j}",
                lw=1.0,
            )
        anchor = good[0]["stage"]["misalignment_effective"] / eps[0] ** c["exponent_predicted"]
        grid = np.geomspace(eps.min(), eps.max(), 50)
        ax.loglog(
            grid,
            anchor * grid ** c["exponent_predicted"],
            "-",
            color=f"C{j}",
            alpha=0.4,
            label=f"ε^(1 − s₂/s₁) = ε^{c['exponent_predicted']:.3f} (GD slope {c['slope']:.3f})",
        )
    ax.set_xlabel("initialization scale ε")
    ax.set_ylabel("median sin∠(W_β, ±u₁)")
    ax.set_title("CNN kernels: residual misalignment against ε", fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [
        (
            plotting.save_figure(ax, out_dir / "cnn_misalignment.png"),
            "median misalignment of the kernels with ±u₁ under GD at the end of the initial "
            "stage (dots) and at escape (squares), the exact linear effective solution at the "
            "same times (dotted) and the rate ε^(1 − s₂/s₁) (line), against ε: at escape GD "
            "levels off at small ε (the loss residual, dropped by the effective dynamics)",
        )
    ]
    c = cases[0]
    if c["_last"] is not None:
        eps, w1, pred = c["_last"]
        k = c["kernel"]
        ax = plotting.plot_kernels(
            w1,
            np.asarray(pred["u1"]),
            (pred["model"]["image_shape"][0], k, k),
            title=f"{c['case']}, ε = {eps:g}, at the GD escape",
        )
        figures.append(
            (
                plotting.save_figure(ax, out_dir / "cnn_kernels.png"),
                f"the learned kernels at escape ({c['case']}, ε = {eps:g}) beside the predicted "
                "u₁, sign-aligned, with |cos| under each",
            )
        )
    return figures


_DIGITS = {"dataset": "digits-0", "channels": 16, "kernel": 3, "act": "tanh(x)"}
_STRIPES = {"dataset": "synthetic-stripes", "channels": 16, "kernel": 3, "act": "tanh(x)"}

CARD = Card(
    id="cnn_condensation",
    claim=(
        "With small initialization, the kernels of a two-layer CNN condense: with a tanh-like "
        "activation (p = 1) every kernel aligns with ±u₁, the top left singular vector of the "
        "patch–target correlation Z; gradient descent leaves the plateau at the predicted "
        "escape time, and the residual misalignment shrinks with ε like ε^{1 − s₂/s₁} "
        "(Zhou et al. 2023, arXiv 2305.09947; the rate is derived in "
        "docs/theory/cnn.md#misalignment)."
    ),
    maths=(
        "W_β' = c₁ Z a_β, a_β' = c₁ Zᵀ W_β, Z = ⟨y P(x̃)ᵀ⟩ = Σ s_k u_k v_kᵀ;  "
        "W_β(t) → ±u₁ (rate c₁s₁);  sin∠(W_β(t), u₁) ~ ε^{1 − s₂/s₁} at a fixed loss drop;  "
        "t_esc = min{t : R_q(θ(t)) ≤ 0.9 R_q(θ₀)}"
    ),
    paper="2305.09947",
    check=(
        "For each ε: effdyn predict (t_escape, u₁, s₂/s₁), then GD on the real tanh CNN from "
        "the same initialization to 1.15 × t_escape. At the GD escape step (10% loss drop): "
        "median |cos(W_β, ±u₁)| ≥ 0.95 and GD escape / predicted t_escape within [0.9, 1.1] "
        "(required at every ε). At the end of the initial stage (effdyn.compare's rule: a 1% "
        "loss drop here): the median misalignment sin∠(W_β, u₁). Measured (headline): the "
        "least-squares slope of log(misalignment) against log ε divided by 1 − s₂/s₁. Quick: "
        "the first 300 digits (digit 0 against the rest), 16 kernels 3×3, lr 0.005, "
        "ε = 1e-5, 1e-6, 1e-7. Full: all 1797 digits, lr 0.002, ε = 1e-4 … 1e-8, and the "
        "synthetic stripes (n = 200), lr 0.005, ε = 1e-4 … 1e-7."
    ),
    expected=1.0,
    tolerance=0.25,
    why=(
        "The misalignment is a sum of modes ε^{1 − s_k/s₁} (k ≥ 2) plus a non-growing part "
        "~ ε; at reachable ε the k = 3 mode (s₃/s₁ ≈ 0.2 for the digits) still adds to "
        "k = 2, so the slope approaches 1 − s₂/s₁ from above: the exact linear solution "
        "gives ratios 1.05–1.10 over these ε, GD the same. The rate is measured at the "
        "initial stage because past it the loss residual −⟨f ∂f⟩ (dropped by the "
        "effective dynamics) turns kernels away by an ε-independent amount: at the 10% "
        "drop GD levels off near 2e-4 on the digits for ε ≤ 1e-7 (figure). 0.25 is the "
        "acceptance bound: it rejects a rate without the gap (ε¹, ratio 1.48) or no "
        "condensation (0), but would not tell s₂ from s₃ (ε^{1 − s₃/s₁}: ratio 1.17)"
    ),
    quick={"cases": [{**_DIGITS, "images": 300, "lr": 0.005, "eps": [1e-5, 1e-6, 1e-7]}]},
    full={
        "cases": [
            {**_DIGITS, "lr": 0.002, "eps": [1e-4, 1e-5, 1e-6, 1e-7, 1e-8]},
            {**_STRIPES, "lr": 0.005, "eps": [1e-4, 1e-5, 1e-6, 1e-7]},
        ]
    },
    run=run,
)
