"""JAX set-up shared by every module that computes with JAX.

The theory side runs in float64 (THEORY.md §3.2: in float32 the blow-up solver stalls before
``T*``), so any module that imports JAX calls :func:`enable_x64` first.
"""

import jax


def enable_x64() -> None:
    """Switch JAX to float64 (idempotent)."""
    jax.config.update("jax_enable_x64", True)
