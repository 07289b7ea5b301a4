"""A fake, instant "science" module for the sweep engine's tests (``effdyn.phase``'s interface).

Results follow a deterministic formula of the point, so two runs (local, Dask, interrupted
and resumed) must store equal values. Behaviour is steered by a JSON file named by the
environment variable ``EFFDYN_FAKE_CONFIG``, read on every call so that worker processes
started once follow each test's settings:

- ``sleep``: seconds to sleep per batch (before logging "done");
- ``log``: a file to which every batch appends ``start PID ID;ID;...`` before sleeping and
  one ``done PID ID`` line per point after, so tests can count evaluations and see which
  process held which batch;
- ``fail``: point ids that come back with an error;
- ``raise``: point ids whose batch raises ``RuntimeError``.

Importable by Dask workers (the tests put ``tests/`` on their ``PYTHONPATH``); imports only
the standard library and numpy.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from effdyn.sweeps.spec import point_id

LAYERS = {"two_layer": ("W1", "W2"), "three_layer": ("W1", "W2", "W3")}


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


def point_shape(kind: str, point: dict) -> tuple:
    return (kind, int(point["width"]))


def exponents(kind: str, point: dict) -> tuple[float, float]:
    if kind == "two_layer":
        return point["gamma"], point["gamma_prime"]
    return point["gamma_1"], point["gamma_2"]


def formula(kind: str, point: dict) -> dict:
    """The fake result: RD ~ m^(g1 - 1) and m^(g2 - 0.5), a little seed dependence."""
    g1, g2 = exponents(kind, point)
    m, seed = int(point["width"]), int(point["seed"])
    result = {
        "rd_W1": (1 + 0.1 * seed) * m ** (g1 - 1.0),
        "rd_W2": (1 + 0.05 * seed) * m ** (g2 - 0.5),
    }
    if kind == "three_layer":
        result["rd_W3"] = m ** (0.5 * (g1 + g2) - 1.0)
    return {
        **result,
        "final_loss_ratio": 1e-3 * (1 + g1 * g1),
        "steps": 100 + m,
        "lr": 0.1 / m,
        "error": None,
    }


def evaluate_points(kind, base_problem, points, train_options=None) -> list[dict]:
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
        result = formula(kind, point)
        if pid in cfg.get("fail", []):
            result = {**result, "rd_W1": math.nan, "error": "fake failure\nsecond line"}
        results.append(result)
    if log:
        _append(log, "".join(f"done {os.getpid()} {pid}\n" for pid in ids))
    return results


def slopes(kind: str, pairs: list) -> list[dict]:
    groups: dict[tuple, list] = {}
    for point, result in pairs:
        key = tuple((k, v) for k, v in point.items() if k not in ("width", "seed"))
        groups.setdefault(key, []).append((point, result))
    out = []
    for key, members in groups.items():
        widths = sorted({int(p["width"]) for p, _ in members})
        fitted = {}
        for layer in LAYERS[kind]:
            means = [
                np.mean([math.log(r[f"rd_{layer}"]) for p, r in members if p["width"] == m])
                for m in widths
            ]
            fitted[layer] = (
                float(np.polyfit(np.log(widths), means, 1)[0]) if len(widths) > 1 else math.nan
            )
        regime = {
            k: "unknown"
            if math.isnan(s)
            else "critical"
            if abs(s) <= 0.1
            else ("condensed" if s > 0 else "linear")
            for k, s in fitted.items()
        }
        out.append(
            {
                **dict(key),
                "slopes": fitted,
                "regime": regime,
                "widths": widths,
                "n_seeds": len({p["seed"] for p, _ in members}),
            }
        )
    return out


def plot_phase_diagram(groups, kind, path, title) -> str:
    with open(path, "w") as handle:
        json.dump({"kind": kind, "title": title, "n": len(groups)}, handle)
    return str(path)
