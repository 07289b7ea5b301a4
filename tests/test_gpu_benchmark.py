"""``benchmarks/gpu.py --small`` runs on the CPU, writes its JSON, and imports no store code.

The accelerator run itself is a prepared script (docs/gpu.md); this test keeps it working
without one. Its numbers are checked for what they must be whatever the machine: every
depth-3 tanh trajectory blows up (docs/theory/blowup.md: degree-2 field), rates are counts
over seconds, and a rate never exceeds the bandwidth ceiling it is reported against.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import runpy, sys
sys.argv = ["gpu.py", "--small", "--out", sys.argv[1]]
runpy.run_path({script!r}, run_name="__main__")
print("STORE-MODULES", sorted(m for m in sys.modules if m.split(".")[0] in ("zarr", "dask")))
"""


def test_gpu_benchmark_small_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    code = PROBE.format(script=str(ROOT / "benchmarks" / "gpu.py"))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "STORE-MODULES []" in proc.stdout
    report = json.loads(out.read_text())
    assert report["small"] is True and report["total_s"] < 60

    (run,) = report["ensemble"]["runs"]
    assert run["blowups"] == run["N"] == 64
    assert (
        abs(run["trajectories_per_s"] - run["N"] / run["seconds"])
        <= 0.05 + 1e-3 * run["trajectories_per_s"]
    )
    gd = report["gd"]
    assert gd["finite"] == gd["seeds"]
    assert abs(gd["seed_steps_per_s"] - gd["seeds"] * gd["steps"] / gd["seconds"]) <= (
        0.05 + 1e-3 * gd["seed_steps_per_s"]
    )
    assert report["phase"]["errors"] == 0 and report["phase"]["points"] == 4
    three = report["three_layer"]
    assert three["error"] is None and 0 < three["final_loss_ratio"] < 1
    for part in (run, gd, report["phase"], three):
        assert part["fraction_of_ceiling"] > 0
        if report["backend"] == "cpu":  # a CPU is far below an H200's bandwidth
            assert part["fraction_of_ceiling"] <= 1
