"""Network kinds behind one interface (docs/extending.md#adding-a-model-kind).

:func:`kind_of` maps a problem to its :class:`~effdyn.kinds.base.ModelKind`; ``predict``
dispatches on it once. Registering a kind = one module with a ``ModelKind`` subclass and
one entry in :data:`KINDS`.
"""

from __future__ import annotations

from ..errors import EffdynError
from .auto import Automatic
from .base import (
    Measurements,
    ModelKind,
    RealNetwork,
    Units,
    UnitSolve,
    build_warnings,
    contract_keys,
    derive_keys,
    solve_one,
    solve_units,
)
from .cnn import CNN
from .diagonal import Diagonal
from .fc import FullyConnected

BUILTIN: dict[str, ModelKind] = {"fc": FullyConnected(), "cnn": CNN()}
"""The built-in architectures, derived symbolically."""
AUTOMATIC = Automatic(BUILTIN)
"""The automatic engine's kind (docs/theory/automatic.md)."""
KINDS: dict[str, ModelKind] = {**BUILTIN, "jax": AUTOMATIC, "diagonal": Diagonal()}
"""``kind`` in a problem file → its :class:`ModelKind`."""


def kind_of(problem) -> ModelKind:
    """The :class:`ModelKind` of ``problem`` (one-line error for an unknown kind).

    A built-in kind with per-leaf ``[init] exponents`` goes through the automatic engine
    (some leaves held at O(1): docs/user-models.md#exponents)."""
    if problem.model.kind in BUILTIN and problem.init.exponents is not None:
        return AUTOMATIC
    try:
        return KINDS[problem.model.kind]
    except KeyError:
        raise EffdynError(
            f"{problem.source}: kind {problem.model.kind!r} is not one of "
            f"{', '.join(map(repr, KINDS))}"
        ) from None


__all__ = [
    "AUTOMATIC",
    "Automatic",
    "BUILTIN",
    "CNN",
    "Diagonal",
    "KINDS",
    "Measurements",
    "FullyConnected",
    "ModelKind",
    "RealNetwork",
    "UnitSolve",
    "Units",
    "build_warnings",
    "contract_keys",
    "derive_keys",
    "kind_of",
    "solve_one",
    "solve_units",
]
