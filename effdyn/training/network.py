"""The real fully connected network and its loss, as pure JAX functions (THEORY.md §1).

With parameters ``θ = (W1, …, WL)`` and inputs ``x̃`` (bias column LAST when ``bias``), the
network is

    f(x) = W_L σ_{L−1}( W_{L−1} σ_{L−2}( … σ_1(W_1 x̃) ) ),

one activation ``σ_l`` per hidden layer — the REAL activation (stable implementations for
the named ones, :func:`~effdyn.symbolic.bridge.activation_function`), not its leading
monomial. Rows are samples: a layer computes ``h = a @ Wᵀ``, so ``f(θ, x̃)`` is ``(n, d_out)``.
The loss is ``R(θ) = (1/2n) Σ_i |f(x_i) − y_i|²`` (with the ½ and the 1/n; PyTorch's
``MSELoss`` omits the ½ and so doubles every rate).

Example::

    >>> import numpy as np
    >>> f = network(["tanh(x)"])
    >>> params = (np.ones((3, 2)), np.ones((1, 3)))
    >>> f(params, np.array([[0.5, 1.0]])).shape
    (1, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._jax import enable_x64
from ..errors import EffdynError
from ..problem import Problem
from ..symbolic.activation import Activation, analyze_activation
from ..symbolic.bridge import activation_function

enable_x64()

# Shapes (jaxtyping; ruff reads the shape strings as forward references, hence the noqa).
Inputs = Float[Array, "n D"]  # noqa: F722  x̃, bias column last
Outputs = Float[Array, "n d_out"]  # noqa: F722
Scalar = Float[Array, ""]  # noqa: F722
Params = tuple[Float[Array, "m_out m_in"], ...]  # noqa: F722  (W1, …, WL)
Network = Callable[[Params, Inputs], Outputs]
Loss = Callable[[Params, Inputs, Outputs], Scalar]


def network(problem_or_activations: Problem | Sequence[str | Activation] | str) -> Network:
    """The fully connected network ``f(θ, x̃) = W_L σ_{L−1}(… σ_1(x̃ W_1ᵀ) …)`` as a JAX function.

    Args:
        problem_or_activations: a :class:`~effdyn.problem.Problem` of kind ``"fc"`` (its
            ``model.activations``), or the activations themselves, one per hidden layer
            (strings such as ``"tanh(x)"``, ``"xtanh"``, or analysed
            :class:`~effdyn.symbolic.activation.Activation` objects); a single string means
            one hidden layer (depth 2).

    Returns:
        A pure function ``f(params, xt)`` of ``params = (W1, …, WL)`` (``L`` = number of
        activations + 1) and ``xt`` of shape ``(n, D)``, returning ``(n, d_out)``.

    Raises:
        EffdynError: a CNN problem (not supported yet), an activation that cannot be
            analysed, or (when called) a parameter tuple of the wrong depth.
    """
    activations = _activations(problem_or_activations)
    sigmas = tuple(activation_function(a) for a in activations)
    depth = len(sigmas) + 1

    def f(params: Params, xt: Inputs) -> Outputs:
        if len(params) != depth:
            raise EffdynError(
                f"the network has depth {depth} ({depth - 1} activations) but got "
                f"{len(params)} weight matrices"
            )
        a = xt
        for w, sigma in zip(params[:-1], sigmas, strict=True):
            a = sigma(a @ w.T)  # rows = samples: h_i = W a_i
        return a @ params[-1].T

    return f


def loss_function(f: Network) -> Loss:
    """The mean squared loss ``R(θ, x̃, y) = (1/2n) Σ_i |f(θ, x̃_i) − y_i|²`` of a network ``f``.

    ``y`` is ``(n, d_out)``; the squared norm sums over outputs, the mean runs over samples.
    """

    def loss(params: Params, xt: Inputs, y: Outputs) -> Scalar:
        residual = f(params, xt) - y
        return 0.5 * jnp.mean(jnp.sum(residual * residual, axis=-1))

    return loss


def _activations(spec: Problem | Sequence[str | Activation] | str) -> tuple[Activation, ...]:
    if isinstance(spec, Problem):
        if spec.model.kind == "cnn":
            raise EffdynError("kind 'cnn' training is not supported yet")
        spec = spec.model.activations
    if isinstance(spec, str | Activation):
        spec = [spec]
    items = list(spec)
    if not items:
        raise EffdynError("a fully connected network needs at least one activation (depth ≥ 2)")
    return tuple(a if isinstance(a, Activation) else analyze_activation(a) for a in items)
