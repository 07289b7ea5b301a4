"""A study: what a science module hands the sweep engine (its declaration and its evaluator).

The engine (:func:`effdyn.sweeps.run.run_sweep`) runs a :class:`Study` into a resumable store
and knows nothing else about it: the science module (for phase diagrams :mod:`effdyn.phase`,
docs/theory/phase-diagrams.md) declares

- ``spec`` — a :class:`~effdyn.sweeps.spec.SweepSpec`: the kind, the grid (dims with values
  and dtypes), the result fields and the options that define the results;
- ``run_points(points) -> list[dict]`` — one result dict per point (numbers per field, and
  ``"error"``: ``None`` or a one-line message); with Dask it is pickled to the workers, so a
  module-level function or a ``functools.partial`` of one;
- ``batch_key(point)`` — points with equal keys are evaluated together in one call (e.g. one
  ``jax.vmap``-ed run); ``None``: every point may share a batch;
- ``fingerprint`` — JSON of whatever else defines the results (the base problem), recorded
  in the store so that another problem is not mixed into old results.

    >>> import functools
    >>> from effdyn.sweeps.spec import Dim, Field, SweepSpec
    >>> def squares(points):
    ...     return [{"y": p["x"] ** 2, "error": None} for p in points]
    >>> study = Study(SweepSpec("demo", (Dim("x", (1, 2, 3)),), (Field("y"),)), squares)
    >>> study.run_points(study.spec.points()[:1])
    [{'y': 1.0, 'error': None}]
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from .spec import SweepSpec


@dataclass(frozen=True)
class Study:
    """A science module's sweep: its declaration (``spec``) and how to evaluate its points."""

    spec: SweepSpec
    run_points: Callable[[list[dict]], Sequence[dict]]
    batch_key: Callable[[dict], Hashable] | None = None
    fingerprint: str | None = None
