"""Card: grown ReLU neurons point at KKT points of F on the sphere; escape takes log(1/ε)/λ*.

Two-layer ReLU network with bias, ``f(x) = Σ_j a_j relu(w_j·x̃)``, ``x̃ = (x, 1)``, square
loss ``R = (1/2n) Σ_i (f(x_i) − y_i)²``, small initialization. At leading order the loss
decrease is ``E = Σ_j a_j F(w_j)`` with the 1-homogeneous, piecewise linear

    F(w) = ⟨y relu(w·x̃)⟩ = (1/n) Σ_i y_i relu(w·x̃_i),    ∇F(w) = z_P(w) = ⟨y 1[w·x̃ > 0] x̃⟩,

and ``a' = F(w)``, ``w' = a ∇F(w)``. Directions ``u = w/|w|`` of neurons with ``a > 0`` climb
``F`` on the unit sphere, those with ``a < 0`` descend it, so grown neurons sit at KKT points of
``F`` on the sphere: ``u = ± g/|g|`` for some ``g`` in the Clarke gradient ``∂F(u)`` (on a
kink, where ``u·x̃_i = 0`` for some samples, each such sample's indicator may take any value
in ``[0, 1]``). A balanced neuron (``|a| = |w|``) grows at rate ``±F(u)``, so the largest
grows at ``λ* = max(max F, −min F)`` and the loss leaves its plateau after
``≈ log(1/ε)/λ*`` (Kumar & Haupt 2024, arXiv 2402.09226). See docs/theory/kkt.md.

The module holds the mathematics as small numpy functions (:func:`objective`,
:func:`pattern_gradient`, :func:`clarke_residual`, :func:`kkt_points`), the measurement
(:func:`measure`, which trains) and the judgement (:func:`judge`, which only compares a
measurement with ``card.expected`` and ``card.tolerance``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.optimize import lsq_linear

from effdyn.analysis.condensation import escape_time
from effdyn.cards import Card, Outcome, within
from effdyn.problem import problem_from_dict
from effdyn.training import Capture, train

TEACHER = (np.array([1.0, 0.5, 0.2]), np.array([-0.6, 1.0, -0.1]))
"""``(v₁, v₂)``: the labels are ``y = relu(v₁·x̃) − relu(v₂·x̃)``, so ``F`` takes both signs."""

GROWN_FRACTION = 0.3
"""A neuron has grown when ``|w_j| ≥ 0.3 · max_k |w_k|`` at the escape step."""

KINK_TOL = 2e-3
"""Sample ``i`` is on a kink of a grown neuron when ``|u·x̃_i| ≤ KINK_TOL · |x̃_i|``."""

COS_GAP_BOUND = 0.05
"""Each grown neuron must lie within ``1 − cos ≤ 0.05`` of a KKT point of its sign."""

SLOPE_BOUND = 0.10
"""The fitted escape time per unit ``log(1/ε)`` must be within 10% of ``1/λ*``."""

LOSS_DROP = 0.1
"""Escape: the first step with ``loss ≤ 0.9 · loss(0)``."""


# ---------------------------------------------------------------------------------------------
# The mathematics (numpy only)


def lift(x: np.ndarray) -> np.ndarray:
    """``x̃ = (x, 1)``: the inputs with a constant 1 appended last (effdyn's bias convention)."""
    x = np.asarray(x, dtype=np.float64)
    return np.hstack([x, np.ones((len(x), 1))])


def make_data(n: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The card's data: ``x_i ~ N(0, I₂)`` from ``default_rng(data_seed)``, ``y`` the teacher.

    Returns ``(x, y)`` with ``x`` of shape ``(n, 2)`` (raw inputs, no bias) and ``y`` ``(n,)``.
    """
    x = np.random.default_rng(data_seed).standard_normal((n, 2))
    xt = lift(x)
    y = np.maximum(xt @ TEACHER[0], 0.0) - np.maximum(xt @ TEACHER[1], 0.0)
    return x, y


def objective(u: np.ndarray, xt: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``F(u) = (1/n) Σ_i y_i relu(u·x̃_i)`` for one direction ``(D,)`` or rows ``(S, D)``."""
    return np.maximum(np.asarray(u) @ xt.T, 0.0) @ y / len(y)


def pattern_gradient(u: np.ndarray, xt: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``z_{P(u)} = (1/n) Σ_{i: u·x̃_i > 0} y_i x̃_i``: ``∇F(u)`` off the kinks (rows for rows)."""
    return ((np.asarray(u) @ xt.T > 0.0) * y) @ xt / len(y)


def _margins(u: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """``|u·x̃_i| / |x̃_i|`` per sample (distance, in angle, of ``u`` from each kink)."""
    return np.abs(xt @ u) / np.linalg.norm(xt, axis=1)


def clarke_residual(u: np.ndarray, xt: np.ndarray, y: np.ndarray, kink_tol: float) -> dict:
    """How far ``u`` is from a KKT point of ``F`` on the sphere, with the Clarke gradient.

    Samples with ``|u·x̃_i| ≤ kink_tol·|x̃_i|`` are kinked (set ``K``); the others split into
    ``P = {u·x̃_i > 0}`` and the rest. The Clarke gradient is the set
    ``g(c) = (1/n)[Σ_{i∈P} y_i x̃_i + Σ_{i∈K} c_i y_i x̃_i]``, ``c ∈ [0, 1]^K``. The residual
    is ``|(I − uuᵀ) g(c*)| / |g(c*)|`` (the sine of the angle between ``u`` and ``g``) with
    ``c*`` minimizing ``|(I − uuᵀ) g(c)|`` over the box (bounded least squares). Because
    ``u·g(c) = F(u) + Σ_K c_i y_i u·x̃_i / n`` hardly depends on ``c``, this ``c*`` also
    minimizes the sine up to ``O(kink_tol)``. With no kinked sample it is the plain
    ``|(I − uuᵀ) z_P| / |z_P|`` (``kink_tol < 0`` treats no sample as kinked: the
    one-sided gradient).

    Returns:
        ``{"residual", "kinked" (how many samples), "margin" (min_i |u·x̃_i|/|x̃_i|),
        "coefficients" (c*), "gradient" (g(c*))}``.
    """
    u = np.asarray(u, dtype=np.float64)
    u = u / np.linalg.norm(u)
    margins = _margins(u, xt)
    kinked = margins <= kink_tol
    active = (xt @ u > 0.0) & ~kinked
    n = len(y)
    base = (y * active) @ xt / n
    tangent = np.eye(len(u)) - np.outer(u, u)
    coefficients = np.zeros(int(kinked.sum()))
    if kinked.any():
        columns = (xt[kinked] * y[kinked, None]).T / n  # (D, |K|)
        fit = lsq_linear(tangent @ columns, -(tangent @ base), bounds=(0.0, 1.0))
        coefficients = fit.x
        gradient = base + columns @ coefficients
    else:
        gradient = base
    size = float(np.linalg.norm(gradient))
    residual = float(np.linalg.norm(tangent @ gradient)) / size if size > 0 else math.inf
    return {
        "residual": residual,
        "kinked": int(kinked.sum()),
        "margin": float(margins.min()),
        "coefficients": coefficients,
        "gradient": gradient,
    }


def _face_fixed_point(u, xt, y, sign, face, iterations=50):
    """Fixed point of the pattern map restricted to a face: ``u ← s Π z_P / |Π z_P|``.

    ``face`` holds the samples kept on their kinks (``u·x̃_i = 0``), ``Π`` projects onto the
    orthogonal complement of their ``x̃_i`` and ``P = {i ∉ face : u·x̃_i > 0}``. With an
    empty face this is the plain pattern map ``u ← s z_{P(u)} / |z_{P(u)}|``. Returns the
    fixed point or None (no fixed point reached, or a zero gradient).
    """
    d = xt.shape[1]
    free = np.ones(len(y), dtype=bool)
    free[list(face)] = False
    on_face = xt[list(face)]
    project = np.eye(d) - np.linalg.pinv(on_face) @ on_face if face else np.eye(d)
    u = project @ u
    if np.linalg.norm(u) == 0.0:
        return None
    u = u / np.linalg.norm(u)
    for _ in range(iterations):
        pattern = (xt @ u > 0.0) & free
        g = sign * project @ ((y * pattern) @ xt / len(y))
        if np.linalg.norm(g) < 1e-14:
            return None
        new = g / np.linalg.norm(g)
        if np.array_equal((xt @ new > 0.0) & free, pattern):
            return new
        u = new
    return None


def kkt_points(
    xt: np.ndarray,
    y: np.ndarray,
    sign: int,
    *,
    starts: int = 200,
    seed: int = 0,
    ascent_steps: int = 2000,
    accept: float = 1e-9,
) -> np.ndarray:
    """KKT points of ``F`` on the unit sphere with ``sign·F > 0``: maxima for ``sign = +1``
    (where neurons with ``a > 0`` end), minima for ``sign = −1`` (``a < 0``).

    A KKT point is ``u = sign · g/|g|`` with ``g ∈ ∂F(u)`` (Clarke gradient,
    :func:`clarke_residual`). Off the kinks ``∂F(u) = {z_{P(u)}}`` and these are the fixed
    points of the pattern map ``u ↦ sign · z_{P(u)} / |z_{P(u)}|``; on a kink they are fixed
    points of the same map on the face (:func:`_face_fixed_point`). Candidates come from
    ``starts`` random unit vectors (``default_rng(seed)``) by two routes: (i) the pattern map
    itself, iterated until the pattern is fixed; (ii) the signed direction flow
    ``u ← normalize(u + η_k sign z_{P(u)})`` (steps ``η_k ∝ 1/√k``), which also reaches the
    maxima that sit on kinks, then snapped onto the face of its nearest 0, 1, …, D − 1
    kinks. A candidate is kept when its Clarke residual is ``≤ accept``; duplicates
    (``1 − cos < 1e-9``) are merged.

    Returns:
        ``(k, D)`` unit vectors sorted by ``sign·F`` decreasing (``k = 0`` possible).
    """
    d = xt.shape[1]
    rng = np.random.default_rng(seed)
    starts_u = rng.standard_normal((starts, d))
    starts_u /= np.linalg.norm(starts_u, axis=1, keepdims=True)
    scale = float(np.max(np.abs(y[:, None] * xt)) * d) or 1.0

    candidates = []
    for u in starts_u:  # (i) the plain pattern map
        point = _face_fixed_point(u, xt, y, sign, ())
        if point is not None:
            candidates.append(point)
    flow = starts_u.copy()  # (ii) the signed direction flow, all starts at once
    for k in range(ascent_steps):
        flow += (0.2 / scale / math.sqrt(k + 1.0)) * sign * pattern_gradient(flow, xt, y)
        flow /= np.linalg.norm(flow, axis=1, keepdims=True)
    for u in flow:
        nearest = np.argsort(_margins(u, xt))
        for size in range(d):
            point = _face_fixed_point(u, xt, y, sign, tuple(int(i) for i in nearest[:size]))
            if point is not None:
                candidates.append(point)

    kept: list[np.ndarray] = []
    for point in candidates:
        if sign * objective(point, xt, y) <= 0.0:
            continue
        if clarke_residual(point, xt, y, 1e-9)["residual"] > accept:
            continue
        if all(1.0 - point @ q >= 1e-9 for q in kept):
            kept.append(point)
    if not kept:
        return np.zeros((0, d))
    points = np.array(kept)
    return points[np.argsort(-sign * objective(points, xt, y))]


def top_rate(plus: np.ndarray, minus: np.ndarray, xt: np.ndarray, y: np.ndarray) -> float:
    """``λ* = max(max F, −min F)`` over the sphere, read at the KKT points (where F's
    extremes are attained)."""
    values = [float(objective(p, xt, y)) for p in plus] + [
        -float(objective(p, xt, y)) for p in minus
    ]
    return max(values)


# ---------------------------------------------------------------------------------------------
# Measurement (trains) and judgement (compares)


def _problem(x, y, settings, eps, steps):
    return problem_from_dict(
        {
            "model": {"depth": 2, "width": settings["width"], "activation": "relu", "bias": True},
            "data": {"x": x.tolist(), "y": y[:, None].tolist()},
            "init": {"scale": eps, "seed": 0},
            "train": {"optimizer": "gd", "lr": settings["lr"], "steps": steps},
        }
    )


def _neurons(w1, w2, xt, y, plus, minus):
    """Per grown neuron: size, sign of a, Clarke residual, margin, gap to the nearest KKT
    point of its sign."""
    sizes = np.linalg.norm(w1, axis=1)
    rows = []
    for j in np.flatnonzero(sizes >= GROWN_FRACTION * sizes.max()):
        u = w1[j] / sizes[j]
        a = float(w2[0, j])
        kkt = clarke_residual(u, xt, y, KINK_TOL)
        points = plus if a > 0 else minus
        gaps = 1.0 - points @ u if len(points) else np.array([math.inf])
        rows.append(
            {
                "neuron": int(j),
                "norm_w": float(sizes[j]),
                "a": a,
                "balance": abs(a) / float(sizes[j]),
                "direction": [float(v) for v in u],
                "F": float(objective(u, xt, y)),
                "residual": kkt["residual"],
                "kinked_samples": kkt["kinked"],
                "clarke_coefficients": [float(c) for c in kkt["coefficients"]],
                "one_sided_residual": clarke_residual(u, xt, y, -1.0)["residual"],  # z_P alone
                "margin": kkt["margin"],
                "cos_gap": float(np.min(gaps)),
                "nearest_kkt": int(np.argmin(gaps)),
            }
        )
    return rows


def measure(settings: dict) -> dict:
    """Build the data, find the KKT points, train at each ε and read the escape step.

    Returns a JSON-ready dict: ``lambda_star``, ``kkt_plus``/``kkt_minus`` (points and F),
    ``runs`` (per ε: escape time, escape step), ``slope`` (least-squares fit of escape time
    against ``log(1/ε)``), ``inverse_rate`` ``= 1/λ*``, and ``neurons``: the grown neurons
    at the escape step of the smallest ε (see :func:`_neurons`).
    """
    x, y = make_data(settings["n"], settings["data_seed"])
    xt = lift(x)
    plus = kkt_points(xt, y, +1, starts=settings["starts"])
    minus = kkt_points(xt, y, -1, starts=settings["starts"])
    lam = top_rate(plus, minus, xt, y)
    runs, last = [], None
    for eps in settings["eps"]:
        horizon = 2.0 * math.log(1.0 / eps) / lam + 10.0  # well past log(1/ε)/λ*
        steps = math.ceil(horizon / settings["lr"])
        run = train(
            _problem(x, y, settings, eps, steps),
            n_snapshots=2,
            stop_below=0.8,
            capture=[Capture(loss_drop=LOSS_DROP)],
        )
        t_esc = escape_time(run.t, run.loss, LOSS_DROP)
        step = run.captured[0][0] if run.captured[0] is not None else None
        runs.append({"eps": eps, "t_escape": t_esc, "step": step, "loss0": float(run.loss[0])})
        last = (run, step)
    escaped = all(r["t_escape"] is not None for r in runs)
    slope = None
    if escaped:
        logs = np.log(1.0 / np.array(settings["eps"]))
        slope = float(np.polyfit(logs, [r["t_escape"] for r in runs], 1)[0])
    neurons = []
    if last[1] is not None:
        w1, w2 = last[0].captured[0][1]
        neurons = _neurons(np.asarray(w1), np.asarray(w2), xt, y, plus, minus)
    return {
        "data": {"n": settings["n"], "data_seed": settings["data_seed"]},
        "lambda_star": lam,
        "inverse_rate": 1.0 / lam,
        "kkt_plus": [{"u": [float(v) for v in p], "F": float(objective(p, xt, y))} for p in plus],
        "kkt_minus": [{"u": [float(v) for v in p], "F": float(objective(p, xt, y))} for p in minus],
        "runs": runs,
        "escaped": escaped,
        "slope": slope,
        "directions_eps": settings["eps"][-1],
        "neurons": neurons,
    }


def judge(card: Card, m: dict) -> Outcome:
    """Compare a :func:`measure` dict with the card: the median Clarke residual of the grown
    neurons against ``card.expected ± card.tolerance``; every grown neuron within
    ``COS_GAP_BOUND`` of a KKT point of its sign; the escape slope within ``SLOPE_BOUND``
    of ``1/λ*``; every run escaped."""
    neurons = m["neurons"]
    residuals = [nr["residual"] for nr in neurons]
    gaps = [nr["cos_gap"] for nr in neurons]
    median = float(np.median(residuals)) if residuals else math.inf
    worst_gap = max(gaps) if gaps else math.inf
    slope, inverse = m["slope"], m["inverse_rate"]
    slope_error = abs(slope / inverse - 1.0) if slope is not None else math.inf
    residual_ok = bool(neurons) and within(median, card.expected, card.tolerance)
    gap_ok = worst_gap <= COS_GAP_BOUND
    slope_ok = slope_error <= SLOPE_BOUND
    passed = bool(m["escaped"] and residual_ok and gap_ok and slope_ok)
    margin = min((nr["margin"] for nr in neurons), default=math.nan)
    slope_text = f"{slope:.4f}" if slope is not None else "none"
    summary = (
        f"{len(neurons)} grown neurons at escape (ε = {m['directions_eps']:g}): median Clarke "
        f"KKT residual {median:.2e} (expected {card.expected} ± {card.tolerance}), worst "
        f"1 − cos to a KKT point of F of their sign {worst_gap:.2e} (≤ {COS_GAP_BOUND}), min "
        f"|u·x̃|/|x̃| {margin:.1e}; escape slope vs log(1/ε) {slope_text} vs 1/λ* = "
        f"{inverse:.4f} (|ratio − 1| = {slope_error:.3f} ≤ {SLOPE_BOUND}); "
        f"{len(m['kkt_plus'])} maxima, {len(m['kkt_minus'])} minima"
    )
    return Outcome(
        measured=float(f"{median:.4g}") if math.isfinite(median) else None,
        passed=passed,
        summary=summary,
        details={
            **m,
            "median_residual": median,
            "worst_cos_gap": worst_gap,
            "min_margin": margin,
            "slope_over_inverse_rate": slope / inverse if slope is not None else None,
            "definitions": {
                "grown": f"|w_j| ≥ {GROWN_FRACTION}·max_k |w_k| at the escape step",
                "residual": "|(I − uuᵀ)g|/|g|, g the element of the Clarke gradient of F at u "
                f"closest to the ray of u (samples with |u·x̃_i| ≤ {KINK_TOL}|x̃_i| kinked)",
                "cos_gap": "1 − u·p for the nearest KKT point p of sign sign(a_j)",
                "escape": "first t = k·lr with loss ≤ 0.9·loss(0)",
            },
        },
    )


def run(card, settings, out_dir):
    m = measure(settings)
    outcome = judge(card, m)
    if out_dir is None:
        return outcome
    return Outcome(
        outcome.measured,
        outcome.passed,
        outcome.summary,
        outcome.details,
        [_figure(m, settings, Path(out_dir))],
    )


def _figure(m, settings, out_dir):
    from effdyn import plotting

    plt = plotting._pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.9))
    # Left: F on the hemisphere u₃ > 0 (the bias side), seen from above, with the kinks.
    x, y = make_data(settings["n"], settings["data_seed"])
    xt = lift(x)
    grid = np.linspace(-1.0, 1.0, 241)
    g1, g2 = np.meshgrid(grid, grid)
    inside = g1**2 + g2**2 < 1.0
    u = np.stack([g1, g2, np.sqrt(np.clip(1.0 - g1**2 - g2**2, 0.0, None))], axis=-1)
    values = np.where(inside, objective(u.reshape(-1, 3), xt, y).reshape(g1.shape), np.nan)
    top = float(np.nanmax(np.abs(values)))
    shade = left.contourf(g1, g2, values, levels=np.linspace(-top, top, 25), cmap="RdBu_r")
    fig.colorbar(shade, ax=left, shrink=0.8, label="F(u)")
    angle = np.linspace(0.0, 2.0 * np.pi, 721)
    for xi in xt:  # the great circle u·x̃_i = 0, upper half
        e1 = np.cross(xi, [0.0, 0.0, 1.0]) if abs(xi[2]) < np.linalg.norm(xi) else [1, 0, 0]
        e1 = np.asarray(e1) / np.linalg.norm(e1)
        e2 = np.cross(xi / np.linalg.norm(xi), e1)
        circle = np.outer(np.cos(angle), e1) + np.outer(np.sin(angle), e2)
        circle[circle[:, 2] < 0] = np.nan
        left.plot(circle[:, 0], circle[:, 1], color="0.3", lw=0.4)
    for key, marker, label in (("kkt_plus", "^", "KKT max"), ("kkt_minus", "v", "KKT min")):
        pts = np.array([p["u"] for p in m[key]]).reshape(-1, 3)
        up = pts[:, 2] > 0
        left.scatter(
            pts[up, 0],
            pts[up, 1],
            marker=marker,
            s=70,
            facecolor="none",
            edgecolor="k",
            lw=1.2,
            label=label,
            zorder=3,
        )
    dirs = np.array([nr["direction"] for nr in m["neurons"]]).reshape(-1, 3)
    left.scatter(
        dirs[:, 0],
        dirs[:, 1],
        s=10,
        color="gold",
        edgecolor="k",
        lw=0.4,
        label="grown neurons",
        zorder=4,
    )
    left.set_aspect("equal")
    left.set_xlim(-1, 1)
    left.set_ylim(-1, 1)
    left.set_xlabel("u₁")
    left.set_ylabel("u₂")
    left.set_title("F on the sphere (u₃ > 0), kinks u·x̃ᵢ = 0", fontsize=9)
    left.legend(fontsize=6.5, loc="lower left")
    # Right: escape time against log(1/ε), with the predicted slope 1/λ*.
    logs = np.log(1.0 / np.array([r["eps"] for r in m["runs"]]))
    times = np.array([r["t_escape"] for r in m["runs"]], dtype=float)
    right.plot(logs, times, "o", color="C0", label="GD escape (10% loss drop)")
    if m["slope"] is not None:
        fit = np.polyfit(logs, times, 1)
        right.plot(
            logs, np.polyval(fit, logs), color="C0", lw=1.0, label=f"fit: slope {m['slope']:.4f}"
        )
        offset = np.mean(times - logs * m["inverse_rate"])
        right.plot(
            logs,
            offset + logs * m["inverse_rate"],
            color="C3",
            ls="--",
            lw=1.0,
            label=f"slope 1/λ* = {m['inverse_rate']:.4f}",
        )
    right.set_xlabel("log(1/ε)")
    right.set_ylabel("t_escape  (t = step·lr)")
    right.set_title("escape time grows like log(1/ε)/λ*", fontsize=9)
    right.legend(fontsize=7, loc="upper left")
    path = plotting.save_figure(fig, out_dir / "kkt_directions.png")
    return (
        path,
        "left: F(u) on the upper unit hemisphere with its kinks, KKT maxima/minima and the grown "
        "neurons' directions at escape; right: GD escape time against log(1/ε) with slope 1/λ*",
    )


_SETTINGS = {"n": 30, "data_seed": 0, "width": 40, "lr": 0.01, "starts": 200}

CARD = Card(
    id="kkt_directions",
    claim=(
        "From small initialization, the neurons of a two-layer ReLU network that grow first "
        "point at KKT points of F(w) = ⟨y relu(w·x̃)⟩ on the unit sphere (maxima for a > 0, "
        "minima for a < 0; on a kink, with the Clarke gradient), and the loss leaves its "
        "plateau after a time log(1/ε)/λ*, λ* = max(max F, −min F) on the sphere."
    ),
    maths=(
        "F(w) = ⟨y relu(w·x̃)⟩, ∂F(u) ∋ g(c) = ⟨y 1[u·x̃ > 0] x̃⟩ + (1/n) Σ_{u·x̃_i = 0} c_i y_i "
        "x̃_i, c ∈ [0,1];  KKT: u = ±g/|g|, g ∈ ∂F(u);  a' = F(w), w' = a ∇F(w) ⇒ "
        "|w|' = ±F(u)|a|;  t_escape(ε) = log(1/ε)/λ* + O(1)"
    ),
    paper="2402.09226",
    check=(
        "Data: n = 30, x_i ~ N(0, I₂) from numpy default_rng(0), x̃ = (x, 1), y = relu(v₁·x̃) − "
        "relu(v₂·x̃), v₁ = (1, 0.5, 0.2), v₂ = (−0.6, 1, −0.1). Width 40, bias, GD lr 0.01, "
        "init seed 0 at three ε. KKT points of F: signed pattern-map / direction-flow fixed "
        "points from 200 random starts, kept when their Clarke residual is ≤ 1e-9. At the "
        "escape step (loss ≤ 0.9 loss(0)) of the smallest ε, grown neurons (|w_j| ≥ 0.3 max): "
        "median Clarke residual |(I − uuᵀ)g|/|g| (headline, samples with |u·x̃| ≤ 2e-3|x̃| "
        "kinked); each within 1 − cos ≤ 0.05 of a KKT point of sign(a_j); least-squares "
        "slope of escape time against log(1/ε) within 10% of 1/λ*."
    ),
    expected=0.0,
    tolerance=0.02,
    why=(
        "Measured (quick): median Clarke residual 2.6e-3 at the escape step, 3e-4 at a 1% loss "
        "drop — the rest is the non-leading terms once 10% of the loss is gone. The grown "
        "neurons slide along the kink of F's maximum; GD moves a direction by ≤ lr·|z| ≈ 7e-3 "
        "per step and they chatter 2e-4–8e-4 across it, the next sample being ≥ 1.3e-2 away "
        "(hence the kink threshold 2e-3). Judged with the one-sided gradient z_P alone, the "
        "same neurons show 0.08–0.14: 0.02 separates a Clarke KKT point from a mere kink. The "
        "slope (measured within 0.5% of 1/λ*) carries GD's rate error ≈ lr·λ*/2 ≈ 0.4% and "
        "the O(1) offset's ε-dependence: 10% is loose for these but fails a rate 2λ* or λ*/2."
    ),
    quick={**_SETTINGS, "eps": [1e-3, 1e-4, 1e-5]},
    full={**_SETTINGS, "width": 50, "lr": 0.005, "starts": 400, "eps": [1e-3, 1e-4, 1e-5, 1e-6]},
    run=run,
)
