"""Card: 1-d input with bias — condensed orientations are among at most 2p critical ones."""

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


def _problem(activation, eps, settings):
    return problem_from_dict(
        {
            "model": {"depth": 2, "width": settings["width"], "activation": activation},
            "data": {"dataset": "zhou2022-fig5"},
            "init": {"scale": eps, "seed": 0},
            "train": {"optimizer": "gd", "lr": settings["lr"], "steps": 1},
        }
    )


def _case(activation, eps, s, rng):
    problem = _problem(activation, eps, s)
    xt = problem.inputs()
    deriv = derive_problem(problem)
    p = deriv.activations[0].degree
    # (a) the critical orientations of F on the circle, and the stable ones predict names
    pred = predict(problem)
    critical = np.array([c["direction"] for c in pred["critical_points"]]).reshape(-1, 2)
    stable = np.asarray(pred["directions"]["W1"]).reshape(-1, 2)
    # (b) an ensemble of random small neurons under the per-neuron effective dynamics
    w1, w2 = initial_params(problem)
    model = effective_model(deriv, xt, problem.data.y, (w1[:1], w2[:, :1]))
    thetas = eps * rng.standard_normal((s["n_ensemble"], 3))  # rows (w, b, a)
    # chunks of `width` rows: the shape predict's per-neuron solve compiled
    ens = solve_ensemble(model, thetas, SolverOptions(), chunk_size=s["width"])
    blew = ens.result == Result.BLOWUP
    u, _ = unit_rows(ens.direction[blew, :2])
    gaps = 1 - np.max(u @ critical.T, axis=1) if len(u) and len(critical) else np.array([2.0])
    limits = cluster_orientations(u, 1e-6).directions if len(u) else np.zeros((0, 2))
    # (c) gradient descent to the end of the initial stage, just past the predicted T*
    t_star = pred["t_star"]
    steps = math.ceil(s["past_t_star"] * t_star / s["lr"])
    w_stage, stage = initial_stage(problem, steps)
    row = {
        "activation": activation,
        "p": p,
        "c_p": float(deriv.activations[0].coefficient),
        "eps": eps,
        "n_critical": int(len(critical)),
        "critical_kinds": [c["kind"] for c in pred["critical_points"]],
        "critical_angles": [float(np.arctan2(v[1], v[0])) for v in critical],
        "n_stable": int(len(stable)),
        "ensemble_n": int(len(thetas)),
        "ensemble_blowup": int(blew.sum()),
        "ensemble_max_1_minus_cos": float(np.max(gaps)),
        "ensemble_limit_orientations": int(len(limits)),
        "t_star": t_star,
        "train_steps_max": steps,
        "stage_step": stage,
    }
    if w_stage is not None:
        grown = grown_mask(w_stage, w1)
        align = alignment_summary(w_stage[grown], stable) if len(stable) else None
        row.update(
            {
                "stage_t_over_t_star": stage * s["lr"] / t_star,
                "n_grown": int(grown.sum()),
                "median_abs_cos": align["median_abs_cos"] if align else None,
                "min_abs_cos": align["min_abs_cos"] if align else None,
                "grown_orientations_at_1e-2": int(
                    len(cluster_orientations(w_stage[grown], 1e-2).directions)
                ),
            }
        )
    return row, w_stage, critical


def _figure(rows, stages, out_dir):
    from effdyn import plotting

    shown = [i for i, (w, _) in enumerate(stages) if w is not None]
    if not shown:
        return []
    plt = plotting._pyplot()
    cols = min(3, len(shown))
    nrows = -(-len(shown) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.4 * nrows), squeeze=False)
    for ax, i in zip(axes.flat, shown, strict=False):
        r = rows[i]
        plotting.plot_angle_norm(
            stages[i][0],
            stages[i][1],
            ax=ax,
            title=f"{r['activation']} (p = {r['p']}), ε = {r['eps']:g}",
            logy=True,
        )
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    path = plotting.save_figure(fig, out_dir / "multiplicity_1d_2p.png")
    return [
        (
            path,
            "Zhou 2022 Fig. 5 data, GD at the end of the initial stage: grown neurons "
            "(top of each panel) sit on critical orientations of F (dotted, at most "
            "2p).",
        )
    ]


def run(card, settings, out_dir):
    rng = np.random.default_rng(settings["ensemble_seed"])
    rows, stages = [], []
    for activation, eps in settings["cases"]:
        row, w_stage, critical = _case(activation, eps, settings, rng)
        rows.append(row)
        stages.append((w_stage, critical))
    effective_ok = all(
        2 <= r["n_critical"] <= 2 * r["p"]
        and 2 * r["ensemble_blowup"] >= r["ensemble_n"]
        and r["ensemble_max_1_minus_cos"] <= card.tolerance
        and r["ensemble_limit_orientations"] <= 2 * r["p"]
        for r in rows
    )
    trained = [r for r in rows if r.get("n_grown") and r.get("min_abs_cos") is not None]
    worst = min(r["min_abs_cos"] for r in trained) if len(trained) == len(rows) else float("nan")
    training_ok = bool(worst >= card.expected)  # NaN (a case without grown neurons) fails
    gap = max(r["ensemble_max_1_minus_cos"] for r in rows)
    counts = ", ".join(f"{r['activation']}: {r['n_critical']}/{2 * r['p']}" for r in rows)
    figures = _figure(rows, stages, out_dir) if out_dir is not None else []
    return Outcome(
        measured=round(worst, 6) if math.isfinite(worst) else None,
        passed=bool(effective_ok and training_ok),
        summary=(
            f"critical orientations / 2p: {counts}; ensemble limits within 1 − cos ≤ {gap:.1e} "
            f"of them (tolerance {card.tolerance:g}); GD grown neurons: worst min |cos| with a "
            f"predicted orientation = {worst:.6f} (expected ≥ {card.expected})"
        ),
        details={
            "cases": rows,
            "effective_ok": effective_ok,
            "training_ok": training_ok,
            "worst_min_abs_cos": worst if math.isfinite(worst) else None,
        },
        figures=figures,
    )


CARD = Card(
    id="multiplicity_1d_2p",
    claim=(
        "For 1-d input with bias, the condensed orientations at the initial stage are among "
        "the critical orientations of F(w) = ⟨y (w·x̃)^p⟩ on the circle — at most 2p of "
        "them — for the limit directions of an ensemble of neurons under the effective "
        "dynamics and for the grown neurons of real gradient descent."
    ),
    maths=(
        "x̃ = (x, 1), w ∈ R²:  a' = c_p F(w),  w' = a c_p ∇F(w);  fixed directions: "
        "∂F/∂φ (cos φ, sin φ) = 0, a binary form of degree p → ≤ p lines, ≤ 2p "
        "orientations"
    ),
    paper="2105.11686",
    check=(
        "Zhou 2022 Fig. 5 data (d = 1, bias), width 100, GD lr 0.05. Activations x·tanh x "
        "(p = 2) and x²·tanh x (p = 3) from the paper; sin²x (p = 2), x − sin x (p = 3, "
        "c = 1/6) and (x·tanh x)²/2 (p = 4) not in the paper. (a) predict's critical "
        "orientations number between 2 and 2p; (b) of an ensemble of random small neurons "
        "(width-1 effective dynamics) at least half blow up, each onto a critical orientation "
        "(1 − cos ≤ tolerance), with at most 2p distinct limits; (c) GD from ε to the end of "
        "the initial stage (run to 1.2·T*/lr at most): every grown neuron's |cos| with the "
        "nearest predicted stable orientation. Measured: the worst min |cos| over cases."
    ),
    expected=0.99,
    tolerance=1e-6,
    why=(
        "expected is a lower bound on every grown neuron's |cos|; tolerance bounds 1 − cos "
        "of the ensemble's limit directions, which converge to the critical orientation to "
        "rounding (the solver stops once the direction has settled to 1e-10 relative field), "
        "so 1e-6 only absorbs solver error. In GD the grown neuron at the stage end still "
        "carries its initial random part, relative size ~ε√2/|w| with |w| ≈ 0.3/max|x̃| "
        "≈ 0.17 (≤ 0.17 at ε = 2e-2, p = 3), which the blow-up shrinks faster than |w| "
        "grows; σ's next Taylor term (relative O(s²) at s ≤ 0.3 for x·tanh x) and GD's step "
        "(lr·|∇| ≪ 1 on the plateau) shift the direction less: measured 1 − min|cos| ≤ 5e-4 "
        "(ε = 1e-3 for p = 2, 1e-2 / 2e-2 for p = 3, 3e-2 for p = 4, chosen so that T*/lr "
        "stays ≤ 1e5 steps), so 0.99 keeps a 20× margin"
    ),
    quick={
        "cases": [["x*tanh(x)", 1e-3], ["x - sin(x)", 2e-2]],
        "lr": 0.05,
        "width": 100,
        "n_ensemble": 400,
        "ensemble_seed": 7,
        "past_t_star": 1.2,
    },
    full={
        "cases": [
            ["x*tanh(x)", 1e-3],
            ["x**2*tanh(x)", 1e-2],
            ["sin(x)**2", 1e-3],
            ["x - sin(x)", 2e-2],
            ["(x*tanh(x))**2/2", 3e-2],
        ],
        "lr": 0.05,
        "width": 100,
        "n_ensemble": 400,
        "ensemble_seed": 7,
        "past_t_star": 1.2,
    },
    run=run,
)
