"""Card: with multiplicity p = 1 the input weights condense on one line ±z/|z|, in any d."""

import math

import numpy as np

from effdyn.analysis.condensation import alignment_summary, grown_mask
from effdyn.analysis.orientations import cluster_orientations, unit_rows
from effdyn.api import derive_problem
from effdyn.cards import Card, Outcome
from effdyn.compare import initial_stage
from effdyn.dynamics.blowup import SolverOptions
from effdyn.dynamics.ensemble import solve_ensemble
from effdyn.dynamics.model import effective_model
from effdyn.dynamics.predict import predict
from effdyn.problem import initial_params, problem_from_dict
from effdyn.results import Result


def _synthetic_d3(n=60, seed=0):
    """Seeded 3-d data with a nonlinear target and a non-zero mean (so z has a bias part)."""
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 3))
    y = np.sin(2 * x[:, :1]) + x[:, 1:2] * x[:, 2:3] + 0.3 * x[:, 2:3] ** 2
    return {"x": x, "y": y}


DATA = {
    "fig2": {"dataset": "zhou2022-fig2"},  # d = 5, bias
    "fig5": {"dataset": "zhou2022-fig5"},  # d = 1, bias
    "syn3": _synthetic_d3(),  # d = 3, bias
}


def _problem(activation, data, settings):
    return problem_from_dict(
        {
            "model": {"depth": 2, "width": settings["width"], "activation": activation},
            "data": DATA[data],
            "init": {"scale": settings["eps"][data], "seed": 0},
            "train": {"optimizer": "gd", "lr": settings["lr"], "steps": 1},
        }
    )


def _case(activation, data, s, rng):
    problem = _problem(activation, data, s)
    xt, y = problem.inputs(), problem.data.y[:, 0]
    z = y @ xt / len(y)
    zhat = z / np.linalg.norm(z)
    D = xt.shape[1]
    # (a) effective dynamics: predicted directions, then an ensemble of small neurons.
    pred = predict(problem)
    dirs = np.asarray(pred["directions"]["W1"]).reshape(-1, D)
    pred_gap = float(np.max(1 - np.abs(dirs @ zhat))) if len(dirs) else 1.0
    deriv = derive_problem(problem)
    c1 = float(deriv.activations[0].coefficient)
    w1, w2 = initial_params(problem)
    model = effective_model(deriv, xt, problem.data.y, (w1[:1], w2[:, :1]))
    thetas = s["eps"][data] * rng.standard_normal((s["n_ensemble"], D + 1))  # rows (w, a)
    # chunks of `width` rows: the shape predict's per-neuron solve compiled
    ens = solve_ensemble(model, thetas, SolverOptions(), chunk_size=s["width"])
    escaped = np.isin(ens.result, (Result.ESCAPED, Result.BLOWUP))
    u, _ = unit_rows(ens.direction[escaped, :D])
    ens_cos = u @ zhat
    ens_gap = float(np.max(1 - np.abs(ens_cos))) if len(u) else 1.0
    # closed form (docs/theory/effective-dynamics.md#two-layer): u → sign(sign(c_1) a(0) + w(0)·ẑ) ẑ
    sign_rule = np.sign(np.sign(c1) * thetas[:, D] + thetas[:, :D] @ zhat)[escaped]
    sign_ok = float(np.mean(np.sign(ens_cos) == sign_rule)) if len(u) else 0.0
    # (b) gradient descent from the problem's small initialization, to the initial stage.
    rate = pred["growth_rate"]
    steps = math.ceil(2 * math.log(1 / s["eps"][data]) / (rate * s["lr"]))
    w_stage, stage = initial_stage(problem, steps)
    row = {
        "activation": activation,
        "data": data,
        "d": D - 1,
        "eps": s["eps"][data],
        "c1": c1,
        "zhat": zhat.tolist(),
        "n_orientations": pred["n_orientations"],
        "predicted_max_1_minus_abs_cos": pred_gap,
        "growth_rate": rate,
        "ensemble_n": int(len(thetas)),
        "ensemble_escaped": int(escaped.sum()),
        "ensemble_max_1_minus_abs_cos": ens_gap,
        "ensemble_sign_rule_fraction": sign_ok,
        "ensemble_orientations": int(len(cluster_orientations(u, 1e-6).directions)),
        "train_steps_max": steps,
        "stage_step": stage,
    }
    if w_stage is not None:
        grown = grown_mask(w_stage, w1)
        align = alignment_summary(w_stage[grown], zhat[None])
        a0 = w2[0][grown]
        rule = np.sign(np.sign(c1) * a0 + w1[grown] @ zhat)
        row.update(
            {
                "stage_t": stage * s["lr"],
                "n_grown": int(grown.sum()),
                "median_abs_cos": align["median_abs_cos"],
                "min_abs_cos": align["min_abs_cos"],
                "lines_at_1e-2": int(
                    len(cluster_orientations(w_stage[grown], 1e-2, lines=True).directions)
                ),
                "train_sign_rule_fraction": float(np.mean(np.sign(w_stage[grown] @ zhat) == rule)),
            }
        )
    return row, w_stage, dirs


def _figure(rows, stages, out_dir):
    from effdyn import plotting

    one_d = [i for i, r in enumerate(rows) if r["d"] == 1 and stages[i][0] is not None]
    if not one_d:
        return []
    plt = plotting._pyplot()
    fig, axes = plt.subplots(1, len(one_d), figsize=(4.6 * len(one_d), 3.4), squeeze=False)
    for ax, i in zip(axes[0], one_d, strict=True):
        r = rows[i]
        w, dirs = stages[i]
        plotting.plot_angle_norm(w, dirs, ax=ax, title=f"{r['activation']}, ε = {r['eps']:g}")
    path = plotting.save_figure(fig, out_dir / "multiplicity_one_line.png")
    return [
        (
            path,
            "Zhou 2022 Fig. 5 data (d = 1, bias), GD at the end of the initial stage: "
            "every grown neuron sits on one of the two predicted orientations ±z/|z| "
            "(dotted).",
        )
    ]


def run(card, settings, out_dir):
    rng = np.random.default_rng(settings["ensemble_seed"])
    rows, stages = [], []
    for activation, data in settings["cases"]:
        row, w_stage, dirs = _case(activation, data, settings, rng)
        rows.append(row)
        stages.append((w_stage, dirs))
    tol = card.tolerance
    effective_ok = all(
        r["n_orientations"] == 2
        and r["predicted_max_1_minus_abs_cos"] <= tol
        and r["ensemble_escaped"] == r["ensemble_n"]
        and r["ensemble_max_1_minus_abs_cos"] <= tol
        and r["ensemble_sign_rule_fraction"] == 1.0
        for r in rows
    )
    trained = [r for r in rows if r.get("n_grown")]
    medians = [r["median_abs_cos"] for r in trained]
    worst = min(medians) if len(trained) == len(rows) else float("nan")
    training_ok = bool(worst >= card.expected)  # NaN (a case without grown neurons) fails
    dims = sorted({r["d"] for r in rows})
    figures = _figure(rows, stages, out_dir) if out_dir is not None else []
    gap = max(
        max(r["predicted_max_1_minus_abs_cos"], r["ensemble_max_1_minus_abs_cos"]) for r in rows
    )
    return Outcome(
        measured=round(worst, 6) if math.isfinite(worst) else None,
        passed=bool(effective_ok and training_ok),
        summary=(
            f"{len(rows)} cases (d = {dims}): predict and {rows[0]['ensemble_n']}-neuron "
            f"ensembles give ±ẑ to 1 − |cos| ≤ {gap:.1e} (tolerance {tol:g}); GD grown "
            f"neurons: smallest median |cos| with ±ẑ = "
            f"{worst:.6f} (expected ≥ {card.expected})"
        ),
        details={
            "cases": rows,
            "effective_ok": effective_ok,
            "training_ok": training_ok,
            "smallest_median_abs_cos": worst if math.isfinite(worst) else None,
            "smallest_min_abs_cos": min((r["min_abs_cos"] for r in trained), default=None),
        },
        figures=figures,
    )


ACTIVATIONS = ["tanh(x)", "sin(x)", "3*tanh(x/2)", "gelu", "tanh(x) + x**2/2"]

CARD = Card(
    id="multiplicity_one_line",
    claim=(
        "With multiplicity p = 1, in any input dimension, the input weights condense on one "
        "line ±z/|z| (two orientations) — for the effective dynamics and for real gradient "
        "descent at the end of the initial stage."
    ),
    maths=(
        "σ(s) = σ(0) + c_1 s + O(s²), c_1 ≠ 0:  a' = c_1 w·z,  w' = c_1 a z,  "
        "z = (1/n) Σ y_i x̃_i;  w(t)/|w(t)| → sign(sign(c_1) a(0) + w(0)·ẑ) ẑ,  ẑ = z/|z|"
    ),
    paper="2105.11686",
    check=(
        "Two-layer nets (width 50, GD lr 0.05) on Zhou 2022 Fig. 2 data (d = 5), Fig. 5 data "
        "(d = 1) and seeded synthetic 3-d data, all with bias; p = 1 activations tanh (paper) "
        "and sin, 3·tanh(x/2), GELU, tanh(x) + x²/2 (not in the paper; the last is not odd). "
        "(a) predict's first-layer directions are ±ẑ with n_orientations = 2, and every "
        "neuron of an ensemble of random small neurons (effective dynamics) escapes onto ±ẑ "
        "with the closed-form sign; (b) GD from ε (1e-6 / 1e-4 / 1e-5) to the end of the "
        "initial stage (max pre-activation 0.3 or a 1% loss drop): the grown neurons' median "
        "|cos| with ±ẑ. Measured: the smallest median over the cases."
    ),
    expected=0.99,
    tolerance=1e-9,
    why=(
        "expected is a lower bound on the median |cos| of grown neurons; tolerance bounds "
        "1 − |cos| of the effective-dynamics directions, which are exact up to rounding "
        "(closed form for predict; in the linear ensemble the part of w orthogonal to z never "
        "changes while the ẑ-part grows by e^36 before the solver stops). In GD a grown neuron is "
        "e^{λt}(ẑ-part) + its initial random part of relative size ~ε√D/|w| ≤ 1e-3 "
        "(|w| ≈ 0.3/max|x̃| at the stage end), and GD's linear map I + lr·A has the flow's "
        "eigenvectors; what turns neurons is σ's next Taylor term, O(s) for non-odd σ and "
        "O(s²) for odd σ at pre-activation s ≤ 0.3, and only in the last e-folds of growth: "
        "measured 1 − median ≤ 1e-3, so 0.99 keeps a 10× margin"
    ),
    quick={
        "cases": [["tanh(x)", "fig2"], ["tanh(x) + x**2/2", "fig5"]],
        "eps": {"fig2": 1e-6, "fig5": 1e-4, "syn3": 1e-5},
        "lr": 0.05,
        "width": 50,
        "n_ensemble": 200,
        "ensemble_seed": 7,
    },
    full={
        "cases": [[a, d] for d in ("fig2", "fig5", "syn3") for a in ACTIVATIONS],
        "eps": {"fig2": 1e-6, "fig5": 1e-4, "syn3": 1e-5},
        "lr": 0.05,
        "width": 50,
        "n_ensemble": 200,
        "ensemble_seed": 7,
    },
    run=run,
)
