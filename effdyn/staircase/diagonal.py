"""Diagonal linear networks: the saddle-to-saddle limit of Pesme & Flammarion 2023
(arXiv 2304.00488; docs/theory/staircases.md#diagonal-linear-networks).

``β = u⊙u − v⊙v``, ``u(0) = v(0) = α·1``, ``L(β) = (1/2n)‖Xβ − y‖²``. Gradient flow gives
``u = α e^{2S}``, ``v = α e^{−2S}`` with ``S(t) = −∫₀ᵗ ∇L(β) dτ``, so
``β = 2α² sinh(4S)``. In the time ``t̃ = t / log(1/α)`` and with ``s̃ = S / log(1/α)``,
``β_i`` stays ``o(1)`` while ``|s̃_i| < 1/2``, and ``|s̃_i| ≤ 1/2`` always. As α → 0 the
trajectory is piecewise constant, jumping from saddle to saddle (:func:`limit`):

    t̃₀ = 0, s̃ = 0, β̃ = 0;  repeat:
        g = ∇L(β̃);  between jumps  s̃(t̃) = s̃(t̃_k) − (t̃ − t̃_k) g;
        t̃_{k+1}: the first time a coordinate not yet at the boundary reaches |s̃_i| = 1/2;
        A = {i : |s̃_i| = 1/2};
        β̃ = argmin L(β) over supp β ⊆ A with β_i s̃_i ≥ 0
            (non-negative least squares after flipping the signs);
    until g = 0 off the boundary (or the loss is below 1e-12 of L(0)).

A coordinate of A whose sign constraint binds (``β̃_i = 0``) moves back inside: it leaves
the active set. The algorithm assumes general position — each constrained least squares has
one solution — and refuses an active set whose columns of X are linearly dependent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import EffdynError
from .result import Stage, Staircase

BOUNDARY = 0.5
"""``|s̃_i|`` at which coordinate ``i`` is active."""
NEGLIGIBLE = 1e-12
"""The limit stops once the loss is below this fraction of ``L(0)``."""


@dataclass(frozen=True)
class Jump:
    """One jump of the limit: at ``t`` (in ``t/log(1/α)``) β goes to ``beta``."""

    t: float
    beta: np.ndarray
    s: np.ndarray
    active: tuple[int, ...]
    loss_before: float
    loss_after: float
    entered: tuple[tuple[int, int], ...]
    left: tuple[int, ...]


def loss(x, y, beta) -> float:
    """``L(β) = (1/2n)‖Xβ − y‖²``."""
    r = x @ beta - y
    return 0.5 * float(r @ r) / len(y)


def gradient(x, y, beta) -> np.ndarray:
    """``∇L(β) = Xᵀ(Xβ − y)/n``."""
    return x.T @ (x @ beta - y) / len(y)


def limit(x, y, *, max_jumps: int | None = None, tol: float = 1e-12) -> list[Jump]:
    """The jumps of the α → 0 limit (module doc) for data ``x`` ``(n, d)`` and ``y`` ``(n,)``.

    Args:
        max_jumps: stop after this many jumps (default ``4d``: each jump changes the
            active set, and in general position it never repeats one).
        tol: a gradient entry below ``tol·‖Xᵀy/n‖_∞`` is zero.

    Raises:
        EffdynError: an active set with linearly dependent columns of X (one line).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n, d = x.shape
    max_jumps = 4 * d if max_jumps is None else int(max_jumps)
    beta = np.zeros(d)
    s = np.zeros(d)
    at_boundary = np.zeros(d, bool)
    t = 0.0
    scale = float(np.max(np.abs(x.T @ y))) / n
    if scale == 0:
        return []
    jumps: list[Jump] = []
    start = loss(x, y, beta)
    for _ in range(max_jumps):
        if jumps and jumps[-1].loss_after <= NEGLIGIBLE * start:
            break  # fitted to rounding: later jumps would fit noise at the 1e-12 level
        g = gradient(x, y, beta)
        g[np.abs(g) <= tol * scale] = 0.0
        tau = np.full(d, np.inf)
        moving = g != 0
        # a boundary coordinate can only move back inside (the constrained fit's KKT sign)
        inward = moving & at_boundary & (np.sign(g) == np.sign(s))
        free = moving & ~at_boundary
        up = free & (g < 0)
        down = free & (g > 0)
        tau[up] = (BOUNDARY - s[up]) / -g[up]
        tau[down] = (s[down] + BOUNDARY) / g[down]
        tau[inward] = 2 * BOUNDARY / np.abs(g[inward])
        step = float(np.min(tau)) if np.any(np.isfinite(tau)) else np.inf
        if not np.isfinite(step):
            break
        hit = np.isfinite(tau) & (tau <= step * (1 + 1e-12))
        s = s - step * g
        s[hit] = np.sign(s[hit]) * BOUNDARY
        at_boundary = (at_boundary & ~inward) | hit
        t += step
        before = loss(x, y, beta)
        old = beta
        beta = _fit(x, y, s, at_boundary)
        at_boundary &= (beta != 0) | (np.abs(s) >= BOUNDARY)
        grew = np.flatnonzero((old == 0) & (beta != 0))
        entered = tuple((int(i), int(np.sign(beta[i]))) for i in grew)
        left = tuple(int(i) for i in np.flatnonzero((old != 0) & (beta == 0)))
        jumps.append(
            Jump(
                t=t,
                beta=beta.copy(),
                s=s.copy(),
                active=tuple(int(i) for i in np.flatnonzero(at_boundary)),
                loss_before=before,
                loss_after=loss(x, y, beta),
                entered=entered,
                left=left,
            )
        )
    return jumps


def _fit(x, y, s, active) -> np.ndarray:
    """``argmin L`` over ``supp β ⊆ A`` with ``β_i s̃_i ≥ 0`` (NNLS after the sign flip)."""
    from scipy.optimize import nnls

    idx = np.flatnonzero(active)
    beta = np.zeros(x.shape[1])
    if idx.size == 0:
        return beta
    signs = np.sign(s[idx])
    columns = x[:, idx] * signs
    if np.linalg.matrix_rank(columns) < idx.size:
        raise EffdynError(
            f"the active set {{{', '.join(map(str, idx))}}} has linearly dependent columns of X: "
            "the limiting algorithm needs a unique constrained least-squares fit on each "
            "active set (general position), so it does not apply to these data"
        )
    gamma, _ = nnls(columns, y, maxiter=50 * idx.size)
    beta[idx] = signs * gamma
    return beta


def staircase(x, y) -> Staircase:
    """The limit's jumps as stages, in ``t/log(1/α)`` (``learned``: the coordinates that
    enter the support, with their signs; ``left``: those that leave it)."""
    stages = [
        Stage(
            t=j.t,
            loss_before=j.loss_before,
            loss_after=j.loss_after,
            learned=[{"coordinate": i, "sign": sign} for i, sign in j.entered],
            extra={"left": list(j.left), "active": list(j.active), "beta": j.beta.tolist()},
        )
        for j in limit(x, y)
    ]
    return Staircase(tuple(stages), "pesme-flammarion", "t/log(1/alpha)")
