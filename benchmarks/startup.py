"""What a user waits for: effdyn commands timed from process start, cold and warm.

Each command runs as a fresh process (``python -m effdyn.cli ...``), first with an empty
compilation cache folder (``EFFDYN_CACHE_DIR`` = a new temporary folder: cold), then again
with the folder the first run filled (warm), and once with the cache off, for the ratio
against no cache at all (docs/precision.md#compilation-cache). Wall time from the start of
the process to its exit, including Python's and JAX's imports.

Warm runs are repeated (``--repeat``, default 3) and their median is reported, beside the
one-minute load average, since a busy machine slows every run alike.

Commands: ``predict`` and ``compare`` on ``examples/fig2_tanh_small.toml`` and
``examples/classifier_ce.toml``; with ``--reproduce`` also ``reproduce --quick`` (several
minutes each). Prints one JSON object: per command ``off``, ``cold``, ``warm`` seconds and
``warm_over_cold`` (for ``reproduce`` also ``cold_parts`` and ``warm_parts``: seconds per card
and per study, from the report's ``result.json``), and whether the warm run's JSON equals
the cold one's (``identical``; timing keys of ``compare``/``reproduce`` aside, the outputs
must not depend on the cache).

    .venv/bin/python benchmarks/startup.py [--reproduce] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("examples/fig2_tanh_small.toml", "examples/classifier_ce.toml")


def _run(args, cache, cwd) -> tuple[float, str]:
    env = {**os.environ, "EFFDYN_CACHE_DIR": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "effdyn.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return wall, proc.stdout


def _parts(args) -> dict | None:
    """Where a ``reproduce`` run's time went, per card and study (its ``result.json``)."""
    if "reproduce" not in args:
        return None
    summary = json.loads((Path(args[args.index("--out") + 1]) / "result.json").read_text())
    return {
        **{f"card {c['id']}": c.get("seconds") for c in summary["cards"]},
        **{f"study {s['problem']}": s.get("seconds") for s in summary.get("studies", [])},
        "total": summary["seconds"],
    }


def _measure(name, args, work, repeat=1) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="effdyn-cache-", dir=work))
    off, out_off = _run(args, "off", work)
    cold, out_cold = _run(args, cache, work)
    cold_parts = _parts(args)
    warms = []
    for _ in range(repeat):
        seconds, out_warm = _run(args, cache, work)
        warms.append(seconds)
    warm = statistics.median(warms)
    row = {
        "command": name,
        "off": round(off, 2),
        "cold": round(cold, 2),
        "warm": round(warm, 2),
        "warm_runs": [round(w, 2) for w in warms],
        "load_average": round(os.getloadavg()[0], 2),
        "warm_over_cold": round(warm / cold, 3),
        "warm_over_off": round(warm / off, 3),
    }
    if cold_parts is not None:
        row["cold_parts"], row["warm_parts"] = cold_parts, _parts(args)
    if "--json" in args and "predict" in args:
        row["identical"] = json.loads(out_off) == json.loads(out_cold) == json.loads(out_warm)
    print(json.dumps(row), file=sys.stderr)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reproduce", action="store_true", help="also reproduce --quick")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    parser.add_argument(
        "--repeat", type=int, default=3, help="warm runs per command (the median is reported)"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="effdyn-startup-") as tmp:
        work = Path(tmp)
        for example in EXAMPLES:
            path = str(ROOT / example)
            rows.append(
                _measure(f"predict {example}", ["predict", path, "--json"], work, args.repeat)
            )
            out = str(work / "cmp")
            rows.append(
                _measure(
                    f"compare {example}",
                    ["compare", path, "--out", out, "--json"],
                    work,
                    args.repeat,
                )
            )
        if args.reproduce:
            out = str(work / "report")
            rows.append(_measure("reproduce --quick", ["reproduce", "--quick", "--out", out], work))
    result = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "rows": rows}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
