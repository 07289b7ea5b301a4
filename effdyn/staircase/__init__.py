"""Loss staircases, saddle to saddle (docs/theory/staircases.md).

Training from a small initialization goes down a staircase: a plateau near a saddle, a drop,
a plateau near the next saddle, learning one more mode, coordinate or unit each time.
:func:`stages` predicts it for a problem through its model kind
(:meth:`~effdyn.kinds.base.ModelKind.stages`), with the method that applies:

- ``"exact-modes"``: a deep linear network on whitened data from a spectral balanced
  initialization, mode by mode (:mod:`effdyn.staircase.modes`);
- ``"pesme-flammarion"``: a diagonal linear network in the limit α → 0
  (:mod:`effdyn.staircase.diagonal`);
- ``"chained"``: the leading-order escape around each saddle, chained.

:func:`measured_stages` reads the same staircase off a training loss curve.
"""

from __future__ import annotations

from .._jax import in_float64
from .measured import measured_stages
from .result import METHODS, TIME_UNITS, Stage, Staircase

__all__ = ["METHODS", "TIME_UNITS", "Stage", "Staircase", "measured_stages", "stages"]


@in_float64
def stages(problem, opts=None, *, progress: bool = False) -> Staircase:
    """The predicted staircase of ``problem`` (module doc).

    Raises:
        EffdynError: a model kind or setting where no method applies (one line).
    """
    from ..kinds import kind_of

    return kind_of(problem).stages(problem, opts, progress=progress)
