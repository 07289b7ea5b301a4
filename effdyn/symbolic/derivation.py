"""Leading-order effective dynamics of a fully connected network
(docs/theory/effective-dynamics.md#leading-order-expansion).

Write ``θ = ε θ̄``. Replacing each hidden activation ``σ_l`` by its leading centred part
``φ_l(s) = c_l s^{p_l}`` (or the one-sided ``c₊ s₊^k + c₋ s₋^k`` of a non-smooth one) makes
the output a homogeneous polynomial ``f_q`` of degree

    q = 1 + p_{L−1}(1 + p_{L−2}(1 + … (1 + p_1)))

in the parameters, and gradient flow on ``R`` becomes, to leading order,

    θ' = ∇_θ E(θ),     E(θ) = (1/n) Σ_i y_i · f_q(x_i; θ),

a vector field homogeneous of degree ``k = q − 1``: linear (exponential escape) for ``k = 1``,
finite-time blow-up for ``k ≥ 2``.

The derivation works on one *layer template* per hidden layer (``φ_l`` and ``φ_l'``); the
network-wide equations are the usual forward/backward recursion over those templates,

    h_1 = W_1 x̃,   a_l = φ_l(h_l),   h_{l+1} = W_{l+1} a_l,   f_q = W_L a_{L−1},
    g_L = y,       g_l = φ_l'(h_l) ⊙ (W_{l+1}ᵀ g_{l+1}),
    W_l' = ⟨ g_l a_{l−1}ᵀ ⟩   (a_0 = x̃, ⟨·⟩ = (1/n) Σ_i),

so nothing is ever expanded per data point or per neuron.

A hidden layer with ``σ_l(0) ≠ 0`` adds a constant input ``σ_l(0) 𝟙`` to layer ``l+1``. The
term of ``f`` it creates has degree lower than ``q`` — a drift that dominates early — and
is reported separately in :attr:`Derivation.drift` rather than dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from ..errors import EffdynError
from .activation import Activation, analyze_activation
from .equations import render_drift, render_energy, render_equations, render_templates


@dataclass(frozen=True)
class DriftTerm:
    """The lower-order term that ``σ_l(0) ≠ 0`` at hidden layer ``l`` adds to ``f``.

    With ``a_l`` replaced by the constant ``σ_l(0) 𝟙``, the layers above still act through
    their templates; the resulting term of ``f`` is homogeneous of degree ``degree`` in the
    parameters of layers ``l+1..L`` and does not depend on ``x``: its energy is
    ``ȳ · f^{(l)}(θ)`` with ``ȳ = (1/n) Σ y_i``.
    """

    layer: int
    sigma0: sp.Expr
    degree: int
    latex: str
    text: str


@dataclass(frozen=True)
class Derivation:
    """The leading-order effective dynamics of one network family.

    Attributes:
        activations: the analysed activation of each hidden layer ``1..L−1``.
        depth: ``L``, the number of weight layers.
        degree: ``q``, the degree of the leading output polynomial ``f_q``.
        hidden_degrees: degree in ``θ`` of each pre-activation ``h_l``.
        drift: the ``σ(0) ≠ 0`` terms, one per such layer (empty for centred activations).
        correction_order: predicted order ``r`` of the relative gap between the real
            ``−∇R`` and the effective field at ``θ = ε θ̄``: ``O(ε^r)``; ``None`` when a
            drift makes the centred field not the leading term.
    """

    activations: tuple[Activation, ...]
    depth: int
    degree: int
    hidden_degrees: tuple[int, ...]
    drift: tuple[DriftTerm, ...]
    correction_order: int | None

    @property
    def field_degree(self) -> int:
        """``k = q − 1``, the homogeneity degree of the vector field."""
        return self.degree - 1

    @property
    def finite_time_blowup(self) -> bool:
        """Solutions with increasing ``E`` blow up in finite time iff ``k ≥ 2``."""
        return self.field_degree >= 2

    @property
    def smooth(self) -> bool:
        return all(a.smooth for a in self.activations)

    @property
    def deep_linear(self) -> bool:
        """Every template is ``c s``: the leading order is a deep linear network."""
        return all(a.smooth and a.degree == 1 for a in self.activations)

    @property
    def scalar_coefficient(self) -> sp.Expr:
        """``Π_l c_l`` (meaningful when :attr:`deep_linear`)."""
        return sp.Mul(*[a.coeff_right for a in self.activations])

    def energy(self, style: str = "latex") -> str:
        """``E(θ)`` rendered as LaTeX (``style="latex"``) or plain text."""
        return render_energy(self, style)

    def equations(self, style: str = "latex") -> dict[str, str]:
        """The effective equation of each parameter block ``W1 … WL``."""
        return render_equations(self, style)


def derive(activations: str | Sequence[str | Activation], depth: int | None = None) -> Derivation:
    """Derive the leading-order effective dynamics of a fully connected network.

    Args:
        activations: one activation for every hidden layer (strings are parsed safely), or
            a single activation used in all ``depth − 1`` hidden layers.
        depth: ``L ≥ 2``, the number of weight layers; required with a single activation,
            checked against the list otherwise.

    >>> d = derive(["x*tanh(x)", "tanh(x)"])
    >>> d.degree, d.field_degree, d.finite_time_blowup
    (4, 3, True)
    """
    if isinstance(activations, str | Activation):
        if depth is None:
            depth = 2
        activations = [activations] * (depth - 1)
    activations = list(activations)
    if depth is None:
        depth = len(activations) + 1
    if depth < 2:
        raise EffdynError(f"depth must be at least 2 (one hidden layer), got {depth}")
    if len(activations) != depth - 1:
        raise EffdynError(
            f"depth {depth} needs {depth - 1} hidden-layer activations, got {len(activations)}"
        )
    cache: dict[str, Activation] = {}
    analysed = []
    for act in activations:
        if isinstance(act, Activation):
            analysed.append(act)
        else:
            key = act.strip()
            if key not in cache:
                cache[key] = analyze_activation(key)
            analysed.append(cache[key])
    acts = tuple(analysed)

    hidden = [1]
    for act in acts[:-1]:
        hidden.append(1 + act.degree * hidden[-1])
    q = 1 + acts[-1].degree * hidden[-1]

    drift = tuple(
        _drift_term(acts, layer) for layer in range(1, depth) if acts[layer - 1].sigma0 != 0
    )
    derivation = Derivation(
        activations=acts,
        depth=depth,
        degree=q,
        hidden_degrees=tuple(hidden),
        drift=drift,
        correction_order=None if drift else _correction_order(acts, hidden, q),
    )
    return derivation


def _drift_term(acts: tuple[Activation, ...], layer: int) -> DriftTerm:
    """Degree and rendering of the ``f`` term created by ``σ_layer(0) ≠ 0``."""
    degree = 1  # h_{layer+1} = W_{layer+1} σ(0) 𝟙
    for act in acts[layer:]:
        degree = 1 + act.degree * degree
    latex, text = render_drift(acts, layer)
    return DriftTerm(layer, acts[layer - 1].sigma0, degree, latex, text)


def _correction_order(acts: tuple[Activation, ...], hidden: list[int], q: int) -> int:
    """Order of the first neglected term, relative to the leading one.

    Layer ``l``'s next Taylor term multiplies ``a_l`` by ``1 + O(h_l^{gap})`` with
    ``h_l = O(ε^{deg h_l})``; the residual ``f`` itself is ``O(ε^q)`` against ``y = O(1)``.
    """
    orders = [q]
    for act, deg_h in zip(acts, hidden, strict=True):
        if act.next_power is not None:
            orders.append((act.next_power - act.degree) * deg_h)
    return min(orders)


def _float(value: sp.Expr) -> float:
    return float(sp.N(value, 17))


def derivation_summary(deriv: Derivation) -> dict:
    """The contract's ``effdyn derive --json`` object (docs/commands.md#derive).

    Per-hidden-layer quantities are lists ordered from the input side. For a non-smooth
    activation ``multiplicities``/``coefficients`` hold ``None`` (the multiplicity is
    undefined) and ``one_sided`` holds its ``[c₊, c₋]`` at power ``leading_powers``.
    """
    acts = deriv.activations
    return {
        "activations": [a.source for a in acts],
        "expressions": [str(a.expr) for a in acts],
        "depth": deriv.depth,
        "multiplicities": [a.multiplicity for a in acts],
        "coefficients": [None if a.coefficient is None else _float(a.coefficient) for a in acts],
        "coefficients_exact": [None if a.coefficient is None else str(a.coefficient) for a in acts],
        "sigma0": [_float(a.sigma0) for a in acts],
        "sigma0_exact": [str(a.sigma0) for a in acts],
        "smooth": deriv.smooth,
        "smooth_layers": [a.smooth for a in acts],
        "leading_powers": [a.degree for a in acts],
        "one_sided": [[_float(a.coeff_right), _float(a.coeff_left)] for a in acts],
        "homogeneous": [a.homogeneous for a in acts],
        "degree": deriv.degree,
        "field_degree": deriv.field_degree,
        "finite_time_blowup": deriv.finite_time_blowup,
        "regime": "finite-time blow-up" if deriv.finite_time_blowup else "linear (exponential)",
        "correction_order": deriv.correction_order,
        "templates": render_templates(deriv, "latex"),
        "templates_text": render_templates(deriv, "text"),
        "energy": deriv.energy("latex"),
        "energy_text": deriv.energy("text"),
        "equations": deriv.equations("latex"),
        "equations_text": deriv.equations("text"),
        "drift": [
            {
                "layer": t.layer,
                "sigma0": _float(t.sigma0),
                "sigma0_exact": str(t.sigma0),
                "degree": t.degree,
                "latex": t.latex,
                "text": t.text,
            }
            for t in deriv.drift
        ],
    }
