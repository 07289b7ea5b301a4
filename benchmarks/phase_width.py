"""Phase-diagram points per second against width: the cost of a GD step is O(m) or O(m²).

    .venv/bin/python benchmarks/phase_width.py [--steps 2000] [--out FILE]

One point at a time (:func:`effdyn.phase.evaluate_points`, the loss tolerance off so every
point takes exactly ``--steps`` steps) on the ``zhou2022-fig5`` data (n = 40, d = 1 with the
bias), ReLU:

- two layers (γ = 1, γ' = 0) at widths 500…16000: a step costs ``O(m·n·D)`` time and memory;
- three layers (γ₁ = γ₂ = 1) at widths 250…4000: a step costs ``O(m²·n)``.

Each width is timed after a warm-up of the same shape (compilation apart), best of
``--repeats``. The slope of ``log(seconds per step)`` against ``log m`` over the widest half of
the widths is the measured exponent (1 and 2 when the arithmetic dominates; below that while
fixed per-step overheads still do). Points per second are ``1 / (seconds per point)`` for a
point of ``--steps`` steps. Prints one JSON object (and writes it to ``--out`` if given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from effdyn.phase.evaluate import evaluate_points  # noqa: E402
from effdyn.problem import problem_from_dict  # noqa: E402

KINDS = {
    "two_layer": (2, {"gamma": 1.0, "gamma_prime": 0.0}, [500, 1000, 2000, 4000, 8000, 16000]),
    "three_layer": (3, {"gamma_1": 1.0, "gamma_2": 1.0}, [250, 500, 1000, 2000, 4000]),
}


def seconds_per_point(kind, base, exps, m, steps, repeats):
    point = {**exps, "width": m, "seed": 0}
    options = {"tol": 0.0, "max_steps": steps, "chunk": min(steps, 1000)}
    evaluate_points(kind, base, [point], train_options=options)  # warm-up: compile this shape
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        (result,) = evaluate_points(kind, base, [point], train_options=options)
        best = min(best, time.perf_counter() - start)
        assert result["steps"] == steps, result
    return best


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    report = {"steps_per_point": args.steps, "load_average_at_start": os.getloadavg()[0]}
    for kind, (depth, exps, widths) in KINDS.items():
        base = problem_from_dict(
            {
                "model": {"depth": depth, "width": 10, "activation": "relu"},
                "data": {"dataset": "zhou2022-fig5"},
            }
        )
        rows = []
        for m in widths:
            seconds = seconds_per_point(kind, base, exps, m, args.steps, args.repeats)
            rows.append(
                {
                    "width": m,
                    "seconds_per_point": round(seconds, 4),
                    "points_per_s": round(1 / seconds, 3),
                    "microseconds_per_step": round(1e6 * seconds / args.steps, 2),
                }
            )
            print(f"{kind} m={m}: {seconds:.3f} s", file=sys.stderr, flush=True)
        half = rows[len(rows) // 2 :]
        slope = np.polyfit(
            np.log([r["width"] for r in half]), np.log([r["seconds_per_point"] for r in half]), 1
        )[0]
        report[kind] = {
            "widths": rows,
            "slope_log_time_vs_log_width": round(float(slope), 3),
            "slope_over_widths": [r["width"] for r in half],
            "expected_slope": 1 if kind == "two_layer" else 2,
        }
    report["load_average_at_end"] = os.getloadavg()[0]
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
