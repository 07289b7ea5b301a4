"""float64 for effdyn's own computations, scoped (docs/precision.md).

The theory side needs float64: in float32 the blow-up solver stalls before ``T*``
(docs/theory/blowup.md). effdyn never flips ``jax_enable_x64`` for the user's program.
Instead its entry points run inside JAX's scoped context ``jax.enable_x64(True)``
(:func:`float64`, or the decorator :func:`in_float64`): arrays and compiled functions built
inside are float64, and the user's setting is back as it was on return.

Arrays effdyn hands back are numpy arrays or float64 JAX arrays. Arithmetic on a float64 JAX
array *outside* the context follows the user's setting (JAX then computes in float32), so
convert with ``numpy.asarray`` first, or call effdyn's functions, which re-enter the
context themselves.

JAX keys its jit cache on the flag as well as on shapes and dtypes: a function compiled
inside the context is traced again when called outside it, and computes there in float32
(NumPy float64 inputs are first rounded to float32). So effdyn calls its compiled functions
inside the context. Entering the context *within* a trace that runs in float32 (a user's
own ``jit``/``grad`` around an effdyn function) is not safe: values made there are float64,
and JAX's later transformations of that trace, run outside the context, meet them with
float32 constants (a ``lax.mul`` dtype error under ``grad``). Functions that a user may call
inside their own traces enter the context only on concrete inputs, as the bridge does
(:mod:`effdyn.symbolic.bridge`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import jax
import jax.numpy as jnp
import numpy as np

F = TypeVar("F", bound=Callable)


def float64():
    """The scoped float64 context: ``with float64(): ...`` computes in float64."""
    return jax.enable_x64(True)


def in_float64(fn: F) -> F:
    """Decorate ``fn`` so that it runs (and traces) inside :func:`float64`.

    Called with concrete values (numpy arrays, Python numbers, JAX arrays), ``fn`` runs in
    the scoped float64 context. Called while JAX traces (inside a caller's ``jit``,
    ``vmap`` or ``grad``), it follows the trace: inside a float64 trace it simply runs; inside
    a float32 trace (the caller's ``jax_enable_x64`` is off) entering the context would mix
    float64 values into a float32 computation, so it refuses with a one-line
    :class:`~effdyn.errors.EffdynError` that says what to do instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if jax.config.jax_enable_x64:
            return fn(*args, **kwargs)
        if is_traced(args, kwargs):
            from .errors import EffdynError

            raise EffdynError(
                f"{fn.__module__}.{fn.__qualname__} computes in "
                "float64: call it directly (it compiles itself), or jit/vmap it inside "
                "`with jax.enable_x64(True):` (docs/precision.md)"
            )
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def is_traced(*trees) -> bool:
    """Whether any leaf of ``trees`` is a JAX tracer (we are inside a jit/vmap/grad)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def float64_on_concrete(fn: F) -> F:
    """Wrap a function effdyn hands back (a field, a network, a loss) so that it computes in
    float64 on concrete inputs, whatever the user's setting, and is plain JAX while JAX
    traces it.

    On concrete inputs the call runs inside :func:`float64` with every floating leaf cast to
    float64 (float32 inputs are widened, not recomputed in float32), and returns float64
    arrays. Inside a trace (the user's ``jit``/``grad``/``vmap``, or effdyn's own float64
    loops) it follows the trace's dtype: float64 inside effdyn, the user's precision inside a
    float32 trace of their own.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if is_traced(args, kwargs):
            return fn(*args, **kwargs)
        with jax.enable_x64(True):
            args, kwargs = _as_float64((args, kwargs))
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _as_float64(tree):
    """``tree`` with float64 leaves: arrays of another float dtype cast, Python numbers as
    floats, integer arrays left alone (call inside :func:`float64`, where a Python float is
    a float64 scalar)."""

    def cast(a):
        if isinstance(a, bool | int | float):
            return float(a)
        if (
            isinstance(a, np.ndarray | np.generic | jax.Array)
            and np.issubdtype(a.dtype, np.floating)
            and a.dtype != np.float64
        ):
            return jnp.asarray(a, dtype=jnp.float64)
        return a

    return jax.tree.map(cast, tree)
