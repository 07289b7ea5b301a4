"""``effdyn phase-diagram``: run a sweep file into a resumable store, fit slopes, draw the figure.

docs/commands.md#phase-diagram. The sweep file (:mod:`effdyn.phase.sweep_file`) becomes a
:class:`~effdyn.sweeps.study.Study` that the sweep engine (:func:`effdyn.sweeps.run.run_sweep`)
evaluates into the store; the completed points' RDs give the slopes of
docs/theory/phase-diagrams.md#order-parameter and the figure.

    >>> out = phase_diagram("examples/phase_two_layer.toml", "phase.zarr")   # doctest: +SKIP
    >>> out["computed"], out["skipped"], out["points"][0]["regime"]           # doctest: +SKIP
    (18, 0, {'W1': 'linear', 'W2': 'linear'})

Running it again skips every finished point (``computed`` 0, ``skipped`` all) and retries
the failed ones; killing it at any moment loses at most the batches being evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..sweeps.run import run_sweep
from .diagrams import DIAGRAMS, POINT_KEYS
from .evaluate import slopes
from .plot import plot_phase_diagram
from .sweep_file import load_sweep


def phase_diagram(
    sweep_path: str | Path,
    out: str | Path,
    executor: str = "local",
    scheduler: str | None = None,
    progress: bool = False,
    *,
    batch_size: int | None = None,
    figure: bool = True,
) -> dict:
    """Evaluate a sweep's pending points into the store at ``out``; slopes, regimes, figure.

    Arguments:
        sweep_path: a sweep file (a problem file plus ``[sweep]``, see
            :mod:`effdyn.phase.sweep_file`; ``kind`` is optional).
        out: the result store (a zarr folder, created when absent; see
            :mod:`effdyn.sweeps.store`). An existing store must hold the same sweep and
            problem; its finished points are skipped, its failed points are retried.
        executor: ``"local"`` (batches in this process) or ``"dask"`` (a local cluster of two
            worker processes, or the cluster at ``scheduler``); see
            :mod:`effdyn.sweeps.executors`.
        scheduler: a Dask scheduler's address (or scheduler file); implies ``"dask"``.
        progress: a progress bar over points on stderr.
        batch_size: most points per batch (default 64 locally; with Dask, about two tasks per
            worker thread).
        figure: draw the phase diagram next to the store (``<out>.png``; ``x.zarr`` gives
            ``x.png``).

    Returns a JSON-ready dict: ``kind`` (the diagram, given or inferred), ``points`` (one
    entry per point of the exponent grid with its coordinates, ``slopes`` and ``regime`` per
    layer, ``widths`` and ``n_seeds``, from the store's finished points), ``computed`` (points
    finished by this run), ``skipped`` (points found finished), ``failed`` (points that failed
    in this run), ``failures`` (each failed point with its ``error``), ``store`` and ``figure``
    (paths; ``figure`` is ``None`` when nothing is finished or ``figure=False``).

    Raises :class:`~effdyn.errors.EffdynError` (one line) for a bad sweep file, a store
    holding another sweep, an unknown executor or an unreachable scheduler.
    """
    sweep_path, out = Path(sweep_path), Path(out)
    sweep = load_sweep(sweep_path)
    kind = sweep.spec.kind
    run = run_sweep(
        sweep.study(),
        out,
        executor,
        scheduler,
        progress=progress,
        batch_size=batch_size,
        description="phase diagram",
    )
    finished = run.completed()
    groups = slopes(kind, finished) if finished else []
    figure_path = None
    if figure and groups:
        title = _setting(sweep_path, sweep.problem, sweep.spec)
        figure_path = plot_phase_diagram(groups, kind, str(_figure_path(out)), title)
    report = run.to_dict()
    return _jsonable(
        {
            "kind": kind,
            "points": list(groups),
            "computed": report["computed"],
            "skipped": report["skipped"],
            "failed": report["failed"],
            "failures": report["failures"],
            "store": str(out),
            "figure": None if figure_path is None else str(figure_path),
        }
    )


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """Human-readable lines for the command line (the ``--json``-less output)."""
    exponents = {key for d in DIAGRAMS.values() for key in d.exponents}
    lines = [
        f"store {result['store']}: {result['computed']} points computed, "
        f"{result['skipped']} found finished, {result['failed']} failed"
    ]
    for group in result["points"]:
        coords = ", ".join(
            f"{k} = {v:g}" for k, v in group.items() if k in exponents and v is not None
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


def _setting(sweep_path: Path, problem, spec) -> str:
    """The figure's subtitle: file, activation(s), data, widths, seeds."""
    acts = " / ".join(dict.fromkeys(problem.model.activations))
    coords = spec.coords
    widths = ", ".join(str(w) for w in coords[POINT_KEYS[0]])
    seeds = len(coords[POINT_KEYS[1]])
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
