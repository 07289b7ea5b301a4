"""The three-layer phase diagram's parametrization (Zhou et al. 2022;
docs/theory/phase-diagrams.md#three-layer).

The network has two hidden layers of the same width ``m``:

    f(x) = m^{−γ_out} W3 σ(W2 σ(W1 x̃)),
    W1 ~ N(0, m^{−2γ_1}) (m × (d+1), bias last),  W2 ~ N(0, m^{−2γ_2}) (m × m),
    W3 ~ N(0, m^{−2γ_3}) (d_out × m).

Each hidden layer has its own regime, read off the width dependence of the relative change of
its INPUT weights: ``W1`` for the first hidden layer, ``W2`` for the second (Zhou et al. 2022:
"the input weight of a hidden neuron consists of the weight from its input layer to the hidden
neuron and its bias term"). A diagram is drawn over a plane of two of the four exponents with
the other two fixed; the plane is named by :func:`plane_name`.

Missing exponents default to :data:`DEFAULT_EXPONENTS` (``γ_1 = γ_2 = γ_3 = 1/2``: every weight
of variance ``1/m``; ``γ_out = 0``: no output multiplier), unless the caller's options give
them.

Learning rate, by the same idea as the two-layer rule (:mod:`effdyn.phase.two_layer`). Writing
``ε_l = m^{−γ_l}`` and ``μ = m^{−γ_out}``, the tangent kernel at initialization sums three
layer contributions, each ``m²`` times a product of two squared scales (``|∂f/∂W3|² ~ μ² m ·
m ε1²ε2²``, ``|∂f/∂W2|² ~ μ² m ε3² · m ε1²``, ``|∂f/∂W1|² ~ μ² m · m ε2²ε3²``):

    Θ₀ ~ μ² m² (ε1²ε2² + ε1²ε3² + ε2²ε3²),     lr = c / max(Θ₀, 1),

capped at the O(1) kernel scale that the weights reach once the output fits an O(1) target.

Example::

    >>> [w.shape for w in initial_params({"gamma_1": 0.5, "gamma_2": 0.5, "gamma_3": 0.5,
    ...                                   "gamma_out": 0.0}, 10, 0, input_dim=2)]
    [(10, 2), (10, 10), (1, 10)]
"""

from __future__ import annotations

import numpy as np

from .two_layer import DEFAULT_LR_SCALE

EXPONENTS = ("gamma_1", "gamma_2", "gamma_3", "gamma_out")
DEFAULT_EXPONENTS: dict[str, float] = {
    "gamma_1": 0.5,
    "gamma_2": 0.5,
    "gamma_3": 0.5,
    "gamma_out": 0.0,
}
"""Exponents a point leaves out (unless the options give them): all weights of variance 1/m."""

MIXED_SETTING: dict[str, float] = {
    "gamma_1": 1.0,
    "gamma_2": 0.5,
    "gamma_3": 0.5,
    "gamma_out": 0.0,
}
"""A point where the two hidden layers sit in DIFFERENT regimes (Zhou et al. 2022's finding).

ReLU, zhou2022-fig5 data (1-d, bias), the default recipe (``lr = 0.5/max(Θ₀, 1)``, GD to
``1e-3`` of the initial loss or 60000 steps), seeds 0 and 1, widths 50/100/200: slope of
``RD(W1)`` +0.52 (condensed), of ``RD(W2)`` −0.44 (linear), of ``RD(W3)`` ≈ 0 (measured while
writing this module; at width 400 the RDs are 46 and 0.137, continuing both trends). The
first layer's input weights start small (variance ``1/m²``) and must grow, while the second
layer starts at the ``1/m``-variance scale of a kernel regime.
"""

MIXED_WIDTHS = (50, 100, 200)
"""Widths at which :data:`MIXED_SETTING` was measured (and is tested)."""


def exponents_of(point: dict, defaults: dict | None = None) -> dict[str, float]:
    """The four exponents of a point; missing ones from ``defaults``, then from
    :data:`DEFAULT_EXPONENTS`."""
    defaults = {**DEFAULT_EXPONENTS, **(defaults or {})}
    return {key: float(point.get(key, defaults[key])) for key in EXPONENTS}


def scales(exponents: dict, m: int) -> tuple[float, float, float, float]:
    """``(ε1, ε2, ε3, μ) = (m^{−γ_1}, m^{−γ_2}, m^{−γ_3}, m^{−γ_out})``."""
    e = exponents_of(exponents)
    return tuple(float(m ** (-e[key])) for key in EXPONENTS)


def ntk_scale(exponents: dict, m: int) -> float:
    """``Θ₀ = μ² m² (ε1²ε2² + ε1²ε3² + ε2²ε3²)``."""
    e1, e2, e3, mu = scales(exponents, m)
    return mu**2 * m**2 * ((e1 * e2) ** 2 + (e1 * e3) ** 2 + (e2 * e3) ** 2)


def learning_rate(exponents: dict, m: int, lr_scale: float = DEFAULT_LR_SCALE) -> float:
    """``lr = c / max(Θ₀, 1)`` (module docstring)."""
    return lr_scale / max(ntk_scale(exponents, m), 1.0)


def initial_params(
    exponents: dict, m: int, seed: int, input_dim: int, d_out: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W1, W2, W3)`` with ``W_l = m^{−γ_l} · N``, drawn in that order from
    ``np.random.default_rng(seed).standard_normal`` with shapes ``(m, input_dim)``,
    ``(m, m)``, ``(d_out, m)``."""
    e1, e2, e3, _ = scales(exponents, m)
    rng = np.random.default_rng(seed)
    w1 = e1 * rng.standard_normal((m, input_dim))
    w2 = e2 * rng.standard_normal((m, m))
    w3 = e3 * rng.standard_normal((d_out, m))
    return w1, w2, w3


def output_multiplier(exponents: dict, m: int) -> float:
    """``μ = m^{−γ_out}``."""
    return scales(exponents, m)[3]


def plane_name(groups: list[dict]) -> tuple[str, str, dict[str, float]]:
    """The plane a set of groups spans: ``(x_key, y_key, fixed)``.

    The two exponents that vary across ``groups`` (in the order γ_1, γ_2, γ_3, γ_out); if fewer
    than two vary, the first of ``(γ_1, γ_2)`` not already chosen fills in. ``fixed`` holds the
    other exponents' values (of the first group).
    """
    varying = [k for k in EXPONENTS if len({g.get(k) for g in groups}) > 1]
    for key in ("gamma_1", "gamma_2", "gamma_3"):
        if len(varying) >= 2:
            break
        if key not in varying:
            varying.append(key)
    x_key, y_key = sorted(varying[:2], key=EXPONENTS.index)
    first = exponents_of(groups[0]) if groups else dict(DEFAULT_EXPONENTS)
    fixed = {k: first[k] for k in EXPONENTS if k not in (x_key, y_key)}
    return x_key, y_key, fixed
