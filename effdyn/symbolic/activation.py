"""Multiplicity of an activation at 0 (Zhou et al. 2022, arXiv 2105.11686;
docs/theory/multiplicity.md#multiplicity).

``σ`` has multiplicity ``p`` at 0 when ``σ^(k)(0) = 0`` for ``k = 1..p−1`` and
``σ^(p)(0) ≠ 0``; then ``σ(s) = σ(0) + c_p s^p + O(s^{p+1})`` with ``c_p = σ^(p)(0)/p!``.

Both sides of 0 are expanded separately, ``σ(t)`` and ``σ(−t)`` with ``t > 0``, because
``sympy.series`` expands from the right only and would silently read ``Max(0, x)`` as ``x``.
If the two one-sided expansions are the two halves of one power series the activation is
smooth at 0 and its multiplicity is defined. Otherwise it is *non-smooth*; when both sides
start at the same power ``k`` (ReLU, leaky ReLU, ``|x|``: ``k = 1``) its leading part is the
positively homogeneous function

    σ(s) − σ(0) ≈ c₊ s^k  (s > 0),      c₋ |s|^k  (s < 0),

and that piecewise monomial plays the role of ``c_p s^p`` in the effective dynamics.

Refused, each with its reason: a *flat* activation (every one-sided coefficient up to order
:data:`FLAT_ORDER` vanishes, e.g. ``exp(−1/x²)`` or a constant), one that is not defined,
not finite or not real near 0 (``1/x``, ``log x``, ``sqrt x``), and one that jumps at 0.
"""

from __future__ import annotations

import cmath
from dataclasses import dataclass

import sympy as sp

from ..errors import ActivationError
from .parse import FUNCTIONS, X, parse_activation

T = sp.Symbol("t", positive=True)
S = sp.Symbol("s", real=True)

FIRST_ORDER = 6
"""Series order tried first (terms up to ``t^5``): enough for every common activation."""
FLAT_ORDER = 16
"""An activation whose one-sided coefficients of ``t^1 .. t^16`` all vanish is flat."""


@dataclass(frozen=True)
class Activation:
    """One hidden layer's activation and its leading behaviour at 0.

    Attributes:
        source: the text it was parsed from.
        expr: the sympy expression in ``x``.
        sigma0: ``σ(0)`` (exact).
        degree: ``p`` for a smooth activation, else the one-sided leading power ``k``.
        smooth: whether both one-sided expansions agree (the multiplicity is defined).
        coeff_right: ``c₊``, the coefficient of ``s^k`` for ``s > 0`` (``= c_p`` if smooth).
        coeff_left: ``c₋``, the coefficient of ``|s|^k`` for ``s < 0`` (``= (−1)^p c_p``
            if smooth).
        homogeneous: ``σ − σ(0)`` equals its leading part exactly (``c x^p``, ReLU, ...): the
            leading-order network is then the real network itself.
        next_power: the power of the next nonzero term after the leading one, if the
            expansion computed shows one (``None`` if homogeneous or beyond it).
    """

    source: str
    expr: sp.Expr
    sigma0: sp.Expr
    degree: int
    smooth: bool
    coeff_right: sp.Expr
    coeff_left: sp.Expr
    homogeneous: bool
    next_power: int | None

    @property
    def multiplicity(self) -> int | None:
        """``p`` (``None`` for a non-smooth activation, whose multiplicity is undefined)."""
        return self.degree if self.smooth else None

    @property
    def coefficient(self) -> sp.Expr | None:
        """``c_p = σ^(p)(0)/p!`` (``None`` for a non-smooth activation)."""
        return self.coeff_right if self.smooth else None

    def template(self, s: sp.Symbol = S) -> sp.Expr:
        """Leading centred part of ``σ`` as a function of ``s``: ``c_p s^p`` or
        ``c₊ max(s,0)^k + c₋ max(−s,0)^k``."""
        if self.smooth:
            return self.coeff_right * s**self.degree
        k = self.degree
        return self.coeff_right * sp.Max(s, 0) ** k + self.coeff_left * sp.Max(-s, 0) ** k

    def template_derivative(self, s: sp.Symbol = S) -> sp.Expr:
        """``d/ds`` of :meth:`template` (``Heaviside(0) = 1/2`` on the kink)."""
        if self.smooth:
            return sp.diff(self.template(s), s)
        k = self.degree
        half = sp.Rational(1, 2)
        right = k * self.coeff_right * sp.Max(s, 0) ** (k - 1) * sp.Heaviside(s, half)
        left = k * self.coeff_left * sp.Max(-s, 0) ** (k - 1) * sp.Heaviside(-s, half)
        return right - left

    @property
    def name(self) -> str:
        return self.source


def analyze_activation(activation: str | sp.Expr) -> Activation:
    """Parse (if needed) and analyse an activation at 0.

    Returns the :class:`Activation` with ``σ(0)``, the multiplicity ``p`` and the exact
    ``c_p = σ^(p)(0)/p!`` — or, for a non-smooth activation, its one-sided leading part.

    >>> a = analyze_activation("x*tanh(x)")
    >>> a.multiplicity, a.coefficient
    (2, 1)
    >>> analyze_activation("relu").smooth
    False
    """
    if isinstance(activation, str):
        source = activation.strip()
        expr = parse_activation(source)
    else:
        expr = sp.sympify(activation)
        source = str(expr)
    label = repr(source)
    right, left = _one_sided(expr, FIRST_ORDER, label)
    if right[0] != left[0]:
        raise ActivationError(
            f"activation {label} jumps at 0 (σ(0+) = {right[0]}, σ(0−) = {left[0]})"
        )
    if all(c == 0 for c in right[1:] + left[1:]):
        right, left = _one_sided(expr, FLAT_ORDER + 1, label)
        if all(c == 0 for c in right[1:] + left[1:]):
            raise ActivationError(
                f"activation {label} is flat at 0: every derivative up to order "
                f"{FLAT_ORDER} vanishes there, so it has no leading-order dynamics"
            )
    sigma0 = right[0]
    k = min(i for i in range(1, len(right)) if right[i] != 0 or left[i] != 0)
    smooth = all(left[i] == (-1) ** i * right[i] for i in range(len(right)))
    rest = [i for i in range(k + 1, len(right)) if right[i] != 0 or left[i] != 0]
    act = Activation(
        source=source,
        expr=expr,
        sigma0=sigma0,
        degree=k,
        smooth=smooth,
        coeff_right=right[k],
        coeff_left=left[k],
        homogeneous=False,
        next_power=rest[0] if rest else None,
    )
    if _is_homogeneous(act):
        return Activation(**{**act.__dict__, "homogeneous": True, "next_power": None})
    if act.next_power is None and len(right) <= FIRST_ORDER:
        # The next term lies beyond the first expansion: look further for it.
        right, left = _one_sided(expr, FLAT_ORDER + 1, label)
        rest = [i for i in range(k + 1, len(right)) if right[i] != 0 or left[i] != 0]
        act = Activation(**{**act.__dict__, "next_power": rest[0] if rest else None})
    return act


def _one_sided(expr: sp.Expr, order: int, label: str) -> tuple[list, list]:
    """Coefficients of ``t^0 .. t^(order−1)`` of ``σ(t)`` and ``σ(−t)``, ``t > 0``."""
    return _coefficients(expr.subs(X, T), order, label), _coefficients(
        expr.subs(X, -T), order, label
    )


def _coefficients(expr: sp.Expr, order: int, label: str) -> list[sp.Expr]:
    try:
        series = sp.series(expr, T, 0, order).removeO()
    except Exception as err:  # sympy raises many types for singular points
        raise ActivationError(
            f"activation {label} has no expansion at 0 ({type(err).__name__})"
        ) from None
    series = sp.expand(series)
    if series.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise ActivationError(f"activation {label} is not finite at 0")
    try:
        poly = sp.Poly(series, T)
    except sp.PolynomialError:
        poly = None
    if poly is None or any(not c.is_number for c in poly.all_coeffs()):
        raise ActivationError(
            f"activation {label} is not defined or not finite at 0 "
            f"(its expansion there is {series}, not a power series)"
        )
    coeffs = [sp.nsimplify(c) if c.is_Float else sp.simplify(c) for c in poly.all_coeffs()]
    if any(c.is_real is False or sp.im(c) != 0 for c in coeffs):
        raise ActivationError(f"activation {label} is not real on both sides of 0")
    coeffs = coeffs[::-1]  # ascending powers
    return coeffs + [sp.Integer(0)] * (order - len(coeffs))


def _is_homogeneous(act: Activation) -> bool:
    """Whether ``σ − σ(0)`` equals its leading template exactly on both half-lines.

    Two exact shortcuts come before the symbolic proof: a non-zero higher term of the
    expansion, or a non-zero difference at a sample point (evaluated to 30 digits), each
    rules homogeneity out. Only a candidate that passes both is simplified.
    """
    if act.next_power is not None:
        return False
    centred = act.expr - act.sigma0
    right = centred.subs(X, T) - act.coeff_right * T**act.degree
    left = centred.subs(X, -T) - act.coeff_left * T**act.degree
    if _differs_somewhere(right) or _differs_somewhere(left):
        return False
    return sp.simplify(right) == 0 and sp.simplify(left) == 0


def _differs_somewhere(expr: sp.Expr) -> bool:
    """Whether ``expr(t)`` is clearly non-zero at one of a few points ``t > 0``."""
    for point in (sp.Rational(3, 7), sp.Rational(13, 10), sp.Rational(29, 10)):
        try:
            value = complex(expr.subs(T, point).evalf(30))
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if cmath.isfinite(value) and abs(value) > 1e-20:
            return True
    return False


NAMED_ACTIVATIONS = sorted(
    name for name in FUNCTIONS if name not in {"abs", "Abs", "max", "Max", "min", "Min"}
)
