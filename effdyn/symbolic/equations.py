"""Rendering the effective equations as LaTeX and as plain text.

One renderer serves both styles: a :class:`Style` holds the notation (LaTeX macros or
Unicode), and the same recursion over layer templates writes the forward pass ``a_l``, the
backward signal ``g_l`` and the equation ``W_l' = ⟨g_l a_{l−1}ᵀ⟩`` of every block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sympy as sp

if TYPE_CHECKING:
    from .activation import Activation
    from .derivation import Derivation


@dataclass(frozen=True)
class Style:
    weight: Callable[[int], str]
    transpose: str
    hadamard: str
    x: str
    one: str
    average: Callable[[str], str]
    power: Callable[[str, int], str]
    paren: Callable[[str], str]
    template: Callable[[int, str], str]
    template_prime: Callable[[int, str], str]
    number: Callable[[sp.Expr], str]
    positive: Callable[[str, int], str]
    negative: Callable[[str, int], str]
    mean_y: str


LATEX = Style(
    weight=lambda l: f"W_{{{l}}}",
    transpose="^{\\top}",
    hadamard=" \\odot ",
    x="\\tilde{x}",
    one="\\mathbf{1}",
    average=lambda e: f"\\left\\langle {e} \\right\\rangle",
    power=lambda b, p: f"\\left({b}\\right)^{{\\circ {p}}}",
    paren=lambda e: f"\\left({e}\\right)",
    template=lambda l, e: f"\\varphi_{{{l}}}\\left({e}\\right)",
    template_prime=lambda l, e: f"\\varphi_{{{l}}}'\\left({e}\\right)",
    number=sp.latex,
    positive=lambda s, k: f"{s}_{{+}}" + (f"^{{{k}}}" if k != 1 else ""),
    negative=lambda s, k: f"{s}_{{-}}" + (f"^{{{k}}}" if k != 1 else ""),
    mean_y="\\bar{y}",
)

TEXT = Style(
    weight=lambda l: f"W{l}",
    transpose="ᵀ",
    hadamard=" ⊙ ",
    x="x̃",
    one="𝟙",
    average=lambda e: f"⟨{e}⟩",
    power=lambda b, p: f"({b})^∘{p}",
    paren=lambda e: f"({e})",
    template=lambda l, e: f"φ{l}({e})",
    template_prime=lambda l, e: f"φ{l}'({e})",
    number=lambda c: str(c),
    positive=lambda s, k: f"{s}₊" + (f"^{k}" if k != 1 else ""),
    negative=lambda s, k: f"{s}₋" + (f"^{k}" if k != 1 else ""),
    mean_y="ȳ",
)

STYLES = {"latex": LATEX, "text": TEXT}


def _style(name: str) -> Style:
    if name not in STYLES:
        raise ValueError(f"style must be one of {sorted(STYLES)}, got {name!r}")
    return STYLES[name]


def _scaled(coefficient: sp.Expr, body: str, st: Style) -> str:
    """``c·body`` with ``c = 1`` and ``c = −1`` written the usual way."""
    if coefficient == 1:
        return body
    if coefficient == -1:
        return f"-{body}"
    return f"{st.number(coefficient)} {body}"


def _group(expr: str, st: Style) -> str:
    """Parenthesize a Hadamard product before it is multiplied by anything."""
    return st.paren(expr) if st.hadamard in expr else expr


def _apply(act: Activation, layer: int, pre: str, st: Style) -> str:
    """``φ_l(pre)``: ``c (pre)^{∘p}`` for a smooth template, ``φ_l(pre)`` otherwise."""
    if not act.smooth:
        return st.template(layer, pre)
    if act.degree == 1:
        return _scaled(act.coeff_right, pre, st)
    return _scaled(act.coeff_right, st.power(pre, act.degree), st)


def _forward(
    acts: tuple[Activation, ...], upto: int, st: Style, start: int = 0, base: str | None = None
) -> str:
    """``a_upto`` as one expression, starting from ``a_start = base`` (``x̃`` by default)."""
    a = st.x if base is None else base
    for layer in range(start + 1, upto + 1):
        a = _apply(acts[layer - 1], layer, f"{st.weight(layer)} {a}", st)
    return a


def _backward(deriv: Derivation, layer: int, st: Style) -> str:
    """``g_layer``: ``y`` at the output, then ``φ_l'(h_l) ⊙ (W_{l+1}ᵀ g_{l+1})``."""
    g = "y"
    for l in range(deriv.depth - 1, layer - 1, -1):
        act = deriv.activations[l - 1]
        upstream = f"{st.weight(l + 1)}{st.transpose} {_group(g, st)}"
        h = f"{st.weight(l)} {_forward(deriv.activations, l - 1, st)}"
        if not act.smooth:
            g = f"{st.template_prime(l, h)}{st.hadamard}{st.paren(upstream)}"
        elif act.degree == 1:
            g = _scaled(act.coeff_right, upstream, st)
        else:
            factor = h if act.degree == 2 else st.power(h, act.degree - 1)
            factor = _scaled(act.degree * act.coeff_right, st.paren(factor), st)
            g = f"{factor}{st.hadamard}{st.paren(upstream)}"
    return g


def render_equations(deriv: Derivation, style: str = "latex") -> dict[str, str]:
    """``{"W1": "W_1' = …", …}``: the effective equation of each block."""
    st = _style(style)
    if deriv.deep_linear:
        return _render_linear(deriv, st)
    out = {}
    for layer in range(1, deriv.depth + 1):
        g = _backward(deriv, layer, st)
        a = _forward(deriv.activations, layer - 1, st)
        a_t = f"{st.x}{st.transpose}" if layer == 1 else f"{st.paren(a)}{st.transpose}"
        out[f"W{layer}"] = f"{st.weight(layer)}' = {st.average(f'{_group(g, st)} {a_t}')}"
    return out


def _render_linear(deriv: Derivation, st: Style) -> dict[str, str]:
    """Deep linear leading order: ``W_l' = C W_{l+1}ᵀ⋯W_Lᵀ Z W_1ᵀ⋯W_{l−1}ᵀ``, ``Z = ⟨y x̃ᵀ⟩``."""
    c = deriv.scalar_coefficient
    out = {}
    for layer in range(1, deriv.depth + 1):
        above = [f"{st.weight(j)}{st.transpose}" for j in range(layer + 1, deriv.depth + 1)]
        below = [f"{st.weight(j)}{st.transpose}" for j in range(1, layer)]
        body = " ".join([*above, "Z", *below])
        out[f"W{layer}"] = f"{st.weight(layer)}' = {_scaled(c, body, st)}"
    out["Z"] = f"Z = {st.average(f'y {st.x}{st.transpose}')}"
    return out


def render_energy(deriv: Derivation, style: str = "latex") -> str:
    """``E(θ) = ⟨yᵀ f_q(x̃; θ)⟩``."""
    st = _style(style)
    f_q = f"{st.weight(deriv.depth)} {_forward(deriv.activations, deriv.depth - 1, st)}"
    return f"E = {st.average(f'y{st.transpose} {f_q}')}"


def render_templates(deriv: Derivation, style: str = "latex") -> list[str]:
    """The leading centred part ``φ_l`` of each hidden activation."""
    st = _style(style)
    out = []
    for layer, act in enumerate(deriv.activations, start=1):
        k = act.degree
        if act.smooth:
            body = _scaled(act.coeff_right, f"s^{{{k}}}" if style == "latex" else f"s^{k}", st)
            if k == 1:
                body = _scaled(act.coeff_right, "s", st)
        else:
            body = " + ".join(
                _scaled(c, part, st)
                for c, part in (
                    (act.coeff_right, st.positive("s", k)),
                    (act.coeff_left, st.negative("s", k)),
                )
                if c != 0
            )
        out.append(f"{st.template(layer, 's')} = {body.replace('+ -', '- ')}")
    return out


def render_drift(acts: tuple[Activation, ...], layer: int, style: str | None = None):
    """The energy of the drift created by ``σ_layer(0) ≠ 0``: ``ȳᵀ W_L ⋯ φ(W_{l+1} σ(0)𝟙)``.

    Returns ``(latex, text)`` when ``style`` is None.
    """
    if style is None:
        return render_drift(acts, layer, "latex"), render_drift(acts, layer, "text")
    st = _style(style)
    depth = len(acts) + 1
    base = _scaled(acts[layer - 1].sigma0, st.one, st)
    a = _forward(acts, depth - 1, st, start=layer, base=base)
    label = "E_{\\mathrm{drift}}" if style == "latex" else "E_drift"
    return f"{label} = {st.mean_y}{st.transpose} {st.weight(depth)} {a}"
