"""Executors: evaluate a sweep's pending points in batches, here or on a Dask cluster.

Both group points by the study's batching key (:attr:`~effdyn.sweeps.study.Study.batch_key`:
points with equal keys can be evaluated together, e.g. under ``jax.vmap``), split each group
into batches of nearly equal size (one compiled shape per group, or two), and yield
``(points, results)`` pairs as batches finish; the caller (:func:`effdyn.sweeps.run.run_sweep`)
writes every pair to the result store at once, so an interrupted sweep keeps each finished
batch.

An evaluator is the study's ``run_points(points) -> list[dict]``: one result per point, with
``"error"`` set to a message for a point that failed. With Dask it is pickled to the workers
(a module-level function or a ``functools.partial`` of one). An evaluator that raises an
:class:`~effdyn.errors.EffdynError` (bad input) stops the sweep; any other exception marks
its batch failed (retried by the next run) and the sweep goes on.

- :class:`LocalExecutor` (``--executor local``, the default) runs the batches one after the
  other in this process: batching is where ``vmap`` pays off.
- :class:`DaskExecutor` (``--executor dask``) starts a ``distributed.LocalCluster`` (two
  worker processes, one thread each), or with ``--scheduler ADDR`` connects to a running
  scheduler. Each task evaluates one batch and returns its results; this process writes them
  as the futures complete (``as_completed``). A worker that dies loses only its running
  batch: the scheduler gives the task to another worker (and ``retries=2`` reruns a task
  that raised), and points already returned are in the store.

Running on a SLURM cluster with `dask-jobqueue <https://jobqueue.dask.org>`_ (in the same
Python environment as the workers, which must be able to import effdyn)::

    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(cores=1, processes=1, memory="4GB", walltime="02:00:00")
    cluster.scale(jobs=16)               # 16 single-thread workers, one SLURM job each
    print(cluster.scheduler_address)     # e.g. tcp://10.1.2.3:41234; keep this session open

    # then, from a shell that can reach that address:
    #   effdyn phase-diagram sweep.toml --out sweep.zarr --executor dask \\
    #       --scheduler tcp://10.1.2.3:41234

Workers with an accelerator declare it, ``dask worker --resources GPU=1`` (one worker per
device, ``CUDA_VISIBLE_DEVICES`` set per worker): when any worker does, every batch is sent
to one of them, one batch per device at a time (:func:`accelerator_resources`;
docs/gpu.md).

Without dask-jobqueue: ``dask scheduler --scheduler-file sched.json`` on a login node,
``srun dask worker --scheduler-file sched.json --nthreads 1`` in a job, and
``--scheduler sched.json`` (a scheduler file works in place of an address).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from effdyn.errors import EffdynError

Evaluate = Callable[[list[dict]], Sequence[dict]]
Batch = list[dict]

DEFAULT_BATCH_SIZE = 64
"""Most points evaluated together in one ``vmap``-ed call."""


def make_batches(
    points: Iterable[dict],
    batch_size: int,
    key: Callable[[dict], Hashable] | None = None,
) -> list[Batch]:
    """Group ``points`` by ``key(point)`` and split each group into batches.

    A group of ``n`` points becomes ``ceil(n / batch_size)`` batches whose sizes differ by at
    most one (a vmapped evaluator compiles once per batch size). Groups come in the order of
    their keys when the keys can be ordered (a science whose key grows with the cost, e.g. a
    width, gets its cheap points first), else in order of appearance; points keep their
    order. Without ``key`` all points form one group.
    """
    if batch_size < 1:
        raise EffdynError(f"batch size must be >= 1, got {batch_size}")
    groups: dict[Hashable, list[dict]] = {}
    for point in points:
        groups.setdefault(None if key is None else key(point), []).append(point)
    try:
        ordered = [groups[k] for k in sorted(groups)]
    except TypeError:  # keys without an order
        ordered = list(groups.values())
    batches = []
    for group in ordered:
        n_batches = math.ceil(len(group) / batch_size)
        size, extra = divmod(len(group), n_batches)
        start = 0
        for i in range(n_batches):
            stop = start + size + (1 if i < extra else 0)
            batches.append(group[start:stop])
            start = stop
    return batches


def failed_results(points: Sequence[dict], message: str) -> list[dict]:
    """One failed result per point, carrying ``message``."""
    return [{"error": " ".join(message.split()) or "failed"} for _ in points]


def checked_results(points: Sequence[dict], results: Any) -> list[dict]:
    """``results`` if it is one dict per point, else failed results saying what was wrong."""
    try:
        results = list(results)
    except TypeError:
        return failed_results(points, f"evaluator returned {type(results).__name__}, not a list")
    if len(results) != len(points):
        return failed_results(
            points, f"evaluator returned {len(results)} results for {len(points)} points"
        )
    return [
        dict(r) if isinstance(r, dict) else {"error": f"evaluator returned {type(r).__name__}"}
        for r in results
    ]


def _exception_message(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def evaluate_batch(evaluate: Evaluate, points: Batch) -> list[dict]:
    """Run ``evaluate`` on one batch (in a Dask worker too); results as plain Python values."""
    results = evaluate(list(points))
    return [_plain(r) for r in results] if isinstance(results, list | tuple) else results


def _plain(result: Any) -> Any:
    """0-d numpy/JAX values as Python numbers, so that results pickle cheaply anywhere."""
    if not isinstance(result, dict):
        return result
    out = {}
    for key, value in result.items():
        item = getattr(value, "item", None)
        out[key] = item() if item is not None and getattr(value, "ndim", None) == 0 else value
    return out


class LocalExecutor:
    """Evaluate batches one after the other in this process (``--executor local``)."""

    name = "local"

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.batch_size = batch_size

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def plan(self, points: Sequence[dict], key=None) -> list[Batch]:
        return make_batches(points, self.batch_size, key)

    def map(
        self, evaluate: Evaluate, batches: Sequence[Batch]
    ) -> Iterator[tuple[Batch, list[dict]]]:
        """Yield ``(batch, results)`` for each batch, in order."""
        for batch in batches:
            try:
                results = evaluate_batch(evaluate, batch)
            except EffdynError:
                raise
            except Exception as err:  # a bug or a crash in one batch: record it, go on
                results = failed_results(batch, _exception_message(err))
            yield batch, checked_results(batch, results)


class DaskExecutor:
    """Evaluate batches as Dask tasks (``--executor dask [--scheduler ADDR]``).

    Without ``scheduler`` it starts a ``distributed.LocalCluster`` of ``n_workers`` processes
    with ``threads_per_worker`` threads each and closes it at the end; with ``scheduler`` (an
    address such as ``tcp://10.1.2.3:8786``, or the path of a scheduler file) it connects a
    ``distributed.Client`` to that cluster and leaves the cluster running. The workers must be
    able to import effdyn and the evaluator's module.

    ``batch_size`` caps a batch; by default batches are made small enough to give every
    worker thread about two tasks (at most :data:`DEFAULT_BATCH_SIZE` points each).
    """

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        batch_size: int | None = None,
        retries: int = 2,
        timeout: float = 30.0,
    ) -> None:
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.batch_size = batch_size
        self.retries = retries
        self.timeout = timeout
        self.client = None
        self._cluster = None

    def __enter__(self) -> DaskExecutor:
        from distributed import Client, LocalCluster

        if self.scheduler is None:
            self._cluster = LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                dashboard_address=None,
            )
            self.client = Client(self._cluster)
            return self
        target = str(self.scheduler)
        try:
            if Path(target).is_file():
                self.client = Client(scheduler_file=target, timeout=self.timeout)
            else:
                self.client = Client(target, timeout=self.timeout)
        except (OSError, TimeoutError, ValueError) as err:
            message = " ".join(str(err).split()) or type(err).__name__
            raise EffdynError(
                f"cannot reach the Dask scheduler at {target!r} ({message})"
            ) from None
        return self

    def __exit__(self, *exc) -> bool:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        return False

    def _threads(self) -> int:
        workers = self.client.scheduler_info().get("workers", {}) if self.client else {}
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def plan(self, points: Sequence[dict], key=None) -> list[Batch]:
        cap = self.batch_size or DEFAULT_BATCH_SIZE
        if self.batch_size is None:
            cap = min(cap, max(1, math.ceil(len(points) / (2 * self._threads()))))
        return make_batches(points, cap, key)

    def map(
        self, evaluate: Evaluate, batches: Sequence[Batch]
    ) -> Iterator[tuple[Batch, list[dict]]]:
        """Submit every batch, then yield ``(batch, results)`` as their futures complete."""
        from distributed import as_completed

        if self.client is None:
            raise RuntimeError("use DaskExecutor as a context manager (with ... as executor)")
        batch_of = {}
        futures = []
        resources = accelerator_resources(self.client.scheduler_info().get("workers", {}))
        for batch in batches:
            future = self.client.submit(
                evaluate_batch,
                evaluate,
                batch,
                retries=self.retries,
                pure=False,
                resources=resources,
            )
            batch_of[future.key] = batch
            futures.append(future)
        try:
            for future in as_completed(futures):
                batch = batch_of.pop(future.key)
                try:
                    results = future.result()
                except EffdynError:
                    raise
                except Exception as err:  # raised thrice, or KilledWorker: failed, next run retries
                    results = failed_results(batch, _exception_message(err))
                future.release()
                yield batch, checked_results(batch, results)
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()


ACCELERATOR = "GPU"
"""The worker resource that marks a worker with an accelerator (``dask worker --resources
GPU=1``): when any worker declares it, every batch asks for one unit of it."""


def accelerator_resources(workers: dict) -> dict | None:
    """``{"GPU": 1}`` when a worker of the scheduler's ``workers`` table declares a ``GPU``
    resource, else ``None`` (tasks go to any worker).

    With a unit per worker, the scheduler runs one batch at a time on each accelerator (its
    memory holds one batch, docs/gpu.md#three-layer-diagrams-at-width-10-000) and never
    sends a batch to a CPU-only worker of the same cluster while an accelerator is there.

    >>> accelerator_resources({"tcp://a": {"resources": {"GPU": 1}}, "tcp://b": {}})
    {'GPU': 1}
    >>> accelerator_resources({"tcp://b": {"resources": {}}}) is None
    True
    """
    for info in workers.values():
        if float((info.get("resources") or {}).get(ACCELERATOR, 0)) > 0:
            return {ACCELERATOR: 1}
    return None


def make_executor(
    executor: str = "local", scheduler: str | None = None, *, batch_size: int | None = None
):
    """The executor named ``executor`` (``"local"`` or ``"dask"``); a scheduler implies Dask."""
    if executor not in ("local", "dask"):
        raise EffdynError(f"--executor must be local or dask, got {executor!r}")
    if scheduler is not None and executor == "local":
        executor = "dask"
    if batch_size is not None and batch_size < 1:
        raise EffdynError(f"batch size must be >= 1, got {batch_size}")
    if executor == "local":
        return LocalExecutor(batch_size or DEFAULT_BATCH_SIZE)
    return DaskExecutor(scheduler, batch_size=batch_size)
