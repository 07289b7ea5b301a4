"""Entry points that take a whole problem: the Python functions behind the commands."""

from __future__ import annotations

from .errors import EffdynError
from .problem import Problem
from .symbolic.derivation import Derivation, derive


def derive_problem(problem: Problem) -> Derivation:
    """Derive the leading-order dynamics of the network a problem file describes."""
    if problem.model.kind != "fc":
        raise EffdynError(
            f'{problem.source}: derive handles kind = "fc" networks; '
            f"kind = {problem.model.kind!r} is not supported yet"
        )
    return derive(list(problem.model.activations), problem.model.depth)
