"""Effective dynamics of a two-layer CNN at small initialization
(docs/theory/cnn.md#effective-dynamics; Zhou et al. 2023, arXiv 2305.09947).

Network (``kind = "cnn"``, :mod:`effdyn.symbolic.cnn`): ``f(x) = ⟨W2, σ(W1 P(x̃)ᵀ)⟩_F`` with
the flattened kernels ``W1`` (channels × D, ``D = C_in·k·k [+1]``), the read-out weights
``W2`` (channels × J, ``J`` output positions) and the im2col patch matrix ``P(x̃)`` (J × D).
Replacing ``σ − σ(0)`` by its leading part ``φ(s) = c_p s^p``:

    E(θ) = ⟨y ⟨W2, φ(W1 Pᵀ)⟩_F⟩,   θ' = ∇E(θ),   R_q(θ) = ½⟨(⟨W2, φ(W1 Pᵀ)⟩_F − y)²⟩.

**p = 1 (tanh-like).** With ``Z = ⟨y P(x̃)ᵀ⟩`` (D × J) the field is linear,

    W_β' = c_1 Z a_β,     a_β' = c_1 Zᵀ W_β      (rows: W1' = c_1 W2 Zᵀ, W2' = c_1 W1 Z),

and with the thin SVD ``Z = U S Vᵀ`` it is solved in closed form (:func:`linear_solution`):
per singular pair, ``(u_k·W_β, v_k·a_β)`` rotates hyperbolically at rate ``c_1 s_k``,

    W1(t) = [W1₀U cosh(c_1 S t) + W2₀V sinh(c_1 S t)] Uᵀ + W1₀(I − UUᵀ),
    W2(t) = [W1₀U sinh(c_1 S t) + W2₀V cosh(c_1 S t)] Vᵀ + W2₀(I − VVᵀ).

Every kernel grows along ``±u₁`` (top left singular vector of ``Z``) at rate ``|c_1| s₁``; its
orientation is ``sign(u₁·W_β(0) + sign(c_1) v₁·a_β(0))``. The component along ``u₂`` grows at
``|c_1| s₂``, so relative to ``u₁`` it decays like ``e^{−|c_1|(s₁−s₂)t}``. Escape needs
``|W1||W2| ~ e^{2|c_1|s₁t} ε² = O(1)``, i.e. ``e^{|c_1|s₁t} ~ 1/ε``, hence the residual
misalignment at escape ``sin∠(W_β, u₁) ~ ε^{1 − s₂/s₁}`` (docs/theory/cnn.md#misalignment):
sharp condensation needs a small ε AND a gap ``s₁ > s₂``. Further modes add
``ε^{1 − s_k/s₁}`` (k ≥ 3) and the non-growing part ``~ ε``, so the asymptotic slope is
approached from above.

**p ≥ 2.** The same energy, with the field by ``jax.grad``; channels decouple (each
``(W_β, a_β)`` sees only its own terms), so like the two-layer network
(docs/theory/effective-dynamics.md#two-layer) every channel has its own blow-up time, solved
as an ensemble. (The model also evaluates a non-smooth leading part, but
:class:`effdyn.kinds.cnn.CNN` refuses one: its field has a kink for every image, position and
kernel, and the adaptive solver crawls.)

:class:`effdyn.kinds.cnn.CNN` wires these into ``effdyn predict``: the contract's keys plus ``u1``,
``v1``, ``singular_values``, ``gap``, ``misalignment`` (p = 1).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._jax import in_float64
from ..losses import get_loss
from ..symbolic.activation import Activation, S
from ..symbolic.bridge import sympy_to_jax

Patches = Float[Array, "n J D"]  # noqa: F722
Correlation = Float[np.ndarray, "D J"]  # noqa: F722
Kernels = Float[np.ndarray, "C D"]  # noqa: F722
Readout = Float[np.ndarray, "C J"]  # noqa: F722


# ---------------------------------------------------------------------------------------------
# Data: the patch correlation Z and its top singular pair


def patch_correlation(patches: np.ndarray, y: np.ndarray) -> Correlation:
    """``Z = (1/n) Σ_i y_i P(x̃_i)ᵀ``, shape ``(D, J)``: the CNN's target correlation.

    Args:
        patches: ``(n, J, D)`` patch matrices (:meth:`~effdyn.problem.Problem.patches`).
        y: ``(n,)`` or ``(n, 1)`` scalar targets.
    """
    patches = np.asarray(patches, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    return np.einsum("i,ijd->dj", y, patches) / len(y)


def kernel_direction(z: Correlation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(u₁, v₁, s)``: the top singular pair of ``Z`` and all singular values (descending).

    Sign convention (deterministic): the largest-magnitude entry of ``u₁`` is positive, and
    ``v₁ = Zᵀu₁/s₁`` (so ``u₁ᵀ Z v₁ = s₁ > 0``).
    """
    z = np.asarray(z, dtype=np.float64)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    u1 = u[:, 0] * (1.0 if u[np.argmax(np.abs(u[:, 0])), 0] >= 0 else -1.0)
    v1 = z.T @ u1 / s[0] if s[0] > 0 else np.zeros(z.shape[1])
    return u1, v1, s


def linear_solution(
    z: Correlation, c: float, w1: Kernels, w2: Readout, t: float
) -> tuple[np.ndarray, np.ndarray]:
    """The exact solution ``(W1(t), W2(t))`` of the p = 1 field ``W1' = c W2 Zᵀ``,
    ``W2' = c W1 Z`` from ``(W1, W2)`` at ``t = 0`` (module docstring; float64)."""
    u, s, vt = np.linalg.svd(np.asarray(z, dtype=np.float64), full_matrices=False)
    v = vt.T
    ch, sh = np.cosh(c * s * t), np.sinh(c * s * t)
    w1u, w2v = w1 @ u, w2 @ v
    w1_t = (w1u * ch + w2v * sh) @ u.T + w1 - w1u @ u.T
    w2_t = (w1u * sh + w2v * ch) @ v.T + w2 - w2v @ v.T
    return w1_t, w2_t


def kernel_misalignment(w1: Kernels, u1: np.ndarray) -> np.ndarray:
    """``sin∠(W_β, ±u₁) = |W_β − (W_β·û₁)û₁| / |W_β|`` for each kernel (row of ``W1``).

    Computed from the orthogonal component, not as ``√(1 − cos²)``, which loses every digit
    below ``~1e-8``. NaN for a zero row.
    """
    w1 = np.asarray(w1, dtype=np.float64)
    u = np.asarray(u1, dtype=np.float64) / np.linalg.norm(u1)
    orthogonal = w1 - np.outer(w1 @ u, u)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.linalg.norm(orthogonal, axis=1) / np.linalg.norm(w1, axis=1)


# ---------------------------------------------------------------------------------------------
# The leading-order model on flat vectors (the interface of effdyn.dynamics.model)


class CNNEffectiveModel(eqx.Module):
    """Field ``∇E``, energy ``E`` and leading-order loss ``R_q`` of a two-layer CNN on flat
    vectors ``θ = (vec W1, vec W2)`` — the interface the solvers of
    :mod:`effdyn.dynamics.blowup` and :mod:`effdyn.dynamics.ensemble` use.

    ``coefficient`` is ``c_1`` when the leading part is linear: the field and energy then use
    ``Z`` only (``E = c_1⟨W2, W1 Z⟩_F``), and the loss one product with the flattened
    patches (``f_q(x̃_i) = c_1⟨P_i, W2ᵀW1⟩_F``). Otherwise ``template`` is ``φ`` and the field
    is ``jax.grad`` of ``E = ⟨y ⟨W2, φ(W1 P_iᵀ)⟩_F⟩``.
    """

    patches: jax.Array
    y: jax.Array
    z: jax.Array
    shapes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    field_degree: int = eqx.field(static=True)
    coefficient: float | None = eqx.field(static=True)
    template: object = eqx.field(static=True)
    labels: jax.Array | None = None
    loss_name: str = eqx.field(static=True, default="mse")

    def unravel(self, flat: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Flat vector → ``(W1, W2)`` (row-major blocks)."""
        (c, d), (_, j) = self.shapes
        return flat[: c * d].reshape(c, d), flat[c * d : c * d + c * j].reshape(c, j)

    def output(self, params) -> jax.Array:
        """``f_q(x̃_i) = ⟨W2, φ(W1 P_iᵀ)⟩_F`` for every sample, shape ``(n,)``."""
        w1, w2 = params
        if self.coefficient is not None:
            # Linear: f_q = c ⟨P_i, W2ᵀW1⟩_F, one matrix-vector product over the data.
            n = self.patches.shape[0]
            return self.coefficient * (self.patches.reshape(n, -1) @ (w2.T @ w1).reshape(-1))
        return jnp.einsum("ijb,bj->i", self.template(self.patches @ w1.T), w2)

    def energy(self, flat: jax.Array) -> jax.Array:
        w1, w2 = self.unravel(flat)
        if self.coefficient is not None:
            return self.coefficient * jnp.sum(w2 * (w1 @ self.z))
        return jnp.mean(self.y * self.output((w1, w2)))

    def field(self, flat: jax.Array) -> jax.Array:
        if self.coefficient is not None:
            w1, w2 = self.unravel(flat)
            c = self.coefficient
            return ravel_pytree((c * w2 @ self.z.T, c * w1 @ self.z))[0]
        return jax.grad(self.energy)(flat)

    def loss(self, flat: jax.Array) -> jax.Array:
        """The training loss of the leading-order output ``f_q`` (docs/theory/losses.md)."""
        if self.loss_name != "mse":
            out = self.output(self.unravel(flat))[:, None]
            return get_loss(self.loss_name).mean(out, self.labels)
        residual = self.output(self.unravel(flat)) - self.y
        return 0.5 * jnp.mean(residual**2)


@functools.lru_cache(maxsize=32)
def _template(act: Activation):
    return sympy_to_jax(act.template(S), S)


@in_float64
def cnn_effective_model(
    activation: Activation,
    patches: np.ndarray,
    y: np.ndarray,
    channels: int,
    loss: str = "mse",
) -> CNNEffectiveModel:
    """Bind the leading-order CNN with ``channels`` kernels to data ``(P(x̃_i), y_i)``.

    Args:
        activation: the analysed activation (its leading part sets the field).
        patches: ``(n, J, D)`` patch matrices.
        y: ``(n,)`` or ``(n, 1)`` targets (labels ``±1`` for the margin losses).
        channels: number of kernels (rows of ``W1`` and ``W2``).
        loss: the training loss; the field uses its effective target ``ỹ = −∂ℓ(0, y)``
            in place of ``y`` (docs/theory/losses.md#leading-order-energy) and the loss
            of ``f_q`` is the real one.
    """
    patches = np.asarray(patches, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64).reshape(-1, 1)
    y = get_loss(loss).effective_target(labels, 1).reshape(-1)
    _, j, d = patches.shape
    linear = activation.smooth and activation.degree == 1
    return CNNEffectiveModel(
        patches=jnp.asarray(patches),
        y=jnp.asarray(y),
        z=jnp.asarray(patch_correlation(patches, y)),
        shapes=((channels, d), (channels, j)),
        field_degree=activation.degree,
        coefficient=float(activation.coefficient) if linear else None,
        template=None if linear else _template(activation),
        labels=jnp.asarray(labels),
        loss_name=loss,
    )
