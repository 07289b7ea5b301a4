"""Sweeps: many problems over a grid of scalings, run by an executor into a resumable store.

- :mod:`~effdyn.sweeps.spec`: the ``[sweep]`` table of a sweep file → :class:`SweepSpec`,
  its points and their ids;
- :mod:`~effdyn.sweeps.store`: the result store (xarray Dataset as zarr), written point by
  point and safe to kill;
- :mod:`~effdyn.sweeps.executors`: :class:`LocalExecutor` (batches, ``vmap``) and
  :class:`DaskExecutor` (a local cluster or a running scheduler, e.g. on SLURM);
- :mod:`~effdyn.sweeps.run`: :func:`phase_diagram`, the body of ``effdyn phase-diagram``.

The names load on first use, so importing ``effdyn.sweeps`` imports neither xarray nor Dask.
"""

_LAZY = {
    "SweepSpec": "effdyn.sweeps.spec",
    "load_sweep": "effdyn.sweeps.spec",
    "sweep_from_table": "effdyn.sweeps.spec",
    "point_id": "effdyn.sweeps.spec",
    "SweepStore": "effdyn.sweeps.store",
    "open_store": "effdyn.sweeps.store",
    "STATUS_PENDING": "effdyn.sweeps.store",
    "STATUS_DONE": "effdyn.sweeps.store",
    "STATUS_FAILED": "effdyn.sweeps.store",
    "LocalExecutor": "effdyn.sweeps.executors",
    "DaskExecutor": "effdyn.sweeps.executors",
    "make_batches": "effdyn.sweeps.executors",
    "phase_diagram": "effdyn.sweeps.run",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'effdyn.sweeps' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
