"""The one place where the sympy side meets the JAX side.

:func:`sympy_to_jax` turns a sympy expression in one variable into a JAX function by walking
the expression tree and composing ``jax.numpy`` functions — no code is generated and nothing
is ``eval``-ed. :func:`leading_order` builds, from a :class:`~effdyn.symbolic.derivation.
Derivation`, the leading-order model: its output ``f_q``, its energy
``E(θ) = (1/n) Σ_i y_i · f_q(x_i; θ)`` and the effective vector field ``θ' = ∇E(θ)``,
evaluated with the forward/backward recursion over the layer templates (derived once, then
applied to whole arrays: never expanded per data point or per neuron).

Parameters are a tuple ``(W1, …, WL)`` of arrays; data enter as ``args = (x̃, y)`` with
``x̃`` of shape ``(n, d+1)`` (bias column last) and ``y`` of shape ``(n, d_out)``.

Precision (docs/precision.md). Every function this module hands back — the elementwise
functions of :func:`sympy_to_jax` and :func:`activation_function`, the methods of
:class:`LeadingOrder` and the compiled field of :func:`jax_field` — computes in float64
whatever the user's ``jax_enable_x64`` when it is called on concrete values (NumPy arrays,
Python floats, JAX arrays of any float dtype): it enters the scoped ``jax.enable_x64(True)``,
casts them to float64 and returns float64 JAX arrays. Outside the context JAX computes on
those in the user's setting (float32 by default): take ``numpy.asarray`` of them first.
Called while JAX traces (inside a ``jit``, ``grad``, ``vmap``, a diffrax solve), it is plain
JAX code and follows the trace: float64 in effdyn's own solvers, which trace inside the
context, and in a user's ``jax.enable_x64(True)`` block; float32 in a user's float32 trace.
It never puts float64 values into a float32 trace: JAX transforms such a trace later,
outside the context, and its float32 constants then meet the float64 values (a ``lax.mul``
dtype error under ``grad``). Nothing is built at import: the tables below hold functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import sympy as sp

from .._jax import float64_on_concrete
from ..errors import EffdynError
from .activation import Activation, S
from .derivation import Derivation
from .parse import X

Params = tuple[jax.Array, ...]
ScalarFn = Callable[[jax.Array], jax.Array]
F = TypeVar("F", bound=Callable)

_UNARY: dict[type, ScalarFn] = {
    sp.sin: jnp.sin,
    sp.cos: jnp.cos,
    sp.tan: jnp.tan,
    sp.sinh: jnp.sinh,
    sp.cosh: jnp.cosh,
    sp.tanh: jnp.tanh,
    sp.asinh: jnp.arcsinh,
    sp.atan: jnp.arctan,
    sp.exp: jnp.exp,
    sp.log: jnp.log,
    sp.erf: jsp.erf,
    sp.erfc: jsp.erfc,
    sp.Abs: jnp.abs,
    sp.sign: jnp.sign,
}

# Numerically stable versions for activations given by name (log(1 + e^x) overflows).
_STABLE: dict[str, ScalarFn] = {
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "silu": jax.nn.silu,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "tanh": jnp.tanh,
}


def sympy_to_jax(expr: sp.Expr, var: sp.Symbol) -> ScalarFn:
    """An elementwise JAX function computing ``expr`` as a function of ``var``.

    >>> import jax.numpy as jnp
    >>> f = sympy_to_jax(X * sp.tanh(X), X)
    >>> float(f(jnp.asarray(1.0)))  # doctest: +ELLIPSIS
    0.7615...
    """
    fn = _translate(sp.sympify(expr), var)
    return float64_on_concrete(lambda s: fn(s) * jnp.ones_like(s))


def _translate(expr: sp.Expr, var: sp.Symbol) -> ScalarFn:
    if expr == var:
        return lambda s: s
    if not expr.free_symbols:
        value = float(expr.evalf(30))
        return lambda s: value
    args = [_translate(arg, var) for arg in expr.args]
    if isinstance(expr, sp.Add):
        return lambda s: functools.reduce(lambda a, f: a + f(s), args[1:], args[0](s))
    if isinstance(expr, sp.Mul):
        return lambda s: functools.reduce(lambda a, f: a * f(s), args[1:], args[0](s))
    if isinstance(expr, sp.Pow):
        base, exponent = args
        e = expr.args[1]
        if e.is_Integer:  # integer_pow: exact and differentiable at 0
            k = int(e)
            return lambda s: base(s) ** k
        if e == sp.Rational(1, 2):
            return lambda s: jnp.sqrt(base(s))
        return lambda s: jnp.power(base(s), exponent(s))
    if isinstance(expr, sp.Max | sp.Min):
        op = jnp.maximum if isinstance(expr, sp.Max) else jnp.minimum
        return lambda s: functools.reduce(lambda a, f: op(a, f(s)), args[1:], args[0](s))
    if isinstance(expr, sp.Heaviside):
        h0 = float(expr.args[1]) if len(expr.args) > 1 else 0.5
        return lambda s: jnp.heaviside(args[0](s), h0)
    if type(expr) in _UNARY:
        fn, inner = _UNARY[type(expr)], args[0]
        return lambda s: fn(inner(s))
    raise EffdynError(f"cannot evaluate {type(expr).__name__} in JAX (in {expr})")


def activation_function(act: Activation) -> ScalarFn:
    """The real activation ``σ`` as an elementwise JAX function (float64: module docstring)."""
    stable = _STABLE.get(act.source)
    return sympy_to_jax(act.expr, X) if stable is None else float64_on_concrete(stable)


class LeadingOrder(eqx.Module):
    """The leading-order model of a derivation, evaluated on arrays.

    Calling it, ``lo(t, θ, (x̃, y))``, returns the effective field ``∇E(θ)`` with the
    signature diffrax expects of an ODE term. :meth:`output`, :meth:`energy` and the call
    compute in float64 (module docstring).
    """

    templates: tuple[ScalarFn, ...] = eqx.field(static=True)
    derivatives: tuple[ScalarFn, ...] = eqx.field(static=True)

    def _forward(self, params: Params, xt: jax.Array):
        """Pre-activations ``h_l`` and activations ``a_l`` (``a_0 = x̃``), rows = samples."""
        hs, acts = [], [xt]
        h = xt @ params[0].T
        for layer, phi in enumerate(self.templates, start=1):
            hs.append(h)
            acts.append(phi(h))
            h = acts[-1] @ params[layer].T
        return h, hs, acts

    @float64_on_concrete
    def output(self, params: Params, xt: jax.Array) -> jax.Array:
        """``f_q(x̃_i; θ)`` for every sample: shape ``(n, d_out)``."""
        return self._forward(params, xt)[0]

    @float64_on_concrete
    def energy(self, params: Params, xt: jax.Array, y: jax.Array) -> jax.Array:
        """``E(θ) = (1/n) Σ_i y_i · f_q(x̃_i; θ)``."""
        return jnp.sum(y * self.output(params, xt)) / xt.shape[0]

    @float64_on_concrete
    def __call__(self, t, params: Params, args) -> Params:
        """``θ' = ∇E(θ)`` by the backward recursion ``g_l = φ_l'(h_l) ⊙ (W_{l+1}ᵀ g_{l+1})``."""
        del t
        xt, y = args
        _, hs, acts = self._forward(params, xt)
        g = y
        grads = [None] * len(params)
        for i in range(len(params) - 1, -1, -1):  # i indexes W_{i+1}
            grads[i] = g.T @ acts[i] / xt.shape[0]
            if i > 0:
                g = self.derivatives[i - 1](hs[i - 1]) * (g @ params[i])
        return tuple(grads)


def leading_order(derivation: Derivation) -> LeadingOrder:
    """Build the :class:`LeadingOrder` model from the layer templates of ``derivation``."""
    return LeadingOrder(
        templates=tuple(sympy_to_jax(a.template(S), S) for a in derivation.activations),
        derivatives=tuple(
            sympy_to_jax(a.template_derivative(S), S) for a in derivation.activations
        ),
    )


def jax_field(derivation: Derivation) -> Callable:
    """The effective field as a jit-compiled ``f(t, θ, (x̃, y))``, in float64.

    Called on concrete values, ``f`` enters ``jax.enable_x64(True)`` and casts ``t``, ``θ``
    and ``(x̃, y)`` to float64 before it calls the compiled field, so it returns a tuple of
    float64 JAX arrays whether the caller runs with ``jax_enable_x64`` off (the default) or
    on, and whether the inputs are NumPy arrays, Python floats or float32 JAX arrays (those
    are widened: their float32 rounding stays). JAX keys its jit cache on the x64 flag as
    well as on the input shapes and dtypes: a bare ``jax.jit`` traced inside the context is
    traced again when called outside it, and there it first rounds NumPy float64 inputs to
    float32. ``f`` compiles only inside the context and only for float64 inputs (measured:
    one cache entry for NumPy inputs, one for JAX arrays, float32 ones included, per set of
    shapes; repeated calls and calls from the caller's own ``jax.enable_x64(True)`` block
    reuse them). The check and the casts cost about 25 µs per call.
    Inside a trace of the caller's (``jit``, ``grad``, a diffrax solve) ``f`` follows that
    trace's dtypes (module docstring).
    """
    return float64_on_concrete(jax.jit(leading_order(derivation)))
