"""The automatic leading-order engine: Taylor mode in the initialization scale
(docs/theory/automatic.md).

For any model ``f(leaves, inputs) -> (n, K)`` and loss, with the small leaves on the ray
``θ_j = ε^{γ_j} θ̄_j`` (``γ_j = 0``: held at its O(1) value), the loss has the series
``R(εθ̄) = R_0 + Σ_k ε^k R_k(θ̄)`` (docs/theory/automatic.md#the-principle). With
``f = f_0 + Σ_k ε^k f_k`` and ``g = ∂ℓ/∂f`` at ``f_0``, ``R_k = ⟨g · f_k⟩`` below twice the
first nonzero output order ``q_f``, and at ``2 q_f`` the loss's curvature adds
``½⟨f_{q_f}ᵀ H f_{q_f}⟩``. :func:`expand` finds

- the **drift**: leaves entering the output at order 1 (docs/theory/automatic.md#drift);
  their order-1 term is set aside and the leading order taken over the rest;
- the **leading order** ``q = min{k : R_k ≢ 0}`` and the energy ``E = −R_q`` as a function of
  the small leaves in the real variables, ``E(θ) = −⟨g · [ε^q] f(ε^γ θ)⟩``; its field ``∇E``
  by reverse mode through one Taylor-mode pass of order ``q`` (``jax.experimental.jet``);
- the **active** leaves (``∇E ≢ 0``) and the **frozen** ones (small, ``∇E ≡ 0``);
- the **polynomial degree** ``m`` of ``E`` (``E(2θ) = 2^m E(θ)``), the field degree
  ``m − 1``, and whether ``E`` is homogeneous (docs/theory/automatic.md#per-leaf-exponents);
- whether the model itself is positively homogeneous, ``f(cθ) = c^m f(θ)``, in which case
  ``f_q = f`` and no Taylor pass is made (docs/theory/automatic.md#homogeneous-models).

"Identically zero" (docs/theory/automatic.md#deciding-zero): at :data:`N_POINTS` random
points ``θ̄`` (``numpy.random.default_rng(seed)``, entries ``N(0, 1/fan_in)``), an output
term ``f_k`` is zero when ``max|f_k| ≤ ZERO_FACTOR · u · S_k`` and ``R_k`` when
``|R_k| ≤ ZERO_FACTOR · u · (mean|g| S_k + ⟨|g|·|f_k|⟩)``, with ``u = 2⁻⁵²`` and
``S_k = max(1, max|f_0|, max_{j≤k} max|f_j|)`` the size of the output terms so far; a leaf is
frozen when ``|∇_j E| ≤ ZERO_FACTOR · u · |∇E|`` at every point.

Validation (docs/theory/automatic.md#validation): at ``ε = ε₀ 2^{-j}`` the change of the
loss ``D(ε) = ⟨g·Δf⟩ + ½⟨Δfᵀ H Δf⟩`` (``Δf = f(ε^γθ̄) − f_0`` minus the drift's order-1 term;
the neglected terms are ``O(|Δf|³)``) must approach ``ε^q R_q(θ̄)``: relative error at most
:data:`EXACT` at some ``ε``, or at most :data:`LOOSE` and shrinking between two consecutive
``ε`` at an observed order of at least :data:`MIN_ORDER`. Otherwise a one-line
:class:`~effdyn.errors.EffdynError` gives the reason.

Example (a depth-3 tanh network has ``q = 3``, field degree 2)::

    >>> import numpy as np
    >>> from effdyn.training.network import network
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 1))
    >>> leaves = (np.zeros((4, 3)), np.zeros((4, 4)), np.zeros((1, 4)))
    >>> ex = expand(network(["tanh", "tanh"]), x, y, leaves)
    >>> ex.degree, ex.field_degree, ex.active, ex.frozen
    (3, 2, ('W1', 'W2', 'W3'), ())
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import jet

from .._jax import in_float64
from ..errors import EffdynError
from ..losses import Loss, get_loss

__all__ = ["AutoModel", "Expansion", "expand", "DEFAULT_MAX_ORDER", "MIN_MAX_ORDER"]

DEFAULT_MAX_ORDER = 20
"""Orders tried by default (x²·tanh x at depth 3 has ``q = 13``)."""
MIN_MAX_ORDER = 16
"""The smallest ``max_order`` accepted."""
N_POINTS = 3
"""Random points at which "identically zero" is decided."""
ZERO_FACTOR = 1e4
"""Multiple of the float64 round-off ``u`` below which a term counts as zero."""
UNIT_ROUNDOFF = float(np.finfo(np.float64).eps) / 2
FIRST_ORDER = 4
"""The first Taylor order tried; it doubles until the leading order is found."""
EPS0 = 0.1
"""The largest ε of the validation ladder ``ε₀ 2^{-j}``."""
LADDER = 12
"""Rungs of the validation ladder."""
EXACT = 1e-8
"""Relative validation error accepted outright."""
LOOSE = 0.05
"""Relative validation error accepted when it shrinks."""
MIN_ORDER = 0.5
"""Smallest observed order of the validation error's shrinking."""
HOMOGENEITY_RTOL = 1e-10
"""Relative tolerance of the numerical homogeneity test ``f(cθ) = c^m f(θ)``."""


@dataclass(frozen=True)
class Layout:
    """Where each leaf sits in the flat vectors (static; hashable)."""

    shapes: tuple[tuple[int, ...], ...]
    exponents: tuple[int, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(s)) for s in self.shapes)

    @property
    def small(self) -> tuple[bool, ...]:
        return tuple(g > 0 for g in self.exponents)

    def offsets(self) -> list[int]:
        return [0, *np.cumsum(self.sizes).tolist()]

    def unravel_all(self, flat):
        """Flat vector of every leaf → tuple of leaves."""
        off = self.offsets()
        return tuple(flat[off[i] : off[i + 1]].reshape(s) for i, s in enumerate(self.shapes))

    def small_index(self) -> np.ndarray:
        """Positions of the small leaves' entries in the flat vector of every leaf."""
        off = self.offsets()
        return np.concatenate(
            [np.arange(off[i], off[i + 1]) for i, s in enumerate(self.small) if s]
            or [np.zeros(0, dtype=np.int64)]
        )

    def gamma_vector(self) -> np.ndarray:
        """Per entry of the flat vector of every leaf, its leaf's exponent."""
        return np.repeat(np.asarray(self.exponents, dtype=np.int64), self.sizes)


class AutoModel(eqx.Module):
    """The leading-order model on the flat vector of the SMALL leaves (exponent ≥ 1);
    leaves with exponent 0 are constants held inside. It is what the solvers take:
    ``field``, ``energy``, ``loss`` (the real loss of ``f_0 + f_{q_f}``, for ``t_escape``),
    ``output``, ``unravel`` and ``field_degree`` (docs/theory/automatic.md)."""

    f: Callable = eqx.field(static=True)
    loss_fn: Loss = eqx.field(static=True)
    layout: Layout = eqx.field(static=True)
    order: int = eqx.field(static=True)
    output_order: int = eqx.field(static=True)
    curvature: bool = eqx.field(static=True)
    homogeneous_model: bool = eqx.field(static=True)
    field_degree: int = eqx.field(static=True)
    base: jax.Array
    index: jax.Array
    inputs: jax.Array
    y: jax.Array
    g: jax.Array
    hess: jax.Array
    f0: jax.Array
    z: jax.Array

    def full(self, flat: jax.Array) -> jax.Array:
        """Small-leaf vector → the flat vector of every leaf (constants filled in)."""
        return self.base.at[self.index].set(flat)

    def unravel(self, flat: jax.Array) -> tuple[jax.Array, ...]:
        """Small-leaf vector → every leaf, in leaf order."""
        return self.layout.unravel_all(self.full(flat))

    def terms(self, flat: jax.Array, order: int) -> list[jax.Array]:
        """``[f_1, …, f_order]`` at the real small leaves ``θ``: ``f_k = [ε^k] f(ε^γ θ)``."""
        if self.homogeneous_model:
            out = [jnp.zeros_like(self.f0)] * order
            out[self.order - 1] = self.f(self.unravel(flat), self.inputs) - self.f0
            return out
        return _terms(self.f, self.layout, self.inputs, self.full(flat), order, self.base)

    def output(self, flat: jax.Array) -> jax.Array:
        """``f_0 + f_{q_f}(θ)`` per sample, ``(n, K)``: the leading-order model's output."""
        return self.f0 + self.terms(flat, self.output_order)[self.output_order - 1]

    def energy(self, flat: jax.Array) -> jax.Array:
        """``E(θ) = −R_q``: ``−⟨g · f_q⟩`` (minus ``½⟨f_{q_f}ᵀ H f_{q_f}⟩`` when the loss's
        curvature sets the leading order)."""
        fs = self.terms(flat, self.order)
        e = -jnp.mean(jnp.sum(self.g * fs[self.order - 1], axis=-1))
        if self.curvature:
            fq = fs[self.output_order - 1]
            e = e - 0.5 * jnp.mean(jnp.einsum("ni,nij,nj->n", fq, self.hess, fq))
        return e

    def field(self, flat: jax.Array) -> jax.Array:
        """``∇E(θ)`` (reverse mode through the Taylor pass)."""
        return jax.grad(self.energy)(flat)

    def loss(self, flat: jax.Array) -> jax.Array:
        """The real loss of the leading-order output ``f_0 + f_{q_f}``
        (docs/theory/losses.md#leading-order-energy)."""
        return self.loss_fn.mean(self.output(flat), self.y)


def _terms(f, layout: Layout, inputs, full, order: int, base) -> list[jax.Array]:
    """One Taylor-mode pass: the output coefficients ``f_1 … f_order`` along the ray
    ``θ_j = base_j + ε^{γ_j} θ_j`` (jet's derivative convention: term k is ``k!·f_k``)."""
    gamma = jnp.asarray(layout.gamma_vector())
    small = gamma > 0
    primal = jnp.where(small, 0.0, full)
    series = [
        jnp.where(gamma == k, float(math.factorial(k)) * full, 0.0) for k in range(1, order + 1)
    ]

    def fun(flat):
        return f(layout.unravel_all(flat), inputs)

    _, out = jet.jet(_without_custom_rules(fun, primal), (primal,), (series,))
    return [out[k - 1] / math.factorial(k) for k in range(1, order + 1)]


CUSTOM_RULES = ("custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr")
"""Primitives that carry a custom derivative rule (``jax.nn.relu``, ``jax.nn.softplus``, …):
Taylor mode runs their primal body instead (the coefficients of a function are those of
its body; a custom rule only changes how derivatives are computed)."""


def _without_custom_rules(fun, example):
    """``fun`` with every custom-derivative call replaced by its primal body, so that
    ``jet`` (which has no sound rule for them) sees plain primitives; traced once at the
    shape of ``example``."""
    closed = jax.make_jaxpr(fun)(jax.ShapeDtypeStruct(example.shape, example.dtype))

    def inlined(x):
        return _eval_inlined(closed.jaxpr, closed.consts, x)[0]

    return inlined


def _eval_inlined(jaxpr, consts, *args):
    """Evaluate ``jaxpr``, running custom-derivative calls and nested jits as their bodies."""
    from jax.extend.core import Literal

    env: dict = {}

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    for var, val in zip(jaxpr.constvars, consts, strict=True):
        env[var] = val
    for var, val in zip(jaxpr.invars, args, strict=True):
        env[var] = val
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name in CUSTOM_RULES or name in ("pjit", "jit", "closed_call", "core_call"):
            body = next(
                (eqn.params[k] for k in ("call_jaxpr", "fun_jaxpr", "jaxpr") if k in eqn.params),
                None,
            )
            if body is not None:
                inner = getattr(body, "jaxpr", body)
                inner_consts = getattr(body, "consts", ())
                if name in CUSTOM_RULES:
                    ins = ins[len(ins) - len(inner.invars) :]
                outs = _eval_inlined(inner, inner_consts, *ins)
                for var, val in zip(eqn.outvars, outs, strict=True):
                    env[var] = val
                continue
        outs = eqn.primitive.bind(*ins, **eqn.params)
        if not eqn.primitive.multiple_results:
            outs = [outs]
        for var, val in zip(eqn.outvars, outs, strict=True):
            env[var] = val
    return [read(v) for v in jaxpr.outvars]


@dataclass(frozen=True, eq=False)
class Expansion:
    """What :func:`expand` found (docs/theory/automatic.md).

    Attributes:
        names: every leaf's name, in leaf order.
        exponents: ``γ`` per leaf (0: held at O(1)).
        small: whether each leaf is small (``γ ≥ 1``).
        degree: ``q``, the leading order of the loss in ε.
        polynomial_degree: the degree ``m`` of ``E`` in the small leaves (None when ``E``
            is not homogeneous).
        field_degree: ``m − 1`` (None when ``E`` is not homogeneous).
        energy_homogeneous: ``E(2θ) = 2^m E(θ)`` at every test point.
        finite_time_blowup: ``E`` homogeneous with field degree ≥ 2.
        model_homogeneous: ``f(cθ) = c^m f(θ)`` numerically (small leaves sharing one
            exponent); then ``f_q = f``.
        smooth: Taylor mode agrees with the model (False for a homogeneous model whose
            Taylor pass is meaningless, such as a ReLU network).
        active, frozen, drift: leaf names (docs/theory/automatic.md#drift).
        loss: the loss's name.
        f0: ``(n, K)`` the output with every small leaf 0; g: ``∂ℓ/∂f`` there.
        validation: ``eps``, ``errors``, ``observed_order``, ``ok``.
        model: the :class:`AutoModel` (solver-ready).
    """

    names: tuple[str, ...]
    exponents: tuple[int, ...]
    small: tuple[bool, ...]
    degree: int
    polynomial_degree: int | None
    field_degree: int | None
    energy_homogeneous: bool
    finite_time_blowup: bool
    model_homogeneous: bool
    smooth: bool
    active: tuple[str, ...]
    frozen: tuple[str, ...]
    drift: tuple[str, ...]
    loss: str
    f0: np.ndarray
    g: np.ndarray
    validation: dict
    model: AutoModel = field(repr=False)

    def flatten(self, leaves: Sequence) -> jax.Array:
        """Leaves (in leaf order) → the small-leaf flat vector the model takes."""
        return _flatten_small(tuple(leaves), self.small)

    def unravel(self, flat) -> tuple[jax.Array, ...]:
        return self.model.unravel(flat)

    def energy(self, flat) -> float:
        return float(_call(self.model, "energy", flat))

    def field(self, flat) -> np.ndarray:
        return np.asarray(_call(self.model, "field", flat))

    def output(self, flat) -> np.ndarray:
        return np.asarray(_call(self.model, "output", flat))

    def loss_value(self, flat) -> float:
        return float(_call(self.model, "loss", flat))

    def bilinear(self) -> dict | None:
        """``E = tr(Aᵀ F B)`` in two active leaves, or None when ``E`` is not bilinear
        (docs/theory/reexpansion.md#bilinear-energies).

        ``E`` is bilinear when its polynomial degree is 2, exactly two leaves are active and
        its Hessian has no ``A``–``A`` or ``B``–``B`` block. The cross block
        ``H[a, b] = ∂²E/∂A_a ∂B_b`` (exact: the field is linear, so ``H`` is its Jacobian)
        is then searched for a Kronecker form: for two matrices sharing an axis of size
        ``r`` (``A``'s axis ``p``, ``B``'s axis ``p'``), ``H = F ⊗ I_r``, i.e.
        ``E = Σ_{i,j,c} F_ij A_{i c} B_{j c}`` with ``i, j`` the free axes (for
        ``p = p' = 1``: ``tr(Aᵀ F B)``). The first pairing that fits to ``1e-10`` relative,
        in the order (1, 1), (0, 0), (1, 0), (0, 1), gives ``F``; when none fits, ``F`` is the
        whole cross block, ``E = vec(A)ᵀ F vec(B)`` (row-major ``vec``).

        Returns:
            ``matrix`` (``F``), ``leaves`` (``[A, B]``), ``shared_axes`` (``[p, p']`` or
            None), ``form``, ``singular_values``, ``left`` and ``right`` (the top singular
            pair of ``F``) and ``kronecker_residual``.
        """
        if self.polynomial_degree != 2 or len(self.active) != 2:
            return None
        shapes = dict(zip(self.names, self.model.layout.shapes, strict=True))
        small_names = [n for n, s in zip(self.names, self.small, strict=True) if s]
        offsets = np.cumsum([0] + [int(np.prod(shapes[n])) for n in small_names])
        where = {n: (offsets[i], offsets[i + 1]) for i, n in enumerate(small_names)}
        hess = _hessian_of_linear_field(self.model, int(offsets[-1]))
        a_name, b_name = self.active
        sa, sb = (slice(*map(int, where[n])) for n in (a_name, b_name))
        scale = float(np.max(np.abs(hess))) or 1.0
        if max(np.max(np.abs(hess[sa, sa])), np.max(np.abs(hess[sb, sb]))) > BILINEAR_RTOL * scale:
            return None
        cross = hess[sa, sb]
        a_shape, b_shape = shapes[a_name], shapes[b_name]
        found = _kronecker_factor(cross, a_shape, b_shape, scale)
        if found is None:
            matrix, axes, residual = cross, None, 0.0
            form = f"vec({a_name})ᵀ F vec({b_name})"
        else:
            matrix, axes, residual = found
            form = {
                (1, 1): f"tr({a_name}ᵀ F {b_name})",
                (0, 0): f"tr({a_name} F {b_name}ᵀ)",
                (1, 0): f"tr(Fᵀ {a_name} {b_name})",
                (0, 1): f"Σ F_ij {a_name}_ci {b_name}_jc",
            }[axes]
        u, s, vt = np.linalg.svd(matrix)
        return {
            "matrix": matrix.tolist(),
            "leaves": [a_name, b_name],
            "shared_axes": list(axes) if axes is not None else None,
            "form": form,
            "singular_values": s.tolist(),
            "left": u[:, 0].tolist(),
            "right": vt[0].tolist(),
            "kronecker_residual": float(residual),
        }

    def summary(self) -> dict:
        """The keys ``effdyn derive --json`` reports for this expansion
        (docs/commands.md#derive)."""
        return {
            "engine": "automatic",
            "degree": self.degree,
            "polynomial_degree": self.polynomial_degree,
            "field_degree": self.field_degree,
            "energy_homogeneous": self.energy_homogeneous,
            "finite_time_blowup": self.finite_time_blowup,
            "active_parameters": list(self.active),
            "frozen_parameters": list(self.frozen),
            "drift_parameters": list(self.drift),
            "model_homogeneous": self.model_homogeneous,
            "smooth": self.smooth,
            "loss": self.loss,
            "leaves": [
                {"name": n, "shape": list(s), "exponent": g}
                for n, s, g in zip(
                    self.names, self.model.layout.shapes, self.exponents, strict=True
                )
            ],
            "validation": self.validation,
        }


BILINEAR_RTOL = 1e-10
"""Relative size (to the largest Hessian entry) below which a block counts as zero."""


@in_float64
def _hessian_of_linear_field(model, size: int) -> np.ndarray:
    """``H = ∂(∇E)/∂θ`` of a linear field: the field at the unit vectors (one compiled
    ``vmap``)."""
    basis = jnp.eye(size, dtype=jnp.float64)
    return np.asarray(_field_columns(model, basis)).T


@eqx.filter_jit
def _field_columns(model, basis):
    return jax.vmap(model.field)(basis)


def _kronecker_factor(cross, a_shape, b_shape, scale):
    """``(F, (p, p'), residual)`` with ``cross = F ⊗ I`` on the shared axes ``p, p'``, or
    None (docs/theory/reexpansion.md#bilinear-energies)."""
    if len(a_shape) != 2 or len(b_shape) != 2:
        return None
    block = cross.reshape(*a_shape, *b_shape)
    for p, q in ((1, 1), (0, 0), (1, 0), (0, 1)):
        if a_shape[p] != b_shape[q]:
            continue
        # axes → (A free, A shared, B free, B shared)
        t = np.moveaxis(block, (1 - p, p, 2 + (1 - q), 2 + q), (0, 1, 2, 3))
        r = t.shape[1]
        f = t[:, 0, :, 0]
        want = np.einsum("ij,cd->icjd", f, np.eye(r))
        residual = float(np.max(np.abs(t - want))) / scale
        if residual <= BILINEAR_RTOL:
            return f, (p, q), residual
    return None


@in_float64
def _flatten_small(leaves, small) -> jax.Array:
    parts = [
        jnp.ravel(jnp.asarray(w, dtype=jnp.float64))
        for w, s in zip(leaves, small, strict=True)
        if s
    ]
    return jnp.concatenate(parts)


@eqx.filter_jit
def _method(model, name, flat):
    return getattr(model, name)(flat)


@in_float64
def _call(model, name, flat):
    return _method(model, name, jnp.asarray(flat, dtype=jnp.float64))


def _draw(layout: Layout, rng) -> np.ndarray:
    """One random point ``θ̄`` over every leaf: entries ``N(0, 1/fan_in)`` (a matrix's
    fan-in is its size over its first axis; 1 for a vector or scalar)."""
    parts = []
    for shape in layout.shapes:
        size = int(np.prod(shape))
        fan_in = size // shape[0] if len(shape) >= 2 and shape[0] else 1
        parts.append(rng.normal(size=size) / math.sqrt(max(fan_in, 1)))
    return np.concatenate(parts) if parts else np.zeros(0)


def _inf(a) -> float:
    a = np.asarray(a)
    return float(np.max(np.abs(a))) if a.size else 0.0


@in_float64
def expand(
    f: Callable,
    inputs,
    y,
    leaves0: Sequence,
    *,
    loss: str = "mse",
    exponents: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    seed: int = 0,
    max_order: int = DEFAULT_MAX_ORDER,
) -> Expansion:
    """The leading-order effective dynamics of ``f`` at small initialization (module doc).

    Args:
        f: the real model, ``f(leaves, inputs) -> (n, K)`` on a tuple of leaves.
        inputs: what ``f`` takes as data (any array with samples first).
        y: the targets or labels, as the loss takes them (``(n, K)``; class labels ``(n, 1)``).
        leaves0: the initial leaves (their shapes fix the layout; a leaf with exponent 0 is
            held at its value here).
        loss: one of :data:`effdyn.losses.LOSS_NAMES`.
        exponents: ``γ`` per leaf (integers ≥ 0; default all 1).
        names: leaf names for the report (default ``W1, W2, …``).
        seed: seed of the random test points.
        max_order: the highest order tried (at least :data:`MIN_MAX_ORDER`).

    Raises:
        EffdynError: nothing nonzero up to ``max_order``; only drift; the validation failed;
            the model raised or returned the wrong shape.
    """
    lossfn = get_loss(loss)
    leaves0 = tuple(np.asarray(w, dtype=np.float64) for w in leaves0)
    n_leaves = len(leaves0)
    names = tuple(names) if names is not None else tuple(f"W{i + 1}" for i in range(n_leaves))
    exponents = tuple(int(g) for g in exponents) if exponents is not None else (1,) * n_leaves
    if len(names) != n_leaves or len(exponents) != n_leaves:
        raise EffdynError(
            f"{n_leaves} leaves but {len(names)} names and {len(exponents)} exponents"
        )
    if any(g < 0 for g in exponents) or not any(g > 0 for g in exponents):
        raise EffdynError(f"exponents must be integers >= 0 with at least one > 0, got {exponents}")
    if max_order < MIN_MAX_ORDER:
        raise EffdynError(f"max_order must be at least {MIN_MAX_ORDER}, got {max_order}")
    layout = Layout(tuple(w.shape for w in leaves0), exponents)
    gamma = layout.gamma_vector()
    index = layout.small_index()
    flat0 = np.concatenate([w.ravel() for w in leaves0]) if leaves0 else np.zeros(0)
    base = np.where(gamma > 0, 0.0, flat0)
    inputs = jnp.asarray(inputs, dtype=jnp.float64)
    yj = jnp.asarray(y, dtype=jnp.float64)
    if yj.ndim == 1:
        yj = yj[:, None]

    def call(flat):
        return f(layout.unravel_all(jnp.asarray(flat)), inputs)

    f0 = np.asarray(call(base))
    g = np.asarray(lossfn.output_gradient(jnp.asarray(f0), yj))
    hess = np.asarray(_hessians(lossfn, f0, yj))
    rng = np.random.default_rng(seed)
    points = [np.where(gamma > 0, _draw(layout, rng), flat0) for _ in range(N_POINTS)]

    proto = dict(
        f=f,
        loss_fn=lossfn,
        layout=layout,
        base=jnp.asarray(base),
        index=jnp.asarray(index),
        inputs=inputs,
        y=yj,
        g=jnp.asarray(g),
        hess=jnp.asarray(hess),
        f0=jnp.asarray(f0),
        z=jnp.asarray(np.sqrt(np.mean(np.sum(g * g, axis=-1))))[None],
    )
    small_exps = {e for e in exponents if e > 0}
    homog = _homogeneity(call, points, gamma, f0) if len(small_exps) == 1 else None
    drift: tuple[str, ...] = ()
    f1_points = [np.zeros_like(f0)] * N_POINTS
    if homog is not None:
        q = homog * small_exps.pop()
        if q == 1:
            raise EffdynError(
                "the model is linear in its small leaves (order 1): every leaf is drift, "
                "there are no small-initialization dynamics to expand"
            )
        qf, curvature, smooth = q, False, _jet_agrees(f, layout, inputs, points[0], q, base, f0)
        lin = [float(np.mean(np.sum(g * (np.asarray(call(p)) - f0), axis=-1))) for p in points]
        sizes = [
            float(np.mean(np.sum(np.abs(g) * np.abs(np.asarray(call(p))), axis=-1))) for p in points
        ]
        if all(abs(r) <= ZERO_FACTOR * UNIT_ROUNDOFF * s for r, s in zip(lin, sizes, strict=True)):
            raise EffdynError(
                "⟨g·f⟩ vanishes for this homogeneous model (the loss's gradient at f0 is "
                "orthogonal to every output): the leading order needs the loss's curvature, "
                "which the homogeneous path does not expand"
            )
    else:
        drift = _drift(call, layout, names, points, base, f0)
        order = min(FIRST_ORDER, max_order)
        while True:  # orders 4, 8, 16, …: one compilation per try, most models stop at 4
            series = _series(f, layout, inputs, points, order, base)
            if drift:
                f1_points = [s[0] for s in series]
                for s in series:
                    s[0] = np.zeros_like(s[0])
            found = _leading_order(series, g, hess, f0, order, bool(drift), order >= max_order)
            if found is not None:
                break
            order = min(2 * order, max_order)
        q, qf, curvature = found
        smooth = True
    field_probe = AutoModel(
        **proto,
        order=q,
        output_order=qf,
        curvature=curvature,
        homogeneous_model=homog is not None,
        field_degree=1,
    )
    smalls = [jnp.asarray(p[index]) for p in points]
    energies = [float(_call(field_probe, "energy", p)) for p in smalls]
    doubled = [float(_call(field_probe, "energy", 2.0 * p)) for p in smalls]
    poly = _polynomial_degree(energies, doubled)
    fields = [np.asarray(_call(field_probe, "field", p)) for p in smalls]
    active, frozen = _active_frozen(layout, names, fields)
    field_degree = poly - 1 if poly is not None else None
    model = AutoModel(
        **{**proto},
        order=q,
        output_order=qf,
        curvature=curvature,
        homogeneous_model=homog is not None,
        field_degree=max(field_degree, 1) if field_degree is not None else 1,
    )
    validation = _validate(call, points[0], gamma, f0, g, hess, q, -energies[0], f1_points[0])
    return Expansion(
        names=names,
        exponents=exponents,
        small=layout.small,
        degree=q,
        polynomial_degree=poly,
        field_degree=field_degree,
        energy_homogeneous=poly is not None,
        finite_time_blowup=bool(poly is not None and poly - 1 >= 2),
        model_homogeneous=homog is not None,
        smooth=smooth,
        active=active,
        frozen=frozen,
        drift=drift,
        loss=loss,
        f0=f0,
        g=g,
        validation=validation,
        model=model,
    )


def _hessians(lossfn: Loss, f0, y):
    """Per-sample Hessian ``∂²ℓ/∂f²`` at ``f0``, ``(n, K, K)``."""

    def one(fi, yi):
        return lossfn.per_sample(fi[None], yi[None])[0]

    return jax.vmap(jax.hessian(one))(jnp.asarray(f0), y)


def _homogeneity(call, points, gamma, f0) -> int | None:
    """The integer ``m ≥ 1`` with ``f(cθ) = c^m f(θ)`` (``c = 2, ½``, small leaves scaled)
    at every point, or None."""
    if _inf(f0) != 0.0:
        return None
    found = set()
    for p in points:
        a = np.asarray(call(p))
        scale = np.where(gamma > 0, 1.0, 0.0)
        b = np.asarray(call(p * (1 + scale)))  # small leaves doubled
        c = np.asarray(call(p * (1 - 0.5 * scale)))  # small leaves halved
        na = np.linalg.norm(a)
        if na == 0.0 or not np.all(np.isfinite(b)):
            return None
        m = round(math.log2(np.linalg.norm(b) / na))
        if m < 1:
            return None
        if np.linalg.norm(b - 2.0**m * a) > HOMOGENEITY_RTOL * np.linalg.norm(b):
            return None
        if np.linalg.norm(c - 2.0**-m * a) > HOMOGENEITY_RTOL * np.linalg.norm(c):
            return None
        found.add(m)
    return found.pop() if len(found) == 1 else None


def _jet_agrees(f, layout, inputs, point, q, base, f0) -> bool:
    """Whether Taylor mode gives ``f_q = f`` for a homogeneous model (False for kinks)."""
    try:
        terms = _terms(f, layout, inputs, jnp.asarray(point), q, jnp.asarray(base))
    except Exception:  # a primitive without a Taylor rule: not smooth by construction
        return False
    want = np.asarray(f(layout.unravel_all(jnp.asarray(point)), inputs)) - f0
    got = np.asarray(terms[q - 1])
    return bool(np.linalg.norm(got - want) <= 1e-8 * max(np.linalg.norm(want), 1e-300))


def _drift(call, layout, names, points, base, f0) -> tuple[str, ...]:
    """Leaves entering the output at order 1: ``∂f/∂θ_j · θ̄_j ≢ 0`` for exponent-1 leaves."""
    out = []
    off = layout.offsets()
    scale = max(1.0, _inf(f0))
    for j, name in enumerate(names):
        if layout.exponents[j] != 1:
            continue
        hit = False
        for p in points:
            tangent = np.zeros_like(p)
            tangent[off[j] : off[j + 1]] = p[off[j] : off[j + 1]]
            _, d = jax.jvp(call, (jnp.asarray(base),), (jnp.asarray(tangent),))
            if _inf(d) > ZERO_FACTOR * UNIT_ROUNDOFF * scale:
                hit = True
                break
        if hit:
            out.append(name)
    return tuple(out)


def _series(f, layout, inputs, points, order, base) -> list[list[np.ndarray]]:
    """The output terms ``f_1 … f_order`` at every test point (one compilation)."""
    terms_fn = jax.jit(lambda p: _terms(f, layout, inputs, p, order, jnp.asarray(base)))
    try:
        return [[np.asarray(t) for t in terms_fn(jnp.asarray(p))] for p in points]
    except NotImplementedError as err:
        raise EffdynError(
            f"Taylor mode cannot pass through this model: {str(err).splitlines()[0]}"
        ) from None


def _leading_order(series, g, hess, f0, max_order, drift, final=True):
    """``(q, q_f, curvature)`` from the output terms ``f_1 … f_max_order`` at the test
    points; None (try more orders) when ``final`` is False and they do not decide it."""
    u = UNIT_ROUNDOFF
    qf = None
    for k in range(1, max_order + 1):
        s_k = max(1.0, _inf(f0), *(_inf(s[j]) for s in series for j in range(k)))
        if any(_inf(s[k - 1]) > ZERO_FACTOR * u * s_k for s in series):
            qf = k
            break
    if qf is None and not final:
        return None
    if qf is None:
        what = "beyond the order-1 drift " if drift else ""
        raise EffdynError(
            f"no term of the output {what}is nonzero up to order {max_order}: the model does "
            "not move at small initialization to that order (raise max_order, or check that "
            "the small leaves reach the output)"
        )
    gabs = float(np.mean(np.sum(np.abs(g), axis=-1)))
    for k in range(qf, min(2 * qf, max_order + 1)):
        s_k = max(1.0, _inf(f0), *(_inf(s[j]) for s in series for j in range(k)))
        for s in series:
            r = float(np.mean(np.sum(g * s[k - 1], axis=-1)))
            size = float(np.mean(np.sum(np.abs(g) * np.abs(s[k - 1]), axis=-1)))
            if abs(r) > ZERO_FACTOR * u * (gabs * s_k + size):
                return k, qf, False
    k = 2 * qf
    if k > max_order and not final:
        return None
    if k <= max_order:
        s_k = max(1.0, _inf(f0), *(_inf(s[j]) for s in series for j in range(k)))
        for s in series:
            fq = s[qf - 1]
            curv = 0.5 * float(np.mean(np.einsum("ni,nij,nj->n", fq, hess, fq)))
            r = float(np.mean(np.sum(g * s[k - 1], axis=-1))) + curv
            if abs(r) > ZERO_FACTOR * u * (gabs * s_k + abs(curv) + 1e-300):
                return k, qf, True
    raise EffdynError(
        f"the output moves at order {qf} but the loss does not change up to order "
        f"{min(2 * qf, max_order)} (⟨g·f_k⟩ and the loss's curvature term vanish): "
        "effdyn does not expand the loss beyond its second order"
    )


def _polynomial_degree(energies, doubled) -> int | None:
    """``m`` with ``E(2θ) = 2^m E(θ)`` at every point, or None (``E`` not homogeneous)."""
    found = set()
    for e, d in zip(energies, doubled, strict=True):
        if e == 0.0:
            continue
        ratio = d / e
        if ratio <= 0:
            return None
        m = round(math.log2(ratio))
        if abs(d - 2.0**m * e) > 1e-8 * abs(d):
            return None
        found.add(m)
    return found.pop() if len(found) == 1 else None


def _active_frozen(layout, names, fields) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Small leaves with ``∇_j E ≢ 0`` (active) and ``≡ 0`` (frozen)."""
    active, frozen = [], []
    start = 0
    for name, size, small in zip(names, layout.sizes, layout.small, strict=True):
        if not small:
            continue
        nonzero = any(
            np.linalg.norm(fl[start : start + size])
            > ZERO_FACTOR * UNIT_ROUNDOFF * np.linalg.norm(fl)
            for fl in fields
        )
        (active if nonzero else frozen).append(name)
        start += size
    return tuple(active), tuple(frozen)


def _validate(call, point, gamma, f0, g, hess, q, r_q, f1) -> dict:
    """Compare the real change of the loss with ``ε^q R_q`` down the ladder (module doc)."""
    eps_list, errors = [], []
    for j in range(LADDER):
        eps = EPS0 * 2.0**-j
        ray = np.where(gamma > 0, point * eps ** gamma.astype(np.float64), point)
        df = np.asarray(call(ray)) - f0 - eps * f1
        d = float(np.mean(np.sum(g * df, axis=-1))) + 0.5 * float(
            np.mean(np.einsum("ni,nij,nj->n", df, hess, df))
        )
        pred = eps**q * r_q
        err = abs(d - pred) / abs(pred) if pred != 0.0 else math.inf
        eps_list.append(eps)
        errors.append(err)
        if err <= EXACT:
            return _report(eps_list, errors, True)
        if j >= 1 and err <= LOOSE and errors[-2] > 0:
            order = math.log2(errors[-2] / err) if err > 0 else math.inf
            if order >= MIN_ORDER:
                return _report(eps_list, errors, True)
    worst = errors[-1]
    raise EffdynError(
        f"validation failed: the real loss change does not approach ε^{q}·R_{q} "
        f"(relative error {worst:.3g} at ε = {eps_list[-1]:.3g}, {errors[0]:.3g} at "
        f"ε = {eps_list[0]:.3g}); the model is probably not smooth at 0 where it is not "
        "homogeneous (e.g. relu mixed with a smooth nonlinearity), or a smooth function is "
        "written with max/abs/where (jax.nn.softplus: write jnp.log1p(jnp.exp(x))), and "
        "Taylor mode gives wrong coefficients there (docs/theory/automatic.md#validation)"
    )


def _report(eps_list, errors, ok) -> dict:
    last = errors[-2:] if len(errors) >= 2 else errors
    order = None
    if len(last) == 2 and last[1] > 0 and last[0] > 0:
        order = math.log2(last[0] / last[1])
    return {
        "eps": eps_list[-2:],
        "errors": [float(e) for e in last],
        "observed_order": order,
        "ok": ok,
    }
