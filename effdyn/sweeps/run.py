"""``effdyn phase-diagram``: run a sweep into a resumable store, fit slopes, draw the diagram.

    >>> out = phase_diagram("examples/phase_two_layer.toml", "phase.zarr")   # doctest: +SKIP
    >>> out["computed"], out["skipped"], out["points"][0]["regime"]           # doctest: +SKIP
    (18, 0, {'W1': 'linear', 'W2': 'linear'})

Running it again skips every finished point (``computed`` 0, ``skipped`` all) and retries
the failed ones; killing it at any moment loses at most the batches being evaluated.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from effdyn.errors import EffdynError

from .executors import make_executor
from .spec import load_sweep, problem_fingerprint
from .store import STATUS_DONE, STATUS_FAILED, SweepStore

SCIENCE_MODULE = "effdyn.phase"
"""Provides ``point_shape``, ``evaluate_points``, ``slopes`` and ``plot_phase_diagram``."""


def phase_diagram(
    sweep_path: str | Path,
    out: str | Path,
    executor: str = "local",
    scheduler: str | None = None,
    progress: bool = False,
    evaluate=None,
    *,
    science: Any = None,
    batch_size: int | None = None,
    figure: bool = True,
) -> dict:
    """Evaluate a sweep's pending points into the store at ``out``; slopes, regimes, figure.

    Arguments:
        sweep_path: a sweep file (a problem file plus ``[sweep]``, see
            :mod:`effdyn.sweeps.spec`).
        out: the result store (a zarr folder, created when absent; see
            :mod:`effdyn.sweeps.store`). An existing store must hold the same sweep and
            problem; its finished points are skipped, its failed points are retried.
        executor: ``"local"`` (batches in this process) or ``"dask"`` (a local cluster of two
            worker processes, or the cluster at ``scheduler``); see
            :mod:`effdyn.sweeps.executors`.
        scheduler: a Dask scheduler's address (or scheduler file); implies ``"dask"``.
        progress: a progress bar over points on stderr.
        evaluate: the evaluator (default ``effdyn.phase.evaluate_points``).
        science: a module (or its name) providing ``point_shape``, ``evaluate_points``,
            ``slopes`` and ``plot_phase_diagram`` (default ``effdyn.phase``).
        batch_size: most points per batch (default 64 locally; with Dask, about two tasks per
            worker thread).
        figure: draw the phase diagram next to the store (``<out>.png``; ``x.zarr`` gives
            ``x.png``).

    Returns a JSON-ready dict: ``points`` (one entry per point of the exponent grid with its
    coordinates, ``slopes`` and ``regime`` per layer, ``widths`` and ``n_seeds``, from the
    store's finished points), ``computed`` (points finished by this run), ``skipped`` (points
    found finished), ``failed`` (points that failed in this run), ``failures`` (each failed
    point with its ``error``), ``store`` and ``figure`` (paths; ``figure`` is ``None`` when
    nothing is finished or ``figure=False``).

    Raises :class:`~effdyn.errors.EffdynError` (one line) for a bad sweep file, a store
    holding another sweep, an unknown executor or an unreachable scheduler.
    """
    sweep_path, out = Path(sweep_path), Path(out)
    if out.exists() and not out.is_dir():
        raise EffdynError(f"--out {str(out)!r} is a file; give a folder for the result store")
    problem, spec, train_options = load_sweep(sweep_path)
    runner = make_executor(executor, scheduler, batch_size=batch_size)  # checks the name first
    sci = _science(science)
    evaluate = evaluate if evaluate is not None else sci.evaluate_points
    store = SweepStore.open(out, spec, problem_fingerprint(problem))

    pending = store.pending_points()
    skipped = spec.n_points - len(pending)
    computed = failed = 0
    if pending:
        with runner, _progress(progress, len(pending), runner.name) as advance:
            batches = runner.plan(spec.kind, pending, sci.point_shape)
            for batch, results in runner.map(evaluate, spec.kind, problem, batches, train_options):
                for point, result in zip(batch, results, strict=True):
                    if store.write(point, result) == STATUS_DONE:
                        computed += 1
                    else:
                        failed += 1
                advance(len(batch))

    finished = store.results(STATUS_DONE)
    groups = sci.slopes(spec.kind, finished) if finished else []
    figure_path = None
    if figure and groups:
        title = _setting(sweep_path, problem, spec)
        figure_path = sci.plot_phase_diagram(groups, spec.kind, str(_figure_path(out)), title)
    failures = [
        {**point, "error": result["error"]} for point, result in store.results(STATUS_FAILED)
    ]
    return _jsonable(
        {
            "kind": spec.kind,
            "points": list(groups),
            "computed": computed,
            "skipped": skipped,
            "failed": failed,
            "failures": failures,
            "store": str(out),
            "figure": None if figure_path is None else str(figure_path),
        }
    )


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """Human-readable lines for the command line (the ``--json``-less output)."""
    lines = [
        f"store {result['store']}: {result['computed']} points computed, "
        f"{result['skipped']} found finished, {result['failed']} failed"
    ]
    for group in result["points"]:
        coords = ", ".join(
            f"{k} = {v:g}" for k, v in group.items() if k.startswith("gamma") and v is not None
        )
        layers = "; ".join(
            f"{layer}: slope {_fmt(slope)} ({group.get('regime', {}).get(layer, '?')})"
            for layer, slope in group.get("slopes", {}).items()
        )
        lines.append(f"  {coords}: {layers}")
    for failure in result.get("failures", [])[:10]:
        where = ", ".join(f"{k}={v}" for k, v in failure.items() if k != "error")
        lines.append(f"  failed {where}: {failure['error']}")
    if result.get("figure"):
        lines.append(f"figure: {result['figure']}")
    return lines


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:+.3f}"


def _science(science: Any):
    if science is None or isinstance(science, str):
        name = science or SCIENCE_MODULE
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and name.startswith(err.name):
                raise EffdynError(f"the phase-diagram module {name!r} is not available") from None
            raise
    return science


def _setting(sweep_path: Path, problem, spec) -> str:
    """The figure's subtitle: file, activation(s), data, widths, seeds."""
    acts = " / ".join(dict.fromkeys(problem.model.activations))
    widths = ", ".join(str(w) for w in spec.widths)
    seeds = len(spec.seeds)
    return (
        f"{sweep_path.name}: {acts} on {problem.data.name}, widths {widths}, "
        f"{seeds} seed{'s' if seeds != 1 else ''}"
    )


def _figure_path(out: Path) -> Path:
    """``x.zarr`` → ``x.png``; any other name gets ``.png`` appended (outside the store)."""
    if out.suffix == ".zarr":
        return out.with_suffix(".png")
    return out.parent / f"{out.name}.png"


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars as Python numbers, tuples as lists, NaN/inf as None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | bool) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "ndim", 0) == 0:
        value = item()
    elif hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


class _NoBar:
    def __enter__(self):
        return lambda n: None

    def __exit__(self, *exc):
        return False


class _Bar:
    """A transient rich progress bar over points on stderr (stdout stays clean for --json)."""

    def __init__(self, total: int, executor: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=Console(stderr=True),
        )
        self.task = self.progress.add_task(f"phase diagram ({executor})", total=total)

    def __enter__(self):
        self.progress.__enter__()
        return lambda n: self.progress.update(self.task, advance=n)

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)


def _progress(enabled: bool, total: int, executor: str):
    return _Bar(total, executor) if enabled else _NoBar()
