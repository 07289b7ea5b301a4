"""Time `effdyn derive --json` from process start to JSON (issue target: median < 3 s, depth ≤ 4).

Each run is a fresh process, so the figure includes interpreter start-up and imports.
Prints one JSON object: the median and max wall time per (activation, depth) and overall.

    .venv/bin/python benchmarks/derive_startup.py [--repeats 5]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ACTIVATIONS = ["tanh", "x*tanh(x)", "x**2*tanh(x)", "sigmoid", "gelu", "relu"]
DEPTHS = [2, 3, 4]


def _command() -> list[str]:
    script = Path(sys.executable).parent / "effdyn"
    return [str(script)] if script.exists() else [sys.executable, "-m", "effdyn.cli"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cmd = _command()
    rows, everything = [], []
    for act in ACTIVATIONS:
        for depth in DEPTHS:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                proc = subprocess.run(
                    [*cmd, "derive", "-a", act, "-L", str(depth), "--json"],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                times.append(time.perf_counter() - start)
                if proc.returncode != 0:
                    raise SystemExit(f"derive failed for {act} depth {depth}: {proc.stderr}")
                json.loads(proc.stdout)
            everything += times
            rows.append(
                {
                    "activation": act,
                    "depth": depth,
                    "median_s": round(statistics.median(times), 3),
                    "max_s": round(max(times), 3),
                }
            )
    print(
        json.dumps(
            {
                "benchmark": "derive_startup",
                "target_median_s": 3.0,
                "median_s": round(statistics.median(everything), 3),
                "worst_median_s": max(r["median_s"] for r in rows),
                "runs": len(everything),
                "cases": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
