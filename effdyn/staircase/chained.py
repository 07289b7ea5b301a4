"""The chained prediction for deep linear networks on whitened data
(docs/theory/staircases.md#the-chained-prediction).

On whitened inputs the loss depends on the weights only through ``P = W_L⋯W_1``:
``R = ½‖Z − P‖² + ½(⟨|ỹ|²⟩ − ‖Z‖²)``. From a random small initialization effdyn chains
three steps, one stage per mode of ``Z = Σ_k s_k u_k v_kᵀ``:

1. **Escape at leading order.** The part of the weights off the learned modes — the
   *small network* ``W_{l,S} = Q_l W_l Q_{l−1}``, with ``Q_l`` the projection off the hidden
   directions the learned modes use (``Q_0`` off their ``v_k``, ``Q_L`` off their ``u_k``) —
   follows its leading-order dynamics around the saddle: the gradient flow of
   ``⟨Z_⊥, W_{L,S}⋯W_{1,S}⟩`` with ``Z_⊥ = Q_L Z Q_0`` (linear growth at depth 2, finite-time
   blow-up at depth ≥ 3). The first unlearned mode whose strength ``u_kᵀ P_S v_k`` reaches
   ``SWITCH·s_k`` escapes.
2. **Follow the grown part to the next saddle.** The escaping mode's part of the small
   network (the rank-one chain ``v_k → h_1 → … → u_k`` through its hidden directions) joins
   the grown weights, and the reduced model — grown weights only, the rest held out — follows
   the exact gradient flow of ``R`` until it converges (``‖∇R‖ ≤ 1e-6·‖Z‖``). The drop time
   is the midpoint crossing of the loss between the two plateau levels on the way.
3. **Carry the small part forward** through that stage at its own leading order, with the
   learned mode removed from ``Z_⊥``.

The parts of the small network that point along hidden directions the learned modes use are
dropped at each saddle: around the saddle they decay at a rate set by the learned singular
values, faster than anything small grows. ``learned`` lists mode indices (0 = the largest
singular value). Each solve is an adaptive DOP853 integration (rtol 1e-10).
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from ..errors import EffdynError
from .result import Stage, Staircase

SWITCH = 1e-3
"""A mode leaves the leading-order solve when its strength reaches ``SWITCH·s_k``."""
CONVERGED = 1e-6
"""The reduced model has converged when ``‖∇R‖ ≤ CONVERGED·‖Z‖``."""
RTOL = 1e-10
HORIZON = 1e15


def _product(weights):
    p = weights[0]
    for w in weights[1:]:
        p = w @ p
    return p


def _gradients(weights, target):
    """``∂⟨target, W_L⋯W_1⟩/∂W_l = (W_L⋯W_{l+1})ᵀ target (W_{l−1}⋯W_1)ᵀ`` for every l."""
    out = []
    for l, w in enumerate(weights):
        above = np.eye(w.shape[0])
        for v in weights[l + 1 :]:
            above = v @ above
        below = np.eye(weights[0].shape[1])
        for v in weights[:l]:
            below = v @ below
        out.append(above.T @ target @ below.T)
    return out


class _Flat:
    """Pack a list of matrices into one vector and back."""

    def __init__(self, weights):
        self.shapes = [w.shape for w in weights]
        self.sizes = [w.size for w in weights]

    def pack(self, weights):
        return np.concatenate([np.ravel(w) for w in weights])

    def unpack(self, theta):
        out, i = [], 0
        for shape, size in zip(self.shapes, self.sizes, strict=True):
            out.append(theta[i : i + size].reshape(shape))
            i += size
        return out


def _orthonormal(columns) -> np.ndarray:
    if columns.shape[1] == 0:
        return columns
    u, s, _ = np.linalg.svd(columns, full_matrices=False)
    return u[:, s > 1e-12 * max(float(s.max()), 1e-300)]


def _projector_off(basis, size) -> np.ndarray:
    return np.eye(size) - basis @ basis.T


def chained(z, leaves, constant: float) -> Staircase:
    """The chained staircase of ``R = ½‖Z − W_L⋯W_1‖² + constant`` from ``leaves``."""
    z = np.asarray(z, dtype=np.float64)
    weights = [np.asarray(w, dtype=np.float64) for w in leaves]
    depth = len(weights)
    flat = _Flat(weights)
    u, s, vt = np.linalg.svd(z, full_matrices=True)
    v = vt.T
    rank = int(np.sum(s > 1e-12 * s[0])) if s.size and s[0] > 0 else 0
    if rank == 0:
        raise EffdynError("Z = ⟨ỹx̃ᵀ⟩ is zero: there is no staircase to predict")
    z_norm = float(np.linalg.norm(z))
    learned: list[int] = []
    grown = [np.zeros_like(w) for w in weights]
    small = [w.copy() for w in weights]
    level = constant + 0.5 * float(np.sum(s[:rank] ** 2))
    t = 0.0
    stages: list[Stage] = []
    notes: list[str] = []
    for _ in range(rank):
        free = [k for k in range(rank) if k not in learned]
        # 1. the small network off the learned modes, at leading order around the saddle
        hidden = [v[:, learned]]
        image = v[:, learned]
        for l in range(depth - 1):
            image = grown[l] @ image
            hidden.append(_orthonormal(image))
        hidden.append(u[:, learned])
        off = [_projector_off(h, h.shape[0]) for h in hidden]
        small = [off[l + 1] @ small[l] @ off[l] for l in range(depth)]
        residual = off[-1] @ z @ off[0]
        strength = _strengths(small, u, v, free)
        ready = [k for k, c in zip(free, strength, strict=True) if c >= SWITCH * s[k]]
        if ready:
            k, tau = ready[0], 0.0
        else:
            k, tau, small = _escape(small, residual, u, v, s, free, flat)
            if k is None:
                notes.append(
                    f"mode(s) {', '.join(map(str, free))} never grow from this "
                    "initialization at leading order"
                )
                break
        # 2. the escaping mode's chain joins the grown part; the reduced model converges
        chain = _chain(small, u[:, k], v[:, k])
        part = [
            np.outer(chain[l + 1], chain[l + 1]) @ small[l] @ np.outer(chain[l], chain[l])
            for l in range(depth)
        ]
        small = [w - p for w, p in zip(small, part, strict=True)]
        after = level - 0.5 * float(s[k]) ** 2
        reduced = [g + p for g, p in zip(grown, part, strict=True)]
        tau_mid, tau_end, grown = _reduced(
            reduced, z, constant, 0.5 * (level + after), z_norm, flat
        )
        learned.append(k)
        stages.append(
            Stage(
                t=t + tau + tau_mid,
                loss_before=level,
                loss_after=max(after, 0.0),
                learned=[k],
                extra={"singular_value": float(s[k]), "escape": t + tau},
            )
        )
        # 3. carry the small part through the stage at its own leading order
        remaining = (
            _projector_off(u[:, learned], u.shape[0])
            @ z
            @ _projector_off(v[:, learned], v.shape[0])
        )
        # (a mode that reaches its switch meanwhile starts the next stage from that time)
        rest = [m for m in free if m != k]
        small, carried = _leading(small, remaining, tau_end, flat, u, v, s, rest)
        t += tau + carried
        level = after
    return Staircase(
        tuple(stages),
        "chained",
        "t",
        extra={"depth": depth, "singular_values": [float(x) for x in s[:rank]]},
        notes=tuple(notes),
    )


def _chain(weights, u_k, v_k) -> list[np.ndarray]:
    """The hidden directions ``v_k → h_1 → … → h_{L−1} → u_k`` of mode k in ``weights``:
    each ``h_l`` is the mean of the directions reached forward from ``v_k`` and backward
    from ``u_k`` (at depth 2 from a random start, ``W1 v_k`` and ``W2ᵀu_k`` align only as
    the mode grows; their mean is the growing combination)."""
    depth = len(weights)
    forward, backward = [v_k], [u_k]
    for l in range(depth - 1):
        h = weights[l] @ forward[-1]
        forward.append(h / np.linalg.norm(h))
        g = weights[depth - 1 - l].T @ backward[-1]
        backward.append(g / np.linalg.norm(g))
    backward = backward[::-1]
    chain = [v_k]
    for l in range(1, depth):
        h = forward[l] + backward[l - 1]
        chain.append(h / np.linalg.norm(h))
    chain.append(u_k)
    return chain


def _strengths(weights, u, v, modes):
    p = _product(weights)
    return [float(u[:, k] @ p @ v[:, k]) for k in modes]


def _leading_flow(small, residual, duration, flat, u, v, s, modes, what):
    """Leading-order flow of the small network for ``duration`` or until one of ``modes``
    reaches ``SWITCH·s_k``: ``(mode that reached it or None, time, weights)``."""

    def field(_, theta):
        return flat.pack(_gradients(flat.unpack(theta), residual))

    sol = solve_ivp(
        field,
        (0.0, duration),
        flat.pack(small),
        method="DOP853",
        rtol=RTOL,
        atol=1e-300,
        events=[_switch_event(k, flat, u, v, s) for k in modes],
    )
    if sol.status == -1:
        raise EffdynError(f"the leading-order {what} solve failed: {sol.message}")
    hits = [k for k, times in zip(modes, sol.t_events, strict=True) if len(times)]
    return (hits[0] if hits else None), float(sol.t[-1]), flat.unpack(sol.y[:, -1])


def _escape(small, residual, u, v, s, free, flat):
    """Leading-order solve until a free mode's strength reaches ``SWITCH·s_k``."""
    k, tau, weights = _leading_flow(small, residual, HORIZON, flat, u, v, s, free, "escape")
    return (None, None, small) if k is None else (k, tau, weights)


def _reduced(weights, z, constant, middle, z_norm, flat):
    """Exact gradient flow of the grown weights to convergence: ``(t_mid, t_end, weights)``."""

    def field(_, theta):
        w = flat.unpack(theta)
        return flat.pack(_gradients(w, z - _product(w)))

    def loss_event(_, theta):
        r = z - _product(flat.unpack(theta))
        return 0.5 * float(np.sum(r * r)) + constant - middle

    loss_event.direction = -1

    def converged(_, theta):
        return float(np.linalg.norm(field(0.0, theta))) - CONVERGED * z_norm

    converged.terminal = True
    converged.direction = -1
    sol = solve_ivp(
        field,
        (0.0, HORIZON),
        flat.pack(weights),
        method="DOP853",
        rtol=RTOL,
        atol=1e-14,
        events=[loss_event, converged],
    )
    if sol.status == -1 or not len(sol.t_events[0]):
        raise EffdynError(
            f"the reduced model did not reach the next plateau (its solve ended: {sol.message})"
        )
    return float(sol.t_events[0][0]), float(sol.t[-1]), flat.unpack(sol.y[:, -1])


def _leading(small, residual, duration, flat, u, v, s, modes):
    """Leading-order flow of the small network for ``duration`` (or until one of ``modes``
    reaches its switch strength): ``(weights, time carried)``."""
    if duration <= 0 or not modes:
        return small, max(duration, 0.0)
    _, carried, weights = _leading_flow(
        small, residual, duration, flat, u, v, s, modes, "carry-forward"
    )
    return weights, carried


def _switch_event(k, flat, u, v, s):
    def event(_, theta):
        return float(u[:, k] @ _product(flat.unpack(theta)) @ v[:, k]) - SWITCH * s[k]

    event.terminal = True
    event.direction = 1
    return event
