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
whatever the user's ``jax_enable_x64``: it runs inside the scoped ``jax.enable_x64(True)``
and casts its real inputs (NumPy arrays, Python floats, float32 JAX arrays) to float64, so
it returns float64 JAX arrays. Outside the context JAX computes on those in the user's
setting (float32 by default): take ``numpy.asarray`` of them first. Inside the user's own
float32 ``jit``/``grad``/``vmap`` the results are float64 tracers, which the surrounding
float32 operations truncate to float32 with a warning from JAX; to integrate or
differentiate through them in float64, put that code inside ``jax.enable_x64(True)`` too
(or effdyn's ``float64()``). Nothing is built at import: the tables below hold functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import sympy as sp

from .._jax import in_float64
from ..errors import EffdynError
from .activation import Activation, S
from .derivation import Derivation
from .parse import X

Params = tuple[jax.Array, ...]
ScalarFn = Callable[[jax.Array], jax.Array]

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
    return _elementwise_float64(lambda s: fn(s) * jnp.ones_like(s))


def _as_float64(tree):
    """Every leaf of ``tree`` as a float64 JAX array (call inside ``jax.enable_x64(True)``)."""
    return jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.float64), tree)


def _elementwise_float64(fn: ScalarFn) -> ScalarFn:
    """``fn`` applied in float64 to its input cast to float64 (module docstring)."""
    return in_float64(lambda s: fn(_as_float64(s)))


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
    return sympy_to_jax(act.expr, X) if stable is None else _elementwise_float64(stable)


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

    @in_float64
    def output(self, params: Params, xt: jax.Array) -> jax.Array:
        """``f_q(x̃_i; θ)`` for every sample: shape ``(n, d_out)``."""
        return self._forward(*_as_float64((params, xt)))[0]

    @in_float64
    def energy(self, params: Params, xt: jax.Array, y: jax.Array) -> jax.Array:
        """``E(θ) = (1/n) Σ_i y_i · f_q(x̃_i; θ)``."""
        params, xt, y = _as_float64((params, xt, y))
        return jnp.sum(y * self.output(params, xt)) / xt.shape[0]

    @in_float64
    def __call__(self, t, params: Params, args) -> Params:
        """``θ' = ∇E(θ)`` by the backward recursion ``g_l = φ_l'(h_l) ⊙ (W_{l+1}ᵀ g_{l+1})``."""
        del t
        params, (xt, y) = _as_float64((params, args))
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
    """The effective field as a jit-compiled ``f(t, θ, (x̃, y))``, in float64 always.

    ``f`` enters ``jax.enable_x64(True)`` before it calls the compiled field, and the field
    casts ``θ`` and ``(x̃, y)`` to float64 first, so the result is a tuple of float64 JAX
    arrays whether the caller runs with ``jax_enable_x64`` off (the default) or on, and
    whether the inputs are NumPy arrays, Python floats or float32 JAX arrays (those are
    widened, not recomputed: their float32 rounding stays). JAX keys its jit cache on the
    x64 flag as well as on the input shapes and dtypes: a bare ``jax.jit`` traced inside the
    context retraces when called outside it, and then computes in float32. ``f`` always
    calls in the context, so it traces once per input signature (float32 inputs and
    float64 inputs are two signatures) and never in float32, and a caller's own
    ``jax.enable_x64(True)`` block shares those traces. Inside the caller's float32
    ``jit``/``grad`` the same holds as for every function here (module docstring).
    """
    return in_float64(jax.jit(leading_order(derivation)))
