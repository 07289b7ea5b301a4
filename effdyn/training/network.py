"""The real networks and their loss, as pure JAX functions
(docs/theory/conventions.md, docs/theory/cnn.md).

Fully connected: with parameters ``θ = (W1, …, WL)`` and inputs ``x̃`` (bias column LAST
when ``bias``), the network is

    f(x) = W_L σ_{L−1}( W_{L−1} σ_{L−2}( … σ_1(W_1 x̃) ) ),

one activation ``σ_l`` per hidden layer — the REAL activation (stable implementations for
the named ones, :func:`~effdyn.symbolic.bridge.activation_function`), not its leading
monomial. Rows are samples: a layer computes ``h = a @ Wᵀ``, so ``f(θ, x̃)`` is ``(n, d_out)``.

Two-layer CNN (``kind = "cnn"``, one convolution, stride ``s``, no padding, then a linear
read-out of every channel's map): its input is the stack of im2col patch matrices
``P(x̃_i)`` (``(n, positions, input_dim)``, :meth:`~effdyn.problem.Problem.patches`), and

    f(x_i) = Σ_β Σ_j W2[β, j] σ(P_j(x̃_i) · W1[β]),

``W1`` = the flattened kernels (channels × input_dim), ``W2`` = the read-out weights
(channels × positions). It is the depth-2 network above with its first layer applied at
every position (shared weights) and one read-out weight per (channel, position); so
:func:`network` computes it whenever the input has three axes ``(n, positions, D)`` — the
same function serves both kinds, and the training loop needs no CNN branch. A convolution
computed this way equals ``jax.lax.conv_general_dilated`` (tests/test_cnn.py checks it).

The loss is ``R(θ) = (1/2n) Σ_i |f(x_i) − y_i|²`` (with the ½ and the 1/n; PyTorch's
``MSELoss`` omits the ½ and so doubles every rate).

Example::

    >>> import numpy as np
    >>> f = network(["tanh(x)"])
    >>> params = (np.ones((3, 2)), np.ones((1, 3)))
    >>> f(params, np.array([[0.5, 1.0]])).shape
    (1, 1)
    >>> patches = np.ones((4, 5, 2))  # 4 images, 5 positions, 2 = kernel entries + bias
    >>> f((np.ones((3, 2)), np.ones((3, 5))), patches).shape
    (4, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._jax import float64_on_concrete
from ..errors import EffdynError
from ..problem import Problem
from ..symbolic.activation import Activation, analyze_activation
from ..symbolic.bridge import activation_function

# Shapes (jaxtyping; ruff reads the shape strings as forward references, hence the noqa).
Inputs = Float[Array, "n D"] | Float[Array, "n J D"]  # noqa: F722  x̃ or patches P(x̃)
Outputs = Float[Array, "n d_out"]  # noqa: F722
Scalar = Float[Array, ""]  # noqa: F722
Params = tuple[Float[Array, "m_out m_in"], ...]  # noqa: F722  (W1, …, WL)
Network = Callable[[Params, Inputs], Outputs]
Loss = Callable[[Params, Inputs, Outputs], Scalar]


def network(problem_or_activations: Problem | Sequence[str | Activation] | str) -> Network:
    """The network ``f(θ, x̃) = W_L σ_{L−1}(… σ_1(x̃ W_1ᵀ) …)`` as a JAX function.

    Args:
        problem_or_activations: a :class:`~effdyn.problem.Problem` (its
            ``model.activations``), or the activations themselves, one per hidden layer
            (strings such as ``"tanh(x)"``, ``"xtanh"``, or analysed
            :class:`~effdyn.symbolic.activation.Activation` objects); a single string means
            one hidden layer (depth 2).

    Returns:
        A pure function ``f(params, xt)`` of ``params = (W1, …, WL)`` (``L`` = number of
        activations + 1), returning ``(n, d_out)``. With ``xt`` of shape ``(n, D)`` it is
        the fully connected network; with patches ``(n, J, D)`` (see
        :func:`network_inputs`) the two-layer CNN ``Σ_{β,j} W2[β, j] σ(P_j · W1[β])``,
        which needs depth 2 and ``W2`` of shape ``(channels, J)``. Called on concrete
        arrays it computes in float64 whatever the caller's ``jax_enable_x64``; inside a
        caller's ``jit``/``grad`` it follows the trace (docs/precision.md).

    Raises:
        EffdynError: an activation that cannot be analysed, or (when called) a parameter
            tuple of the wrong depth, or patches given to a network deeper than 2.
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
        if xt.ndim == 3:
            if depth != 2:
                raise EffdynError(
                    f"patches (n, positions, D) are the input of a two-layer CNN; this "
                    f"network has depth {depth}"
                )
            # h[i, j, β] = P_j(x̃_i)·W1[β]: the kernel at every position (docs/theory/cnn.md).
            h = sigmas[0](xt @ params[0].T)
            return jnp.einsum("ijb,bj->i", h, params[1])[:, None]
        a = xt
        for w, sigma in zip(params[:-1], sigmas, strict=True):
            a = sigma(a @ w.T)  # rows = samples: h_i = W a_i
        return a @ params[-1].T

    return float64_on_concrete(f)


def loss_function(f: Network) -> Loss:
    """The mean squared loss ``R(θ, x̃, y) = (1/2n) Σ_i |f(θ, x̃_i) − y_i|²`` of a network ``f``.

    ``y`` is ``(n, d_out)``; the squared norm sums over outputs, the mean runs over samples.
    """

    def loss(params: Params, xt: Inputs, y: Outputs) -> Scalar:
        residual = f(params, xt) - y
        return 0.5 * jnp.mean(jnp.sum(residual * residual, axis=-1))

    return float64_on_concrete(loss)


def first_layer_preactivation(params: Params, xt: Inputs):
    """``x̃ W1ᵀ`` (or ``P(x̃_i) W1ᵀ`` for patches): the first layer's pre-activations, whose
    largest absolute entry ends the initial stage (docs/theory/measuring.md#initial-stage)."""
    return xt @ params[0].T


def network_inputs(problem: Problem) -> np.ndarray:
    """What :func:`network` takes for ``problem``: ``x̃`` ``(n, input_dim)`` for a fully
    connected network, the patch matrices ``P(x̃_i)`` ``(n, positions, input_dim)`` for a
    CNN (float64)."""
    return problem.patches() if problem.model.kind == "cnn" else problem.inputs()


def _activations(spec: Problem | Sequence[str | Activation] | str) -> tuple[Activation, ...]:
    if isinstance(spec, Problem):
        spec = spec.model.activations
    if isinstance(spec, str | Activation):
        spec = [spec]
    items = list(spec)
    if not items:
        raise EffdynError("a fully connected network needs at least one activation (depth ≥ 2)")
    return tuple(a if isinstance(a, Activation) else analyze_activation(a) for a in items)
