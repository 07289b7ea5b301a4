"""The leading-order model bound to one data set: field, energy and loss on flat vectors.

The solvers work on a flat parameter vector ``θ ∈ R^P``; :class:`EffectiveModel` keeps the
pytree ``(W1, …, WL)`` layout (``unravel``) and evaluates

    F(θ) = ∇E(θ),     E(θ) = ⟨y · f_q(x̃; θ)⟩,     R_q(θ) = ½⟨|f_q(x̃; θ) − y|²⟩,

where ``R_q`` is the loss of the leading-order model (used for the predicted escape time).

When every layer template is linear (``c_l s``: tanh-like activations,
docs/theory/effective-dynamics.md#depth-three-and-deeper) the
model only depends on the data through the moments ``Z = ⟨y x̃ᵀ⟩``, ``Σ = ⟨x̃ x̃ᵀ⟩`` and
``⟨|y|²⟩``; :class:`EffectiveModel` then skips the pass over the data:

    W_l' = C (W_{l+1}ᵀ ⋯ W_Lᵀ) Z (W_1ᵀ ⋯ W_{l−1}ᵀ),   C = Π_l c_l,
    R_q = ½( tr(P Σ Pᵀ) − 2 tr(P Zᵀ) + ⟨|y|²⟩ ),        P = C W_L ⋯ W_1.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._jax import in_float64
from ..losses import get_loss
from ..symbolic.bridge import LeadingOrder, leading_order
from ..symbolic.derivation import Derivation


class EffectiveModel(eqx.Module):
    """Field ``F``, energy ``E`` and leading-order loss ``R_q`` on flat vectors."""

    lo: LeadingOrder
    xt: jax.Array
    y: jax.Array
    shapes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    field_degree: int = eqx.field(static=True)
    chain_coefficient: float | None = eqx.field(static=True)
    z: jax.Array
    sigma: jax.Array
    y2: jax.Array
    labels: jax.Array | None = None
    loss_name: str = eqx.field(static=True, default="mse")

    def unravel(self, flat: jax.Array) -> tuple[jax.Array, ...]:
        """Flat vector → ``(W1, …, WL)`` (row-major blocks, layers in order)."""
        out, start = [], 0
        for rows, cols in self.shapes:
            out.append(flat[start : start + rows * cols].reshape(rows, cols))
            start += rows * cols
        return tuple(out)

    def _chain_grads(self, params):
        """``W_l' = C b_l v_{l−1}ᵀ`` with ``v_0 = Zᵀ``, ``v_l = W_l v_{l−1}`` (forward) and
        ``b_L = I``, ``b_l = W_{l+1}ᵀ b_{l+1}`` (backward): only products with the thin
        ``d_out``-column matrices, never a full ``W_l ⋯ W_1``."""
        forward = [self.z.T]
        for w in params[:-1]:
            forward.append(w @ forward[-1])
        backward = [jnp.eye(self.y.shape[1])]
        for w in params[:0:-1]:
            backward.append(w.T @ backward[-1])
        backward = backward[::-1]
        c = self.chain_coefficient
        return tuple(c * b @ v.T for b, v in zip(backward, forward, strict=True))

    def field(self, flat: jax.Array) -> jax.Array:
        params = self.unravel(flat)
        if self.chain_coefficient is None:
            grads = self.lo(0.0, params, (self.xt, self.y))
        else:
            grads = self._chain_grads(params)
        return ravel_pytree(grads)[0]

    def energy(self, flat: jax.Array) -> jax.Array:
        params = self.unravel(flat)
        if self.chain_coefficient is None:
            return self.lo.energy(params, self.xt, self.y)
        return jnp.sum(self._product(params) * self.z)

    def _product(self, params) -> jax.Array:
        """``P = C W_L ⋯ W_1`` (``d_out × D``), multiplied from the thin output side."""
        p = params[-1]
        for w in params[-2::-1]:
            p = p @ w
        return self.chain_coefficient * p

    def loss(self, flat: jax.Array) -> jax.Array:
        """The training loss of the leading-order output (``R_q`` for mse; the named loss
        of ``f_q`` on the labels otherwise, docs/theory/losses.md)."""
        params = self.unravel(flat)
        if self.loss_name != "mse":
            if self.chain_coefficient is None:
                out = self.lo.output(params, self.xt)
            else:
                out = self.xt @ self._product(params).T
            return get_loss(self.loss_name).mean(out, self.labels)
        if self.chain_coefficient is None:
            residual = self.lo.output(params, self.xt) - self.y
            return 0.5 * jnp.mean(jnp.sum(residual**2, axis=1))
        p = self._product(params)
        return 0.5 * (jnp.sum((p @ self.sigma) * p) - 2 * jnp.sum(p * self.z) + self.y2)


@in_float64
def effective_model(
    derivation: Derivation,
    xt: np.ndarray,
    y: np.ndarray,
    template: tuple[np.ndarray, ...],
    loss: str = "mse",
) -> EffectiveModel:
    """Bind the leading-order model of ``derivation`` to data ``(x̃, y)``.

    ``template`` is any parameter tuple of the right shapes (it fixes the flat layout).
    ``loss`` is the training loss: the energy and field take its effective target
    ``ỹ = −∂ℓ(0, y)`` in place of ``y`` (``E = ⟨ỹ · f_q⟩``, exact at leading order since a
    small initialization has ``f_0 = 0``; docs/theory/losses.md#leading-order-energy), and
    :meth:`EffectiveModel.loss` is that loss of ``f_q`` on the labels ``y``.
    """
    xt = jnp.asarray(xt, dtype=jnp.float64)
    labels = np.asarray(y, dtype=np.float64)
    if labels.ndim == 1:
        labels = labels[:, None]
    k = int(np.shape(template[-1])[0])
    y = jnp.asarray(get_loss(loss).effective_target(labels, k))
    shapes = tuple(tuple(int(n) for n in np.shape(w)) for w in template)
    chain = float(derivation.scalar_coefficient) if derivation.deep_linear else None
    n = xt.shape[0]
    return EffectiveModel(
        lo=_leading_order(tuple(a.source for a in derivation.activations), derivation),
        xt=xt,
        y=y,
        shapes=shapes,
        field_degree=derivation.field_degree,
        chain_coefficient=chain,
        z=y.T @ xt / n,
        sigma=xt.T @ xt / n,
        y2=jnp.sum(y**2) / n,
        labels=jnp.asarray(labels),
        loss_name=loss,
    )


@functools.lru_cache(maxsize=32)
def _leading_order_cached(sources: tuple[str, ...], derivation: Derivation) -> LeadingOrder:
    return leading_order(derivation)


def _leading_order(sources: tuple[str, ...], derivation: Derivation) -> LeadingOrder:
    """One :class:`LeadingOrder` per activation list, so equal models share compiled code."""
    try:
        return _leading_order_cached(sources, derivation)
    except TypeError:  # an unhashable derivation: build afresh
        return leading_order(derivation)


@in_float64
def flatten(params) -> jax.Array:
    """``(W1, …, WL)`` → one flat float64 vector (the solvers' state)."""
    return ravel_pytree(tuple(jnp.asarray(w, dtype=jnp.float64) for w in params))[0]
