"""Entry points that take a whole problem: the Python functions behind the commands."""

from __future__ import annotations

from .errors import EffdynError
from .problem import Problem
from .symbolic.derivation import Derivation, derive


def derive_problem(problem: Problem) -> Derivation:
    """Derive the leading-order dynamics of the network a problem file describes (a
    :class:`~effdyn.symbolic.cnn.CNNDerivation` for ``kind = "cnn"``)."""
    if problem.model.kind == "cnn":
        from .symbolic.cnn import derive_cnn

        return derive_cnn(problem.model.activations[0])
    if problem.model.kind != "fc":
        raise EffdynError(
            f"{problem.source}: derive handles kind = 'fc' and 'cnn' networks, "
            f"not {problem.model.kind!r}"
        )
    return derive(list(problem.model.activations), problem.model.depth)
