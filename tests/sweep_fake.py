"""A fake, instant science for the sweep engine's tests: a :class:`~effdyn.sweeps.study.Study`.

It declares its own grid (two float dims ``gamma``, ``gamma_prime`` and two int dims
``width``, ``seed``) and fields, as any science module would; the engine knows none of these
names. Results follow a deterministic formula of the point, so two runs (local, Dask,
interrupted and resumed) must store equal values. Behaviour is steered by a JSON file named by
the environment variable ``EFFDYN_FAKE_CONFIG``, read on every call so that worker processes
started once follow each test's settings:

- ``sleep``: seconds to sleep per batch (before logging "done");
- ``log``: a file to which every batch appends ``start PID ID;ID;...`` before sleeping and
  one ``done PID ID`` line per point after, so tests can count evaluations and see which
  process held which batch;
- ``fail``: point ids that come back with an error;
- ``raise``: point ids whose batch raises ``RuntimeError``.

Importable by Dask workers (the tests put ``tests/`` on their ``PYTHONPATH``); imports only
the standard library and effdyn's sweep declarations.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time

from effdyn.sweeps.spec import Dim, Field, SweepSpec, point_id
from effdyn.sweeps.study import Study

GRID = {
    "gamma": [0.5, 1.0, 1.75],
    "gamma_prime": [0.0, 0.5],
    "width": [10, 20, 40],
    "seed": [0, 1],
}  # 36 points
INTS = ("width", "seed")
FIELDS = (
    Field("rd_W1"),
    Field("rd_W2"),
    Field("final_loss_ratio"),
    Field("steps", "int64"),
    Field("lr"),
)


def config() -> dict:
    path = os.environ.get("EFFDYN_FAKE_CONFIG")
    if not path or not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def _append(path: str, text: str) -> None:
    """One ``write`` on an O_APPEND descriptor: lines from several processes never mix."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def spec(grid: dict | None = None, options: dict | None = None) -> SweepSpec:
    """The fake's declaration: one dim per key of ``grid`` (float, or int for width/seed)."""
    grid = GRID if grid is None else grid
    dims = tuple(
        Dim(k, tuple(v), "int64" if k in INTS else "float64", None if k in INTS else 1)
        for k, v in grid.items()
    )
    return SweepSpec("fake", dims, FIELDS, tuple((options or {}).items()), "fake")


def study(grid: dict | None = None, evaluate=None, fingerprint: str | None = None) -> Study:
    """The fake study: :func:`evaluate_points` batched by :func:`point_shape`."""
    return Study(spec(grid), evaluate or functools.partial(evaluate_points, "fake"),
                 point_shape, fingerprint)  # fmt: skip


def point_shape(point: dict) -> int:
    return int(point["width"])


def formula(point: dict) -> dict:
    """The fake result: RD ~ m^(g1 - 1) and m^(g2 - 0.5), a little seed dependence."""
    g1, g2 = point["gamma"], point["gamma_prime"]
    m, seed = int(point["width"]), int(point["seed"])
    return {
        "rd_W1": (1 + 0.1 * seed) * m ** (g1 - 1.0),
        "rd_W2": (1 + 0.05 * seed) * m ** (g2 - 0.5),
        "final_loss_ratio": 1e-3 * (1 + g1 * g1),
        "steps": 100 + m,
        "lr": 0.1 / m,
        "error": None,
    }


def evaluate_points(name: str, points: list[dict]) -> list[dict]:
    cfg = config()
    ids = [point_id(p) for p in points]
    log = cfg.get("log")
    if log:
        _append(log, f"start {os.getpid()} {';'.join(ids)}\n")
    if any(i in cfg.get("raise", []) for i in ids):
        raise RuntimeError("fake evaluator crashed")
    time.sleep(float(cfg.get("sleep", 0.0)))
    results = []
    for point, pid in zip(points, ids, strict=True):
        result = formula(point)
        if pid in cfg.get("fail", []):
            result = {**result, "rd_W1": math.nan, "error": "fake failure\nsecond line"}
        results.append(result)
    if log:
        _append(log, "".join(f"done {os.getpid()} {pid}\n" for pid in ids))
    return results
