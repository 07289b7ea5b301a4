"""Card: three-layer networks condense onto ±z, with a rank-one middle layer (Chen & Luo 2024)."""

import math

import numpy as np

from effdyn.api import derive_problem
from effdyn.cards import Card, Outcome, within
from effdyn.dynamics.blowup import trajectory
from effdyn.dynamics.model import effective_model, flatten
from effdyn.dynamics.predict import predict
from effdyn.dynamics.predict import solve_one as _solve  # one compilation for predict and cards
from effdyn.problem import initial_params, problem_from_dict
from effdyn.training import train

RANK_BOUND = 1e-8
"""σ2/σ1 of the middle layer of the blow-up direction must be at most this."""


def _problem(width, eps, lr, data):
    return problem_from_dict(
        {
            "model": {"depth": 3, "width": width, "activation": "tanh"},
            "data": data,
            "init": {"scale": eps, "seed": 0},
            "train": {"optimizer": "gd", "lr": lr, "steps": 1},
        }
    )


def vector_data(seed, n=40, d=3):
    """Seeded inline data with 2-d outputs whose Z = ⟨y x̃ᵀ⟩ has s1 ≈ 0.98 > s2 ≈ 0.52."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, d))
    y = np.stack([np.sin(2 * x[:, 0]) + x[:, 1], np.cos(x[:, 2]) - 0.5 * x[:, 0]], axis=1)
    return {"x": x, "y": y}


def _deficit(rows, v):
    """max over rows of 1 − |cos(row, v)|."""
    rows = np.asarray(rows, dtype=np.float64)
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return float(np.max(1.0 - np.abs(units @ v)))


def _rank_ratio(w):
    s = np.linalg.svd(np.asarray(w), compute_uv=False)
    return float(s[1] / s[0])


def blowup_direction(problem):
    """The effective model, θ0, T* and the blow-up direction split into (W1, W2, W3)."""
    params0 = initial_params(problem)
    model = effective_model(derive_problem(problem), problem.inputs(), problem.data.y, params0)
    theta0 = flatten(params0)
    sol = _solve(model, theta0)
    layers = tuple(np.asarray(w) for w in model.unravel(sol.direction))
    return model, theta0, float(sol.t_star), layers


def monotone_from(ts, w1s, zhat):
    """First time from which every |w_j(t)·ẑ| is non-decreasing on the grid ``ts``.

    Returns ``(t_m, per_neuron)``: ``t_m`` is the grid time after the last decrease of any
    neuron (``ts[0]`` if none decreases), ``per_neuron`` the same time for each neuron.
    """
    proj = np.abs(w1s @ zhat)  # (T, m)
    down = np.diff(proj, axis=0) < 0
    per = []
    for j in range(proj.shape[1]):
        hits = np.flatnonzero(down[:, j])
        per.append(float(ts[hits[-1] + 1]) if hits.size else float(ts[0]))
    return max(per), per


def check_scalar(settings):
    """(a) scalar output, Zhou 2022 Fig. 2 data: rows of W1 ∥ ±ẑ, W2 rank one."""
    out = []
    for width in settings["widths"]:
        problem = _problem(width, settings["eps"], settings["lr"], {"dataset": "zhou2022-fig2"})
        _, _, t_star, (w1, w2, w3) = blowup_direction(problem)
        z = (problem.data.y.T @ problem.inputs() / problem.n)[0]
        zhat = z / np.linalg.norm(z)
        predicted = np.asarray(predict(problem)["directions"]["W1"])
        out.append(
            {
                "width": width,
                "t_star": t_star,
                "W1_rows_deficit": _deficit(w1, zhat),
                "W2_sigma2_over_sigma1": _rank_ratio(w2),
                "predict_W1_orientations": len(predicted),
                "predict_W1_deficit": _deficit(predicted, zhat),
            }
        )
    return out


def check_vector(settings):
    """(b) 2-d outputs: rows of W1 ∥ ±v1, columns of W3 ∥ ±u1 (top singular pair of Z)."""
    out = []
    data = vector_data(settings["vector_seed"])
    for width in settings["widths"]:
        problem = _problem(width, settings["eps"], settings["lr"], data)
        _, _, t_star, (w1, w2, w3) = blowup_direction(problem)
        zmat = problem.data.y.T @ problem.inputs() / problem.n
        u, s, vt = np.linalg.svd(zmat)
        out.append(
            {
                "width": width,
                "t_star": t_star,
                "singular_values_Z": s.tolist(),
                "W1_rows_deficit": _deficit(w1, vt[0]),
                "W3_columns_deficit": _deficit(w3.T, u[:, 0]),
                "W2_sigma2_over_sigma1": _rank_ratio(w2),
            }
        )
    return out


def check_monotone(settings):
    """(c) from which time every |w_j·ẑ| grows: effective trajectory, then GD.

    Returns the numbers and, for the figure, the projections |w_j·ẑ| on both grids.
    """
    width, lr = settings["widths"][0], settings["lr"]
    problem = _problem(width, settings["eps"], lr, {"dataset": "zhou2022-fig2"})
    model, theta0, t_star, _ = blowup_direction(problem)
    z = (problem.data.y.T @ problem.inputs() / problem.n)[0]
    zhat = z / np.linalg.norm(z)
    shape = problem.layer_shapes()[0]
    size = shape[0] * shape[1]

    def first_layer(ts):
        states = np.asarray(trajectory(model, theta0, np.asarray(ts)))
        return states[:, :size].reshape(len(ts), *shape)

    fine = np.linspace(0.0, settings["t_max"], settings["n_times"]) * t_star
    w1_fine = first_layer(fine)
    t_m, per = monotone_from(fine, w1_fine, zhat)
    steps = math.floor(settings["t_max"] * t_star / lr)
    run = train(problem, steps=steps, lr=lr, n_snapshots=settings["n_snapshots"])
    snap_t = run.snapshot_t
    t_m_gd, per_gd = monotone_from(snap_t, run.snapshots[0], zhat)
    t_m_grid, _ = monotone_from(snap_t, first_layer(snap_t), zhat)
    # GD grid: the first snapshot at or after the effective t_m, and its neighbour before.
    after = int(np.searchsorted(snap_t, t_m))
    numbers = {
        "width": width,
        "t_star": t_star,
        "t_max_over_t_star": settings["t_max"],
        "t_m_over_t_star": t_m / t_star,
        "per_neuron_over_t_star": [p / t_star for p in per],
        "grid_step_over_t_star": float(fine[1] - fine[0]) / t_star,
        "gd": {
            "lr": lr,
            "steps": steps,
            "n_snapshots": len(snap_t),
            "t_m_over_t_star": t_m_gd / t_star,
            "effective_on_same_grid_over_t_star": t_m_grid / t_star,
            "per_neuron_over_t_star": [p / t_star for p in per_gd],
            "snapshot_spacing_at_t_m_over_t_star": float(
                snap_t[min(after, len(snap_t) - 1)] - snap_t[max(after - 1, 0)]
            )
            / t_star,
            "loss_drop_at_end": float(1.0 - run.loss[-1] / run.loss[0]),
        },
    }
    curves = {
        "t": fine / t_star,
        "eff": np.abs(w1_fine @ zhat),
        "t_gd": snap_t / t_star,
        "gd": np.abs(run.snapshots[0] @ zhat),
    }
    return numbers, curves


def run(card, settings, out_dir):
    scalar = check_scalar(settings)
    vector = check_vector(settings)
    mono, curves = check_monotone(settings)
    deficits = [c["W1_rows_deficit"] for c in scalar] + [c["predict_W1_deficit"] for c in scalar]
    deficits += [c["W1_rows_deficit"] for c in vector] + [c["W3_columns_deficit"] for c in vector]
    ranks = [c["W2_sigma2_over_sigma1"] for c in scalar + vector]
    measured = max(deficits)
    gap_ok = all(c["singular_values_Z"][0] > 1.2 * c["singular_values_Z"][1] for c in vector)
    rank_ok = max(ranks) <= RANK_BOUND
    tm = mono["t_m_over_t_star"]
    gd = mono["gd"]
    # GD follows from ~t_m on: its own last decrease is no later than the effective one on the
    # same snapshot grid (one snapshot of slack for a sign change landing between snapshots).
    gd_ok = gd["t_m_over_t_star"] <= gd["effective_on_same_grid_over_t_star"] + (
        gd["snapshot_spacing_at_t_m_over_t_star"] * 1.0001
    )
    monotone_ok = 0.0 < tm < 1.0 and gd_ok
    passed = bool(within(measured, card.expected, card.tolerance) and rank_ok and gap_ok)
    passed = passed and bool(monotone_ok)
    figures = []
    if out_dir is not None:
        figures.append(_figure(settings, mono, curves, out_dir))
    return Outcome(
        measured=float(f"{measured:.3g}"),
        passed=passed,
        summary=(
            f"worst 1 − |cos| of blow-up-direction rows with ±ẑ / ±v1 / ±u1: {measured:.2g} "
            f"(≤ {card.tolerance:g}); worst σ2/σ1 of W2: {max(ranks):.2g} (≤ {RANK_BOUND:g}); "
            f"every |w_j·ẑ| non-decreasing from t_m = {tm:.3f}·T* (effective), GD from "
            f"{gd['t_m_over_t_star']:.3f}·T* (snapshots; effective on them "
            f"{gd['effective_on_same_grid_over_t_star']:.3f}·T*)"
        ),
        details={
            "scalar_output": scalar,
            "vector_output": vector,
            "monotone": mono,
            "checks": {"rank_one": rank_ok, "singular_gap": gap_ok, "monotone": monotone_ok},
            "eps": settings["eps"],
        },
        figures=figures,
    )


def _figure(settings, mono, curves, out_dir):
    from effdyn import plotting

    plt = plotting._pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for j in range(curves["eff"].shape[1]):
        ax.semilogy(curves["t"], curves["eff"][:, j], lw=1.0, color=f"C{j % 10}")
        ax.semilogy(curves["t_gd"], curves["gd"][:, j], ".", ms=2.5, color=f"C{j % 10}")
    ax.axvline(mono["t_m_over_t_star"], color="k", ls="--", lw=1.0, label="t_m (effective)")
    ax.axvline(mono["gd"]["t_m_over_t_star"], color="C3", ls=":", lw=1.2, label="t_m (GD)")
    ax.set_xlabel("t / T*")
    ax.set_ylabel("|w_j(t)·ẑ|")
    ax.set_title(
        f"first-layer projections on ẑ, depth-3 tanh, width {mono['width']}, "
        f"ε = {settings['eps']:g}; lines: effective, dots: GD",
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="upper left")
    path = plotting.save_figure(ax, out_dir / "three_layer_condensation.png")
    return (
        path,
        "|w_j·ẑ| of every first-layer neuron against t/T* (lines: effective trajectory, dots: "
        "GD snapshots); all are non-decreasing right of the dashed line t_m",
    )


CARD = Card(
    id="three_layer_condensation",
    claim=(
        "In three-layer networks at small initialization the input weights condense onto ±z "
        "and the middle layer tends to rank one; with vector outputs the limit is rank one "
        "along the top singular pair of Z (deep matrix factorization); from some time t_m < T* "
        "on, every first-layer projection w_j·z grows in magnitude monotonically."
    ),
    maths=(
        "a' = c₁² W V z, W' = c₁² a (Vz)ᵀ, V' = c₁² (Wᵀa) zᵀ ⇒ blow-up direction: rows of V ∥ "
        "±ẑ, W ∝ α̂β̂ᵀ; vector outputs: rows of V ∥ ±v₁, columns of W₃ ∥ ±u₁, Z = u₁s₁v₁ᵀ + … "
        "(s₁ > s₂); d(w_j·z)/dt = c₁²(Wᵀa)_j |z|² so |w_j·ẑ| is non-decreasing once "
        "sign(w_j·z) = sign((Wᵀa)_j) for all j, which holds from some t_m < T*"
    ),
    paper="2402.15958",
    check=(
        "(a) Zhou 2022 Fig. 2 data, depth 3, tanh, N(0, ε²) init: the blow-up direction of "
        "the rescaled solver — every row of W1 has 1 − |cos(row, ẑ)| ≤ tolerance (also "
        "predict's clustered W1 orientations), σ2/σ1(W2) ≤ 1e-8; (b) seeded inline data with "
        "2-d outputs (s1 ≈ 0.98, s2 ≈ 0.52): rows of W1 ∥ ±v1, columns of W3 ∥ ±u1, W2 rank "
        "one; (c) the effective trajectory on a grid up to 0.999·T*: t_m, the first time from "
        "which every |w_j·ẑ| is non-decreasing, must exist with 0 < t_m < T*, and GD "
        "(lr 0.01, log-spaced snapshots up to 0.999·T*) must be monotone from the same "
        "snapshot on (one snapshot of slack). Headline: the worst 1 − |cos| over (a), (b)."
    ),
    expected=0.0,
    tolerance=1e-9,
    why=(
        "The condensed directions are exact for the effective flow: the rows of V are "
        "V₀ + g_j(t) zᵀ with g_j → ∞, so at the solver's stopping radius (r grown by e^{36}) "
        "the non-ẑ part is ~e^{−36}·|V₀|/|V| and the deficit is at the rounding level "
        "(~1e-16); 1e-9 leaves room for solver tolerance (rtol 1e-10) while any real "
        "misalignment (e.g. a row along another direction, a rank-two W2) is ≥ 1e-3. The "
        "headline is the deficit, not t_m/T*: the theory predicts the deficit's value (0), "
        "whereas for t_m it only predicts existence and t_m < T* (its value depends on the "
        "random initialization: 0.53·T* for width 8, seed 0)."
    ),
    quick={
        "widths": [8],
        "eps": 1e-3,
        "lr": 0.01,
        "vector_seed": 1,
        "t_max": 0.999,
        "n_times": 400,
        "n_snapshots": 300,
    },
    full={
        "widths": [8, 50],
        "eps": 1e-3,
        "lr": 0.01,
        "vector_seed": 1,
        "t_max": 0.999,
        "n_times": 2000,
        "n_snapshots": 600,
    },
    run=run,
)
