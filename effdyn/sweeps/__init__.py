"""The sweep engine: a science module's study over a grid, run by an executor into a store.

The engine knows no science (docs/problem-files.md#sweep): a science module declares a
:class:`Study` — its grid (:class:`Dim` s), result fields (:class:`Field` s), an evaluator and
a batching key — and the engine stores whatever it is given.

- :mod:`~effdyn.sweeps.spec`: :class:`Dim`, :class:`Field`, :class:`SweepSpec`, the points
  and their ids, :func:`values_of` (validating a table's lists);
- :mod:`~effdyn.sweeps.study`: :class:`Study`, the declaration plus the evaluator;
- :mod:`~effdyn.sweeps.store`: the result store (xarray Dataset as zarr), written point by
  point and safe to kill; statuses are :class:`effdyn.results.Result` codes;
- :mod:`~effdyn.sweeps.executors`: :class:`LocalExecutor` (batches) and
  :class:`DaskExecutor` (a local cluster or a running scheduler, e.g. on SLURM);
- :mod:`~effdyn.sweeps.run`: :func:`run_sweep`.

The names load on first use, so importing ``effdyn.sweeps`` imports neither xarray nor Dask.
"""

_LAZY = {
    "Dim": "effdyn.sweeps.spec",
    "Field": "effdyn.sweeps.spec",
    "SweepSpec": "effdyn.sweeps.spec",
    "point_id": "effdyn.sweeps.spec",
    "values_of": "effdyn.sweeps.spec",
    "Study": "effdyn.sweeps.study",
    "SweepStore": "effdyn.sweeps.store",
    "open_store": "effdyn.sweeps.store",
    "LocalExecutor": "effdyn.sweeps.executors",
    "DaskExecutor": "effdyn.sweeps.executors",
    "make_batches": "effdyn.sweeps.executors",
    "run_sweep": "effdyn.sweeps.run",
    "SweepRun": "effdyn.sweeps.run",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'effdyn.sweeps' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
