"""Compiled solves kept between processes: ``jax.export`` artifacts keyed by shape and settings.

JAX's persistent compilation cache (:mod:`effdyn.cache`) skips XLA's compilation in a second
process, but not the tracing that comes before it, and tracing diffrax's adaptive solver is
most of what a warm ``effdyn predict`` waits for (docs/precision.md#compilation-cache). This
module serializes the *traced and lowered* solve with :mod:`jax.export` next to the
compilation cache (``<cache>/exported/<key>.bin``), so a later process deserializes it and
calls it without tracing the solver at all.

The key is a SHA-256 over everything the lowered function depends on:

- the solve's name and the source of the module that defines it;
- the fingerprint of the model (:func:`fingerprint`): the jaxprs of its field, energy and loss
  on abstract inputs, with their constants' bytes, its static settings (field degree,
  shapes, loss), and the tree structure, shapes and dtypes of its arrays — so a change of
  activation, depth, width, loss or data *shape* is a new key, while new data *values* or a
  new initialization reuse the artifact (they are its arguments);
- the solver options and the extra settings the caller passes;
- the versions of Python, JAX, jaxlib, diffrax, equinox and optimistix, and the backend.

A missing, unreadable or stale artifact is simply rebuilt (and written again); a folder that
cannot be written leaves the solve running as before. With ``EFFDYN_CACHE_DIR=off``, or
where the command line has not enabled the cache (plain library use), nothing is exported:
the solve is the ordinary ``jit`` path. Results are identical either way (a test).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import platform
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

_ENABLED: dict[str, Path | None] = {"folder": None}
_CALLERS: dict[str, Callable | None] = {}
"""Per key, the deserialized export's jitted call (None: the computation is not exportable)."""
_VERSIONS: list[str] = []


def enable(folder: Path | None) -> None:
    """Keep exported solves in ``folder/exported`` (None: export nothing)."""
    _ENABLED["folder"] = None if folder is None else Path(folder) / "exported"


def enabled() -> bool:
    """Whether solves are exported and reused (:func:`enable` was given a folder)."""
    return _ENABLED["folder"] is not None


def fingerprint(model, probe_size: int) -> str:
    """A text that changes whenever the effective model's computation does (module doc).

    ``probe_size`` is the length of the flat state the field is evaluated on.
    """
    dynamic, static = eqx.partition(model, eqx.is_array)
    leaves, treedef = jax.tree.flatten(dynamic)
    avals = [jax.ShapeDtypeStruct(np.shape(x), x.dtype) for x in leaves]
    theta = jax.ShapeDtypeStruct((probe_size,), np.float64)
    # Static callables print with their address, which differs between processes; what they
    # compute is in the jaxprs below.
    layout = re.sub(r" at 0x[0-9a-fA-F]+", "", str(treedef))
    parts = [layout, repr([(a.shape, str(a.dtype)) for a in avals])]
    for name in ("field", "energy", "loss"):

        def probe(flat_leaves, th, name=name):
            m = eqx.combine(jax.tree.unflatten(treedef, flat_leaves), static)
            return getattr(m, name)(th)

        closed = jax.make_jaxpr(probe)(avals, theta)
        parts.append(name + ":" + str(closed.jaxpr))
        parts += [_array_digest(c) for c in closed.consts]
    for attr in ("shapes", "field_degree", "chain_coefficient", "loss_name"):
        parts.append(f"{attr}={getattr(model, attr, None)!r}")
    return "\n".join(parts)


def compiled(
    name: str, fn: Callable, model, arrays: tuple, *, settings: Any, module
) -> Callable | None:
    """A callable ``run(model, *arrays) -> dict`` of ``fn`` through a serialized export, or
    None when the computation cannot be exported (the caller then runs its ``jit`` path).

    The key (module doc) is computed once here, so a caller looping over chunks of one
    shape resolves it once and calls the result in the loop.

    Args:
        name: the solve's name (part of the key).
        fn: the traced computation ``fn(model, *arrays)``; returns a dict of arrays.
        model: the effective model (its arrays become the export's arguments).
        arrays: example array arguments (the initial states): their shapes and dtypes.
        settings: the solver options and any static settings (their ``repr`` is keyed).
        module: the name of the module defining ``fn``, or a tuple of the modules whose
            code it runs (their source is keyed).
    """
    dynamic, static = eqx.partition(model, eqx.is_array)
    leaves, treedef = jax.tree.flatten(dynamic)
    avals = [jax.ShapeDtypeStruct(np.shape(a), a.dtype) for a in (*leaves, *arrays)]
    key = _key(name, module, fingerprint(model, int(np.shape(arrays[0])[-1])), settings, avals)
    if key not in _CALLERS:
        exported = _load(key)
        if exported is None:

            def flat(*flat_args):
                m = eqx.combine(jax.tree.unflatten(treedef, flat_args[: len(leaves)]), static)
                return fn(m, *flat_args[len(leaves) :])

            exported = _export(flat, avals)
            if exported is not None:
                _store(key, exported)
        _CALLERS[key] = None if exported is None else jax.jit(exported.call)
    caller = _CALLERS[key]
    if caller is None:
        return None

    def run(model_now, *arrays_now):
        return caller(*jax.tree.leaves(eqx.filter(model_now, eqx.is_array)), *arrays_now)

    return run


def _export(flat: Callable, avals: list):
    """``jax.export`` of ``jax.jit(flat)``, or None when it cannot be exported.

    The solves call LAPACK (or cuSOLVER) kernels through custom calls — the QR factorization
    of the event root finder — which ``jax.export`` refuses by default because their ABI may
    change between jaxlib versions. The key holds the jaxlib version and the backend, so an
    artifact is only ever read back by the build that wrote it: those targets are allowed,
    by name, as the refusal lists them.
    """
    allowed: list = []
    for _ in range(8):
        try:
            return jax.export.export(jax.jit(flat), disabled_checks=allowed)(*avals)
        except Exception as err:  # noqa: BLE001 - anything unexportable: the jit path
            names = sorted(set(re.findall(r"custom_call @([A-Za-z0-9_.]+)\(", str(err))))
            new = [n for n in names if jax.export.DisabledSafetyCheck.custom_call(n) not in allowed]
            if "custom calls" not in str(err) or not new:
                return None
            allowed += [jax.export.DisabledSafetyCheck.custom_call(n) for n in new]
    return None


def _array_digest(value) -> str:
    array = np.asarray(value)
    return f"{array.dtype}{array.shape}:" + hashlib.sha256(array.tobytes()).hexdigest()


def _versions() -> list[str]:
    if not _VERSIONS:
        from importlib.metadata import version  # no import of the packages themselves

        _VERSIONS.extend(
            [
                platform.python_version(),
                *(version(p) for p in ("jax", "jaxlib", "diffrax", "equinox", "optimistix")),
                jax.default_backend(),
                str(jax.config.jax_enable_x64),
            ]
        )
    return _VERSIONS


@functools.cache
def _source_digest(names: tuple[str, ...]) -> str:
    source = "\n".join(inspect.getsource(sys.modules[n]) for n in names)
    return hashlib.sha256(source.encode()).hexdigest()


def _key(name, module, model_print, settings, args) -> str:
    names = (module,) if isinstance(module, str) else tuple(module)
    text = "\n".join(
        [
            name,
            _source_digest(names),
            model_print,
            repr(settings),
            repr([(tuple(a.shape), str(a.dtype)) for a in args]),
            *_versions(),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _path(key: str) -> Path | None:
    folder = _ENABLED["folder"]
    return None if folder is None else folder / f"{key}.bin"


def _load(key: str):
    path = _path(key)
    if path is None or not path.is_file():
        return None
    try:
        return jax.export.deserialize(bytearray(path.read_bytes()))
    except Exception:  # a truncated or foreign file: rebuild it
        return None


def _store(key: str, exported) -> None:
    path = _path(key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = exported.serialize()
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)  # atomic: a concurrent reader sees all or nothing
    except Exception:  # noqa: BLE001 - an unwritable folder, or no serializer: not kept
        pass
