"""Deep linear networks on whitened data: the exact staircase of singular modes
(docs/theory/staircases.md#deep-linear-networks; Saxe, McClelland & Ganguli 2014,
arXiv 1312.6120).

For ``f = W_L ⋯ W_1 x̃`` with the square loss, whitened inputs ``⟨x̃x̃ᵀ⟩ = I`` and
``Z = ⟨ỹx̃ᵀ⟩ = Σ_k s_k u_k v_kᵀ``, a *spectral balanced* initialization — the product
``P = W_L⋯W_1 = Σ_k a_k^L u_k v_kᵀ`` on Z's singular vectors and
``W_{l+1}ᵀW_{l+1} = W_l W_lᵀ`` for every ``l`` — stays so under gradient flow, and every
mode follows its own scalar equation

    a_k' = a_k^{L−1} (s_k − a_k^L),     R = ½ Σ_k (s_k − a_k^L)² + ½(⟨|ỹ|²⟩ − Σ_k s_k²).

Mode ``k``'s loss term falls from ``½s_k²`` to 0; its drop is the midpoint crossing
``a_k^L = (1 − 1/√2) s_k``, at

    t_k = ∫_{a₀}^{a₁} da / (a^{L−1}(s − a^L))
        = (1/s) [ A(a₁) − A(a₀) + B(a₁) − B(a₀) ],
    A(a) = log a  (L = 2),   A(a) = −a^{2−L}/(L − 2)  (L ≥ 3),
    B(a) = (a²/(2s)) ₂F₁(1, 2/L; 1 + 2/L; a^L/s),

from ``1/(a^{L−1}(s − a^L)) = (1/s)(a^{1−L} + a/(s − a^L))``. The method is *detected*:
:func:`detect` checks each condition to 1e-10 relative and says which one fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .result import Stage, Staircase

TOLERANCE = 1e-10
"""Relative tolerance of every detection check (whitened, balanced, spectral)."""
MIDPOINT = 1.0 - 1.0 / math.sqrt(2.0)
"""``a^L/s`` at which a mode's loss term ``½(s − a^L)²`` is half of ``½s²``."""


@dataclass(frozen=True)
class Modes:
    """A detected spectral balanced deep linear problem.

    Attributes:
        s: Z's singular values (descending).
        a0: each mode's initial singular value per layer (``P``'s entry on the mode, to the
            power 1/L).
        depth: ``L``.
        target_energy: ``½⟨|ỹ|²⟩``, the loss at ``P = 0``.
    """

    s: np.ndarray
    a0: np.ndarray
    depth: int
    target_energy: float


def is_linear(problem) -> bool:
    """Whether every activation of a fully connected problem is exactly ``σ(x) = x``."""
    from ..symbolic.activation import analyze_activation

    if problem.model.kind != "fc" or problem.init.exponents is not None:
        return False
    for text in dict.fromkeys(problem.model.activations):
        act = analyze_activation(text)
        if not (act.homogeneous and act.smooth and act.degree == 1 and act.sigma0 == 0):
            return False
        if act.coeff_right != 1:
            return False
    return True


def whitened(xt) -> float | None:
    """None when ``⟨x̃x̃ᵀ⟩ = I`` to :data:`TOLERANCE`, else the largest deviation."""
    xt = np.asarray(xt, dtype=np.float64)
    off = float(np.max(np.abs(xt.T @ xt / len(xt) - np.eye(xt.shape[1]))))
    return None if off <= TOLERANCE else off


def detect(xt: np.ndarray, y: np.ndarray, leaves) -> tuple[Modes | None, str]:
    """The exact-modes setting of ``(x̃, ỹ, W1..WL)``, or ``(None, reason)`` (module doc)."""
    xt = np.asarray(xt, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(len(xt), -1)
    leaves = [np.asarray(w, dtype=np.float64) for w in leaves]
    n, d = xt.shape
    off = whitened(xt)
    if off is not None:
        return None, f"the inputs are not whitened (max |⟨x̃x̃ᵀ⟩ − I| = {off:.2g})"
    for l in range(len(leaves) - 1):
        upper, lower = leaves[l + 1].T @ leaves[l + 1], leaves[l] @ leaves[l].T
        gap = np.linalg.norm(upper - lower)
        size = max(np.linalg.norm(upper), np.linalg.norm(lower))
        if size == 0 or gap > TOLERANCE * size:
            return None, (
                f"W{l + 1} and W{l + 2} are not balanced (W{l + 2}ᵀW{l + 2} ≠ W{l + 1}W{l + 1}ᵀ)"
            )
    z = y.T @ xt / n
    u, s, vt = np.linalg.svd(z, full_matrices=True)
    rank = int(np.sum(s > TOLERANCE * s[0])) if s.size and s[0] > 0 else 0
    if rank == 0:
        return None, "Z = ⟨ỹx̃ᵀ⟩ is zero: nothing to learn"
    top = s[:rank]
    if rank > 1 and np.min(-np.diff(top)) <= TOLERANCE * top[0]:
        return None, "Z has a repeated singular value (its modes are not unique)"
    product = leaves[0]
    for w in leaves[1:]:
        product = w @ product
    m = u.T @ product @ vt.T
    diag = np.diagonal(m).copy()
    rest = m.copy()
    np.fill_diagonal(rest, 0.0)
    scale = np.linalg.norm(product)
    if scale == 0 or np.linalg.norm(rest) > TOLERANCE * scale:
        return None, "the product W_L⋯W_1 is not on Z's singular vectors (not spectral)"
    if np.any(diag[:rank] <= 0):
        return None, "a mode of Z starts at a non-positive value of the product"
    depth = len(leaves)
    target = 0.5 * float(np.mean(np.sum(y * y, axis=1)))
    return Modes(top, diag[:rank] ** (1.0 / depth), depth, target), ""


def drop_time(s: float, a0: float, depth: int) -> float:
    """The gradient-flow time at which ``a' = a^{L−1}(s − a^L)``, ``a(0) = a₀``, reaches
    ``a^L = (1 − 1/√2)s`` (closed form in the module doc; 0 if it starts beyond)."""
    from scipy.special import hyp2f1

    a1 = (MIDPOINT * s) ** (1.0 / depth)
    if a0 >= a1:
        return 0.0
    L = depth
    if L == 2:
        # B(a) = −½ log(1 − a²/s): log1p keeps it exact for a tiny a₀
        first = math.log(a1 / a0)
        second = -0.5 * (math.log1p(-(a1 * a1) / s) - math.log1p(-(a0 * a0) / s))
        return (first + second) / s
    first = (a0 ** (2 - L) - a1 ** (2 - L)) / (L - 2)

    def b(a):
        return a * a / (2 * s) * hyp2f1(1.0, 2.0 / L, 1.0 + 2.0 / L, a**L / s)

    return (first + b(a1) - b(a0)) / s


def staircase(modes: Modes) -> Staircase:
    """One stage per mode of Z, in the order of their drop times."""
    pairs = zip(modes.s, modes.a0, strict=True)
    times = [drop_time(float(s), float(a), modes.depth) for s, a in pairs]
    order = sorted(range(len(times)), key=lambda k: (times[k], k))
    stages = []
    level = modes.target_energy
    for k in order:
        after = level - 0.5 * float(modes.s[k]) ** 2
        stages.append(
            Stage(
                t=times[k],
                loss_before=level,
                loss_after=max(after, 0.0),
                learned=[k],
                extra={"singular_value": float(modes.s[k]), "a0": float(modes.a0[k])},
            )
        )
        level = after
    return Staircase(
        tuple(stages),
        "exact-modes",
        "t",
        extra={"depth": modes.depth, "singular_values": [float(s) for s in modes.s]},
    )


def spectral_balanced(z, depth: int, width: int, a0, *, seed: int = 0) -> list[np.ndarray]:
    """A spectral balanced initialization for ``Z`` (``d_out × d``): ``W1..WL`` with
    ``W_L⋯W_1 = Σ_k a0_k^L u_k v_kᵀ`` over Z's non-zero modes and
    ``W_{l+1}ᵀW_{l+1} = W_l W_lᵀ``; the hidden bases are random orthonormal (seeded).

    ``a0`` is one number or one per mode. Save the leaves as ``W1..WL`` in an ``.npz`` and
    name it in ``[init] path`` to start a problem there.
    """
    z = np.asarray(z, dtype=np.float64)
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    rank = int(np.sum(s > TOLERANCE * s[0])) if s.size and s[0] > 0 else 0
    if rank == 0 or width < rank:
        raise ValueError(f"need a non-zero Z and width >= its rank ({rank}), got width {width}")
    scale = np.broadcast_to(np.asarray(a0, dtype=np.float64), (rank,))
    rng = np.random.default_rng(seed)
    bases = [np.linalg.qr(rng.standard_normal((width, rank)))[0] for _ in range(depth - 1)]
    diag = np.diag(scale)
    leaves = [bases[0] @ diag @ vt[:rank]]
    leaves += [bases[l] @ diag @ bases[l - 1].T for l in range(1, depth - 1)]
    leaves.append(u[:, :rank] @ diag @ bases[-1].T)
    return leaves
