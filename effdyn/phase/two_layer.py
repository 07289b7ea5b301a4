"""The two-layer phase diagram's parametrization (Luo et al. 2021 JMLR;
docs/theory/phase-diagrams.md#two-layer).

The network is

    f(x) = (1/α) Σ_k a_k σ(w_k·x̃),   a_k ~ N(0, β1²),   w_k ~ N(0, β2² I)  (bias in w_k),

and the phase diagram is drawn in the two exponents

    γ = −log κ / log m,   κ = β1 β2 / α;        γ' = −log κ' / log m,   κ' = β1 / β2.

Only ``κ`` and ``κ'`` matter (the normalized gradient flow of Luo et al. depends on nothing
else), so effdyn fixes the remaining freedom once and for all:

    α = 1,   β1 = m^{−(γ+γ')/2},   β2 = m^{−(γ−γ')/2},

which gives ``κ = m^{−γ}`` and ``κ' = m^{−γ'}`` exactly at every width (not just in the limit).

Learning rate (:func:`learning_rate`). Gradient descent must resolve the flow at every point
of the diagram with one rule. At initialization the neural tangent kernel has scale

    Θ₀ ≈ (1/α²) Σ_k (σ(w_k·x̃)² + a_k² σ'² |x̃|²) ~ m (β1² + β2²) / α²,

the largest curvature GD meets in the linear regime, so ``lr = c / Θ₀`` (``c = 0.5``) is stable
there and every point trains in the same number of steps per unit of normalized time. In the
condensed regime ``Θ₀ → 0`` and ``c/Θ₀`` would blow up; but there training drives a few neurons
to weights of order 1 (the output must reach the O(1) target), where the kernel is O(1) too, so
the step is capped at that scale:

    lr = c / max(m (β1² + β2²) / α², 1).

Named initializations (points ``(γ, γ')`` in :data:`NAMED_INITS`): NTK ``(1/2, 0)``,
mean-field ``(1, 0)``, Xavier ``(1, 0)``, LeCun/He ``(1/2, 1/2)``.

Example::

    >>> alpha, beta1, beta2 = scales(1.75, 0.0, 100)
    >>> round(-math.log(beta1 * beta2 / alpha) / math.log(100), 12)
    1.75
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_LR_SCALE = 0.5
"""``c`` in ``lr = c / max(Θ₀, 1)``."""

NAMED_INITS: dict[str, tuple[float, float]] = {
    "NTK": (0.5, 0.0),
    "mean-field": (1.0, 0.0),
    "Xavier": (1.0, 0.0),
    "LeCun/He": (0.5, 0.5),
}
"""Common initializations as ``(γ, γ')`` (Luo et al. 2021, Table 1)."""


def scales(gamma: float, gamma_prime: float, m: int) -> tuple[float, float, float]:
    """``(α, β1, β2)`` for the point ``(γ, γ')`` at width ``m``: ``α = 1``,
    ``β1 = m^{−(γ+γ')/2}`` (output weights ``a``), ``β2 = m^{−(γ−γ')/2}`` (input weights ``w``)."""
    _check_width(m)
    return 1.0, float(m ** (-(gamma + gamma_prime) / 2)), float(m ** (-(gamma - gamma_prime) / 2))


def kappas(alpha: float, beta1: float, beta2: float) -> tuple[float, float]:
    """``(κ, κ') = (β1 β2 / α, β1 / β2)``."""
    return beta1 * beta2 / alpha, beta1 / beta2


def exponents(alpha: float, beta1: float, beta2: float, m: int) -> tuple[float, float]:
    """``(γ, γ') = (−log κ / log m, −log κ' / log m)`` at width ``m`` (inverse of
    :func:`scales`)."""
    _check_width(m)
    kappa, kappa_prime = kappas(alpha, beta1, beta2)
    return -math.log(kappa) / math.log(m), -math.log(kappa_prime) / math.log(m)


def ntk_scale(gamma: float, gamma_prime: float, m: int) -> float:
    """``Θ₀ = m (β1² + β2²) / α²``, the scale of the tangent kernel at initialization."""
    alpha, beta1, beta2 = scales(gamma, gamma_prime, m)
    return m * (beta1**2 + beta2**2) / alpha**2


def learning_rate(
    gamma: float, gamma_prime: float, m: int, lr_scale: float = DEFAULT_LR_SCALE
) -> float:
    """``lr = c / max(m (β1² + β2²) / α², 1)`` (see the module docstring for why)."""
    return lr_scale / max(ntk_scale(gamma, gamma_prime, m), 1.0)


def initial_params(
    gamma: float, gamma_prime: float, m: int, seed: int, input_dim: int, d_out: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(W1, W2)``: ``W1 = β2 · N`` of shape ``(m, input_dim)`` (rows ``w_k``, bias last), then
    ``W2 = β1 · N`` of shape ``(d_out, m)`` (the ``a_k``), both drawn in that order from
    ``np.random.default_rng(seed).standard_normal`` — so one seed gives the same standard
    normals at every ``(γ, γ')`` of a width (common random numbers across the diagram)."""
    _, beta1, beta2 = scales(gamma, gamma_prime, m)
    rng = np.random.default_rng(seed)
    w1 = beta2 * rng.standard_normal((m, input_dim))
    w2 = beta1 * rng.standard_normal((d_out, m))
    return w1, w2


def output_multiplier(gamma: float, gamma_prime: float, m: int) -> float:
    """``1/α`` (= 1 with effdyn's choice ``α = 1``)."""
    return 1.0 / scales(gamma, gamma_prime, m)[0]


def _check_width(m) -> None:
    if not isinstance(m, int | np.integer) or isinstance(m, bool) or m < 2:
        raise ValueError(f"the width m must be an integer >= 2 (log m divides), got {m!r}")
