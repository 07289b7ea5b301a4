"""JAX's persistent compilation cache for effdyn's entry points
(docs/precision.md#compilation-cache).

Every ``effdyn`` command turns on JAX's persistent compilation cache before it compiles
anything, so that a second process skips XLA's compilation of the functions an earlier one
compiled; and keeps the blow-up solvers, traced and lowered, as ``jax.export`` artifacts in
its ``exported/`` subfolder (:mod:`effdyn.dynamics.aot`), so that a second process does not
trace them again either. The folder is

- ``$EFFDYN_CACHE_DIR`` when set (``EFFDYN_CACHE_DIR=off`` disables the cache);
- otherwise ``$XDG_CACHE_HOME/effdyn/jax`` (``~/.cache/effdyn/jax`` when ``XDG_CACHE_HOME`` is
  not set);
- a cache folder the user gave JAX itself (``JAX_COMPILATION_CACHE_DIR``) is left alone.

A folder that cannot be created or written is a one-line warning on stderr and the command
runs without the cache: never a failure. The cache only stores compiled executables keyed on
the computation, so results are identical with and without it (a test).

From Python the cache is off unless you call :func:`enable_compilation_cache` (effdyn does not
change JAX's global settings on import).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ENV = "EFFDYN_CACHE_DIR"
"""The environment variable naming the cache folder (``off`` disables it)."""
OFF = ("off", "0", "none", "false", "no")
"""Values of :data:`ENV` that disable the cache."""


def cache_dir() -> Path | None:
    """The cache folder effdyn would use, or None when :data:`ENV` disables it."""
    value = os.environ.get(ENV)
    if value is not None and value.strip().lower() in OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "effdyn" / "jax"


def enable_compilation_cache(warn=None) -> Path | None:
    """Turn on JAX's persistent compilation cache in :func:`cache_dir` (module doc).

    Every compiled function is kept, however fast it compiled (effdyn compiles many small
    functions, and their sum is what a user waits for). Returns the folder in use, or None
    (disabled, or unusable: then ``warn`` — by default a line on stderr — says why).
    """
    import jax

    warn = warn or _stderr
    given = os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir
    if given and os.environ.get(ENV) is None:
        return Path(given)  # the user's own JAX setting wins
    path = cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        warn(
            f"effdyn: warning: compilation cache folder {str(path)!r} is not usable "
            f"({reason}); running without it (set {ENV} to a writable folder, or to off)"
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from .dynamics import aot

    aot.enable(path)  # the solver's exported artifacts too: no tracing in a warm process
    return path


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


__all__ = ["ENV", "cache_dir", "enable_compilation_cache"]
