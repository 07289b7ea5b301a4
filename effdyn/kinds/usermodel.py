"""Loading a user's JAX model from a problem file (``[model] kind = "jax"``).

The problem names a Python file and two functions in it (docs/user-models.md):

- ``apply(params, x)``: the network on a batch, ``x`` of shape ``(n, …)``, returning
  ``(n,)`` or ``(n, K)``;
- ``template()``: no arguments, returns a pytree of arrays (dicts, lists, tuples, an
  Equinox module partitioned with ``eqx.partition(model, eqx.is_array)``) whose structure,
  shapes and names define the parameters.

**Loading the file runs the user's own code**, with the rights of the effdyn process: it is
imported like any Python module. Nothing else in a problem file is executed (activations are
parsed, never evaluated).

A leaf's *name* is its key path joined by ``/``: ``{"attn": {"W_Q": …}}`` gives
``attn/W_Q``, a list index gives its number, an Equinox field its attribute name
(``layers/0/weight``). Names appear in JSON and in ``[init] path`` npz files.

Every failure is one :class:`~effdyn.errors.ProblemError` line naming the file and what is
wrong; the model's own exceptions are reported with the line of the user's file they came
from.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ProblemError

__all__ = ["UserModel", "leaf_name", "load_user_model", "user_frame"]


@dataclass(frozen=True, eq=False)
class UserModel:
    """A loaded user model: its functions, parameter layout and leaf names.

    Attributes:
        path: the model file (absolute).
        apply: ``apply(params, x)`` as the user wrote it.
        template: the template pytree (numpy float64 leaves).
        treedef: its structure (to rebuild a pytree from leaves).
        names: leaf names in flatten order (key paths joined by ``/``).
        shapes: leaf shapes in flatten order.
    """

    path: str
    apply: Any
    template: Any
    treedef: Any
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    def unflatten(self, leaves) -> Any:
        """The pytree with these leaves (flatten order)."""
        return self.treedef.unflatten(list(leaves))

    def flatten(self, params) -> list:
        """The leaves of ``params`` in flatten order (checked against the template)."""
        import jax

        leaves, treedef = jax.tree_util.tree_flatten(params)
        if treedef != self.treedef:
            raise ProblemError(
                f"{self.path}: parameters do not have the template's structure "
                f"({treedef} vs {self.treedef})"
            )
        return leaves


def leaf_name(path) -> str:
    """A key path as ``a/b/0``: dict keys, sequence indices and attribute names."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def user_frame(err: BaseException, path: str) -> str:
    """``" (model.py line 12)"`` for the innermost frame of ``err`` in the user's file."""
    found = ""
    for frame in traceback.extract_tb(err.__traceback__):
        if Path(frame.filename).resolve() == Path(path).resolve():
            found = f" ({Path(path).name} line {frame.lineno})"
    return found


def _module(path: Path, source: str):
    name = f"effdyn_user_model_{abs(hash(str(path)))}"
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ProblemError(f"{source}: [model] file {str(path)!r} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except ProblemError:
        raise
    except SyntaxError as err:
        raise ProblemError(
            f"{source}: [model] file {str(path)!r} has a syntax error (line {err.lineno}): "
            f"{err.msg}"
        ) from None
    except Exception as err:  # the user's module raised while being imported
        where = user_frame(err, str(path))
        raise ProblemError(
            f"{source}: [model] importing {path.name} raised {type(err).__name__}{where}: "
            f"{_one_line(err)}"
        ) from None
    return module


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _function(module, name: str, key: str, path: Path, source: str):
    fn = getattr(module, name, None)
    if fn is None:
        raise ProblemError(f"{source}: [model] {key} = {name!r}: {path.name} defines no {name!r}")
    if not callable(fn):
        raise ProblemError(
            f"{source}: [model] {key} = {name!r}: {path.name}'s {name!r} is not a function"
        )
    return fn


def load_user_model(path: Path, apply: str, params: str, source: str) -> UserModel:
    """Import the model file (running the user's code) and read its parameter template.

    Raises:
        ProblemError: the file cannot be imported, a function is missing, the template
            raises, is empty, or is not a pytree of floating-point arrays (one line).
    """
    import jax

    path = Path(path)
    module = _module(path, source)
    apply_fn = _function(module, apply, "apply", path, source)
    template_fn = _function(module, params, "params", path, source)
    try:
        tree = template_fn()
    except TypeError as err:
        where = user_frame(err, str(path))
        raise ProblemError(
            f"{source}: [model] params = {params!r} must take no arguments and return a "
            f"pytree of arrays; calling it raised TypeError{where}: {_one_line(err)}"
        ) from None
    except Exception as err:
        where = user_frame(err, str(path))
        raise ProblemError(
            f"{source}: [model] params = {params!r} raised {type(err).__name__}{where}: "
            f"{_one_line(err)}"
        ) from None
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    if not with_path:
        raise ProblemError(
            f"{source}: [model] params = {params!r} returned {_show(tree)}: a pytree with no "
            "arrays (it must hold the parameters as arrays)"
        )
    names, leaves = [], []
    for key_path, leaf in with_path:
        name = leaf_name(key_path) or "<root>"
        if not isinstance(leaf, np.ndarray | jax.Array):
            raise ProblemError(
                f"{source}: [model] params = {params!r} is not a pytree of arrays: leaf "
                f"{name!r} is {type(leaf).__name__} {_show(leaf)}"
            )
        array = np.asarray(leaf)
        if array.dtype.kind != "f":
            raise ProblemError(
                f"{source}: [model] params = {params!r}: leaf {name!r} has dtype "
                f"{array.dtype}; parameters must be floating-point arrays"
            )
        if array.size == 0:
            raise ProblemError(f"{source}: [model] params = {params!r}: leaf {name!r} is empty")
        names.append(name)
        leaves.append(np.array(array, dtype=np.float64))
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ProblemError(f"{source}: [model] params = {params!r}: two leaves are named {dup!r}")
    return UserModel(
        path=str(path),
        apply=apply_fn,
        template=treedef.unflatten(leaves),
        treedef=treedef,
        names=tuple(names),
        shapes=tuple(tuple(int(n) for n in leaf.shape) for leaf in leaves),
    )


def _show(value) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
