"""The persistent compilation cache of effdyn's commands (docs/precision.md#compilation-cache):
identical results with and without it, and an unusable folder is a warning, never a failure."""

import json
import os
import subprocess
import sys

PROBLEM = """
[model]
depth = 3
width = 6
activation = "tanh"

[data]
dataset = "zhou2022-fig2"

[init]
scale = 1e-3
seed = 3
"""


def _predict(problem, cache):
    env = {**os.environ, "EFFDYN_CACHE_DIR": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "effdyn.cli", "predict", str(problem), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_results_are_identical_with_and_without_the_cache(tmp_path):
    problem = tmp_path / "p.toml"
    problem.write_text(PROBLEM)
    cache = tmp_path / "cache"
    off, _ = _predict(problem, "off")
    cold, _ = _predict(problem, cache)
    assert any(cache.iterdir()), "the cache folder stayed empty"
    exported = sorted(p.name for p in (cache / "exported").iterdir())
    assert exported, "no solve was exported"
    warm, _ = _predict(problem, cache)
    assert off == cold == warm
    assert off["t_star"] is not None
    # the warm process found every artifact under the same key (none was built again)
    assert sorted(p.name for p in (cache / "exported").iterdir()) == exported


def test_a_changed_model_gets_its_own_artifact_and_new_values_reuse_one(tmp_path):
    """New data values or init reuse the exported solve; another activation does not."""
    cache = tmp_path / "cache"
    problem = tmp_path / "p.toml"
    problem.write_text(PROBLEM)
    first, _ = _predict(problem, cache)
    count = len(list((cache / "exported").iterdir()))
    reseeded = tmp_path / "q.toml"
    reseeded.write_text(PROBLEM.replace("seed = 3", "seed = 4"))
    again, _ = _predict(reseeded, cache)
    assert len(list((cache / "exported").iterdir())) == count
    assert again == _predict(reseeded, "off")[0] and again["t_star"] != first["t_star"]
    other = tmp_path / "r.toml"
    other.write_text(PROBLEM.replace('"tanh"', '"x*tanh(x)"'))
    third, _ = _predict(other, cache)
    assert len(list((cache / "exported").iterdir())) > count
    assert third == _predict(other, "off")[0]


def test_an_unusable_cache_folder_is_a_warning(tmp_path):
    problem = tmp_path / "p.toml"
    problem.write_text(PROBLEM)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result, err = _predict(problem, blocker / "cache")
    assert "warning: compilation cache folder" in err and "running without it" in err
    assert len([line for line in err.splitlines() if "warning" in line]) == 1
    assert result["t_star"] is not None
