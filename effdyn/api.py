"""Entry points that take a whole problem: the Python functions behind the commands."""

from __future__ import annotations

from .kinds import kind_of
from .problem import Problem
from .symbolic.derivation import Derivation


def derive_problem(problem: Problem) -> Derivation:
    """Derive the leading-order dynamics of the network a problem file describes (a
    :class:`~effdyn.symbolic.cnn.CNNDerivation` for ``kind = "cnn"``), through its
    :class:`~effdyn.kinds.base.ModelKind` (docs/commands.md#derive)."""
    return kind_of(problem).derivation(problem)
