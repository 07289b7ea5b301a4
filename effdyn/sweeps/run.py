"""Run a study into a resumable store (docs/commands.md#phase-diagram).

    >>> run = run_sweep(study, "sweep.zarr")                              # doctest: +SKIP
    >>> run.computed, run.skipped, run.failed                             # doctest: +SKIP
    (18, 0, 0)

Running it again skips every completed point (``computed`` 0, ``skipped`` all) and retries
the failed ones; killing it at any moment loses at most the batches being evaluated. What
the results mean (slopes, figures) is the science module's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from effdyn.errors import EffdynError
from effdyn.progress import progress_bar
from effdyn.results import Result

from .executors import make_executor
from .store import SweepStore
from .study import Study


@dataclass
class SweepRun:
    """What :func:`run_sweep` did: the store, and the points computed, skipped and failed.

    ``failures`` holds each point that is failed in the store, with its ``error``.
    """

    store: SweepStore
    computed: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[dict] = field(default_factory=list)

    def completed(self) -> list[tuple[dict, dict]]:
        """``(point, result)`` of every completed point in the store, in grid order."""
        return self.store.results(Result.COMPLETED)

    def to_dict(self) -> dict:
        """The counts, the failures and the store's path (JSON-ready)."""
        return {
            "computed": self.computed,
            "skipped": self.skipped,
            "failed": self.failed,
            "failures": self.failures,
            "store": str(self.store.path),
        }


def run_sweep(
    study: Study,
    out: str | Path,
    executor: str = "local",
    scheduler: str | None = None,
    *,
    progress: bool = False,
    batch_size: int | None = None,
    description: str = "sweep",
) -> SweepRun:
    """Evaluate ``study``'s pending points into the store at ``out``.

    Arguments:
        study: the science module's declaration and evaluator.
        out: the result store (a zarr folder, created when absent; see
            :mod:`effdyn.sweeps.store`). An existing store must hold the same sweep (kind,
            grid, options) and fingerprint; its completed points are skipped, its failed
            points are retried.
        executor: ``"local"`` (batches in this process) or ``"dask"`` (a local cluster of two
            worker processes, or the cluster at ``scheduler``); see
            :mod:`effdyn.sweeps.executors`.
        scheduler: a Dask scheduler's address (or scheduler file); implies ``"dask"``.
        progress: a progress bar over points on stderr (:func:`effdyn.progress.progress_bar`).
        batch_size: most points per batch (default 64 locally; with Dask, about two tasks per
            worker thread).
        description: the progress bar's label (the executor's name is added).

    Raises :class:`~effdyn.errors.EffdynError` (one line) for a store holding another sweep,
    an unknown executor, an unreachable scheduler, or an evaluator's ``EffdynError``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EffdynError(f"--out {str(out)!r} is a file; give a folder for the result store")
    runner = make_executor(executor, scheduler, batch_size=batch_size)  # checks the name first
    store = SweepStore.open(out, study.spec, study.fingerprint)
    pending = store.pending_points()
    run = SweepRun(store, skipped=study.spec.n_points - len(pending))
    if pending:
        label = f"{description} ({runner.name})"
        with runner, progress_bar(label, len(pending), enabled=progress) as bar:
            batches = runner.plan(pending, study.batch_key)
            for batch, results in runner.map(study.run_points, batches):
                for point, result in zip(batch, results, strict=True):
                    if store.write(point, result) is Result.COMPLETED:
                        run.computed += 1
                    else:
                        run.failed += 1
                bar.advance(len(batch))
    run.failures = [
        {**point, "error": result["error"]} for point, result in store.results(Result.FAILED)
    ]
    return run
