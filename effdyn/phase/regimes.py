"""Measuring a dynamical regime: batched training to a loss tolerance, RD, slopes, boundaries.

The order parameter (Luo et al. 2021; docs/theory/phase-diagrams.md#order-parameter) of a layer's
weights ``W`` is the relative
distance travelled during training,

    RD(W) = |W(t_end) − W(0)|_F / |W(0)|_F,

with ``t_end`` the first step at which the loss has fallen to ``tol · R(θ_0)`` (or the last
step allowed). Over widths ``m`` it behaves as a power ``RD ~ m^S``; the slope ``S`` of
``log RD`` against ``log m`` (least squares, after averaging ``log RD`` over seeds) tells the
regime: ``RD → 0`` (linear, ``S < 0``), ``RD → ∞`` (condensed, ``S > 0``), ``RD = O(1)``
(critical, ``S ≈ 0``). At finite widths a slope is never exactly 0, so a band
``|S| ≤ threshold`` (0.1 by default: the paper's critical slope is 0.007 and its linear and
condensed ones are ±0.4–0.5) is called critical.

The training (:func:`train_batch`) is full-batch gradient descent on
``R = (1/2n) Σ_i |f(x_i) − y_i|²`` for a whole batch of networks of one shape at once: one
jitted ``lax.scan`` over steps of a ``vmap`` over members, each with its own initialization,
output multiplier and learning rate. Every member stops at its own step — once its loss is at
or below ``tol`` times its initial loss, or when its loss is not finite — by masking its update
(the step that finds it there leaves it in place), so a member's result does not depend on
which other members share its batch. The batch runs until every member has stopped or
``max_steps``; steps after that are skipped by a scalar ``lax.cond`` and cost nothing.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._jax import enable_x64
from ..training.network import loss_function, network

enable_x64()

DEFAULT_TOL = 1e-3
DEFAULT_MAX_STEPS = 60_000
DEFAULT_CHUNK = 1000
DEFAULT_THRESHOLD = 0.1
"""Slopes with ``|S| ≤ 0.1`` are called critical (module docstring)."""

REGIMES = ("linear", "critical", "condensed")

# Member status codes (survive vmap as integers).
RUNNING, CONVERGED, NONFINITE = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# Theory (Luo et al. 2021, two-layer)


def theory_regime(gamma: float, gamma_prime: float, *, atol: float = 1e-9) -> str:
    """The two-layer regime at ``(γ, γ')`` by the boundaries of Luo et al. 2021.

    Linear if ``γ < 1`` or ``γ' > γ − 1``; condensed if ``γ > 1`` and ``γ' < γ − 1``; critical
    on the boundary: ``γ = 1`` with ``γ' ≤ 0``, and ``γ' = γ − 1`` with ``γ' > 0`` (equalities
    to ``atol``).

    >>> theory_regime(0.5, 0), theory_regime(1, 0), theory_regime(1.75, 0)
    ('linear', 'critical', 'condensed')
    """
    gamma, gamma_prime = float(gamma), float(gamma_prime)
    if gamma_prime <= atol and abs(gamma - 1.0) <= atol:
        return "critical"
    if gamma_prime > atol and abs(gamma_prime - (gamma - 1.0)) <= atol:
        return "critical"
    if gamma < 1.0 or gamma_prime > gamma - 1.0:
        return "linear"
    return "condensed"


def measured_regime(slope: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """``"linear"`` if ``S < −threshold``, ``"condensed"`` if ``S > threshold``, else
    ``"critical"``; ``"unknown"`` for a slope that could not be measured (NaN)."""
    if not math.isfinite(slope):
        return "unknown"
    if slope < -threshold:
        return "linear"
    if slope > threshold:
        return "condensed"
    return "critical"


# ---------------------------------------------------------------------------------------------
# RD and slopes


def relative_distance(w_end, w_start) -> float:
    """``|W_end − W_start|_F / |W_start|_F`` (float64)."""
    w_end, w_start = np.asarray(w_end, dtype=float), np.asarray(w_start, dtype=float)
    return float(np.linalg.norm(w_end - w_start) / np.linalg.norm(w_start))


def fit_slope(widths, values) -> float:
    """Least-squares slope of ``log values`` against ``log widths``.

    Several values at one width (seeds) are first averaged in ``log``; non-finite or
    non-positive values are left out. NaN when fewer than two widths remain.
    """
    by_width: dict[float, list[float]] = defaultdict(list)
    for m, v in zip(widths, values, strict=True):
        v = float(v)
        if math.isfinite(v) and v > 0:
            by_width[float(m)].append(math.log(v))
    if len(by_width) < 2:
        return math.nan
    ms = sorted(by_width)
    x = np.log(ms)
    y = np.array([np.mean(by_width[m]) for m in ms])
    return float(np.polyfit(x, y, 1)[0])


def slopes_of(
    results: list[tuple[dict, dict]], layers: tuple[str, ...], threshold: float
) -> list[dict]:
    """Group ``(point, result)`` pairs by every point key except ``width`` and ``seed`` and fit
    a slope per layer (see :func:`effdyn.phase.slopes`)."""
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for point, result in results:
        coords = {k: v for k, v in point.items() if k not in ("width", "seed")}
        key = tuple(sorted((k, _hashable(v)) for k, v in coords.items()))
        groups.setdefault(key, []).append((point, result))
    out = []
    for members in groups.values():
        coords = {k: v for k, v in members[0][0].items() if k not in ("width", "seed")}
        widths = [int(p["width"]) for p, _ in members]
        fitted = {}
        for layer in layers:
            values = [r.get(f"rd_{layer}", math.nan) for _, r in members]
            values = [math.nan if v is None else v for v in values]
            fitted[layer] = fit_slope(widths, values)
        out.append(
            {
                **coords,
                "slopes": fitted,
                "regime": {k: measured_regime(s, threshold) for k, s in fitted.items()},
                "widths": sorted(set(widths)),
                "n_seeds": len({p.get("seed", 0) for p, _ in members}),
            }
        )
    return out


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


# ---------------------------------------------------------------------------------------------
# Batched training


@dataclass(frozen=True, eq=False)
class BatchRun:
    """What :func:`train_batch` returns, one row per member.

    Attributes:
        params: final weights per layer, ``(B, *W_l.shape)``: each member's ``θ`` at its own
            stop step.
        steps: ``(B,)`` the stop step (first step with loss ≤ tol·loss0, the first non-finite
            loss, or ``max_steps``).
        loss0: ``(B,)`` ``R(θ_0)``.
        loss: ``(B,)`` ``R`` at the final weights (NaN/inf for a non-finite member).
        status: ``(B,)`` :data:`RUNNING` (max_steps reached), :data:`CONVERGED`, or
            :data:`NONFINITE`.
    """

    params: tuple[np.ndarray, ...]
    steps: np.ndarray
    loss0: np.ndarray
    loss: np.ndarray
    status: np.ndarray


def train_batch(
    activations: tuple[str, ...],
    params0: tuple[np.ndarray, ...],
    multipliers,
    lrs,
    xt,
    y,
    *,
    tol: float = DEFAULT_TOL,
    max_steps: int = DEFAULT_MAX_STEPS,
    chunk: int = DEFAULT_CHUNK,
) -> BatchRun:
    """Gradient descent for ``B`` networks ``f_b(x) = μ_b · net(θ_b, x̃)`` at once.

    Args:
        activations: one activation string per hidden layer (as in ``Problem``).
        params0: per layer, the stacked initial weights ``(B, *W_l.shape)``.
        multipliers: ``(B,)`` output multipliers ``μ_b``.
        lrs: ``(B,)`` step sizes.
        xt, y: the data ``(n, D)`` (bias column last) and ``(n, d_out)``, shared.
        tol: a member stops at the first step ``k`` with ``R(θ_k) ≤ tol · R(θ_0)``.
        max_steps: the most steps any member takes.
        chunk: steps per compiled call (Python checks between chunks whether all stopped).

    Returns:
        A :class:`BatchRun`.
    """
    run_chunk = _chunk_function(tuple(activations), int(chunk))
    params = tuple(jnp.asarray(w, dtype=jnp.float64) for w in params0)
    mult = jnp.asarray(multipliers, dtype=jnp.float64)
    lr = jnp.asarray(lrs, dtype=jnp.float64)
    xt, y = jnp.asarray(xt, dtype=jnp.float64), jnp.asarray(y, dtype=jnp.float64)
    batch_loss = _batch_loss(tuple(activations))
    loss0 = batch_loss(params, mult, xt, y)
    loss0_host = np.asarray(loss0)  # the carry (holding loss0) is donated chunk to chunk
    b = lr.shape[0]
    status = jnp.where(jnp.isfinite(loss0), RUNNING, NONFINITE)
    carry = (params, status, jnp.zeros(b, dtype=jnp.int64), loss0)
    for start in range(0, int(max_steps), int(chunk)):
        carry = run_chunk(carry, mult, lr, xt, y, jnp.float64(tol), start, int(max_steps))
        if not bool(jnp.any(carry[1] == RUNNING)):
            break
    params, status, steps, _ = carry
    status = np.asarray(status)
    steps = np.where(status == RUNNING, int(max_steps), np.asarray(steps))
    loss = np.asarray(batch_loss(params, mult, xt, y))
    return BatchRun(
        params=tuple(np.asarray(w) for w in params),
        steps=steps,
        loss0=loss0_host,
        loss=loss,
        status=status,
    )


def _member_loss(activations: tuple[str, ...]):
    loss = loss_function(network(list(activations)))

    def member_loss(params, mult, xt, y):
        # f = μ · net(θ): scale the last layer's output, i.e. multiply the network by μ.
        return loss((*params[:-1], mult * params[-1]), xt, y)

    return member_loss


@functools.lru_cache(maxsize=32)
def _batch_loss(activations: tuple[str, ...]):
    return jax.jit(jax.vmap(_member_loss(activations), in_axes=(0, 0, None, None)))


@functools.lru_cache(maxsize=32)
def _chunk_function(activations: tuple[str, ...], chunk: int):
    """The jitted ``chunk``-step advance of a batch (traced once per batch shape)."""
    value_and_grad = jax.value_and_grad(_member_loss(activations))

    def member_step(params, status, steps, loss0, mult, lr, xt, y, tol, k):
        loss, grads = value_and_grad(params, mult, xt, y)
        running = status == RUNNING
        finite = jnp.isfinite(loss)
        reached = finite & (loss <= tol * loss0)
        move = running & finite & ~reached
        # A member that has stopped (now or before) keeps θ: the step that finds the loss at
        # tol (or non-finite) is its stop step, and θ there is its final θ.
        params = tuple(jnp.where(move, w - lr * g, w) for w, g in zip(params, grads, strict=True))
        new_status = jnp.where(
            running & ~finite, NONFINITE, jnp.where(running & reached, CONVERGED, status)
        )
        steps = jnp.where(running & ~move, k, steps)
        return params, new_status, steps

    batched = jax.vmap(member_step, in_axes=(0, 0, 0, 0, 0, 0, None, None, None, None))

    def run_chunk(carry, mult, lr, xt, y, tol, start, stop):
        def step(state, j):
            params, status, steps, loss0 = state
            k = start + j
            live = (k < stop) & jnp.any(status == RUNNING)

            def advance(_):
                new = batched(params, status, steps, loss0, mult, lr, xt, y, tol, k)
                return (*new, loss0)

            return lax.cond(live, advance, lambda _: state, None), None

        carry, _ = lax.scan(step, carry, jnp.arange(chunk, dtype=jnp.int64))
        return carry

    return jax.jit(run_chunk, donate_argnums=0)
