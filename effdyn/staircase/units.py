"""The chained prediction for two-layer networks, unit by unit
(docs/theory/staircases.md#two-layer-networks).

For ``f(x) = Σ_j a_j σ(w_j·x̃)`` (``w_j`` row ``j`` of ``W1``, ``a_j`` column ``j`` of ``W2``)
the units are split into *grown* ones (G) and *small* ones (S). Let ``f_G`` be the output of
the grown units alone and ``g_i = ∂ℓ/∂f`` at ``f_G(x_i)`` (``g = f_G − y`` for the square
loss). The three steps of the chained prediction are then one flow:

1. **Escape at leading order.** A small unit follows its own leading-order dynamics around
   the current state of the grown part, with σ replaced by its leading part ``T`` (``c_p s^p``;
   the one-sided parts for a non-smooth σ)::

       (w_j, a_j)' = ∇ E_j,    E_j = −⟨g · a_j T(w_j·x̃)⟩,

   the per-neuron field of docs/theory/effective-dynamics.md#two-layer with the target
   ``y`` replaced by the current residual ``−g``. Small units do not feed ``f``. A unit
   *escapes* when its output reaches ``SWITCH`` of the residual,
   ``⟨|a_j T(w_j·x̃)|²⟩^{1/2} = SWITCH·⟨|g|²⟩^{1/2}``.
2. **Follow the grown part to the next saddle.** The escaped unit joins the grown units with
   its current weights; the grown units follow the exact gradient flow of ``R(f_G)`` (the
   reduced model, the real activation).
3. **Carry the small part forward** through that stage at its own leading order: the
   small units keep following step 1's field in the moving residual.

Between two escapes this is one adaptive DOP853 solve (rtol 1e-8). The predicted loss
``R(f_G(t))`` is followed over the problem's training time (``[train] steps × lr``) and its
staircase is read off by the rule that measures a training curve
(:func:`~effdyn.staircase.measured.measured_stages`): plateaus, drops between consecutive
plateaus, each timed by the midpoint crossing (refined on the solver's dense output). Each
stage lists, per leaf, the units it learned: the escaped units that first reach ``LEARNED``
of the largest unit's output by its end.

For ``p = 1`` the units all grow at one exponential rate, so nearly all escape in the
first drop, on one orientation; a later drop is then that condensed group splitting inside the
reduced model, which learns no new unit (a warning says so).
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from ..errors import EffdynError
from .measured import measured_stages
from .result import Stage, Staircase

SWITCH = 1e-4
"""A small unit escapes when its output reaches ``SWITCH`` of the residual (RMS over samples)."""
RTOL = 1e-8
ATOL_GROWN = 1e-14
"""Absolute tolerance on the grown units' weights (O(1) numbers)."""
ATOL_SMALL = 1e-24
"""Absolute tolerance on the small units' weights: relative control down to ε ≈ 1e-12."""
LEARNED = 0.01
"""A unit learned in a drop ends it with at least this fraction of the largest unit's output."""
GRID = 2_000
"""Samples of the predicted loss curve over the horizon for the plateau rule."""


def chained_units(xt, y, leaves, activation, loss, horizon: float, *, progress=False) -> Staircase:
    """The unit-by-unit chained staircase of a two-layer network (module doc).

    Args:
        xt: ``(n, D)`` inputs as the first layer sees them (``x̃``, bias column last).
        y: ``(n, K)`` labels as stored (:mod:`effdyn.losses`).
        leaves: ``(W1, W2)``, the initial weights, ``(m, D)`` and ``(K, m)``.
        activation: the hidden layer's :class:`~effdyn.symbolic.activation.Activation`.
        loss: a :class:`~effdyn.losses.Loss`.
        horizon: the time to follow the prediction for (gradient-flow time ``t``).

    Returns:
        a :class:`Staircase` with ``method = "chained"``; ``learned`` is
        ``{"W1": rows, "W2": columns}``, the escaped units that first reach
        ``LEARNED`` of the largest unit's output by the end of the drop.
    """
    if float(activation.sigma0) != 0:
        raise EffdynError(
            f"the unit-by-unit staircase needs σ(0) = 0; σ = {activation.source} has "
            f"σ(0) = {activation.sigma0} (a drift, docs/theory/multiplicity.md#drift)"
        )
    w1, w2 = (np.asarray(w, dtype=np.float64) for w in leaves)
    flow = _UnitFlow(xt, y, activation, loss, w1.shape, w2.shape[0])
    path = _follow(flow, np.concatenate([w1.ravel(), w2.ravel()]), horizon, progress)
    return _staircase(flow, path, horizon)


class _UnitFlow:
    """The chained flow of one problem (module doc), its functions compiled once.

    The state is ``θ = (W1 flattened, W2 flattened)``; ``grown`` is a 0/1 mask over units.
    """

    def __init__(self, xt, y, activation, loss, shape, k_out):
        import jax
        import jax.numpy as jnp

        from ..symbolic.activation import S
        from ..symbolic.bridge import activation_function, sympy_to_jax

        m, dim = shape
        self.m, self.dim, self.k_out = m, dim, k_out
        n = len(xt)
        sigma = activation_function(activation)
        template = sympy_to_jax(activation.template(S), S)
        xj = jnp.asarray(np.asarray(xt, dtype=np.float64))
        yj = jnp.asarray(np.asarray(y, dtype=np.float64))

        def unpack(theta):
            return theta[: m * dim].reshape(m, dim), theta[m * dim :].reshape(k_out, m)

        def grown_output(theta, grown):
            a, b = unpack(theta)
            h = xj @ a.T
            return h, sigma(h) @ (b * grown).T

        def objective(theta, grown):
            # R(f_G) for the grown units, plus ⟨g·f_S⟩ with g held fixed: its gradient in a
            # small unit is −∇E_j of step 1 (the leading-order field), zero in a grown one.
            h, f_g = grown_output(theta, grown)
            g = jax.lax.stop_gradient(loss.output_gradient(f_g, yj))
            f_s = template(h) @ (unpack(theta)[1] * (1.0 - grown)).T
            return jnp.mean(loss.per_sample(f_g, yj)) + jnp.sum(g * f_s) / n

        def loss_of(theta, grown):
            return jnp.mean(loss.per_sample(grown_output(theta, grown)[1], yj))

        def log_strengths(theta, grown):
            # log of each small unit's output over SWITCH·|g| (−inf for grown units)
            h, f_g = grown_output(theta, grown)
            g = loss.output_gradient(f_g, yj)
            out = jnp.linalg.norm(unpack(theta)[1], axis=0) * jnp.sqrt(
                jnp.mean(template(h) ** 2, axis=0)
            )
            scale = SWITCH * jnp.maximum(jnp.sqrt(jnp.sum(g * g) / n), 1e-300)
            ratio = jnp.log(jnp.maximum(out, 1e-300)) - jnp.log(scale)
            return jnp.where(grown > 0, -jnp.inf, ratio)

        def unit_output(theta):  # |a_j|·⟨σ(w_j·x̃)²⟩^{1/2}
            a, b = unpack(theta)
            return jnp.linalg.norm(b, axis=0) * jnp.sqrt(jnp.mean(sigma(xj @ a.T) ** 2, axis=0))

        self.field = jax.jit(lambda theta, grown: -jax.grad(objective)(theta, grown))
        self.log_strengths = jax.jit(log_strengths)
        self.losses = jax.jit(jax.vmap(loss_of, in_axes=(0, None)))
        self.unit_output = jax.jit(unit_output)

    def atol(self, grown) -> np.ndarray:
        per_unit = np.where(grown > 0, ATOL_GROWN, ATOL_SMALL)
        return np.concatenate([np.repeat(per_unit, self.dim), np.tile(per_unit, self.k_out)])


def _follow(flow: _UnitFlow, theta, horizon: float, progress: bool) -> dict:
    """Solve from escape to escape up to ``horizon``: the dense segments ``(t0, t1,
    solution, mask)`` and the escapes ``(time, units)``."""
    import jax.numpy as jnp

    from ..progress import progress_bar

    grown = np.zeros(flow.m)
    t = 0.0
    segments, escapes = [], []
    with progress_bar("staircase (chained)", total=1000, enabled=progress) as bar:
        done = 0
        while t < horizon:
            mask = jnp.asarray(grown)  # one device array per segment, not one per call

            def rhs(_, th, mask=mask):
                return np.asarray(flow.field(th, mask))

            def escape(_, th, mask=mask):
                return float(np.max(flow.log_strengths(th, mask)))

            escape.terminal = True
            escape.direction = 1
            sol = solve_ivp(
                rhs,
                (t, horizon),
                theta,
                method="DOP853",
                rtol=RTOL,
                atol=flow.atol(grown),
                events=[escape] if grown.sum() < flow.m else None,
                dense_output=True,
            )
            if sol.status == -1:
                raise EffdynError(
                    f"the chained staircase solve failed at t = {t:.6g}: {sol.message}"
                )
            segments.append((t, float(sol.t[-1]), sol.sol, mask))
            theta, t = sol.y[:, -1], float(sol.t[-1])
            if sol.status == 1:  # an escape: every small unit at its switch joins
                ratio = np.asarray(flow.log_strengths(theta, mask))
                new = np.flatnonzero(ratio >= -1e-6)
                if new.size == 0:
                    new = np.array([int(np.argmax(ratio))])
                grown[new] = 1.0
                escapes.append((t, [int(j) for j in new]))
            now = min(int(1000 * t / horizon), 1000)
            bar.advance(now - done, description=f"staircase (chained), {int(grown.sum())} grown")
            done = now
    return {"segments": segments, "escapes": escapes, "grown": int(grown.sum())}


def _staircase(flow: _UnitFlow, path: dict, horizon: float) -> Staircase:
    """Read the stages off the predicted loss ``R(f_G(t))`` (module doc)."""
    segments, escapes = path["segments"], path["escapes"]

    def loss_at(times):
        out = np.empty(len(times))
        for t0, t1, dense, mask in segments:
            sel = (times >= t0) & (times <= t1)
            if sel.any():
                out[sel] = np.asarray(flow.losses(dense(times[sel]).T, mask))
        return out

    def outputs_at(time):
        for t0, t1, dense, _ in segments:
            if t0 <= time <= t1:
                return np.asarray(flow.unit_output(dense(time)))
        return np.asarray(flow.unit_output(segments[-1][2](segments[-1][1])))

    grid = np.linspace(0.0, horizon, GRID + 1)
    curve = loss_at(grid)
    found = measured_stages(grid, curve)
    escaped_at = {j: when for when, js in escapes for j in js}
    learned = _attribute(found, escaped_at, outputs_at)
    stages = [
        Stage(
            t=_refine(loss_at, grid, stage.t, 0.5 * (stage.loss_before + stage.loss_after)),
            loss_before=stage.loss_before,
            loss_after=stage.loss_after,
            learned={"W1": units, "W2": units},
            extra={"escapes": [escaped_at[j] for j in units]},
        )
        for stage, units in zip(found, learned, strict=True)
    ]
    attributed = {j for units in learned for j in units}
    notes = [
        f"drop {i} (t = {stage.t:.6g}) learns no new unit: the grown units rearrange "
        "inside the reduced model (a condensed group splitting, for example)"
        for i, stage in enumerate(stages, 1)
        if not stage.learned["W1"]
    ]
    if not escapes:
        notes.append(
            f"no unit escapes within the training time t = {horizon:g} ([train] steps × lr)"
        )
    extra = {
        "horizon": horizon,
        "switch": SWITCH,
        "grown": path["grown"],
        "escaped_without_drop": sorted(j for j in escaped_at if j not in attributed),
        "final_loss": float(curve[-1]),
    }
    return Staircase(tuple(stages), "chained", "t", extra=extra, notes=tuple(notes))


def _attribute(found, escaped_at: dict, outputs) -> list[list[int]]:
    """The units each stage learned: an escaped unit belongs to the first drop at whose end
    (the next plateau's start) its output is at least ``LEARNED`` of the largest unit's."""
    learned: list[list[int]] = [[] for _ in found]
    pending = sorted(escaped_at)
    for k, stage in enumerate(found):
        out = outputs(stage.extra["next_plateau_start"])
        learned[k] = [j for j in pending if out[j] >= LEARNED * out.max()]
        pending = [j for j in pending if j not in learned[k]]
    return learned


def _refine(loss_at, grid, rough: float, middle: float) -> float:
    """The midpoint crossing near ``rough``, to the solver's dense-output precision."""
    i = int(np.searchsorted(grid, rough))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]

    def gap(s):
        return float(loss_at(np.array([s]))[0]) - middle

    if gap(lo) * gap(hi) > 0:
        return rough
    return float(brentq(gap, lo, hi, xtol=1e-12))
