"""The training losses: one per-sample loss ``ℓ(f, y)`` per name, shared by every side.

``R(θ) = ⟨ℓ(f(x_i; θ), y_i)⟩`` (mean over samples) with (docs/theory/losses.md):

========================  =====================================  ====================
name                      ``ℓ(f, y)``                            labels ``y``
========================  =====================================  ====================
``mse`` (the default)     ``½‖f − y‖²``                          any real targets
``cross_entropy``         ``−log softmax(f)_y``                  classes ``0 … K−1``
``logistic``              ``log(1 + e^{−y f})``                  ``±1``
``exponential``           ``e^{−y f}``                           ``±1``
========================  =====================================  ====================

At small initialization only ``g = ∂ℓ/∂f`` at the output of the model with its small leaves
at zero, ``f_0``, enters the leading order: ``E = −⟨g · f_q⟩``
(docs/theory/losses.md#leading-order-energy). At ``f_0 = 0`` the *effective target*
``−g`` is ``y`` (mse), ``e_y − 1/K`` (cross-entropy), ``y/2`` (logistic) and ``y``
(exponential), so every built-in closed form written for ``⟨y · f_q⟩`` holds for any loss
with ``y`` replaced by :meth:`Loss.effective_target`.

Labels live in :class:`~effdyn.problem.DataSpec` as float arrays ``(n, 1)``;
:meth:`Loss.check_labels` refuses, with one line, labels that do not fit the loss.

Example::

    >>> import numpy as np
    >>> LOSSES["logistic"].effective_target(np.array([[1.0], [-1.0]]), 1)
    array([[ 0.5],
           [-0.5]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import EffdynError

__all__ = ["LOSSES", "LOSS_NAMES", "Loss", "get_loss"]


@dataclass(frozen=True)
class Loss:
    """One loss ``ℓ(f, y)``: per sample, on outputs ``f`` of shape ``(n, K)``."""

    name: str
    formula: str
    labels: str

    # -- the loss itself (JAX, traceable) -------------------------------------------------

    def per_sample(self, f, y):
        """``ℓ(f_i, y_i)`` for every sample, shape ``(n,)`` (JAX; ``y`` as stored)."""
        import jax
        import jax.numpy as jnp

        if self.name == "mse":
            r = f - y
            return 0.5 * jnp.sum(r * r, axis=-1)
        if self.name == "cross_entropy":
            classes = y[:, 0].astype(jnp.int32)
            picked = jnp.take_along_axis(f, classes[:, None], axis=-1)[:, 0]
            return jax.nn.logsumexp(f, axis=-1) - picked
        margin = jnp.sum(y * f, axis=-1)
        if self.name == "logistic":
            return jnp.logaddexp(0.0, -margin)
        return jnp.exp(-margin)

    def mean(self, f, y):
        """``R = ⟨ℓ(f_i, y_i)⟩``, the mean over samples (JAX)."""
        import jax.numpy as jnp

        return jnp.mean(self.per_sample(f, y))

    def output_gradient(self, f0, y):
        """``g_i = ∂ℓ(f, y_i)/∂f`` at ``f = f0_i``, shape ``(n, K)`` (per sample, no 1/n)."""
        import jax

        return jax.grad(lambda f: self.per_sample(f, y).sum())(f0)

    # -- closed forms at f_0 = 0 (numpy) ---------------------------------------------------

    def effective_target(self, y: np.ndarray, k: int) -> np.ndarray:
        """``−g`` at ``f_0 = 0`` as an ``(n, k)`` array: the target ``ỹ`` with
        ``E = ⟨ỹ · f_q⟩`` (docs/theory/losses.md#leading-order-energy)."""
        y = np.asarray(y, dtype=np.float64)
        if self.name == "cross_entropy":
            onehot = np.eye(k)[y[:, 0].astype(np.int64)]
            return onehot - 1.0 / k
        if self.name == "logistic":
            return 0.5 * y
        return np.array(y)

    def output_size(self, y: np.ndarray) -> int:
        """The output size the labels ask for: ``K = max + 1`` classes for cross-entropy,
        else the number of target columns."""
        y = np.asarray(y)
        if self.name == "cross_entropy":
            return int(np.max(y)) + 1
        return int(y.shape[1])

    def check_labels(self, y: np.ndarray, k: int | None = None) -> None:
        """Refuse labels that do not fit the loss (one line); ``k`` is the model's output
        size where known (cross-entropy classes must lie in ``0 … k−1``)."""
        y = np.asarray(y, dtype=np.float64)
        if self.name == "mse":
            return
        if y.ndim != 2 or y.shape[1] != 1:
            raise EffdynError(
                f"loss {self.name!r} needs one label per sample (y of shape (n,)), "
                f"got y of shape {y.shape}"
            )
        if self.name == "cross_entropy":
            bad = (y != np.round(y)) | (y < 0)
            if bad.any():
                i = int(np.flatnonzero(bad.ravel())[0])
                raise EffdynError(
                    f"loss 'cross_entropy' needs integer class labels 0..K-1; y[{i}] = "
                    f"{y.ravel()[i]:g} is not one"
                )
            if k is not None and int(y.max()) >= k:
                raise EffdynError(
                    f"loss 'cross_entropy': label {int(y.max())} does not fit a model with "
                    f"{k} outputs (classes 0..{k - 1})"
                )
            if k is not None and k < 2:
                raise EffdynError(
                    "loss 'cross_entropy' needs at least 2 classes (a model with K >= 2 outputs)"
                )
            return
        bad = np.abs(y) != 1.0
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            raise EffdynError(
                f"loss {self.name!r} needs labels y = +1 or -1; y[{i}] = {y.ravel()[i]:g} is not"
            )
        if k is not None and k != 1:
            raise EffdynError(
                f"loss {self.name!r} needs a model with one output (the margin y·f); "
                f"this one has {k}"
            )


LOSSES: dict[str, Loss] = {
    "mse": Loss("mse", "½‖f − y‖²", "real targets"),
    "cross_entropy": Loss("cross_entropy", "−log softmax(f)_y", "integer classes 0..K-1"),
    "logistic": Loss("logistic", "log(1 + exp(−y f))", "±1"),
    "exponential": Loss("exponential", "exp(−y f)", "±1"),
}
"""Every loss by its problem-file name (``[model] loss``)."""

LOSS_NAMES = tuple(LOSSES)


def get_loss(name: str) -> Loss:
    """The :class:`Loss` called ``name`` (one-line error naming the choices)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise EffdynError(
            f"unknown loss {name!r} (choose one of {', '.join(LOSS_NAMES)})"
        ) from None
