"""Sweep points per second: the local executor's vmapped batches vs one point at a time.

The setting: the two-layer ReLU phase diagram (docs/theory/phase-diagrams.md#two-layer) on the
``zhou2022-fig5`` data
(d = 1 with a bias column, n = 40), ``--points`` points (default 32) of ONE width (``--width``,
default 100) — ``--points / 4`` values of γ in [0.5, 1.75] at γ' = 0, four seeds each — trained
for a fixed number of full-batch GD steps (``--steps``, default 2000; ``tol = 0`` so no point
stops early, and the chunk is the whole run).

- batched: :class:`effdyn.sweeps.executors.LocalExecutor` with a batch size of ``--points``:
  the points share one batching key (:func:`effdyn.phase.point_shape`, the width), so they are
  ONE call of :func:`effdyn.phase.evaluate_points`, i.e. one ``jax.vmap``-ed training run.
- one by one: a loop calling ``evaluate_points`` with a single-point list per point.

Both first run once untimed (compiling the two batch shapes), then the median of
``--repeats`` timed runs is taken. Rates are configurations (points) per second; the target
is a ratio of at least 10 on a CPU. The two ways must give the same results (each point's
training does not depend on its batch): the largest relative difference of the RDs is
reported. On a GPU backend (``jax.default_backend() == "gpu"``) a note says so: there the
batch runs in parallel on the device, and batches of thousands of points pay off more.

Prints one JSON object.

    .venv/bin/python benchmarks/sweep_batching.py [--points 32] [--width 100] [--steps 2000]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

TARGET_RATIO = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=32)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import jax
    import numpy as np

    from effdyn.phase import evaluate_points
    from effdyn.problem import problem_from_dict
    from effdyn.sweeps.executors import LocalExecutor
    from effdyn.sweeps.spec import point_id

    problem = problem_from_dict(
        {
            "model": {"depth": 2, "width": args.width, "activation": "relu"},
            "data": {"dataset": "zhou2022-fig5"},
        }
    )
    n_seeds = 4
    gammas = np.linspace(0.5, 1.75, max(1, args.points // n_seeds))
    points = [
        {"gamma": float(g), "gamma_prime": 0.0, "width": args.width, "seed": s}
        for g in gammas
        for s in range(n_seeds)
    ][: args.points]
    options = {"tol": 0.0, "max_steps": args.steps, "chunk": args.steps}
    from effdyn.phase import point_shape

    executor = LocalExecutor(batch_size=len(points))
    batches = executor.plan("two_layer", points, point_shape)
    assert len(batches) == 1, "the points should form one batch"

    def batched():
        out = {}
        for batch, results in executor.map(evaluate_points, "two_layer", problem, batches, options):
            out.update({point_id(p): r for p, r in zip(batch, results, strict=True)})
        return out

    def one_by_one():
        return {
            point_id(p): evaluate_points("two_layer", problem, [p], train_options=options)[0]
            for p in points
        }

    def timed(fn):
        start = time.perf_counter()
        fn()  # compiles
        first = time.perf_counter() - start
        times, out = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        return first, statistics.median(times), times, out

    b_first, b_time, b_times, b_out = timed(batched)
    s_first, s_time, s_times, s_out = timed(one_by_one)

    diffs = [
        abs(b_out[k][f] - s_out[k][f]) / abs(s_out[k][f])
        for k in s_out
        for f in ("rd_W1", "rd_W2")
        if s_out[k][f] and np.isfinite(s_out[k][f])
    ]
    errors = sorted({r["error"] for r in [*b_out.values(), *s_out.values()] if r["error"]})
    backend = jax.default_backend()
    batched_rate = len(points) / b_time
    single_rate = len(points) / s_time
    report = {
        "benchmark": "sweep_batching",
        "setting": {
            "kind": "two_layer",
            "activation": "relu",
            "data": "zhou2022-fig5",
            "points": len(points),
            "width": args.width,
            "steps": args.steps,
            "gammas": [float(g) for g in gammas],
            "seeds": n_seeds,
            "repeats": args.repeats,
        },
        "batched_points_per_s": batched_rate,
        "one_by_one_points_per_s": single_rate,
        "ratio": batched_rate / single_rate,
        "target_ratio": TARGET_RATIO,
        "meets_target": batched_rate / single_rate >= TARGET_RATIO,
        "batched_s": b_times,
        "one_by_one_s": s_times,
        "first_run_s": {"batched": b_first, "one_by_one": s_first},
        "max_rel_diff_rd": max(diffs) if diffs else None,
        "point_errors": errors,
        "backend": backend,
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
    }
    if backend == "gpu":
        report["gpu_note"] = (
            "GPU backend: the vmapped batch runs in parallel on the device, so the ratio grows "
            "with the batch; try --points 1024 or more"
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
