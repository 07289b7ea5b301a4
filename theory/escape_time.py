"""Card: gradient descent leaves the small-initialization plateau at the predicted time."""

import math
import tempfile
from pathlib import Path

import numpy as np

from effdyn.cards import Card, Outcome, within
from effdyn.compare import compare
from effdyn.dynamics.predict import predict
from effdyn.problem import problem_from_dict

RUN_TO = 1.1
"""Each GD run lasts RUN_TO·T* (the escape is within a few percent of T*)."""


def _problem(case, steps):
    return problem_from_dict(
        {
            "model": {"depth": case["depth"], "width": case["width"], "activation": case["act"]},
            "data": {"dataset": case["dataset"]},
            "init": {"scale": case["eps"], "seed": 0},
            "train": {"optimizer": "gd", "lr": case["lr"], "steps": steps},
        }
    )


def _name(case):
    act = case["act"].replace("**", "^").replace("*", "·")
    return f"depth {case['depth']} {act}, ε = {case['eps']:g}, lr {case['lr']:g}"


def _slug(case):
    act = "".join(ch for ch in case["act"] if ch.isalnum())
    return f"d{case['depth']}_{act}_eps{case['eps']:g}_lr{case['lr']:g}"


def measure(case, folder):
    """Predict T*, run ``compare`` (GD to RUN_TO·T*) and keep the numbers that matter."""
    t_star = predict(_problem(case, 1))["t_star"]
    steps = math.ceil(RUN_TO * t_star / case["lr"])
    result = compare(_problem(case, steps), folder, figures=False)
    pred, meas, ratios = result["predicted"], result["measured"], result["ratios"]
    row = {
        "case": _name(case),
        **case,
        "t_star": pred["t_star"],
        "t_escape_predicted": pred["t_escape"],
        "t_escape_gd": meas["t_escape"],
        "escape_over_t_star": ratios["escape_over_t_star"],
        "escape_over_predicted_escape": ratios["escape_over_predicted_escape"],
        "steps": steps,
        "field_degree": pred["field_degree"],
        "initial_stage_t_over_t_star": meas["initial_stage"]["t"] / pred["t_star"],
        "initial_stage_alignment": meas["initial_stage"]["alignment"],
        "lr_shift_estimate": case["lr"] / pred["t_star"] * math.log(pred["t_star"] / case["lr"]),
    }
    if "first_neuron_matches" in ratios:
        row["first_neuron_gd"] = meas["first_neuron"]
        row["first_neuron_predicted"] = pred["per_neuron"]["first"]
        row["first_neuron_matches"] = bool(ratios["first_neuron_matches"])
    return row


def run(card, settings, out_dir):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(out_dir) / "escape_time" if out_dir is not None else Path(tmp)
        for case in settings["cases"]:
            rows.append(measure(case, base / _slug(case)))
        figures = [] if out_dir is None else [_figure(rows, settings["cases"], base, out_dir)]
    ratios = [r["escape_over_t_star"] for r in rows]
    escaped = all(r is not None for r in ratios)
    gaps = [abs(r - 1.0) if r is not None else math.inf for r in ratios]
    measured = max(gaps)
    first_ok = all(r.get("first_neuron_matches", True) for r in rows)
    passed = bool(escaped and within(measured, card.expected, card.tolerance) and first_ok)
    worst = rows[gaps.index(measured)]["case"]
    return Outcome(
        measured=float(f"{measured:.4g}") if math.isfinite(measured) else None,
        passed=passed,
        summary=(
            "GD escape / T*: "
            + "; ".join(
                f"{r['case']}: {r['escape_over_t_star']:.4f}"
                if r["escape_over_t_star"] is not None
                else f"{r['case']}: no escape"
                for r in rows
            )
            + f" — largest |ratio − 1| = {measured:.3g} ({worst}); first neuron to grow = "
            f"smallest predicted per-neuron T*: {first_ok}"
        ),
        details={
            "cases": rows,
            "first_neuron_matches": first_ok,
            "definitions": {
                "t_escape_gd": "first t = k·lr with loss ≤ 0.9·loss(0) (effdyn.compare)",
                "lr_shift_estimate": "(lr/T*)·log(T*/lr): GD's shift of the blow-up time "
                "relative to T*, from the modified equation r' = a r² − lr a² r³",
            },
        },
        figures=figures,
    )


def _figure(rows, cases, base, out_dir):
    from effdyn import plotting

    plt = plotting._pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 3.8))
    for j, (row, case) in enumerate(zip(rows, cases, strict=True)):
        with np.load(base / _slug(case) / "train.npz") as arrays:  # written by compare
            t, loss = arrays["t"], arrays["loss"]
        ratio = row["escape_over_t_star"]
        label = f"{row['case']}: {ratio:.4f}" if ratio is not None else row["case"]
        ax.plot(t / row["t_star"], loss / loss[0], color=f"C{j}", lw=1.2, label=label)
    ax.axvline(1.0, color="k", ls="-.", lw=1.0, label="predicted T*")
    ax.axhline(0.9, color="0.5", ls=":", lw=1.0, label="10% drop (escape)")
    ax.set_xlim(0.8, RUN_TO)
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("t / T*   (t = step · lr)")
    ax.set_ylabel("loss / loss(0)")
    ax.set_title("GD training loss against the predicted blow-up time", fontsize=9)
    ax.legend(fontsize=6.5, loc="lower left")
    path = plotting.save_figure(ax, Path(out_dir) / "escape_time.png")
    return (
        path,
        "GD loss / initial loss against t/T* for each case (legend: measured escape / T*); "
        "the plateau ends at the predicted T* (dash-dotted)",
    )


_X_TANH = {"act": "x*tanh(x)", "depth": 2, "width": 100, "dataset": "zhou2022-fig5", "lr": 0.05}
_X2_TANH = {**_X_TANH, "act": "x**2*tanh(x)"}
_DEEP = {"act": "tanh", "depth": 3, "width": 8, "dataset": "zhou2022-fig2", "lr": 0.01}

CARD = Card(
    id="escape_time",
    claim=(
        "The measured escape time of gradient descent from the small-initialization plateau "
        "matches the predicted blow-up time T* of the effective dynamics — for two-layer "
        "networks with multiplicity p ≥ 2, where the neurons race and the first to blow up "
        "sets T* and is the first to grow (Zhou et al. 2022, arXiv 2105.11686), and for "
        "three-layer tanh networks (Chen & Luo 2024, arXiv 2402.15958)."
    ),
    maths=(
        "t_escape(GD) = min{k·lr : R(θ_k) ≤ 0.9 R(θ_0)};  t_escape/T* = 1 + O(ε^{k−1}) + "
        "O((lr/T*)·log(T*/lr)), T* = min_j T*_j (two-layer), argmax_j |w_j(t_esc)|/|w_j(0)| "
        "= argmin_j T*_j"
    ),
    paper="2105.11686",
    also=("2402.15958",),
    check=(
        "effdyn.compare on: Zhou 2022 Fig. 5 data, width 100, x·tanh x (p = 2) ε = 1e-3 and "
        "x²·tanh x (p = 3) ε = 1e-2, GD lr 0.05; Zhou 2022 Fig. 2 data, depth 3 tanh, width "
        "8, ε = 1e-3, GD lr 0.01; each trained to 1.1·T*. Measured: ratios"
        "['escape_over_t_star'] per case (headline: the largest |ratio − 1|) and, for the "
        "two-layer cases, ratios['first_neuron_matches'] (must all be true)."
    ),
    expected=0.0,
    tolerance=0.05,
    why=(
        "Two corrections separate GD's escape from T*: (i) GD at step lr vs gradient flow "
        "shifts the blow-up by a relative (lr/T*)·log(T*/lr) ≈ 3e-4 (x·tanh x), 2e-4 "
        "(x²·tanh x), 5e-4 (depth 3); (ii) the 10% loss drop happens when the weights are "
        "O(1), where the O(s²) Taylor corrections (tanh saturates) act for an O(1) time: a "
        "fraction O(ε^{k−1}) of T* ∝ ε^{−(k−1)} — measured 0.9987, 1.0023, 1.0078. "
        "Tolerance 0.05 is ≥ 5× the largest of these, so a wrong T* (e.g. off by a "
        "constant factor, or the textbook estimate without prefactors) fails."
    ),
    quick={"cases": [{**_X_TANH, "eps": 1e-3}, {**_X2_TANH, "eps": 1e-2}, {**_DEEP, "eps": 1e-3}]},
    full={
        "cases": [
            {**_X_TANH, "eps": 1e-3},
            {**_X_TANH, "eps": 3e-4},
            {**_X2_TANH, "eps": 1e-2},
            {**_X2_TANH, "eps": 3e-3},
            {**_DEEP, "eps": 1e-3},
            {**_DEEP, "eps": 3e-4},
        ]
    },
    run=run,
)
