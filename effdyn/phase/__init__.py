"""Phase diagrams of the dynamical regimes at small initialization.

docs/theory/phase-diagrams.md: the two-layer diagram (``#two-layer``; Luo et al. 2021, arXiv
2007.07497), the three-layer one (``#three-layer``; Zhou et al. 2022, arXiv 2205.12101) and
the order parameter RD (``#order-parameter``). This package is the science; the sweep engine
(:mod:`effdyn.sweeps`) receives its declaration (a :class:`~effdyn.sweeps.study.Study`) and
stores whatever it is given.

- :mod:`~effdyn.phase.diagrams` — the diagrams, declared once: kinds, depths, exponent keys,
  layers and result fields;
- :mod:`~effdyn.phase.sweep_file` — sweep files → :class:`~effdyn.sweeps.study.Study`
  (``kind`` optional: inferred from depth and keys);
- :mod:`~effdyn.phase.evaluate` — :func:`point_shape` (the batching key),
  :func:`evaluate_points` (train a batch, measure RD per layer), :func:`slopes`;
- :mod:`~effdyn.phase.regimes` — batched training, RD, slope fits, :func:`theory_regime`;
- :mod:`~effdyn.phase.plot` — :func:`plot_phase_diagram`;
- :mod:`~effdyn.phase.diagram` — :func:`phase_diagram`, the body of ``effdyn phase-diagram``.
"""

from __future__ import annotations

from . import three_layer, two_layer
from .diagram import phase_diagram
from .diagrams import DIAGRAMS, KINDS, Diagram
from .evaluate import evaluate_points, point_shape, slopes
from .plot import plot_phase_diagram
from .regimes import measured_regime, theory_regime
from .sweep_file import load_sweep, phase_study, sweep_from_table

__all__ = [
    "DIAGRAMS",
    "KINDS",
    "Diagram",
    "evaluate_points",
    "load_sweep",
    "measured_regime",
    "phase_diagram",
    "phase_study",
    "plot_phase_diagram",
    "point_shape",
    "slopes",
    "sweep_from_table",
    "theory_regime",
    "three_layer",
    "two_layer",
]
