"""The sweep engine: its declarations, the resumable store, local and Dask executors; and the
phase science's sweep files (the contract of docs/problem-files.md#sweep).

The engine tests run the FAKE study of ``tests/sweep_fake.py`` (instant, deterministic; its
own dims and fields), so they check the engine only: resuming after SIGKILL, retrying
failures, and Dask with a real scheduler and worker processes on loopback (one of them killed
mid-run). The last tests run :func:`effdyn.phase.phase_diagram` on tiny real sweeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import sweep_fake
import xarray as xr
import zarr

from effdyn.errors import EffdynError
from effdyn.phase import phase_diagram
from effdyn.phase.sweep_file import load_sweep, sweep_from_table
from effdyn.results import NAME_TABLE, Result
from effdyn.sweeps.executors import LocalExecutor, make_batches
from effdyn.sweeps.run import run_sweep
from effdyn.sweeps.spec import Dim, Field, SweepSpec, point_id
from effdyn.sweeps.store import SweepStore, open_store
from effdyn.sweeps.study import Study

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
DASK = Path(sys.executable).parent / "dask"

TWO_LAYER = {
    "kind": "two_layer",
    "gamma": [0.5, 1.0, 1.75],
    "gamma_prime": [0.0, 0.5],
    "widths": [10, 20, 40],
    "seeds": [0, 1],
}  # 36 points
CONTRACT = {k: v for k, v in TWO_LAYER.items() if k != "kind"}


def write_sweep(path: Path, sweep: dict | None = None, depth: int = 2, extra: str = "") -> Path:
    """A sweep file: two- (or three-) layer ReLU on the Fig. 5 data plus ``[sweep]``."""
    sweep = TWO_LAYER if sweep is None else sweep
    lines = [
        "[model]",
        f"depth = {depth}",
        'activation = "relu"',
        "[data]",
        'dataset = "zhou2022-fig5"',
        extra,
        "[sweep]",
        *(f"{k} = {json.dumps(v)}" for k, v in sweep.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Set the fake evaluator's behaviour: ``fake(sleep=..., log=..., fail=[...])``."""
    config = tmp_path / "fake.json"
    config.write_text("{}")
    monkeypatch.setenv("EFFDYN_FAKE_CONFIG", str(config))

    def configure(**settings):
        config.write_text(
            json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in settings.items()})
        )
        return config

    return configure


def run(out, grid=None, **kwargs):
    """The fake study run into ``out``, its counts and failures as a dict."""
    return run_sweep(sweep_fake.study(grid), out, **kwargs).to_dict()


def logged(path: Path, what: str = "done") -> list[str]:
    """Point ids of ``what`` lines ("done": one per evaluated point)."""
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [parts[2] for parts in lines if len(parts) == 3 and parts[0] == what]


def done_ids(store: Path) -> set[str]:
    return {point_id(p) for p, _ in SweepStore.read(store).results(Result.COMPLETED)}


def fake_points() -> list[dict]:
    return sweep_fake.spec().points()


# ---------------------------------------------------------------------------------------------
# Phase sweep files: validation and inference of the diagram


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "four_layer"}, "kind must be 'two_layer' or 'three_layer', got 'four_layer'"),
        ({"gama": [1.0]}, "unknown key 'gama' (allowed for two_layer:"),
        ({"gamma_1": [1.0]}, "unknown key 'gamma_1'"),
        ({"gamma": []}, "gamma is an empty array"),
        ({"widths": []}, "widths is an empty array"),
        ({"seeds": []}, "seeds is an empty array"),
        ({"gamma": 0.5}, "gamma must be an array of numbers"),
        ({"gamma": [0.5, float("nan")]}, "gamma[1] must be finite, got nan"),
        ({"gamma_prime": [float("inf")]}, "gamma_prime[0] must be finite, got inf"),
        ({"gamma": [0.5, "1"]}, "gamma[1] must be a number, got '1'"),
        ({"gamma": [True]}, "gamma[0] must be a number, got True"),
        ({"gamma": [0.5, 0.5]}, "gamma has the value 0.5 twice"),
        ({"widths": [10, 0]}, "widths[1] must be >= 1, got 0"),
        ({"widths": [10, -5]}, "widths[1] must be >= 1, got -5"),
        ({"widths": [10.5]}, "widths[0] must be an integer, got 10.5"),
        ({"seeds": [-1]}, "seeds[0] must be >= 0, got -1"),
        ({"gamma_prime": None}, "missing required key 'gamma_prime'"),
        ({"widths": None}, "missing required key 'widths'"),
        ({"tol": 1.5}, "tol must be in [0, 1), got 1.5"),
        ({"lr_scale": 0}, "lr_scale must be finite and > 0, got 0"),
    ],
)
def test_spec_errors_are_one_line(change, message):
    table = {**TWO_LAYER, **change}
    table = {k: v for k, v in table.items() if v is not None}
    with pytest.raises(EffdynError) as err:
        sweep_from_table(table, source="s.toml")
    text = str(err.value)
    assert text.startswith("s.toml: [sweep] ")
    assert message in text
    assert "\n" not in text


def test_kind_is_inferred_from_depth_and_keys():
    with_kind = sweep_from_table(TWO_LAYER)
    assert sweep_from_table(CONTRACT) == with_kind  # the keys alone
    assert sweep_from_table(CONTRACT, depth=2) == with_kind  # the problem's depth
    assert with_kind.kind == "two_layer"
    three = {"gamma_1": [0.5, 1.0], "gamma_2": [0.5], "widths": [8], "seeds": [0]}
    assert sweep_from_table(three, depth=3).kind == "three_layer"
    assert sweep_from_table(three) == sweep_from_table({**three, "kind": "three_layer"})


@pytest.mark.parametrize(
    ("table", "depth", "message"),
    [
        # kind against the depth: both named
        ({**TWO_LAYER}, 3, "kind 'two_layer' needs [model] depth = 2, got depth = 3 "
                           "(the three_layer diagram)"),
        # the keys of the other diagram
        ({"gamma_1": [1.0], "gamma_2": [1.0], "widths": [8], "seeds": [0]}, 2,
         "gamma_1 and gamma_2 are three_layer keys (depth 3) but [model] depth = 2 is the "
         "two_layer diagram (two_layer needs gamma, gamma_prime, widths and seeds)"),
        # missing keys, named
        ({"widths": [8], "seeds": [0]}, 2, "missing required keys 'gamma', 'gamma_prime' "
                                           "(two_layer needs"),
        ({"gamma_1": [1.0], "widths": [8], "seeds": [0]}, 3, "missing required key 'gamma_2' "
                                                             "(three_layer needs gamma_1, gamma_2"),
        # without a depth: no exponent keys, or both diagrams' keys
        ({"widths": [8], "seeds": [0]}, None, "cannot tell the diagram from the keys: "
                                              "two_layer needs gamma, gamma_prime"),
        ({**CONTRACT, "gamma_1": [1.0]}, None, "keys of both diagrams"),
        (CONTRACT, 4, "phase diagrams need [model] depth = 2 (two_layer) or 3 (three_layer), "
                      "got depth = 4"),
    ],
)  # fmt: skip
def test_inference_errors_are_one_line(table, depth, message):
    with pytest.raises(EffdynError) as err:
        sweep_from_table(table, source="s.toml", depth=depth)
    assert str(err.value).startswith("s.toml: [sweep] ")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_spec_three_layer_keys():
    spec = sweep_from_table(
        {"kind": "three_layer", "gamma_1": [0.5, 1], "gamma_2": [0.5], "gamma_out": [0],
         "widths": [8], "seeds": [0]}
    )  # fmt: skip
    assert spec.dims == ("gamma_1", "gamma_2", "gamma_out", "width", "seed")
    assert [f.name for f in spec.fields][:3] == ["rd_W1", "rd_W2", "rd_W3"]
    with pytest.raises(EffdynError, match="missing required key 'gamma_2'"):
        sweep_from_table({"kind": "three_layer", "gamma_1": [1], "widths": [8], "seeds": [0]})
    with pytest.raises(EffdynError, match="unknown key 'gamma' "):
        sweep_from_table({**TWO_LAYER, "kind": "three_layer", "gamma_1": [1], "gamma_2": [1]})


def test_sweep_file_errors(tmp_path):
    plain = tmp_path / "b.toml"
    plain.write_text(
        '[model]\ndepth = 2\nwidth = 5\nactivation = "relu"\n[data]\ndataset = "digits"\n'
    )
    with pytest.raises(EffdynError, match=r"no \[sweep\] table"):
        load_sweep(plain)
    with pytest.raises(
        EffdynError, match=r"kind 'two_layer' needs \[model\] depth = 2, got depth = 3"
    ):
        load_sweep(write_sweep(tmp_path / "c.toml", depth=3))
    with pytest.raises(EffdynError, match="are three_layer keys"):
        load_sweep(write_sweep(tmp_path / "c2.toml", {"gamma_1": [1], "gamma_2": [1],
                                                      "widths": [8], "seeds": [0]}))  # fmt: skip
    with pytest.raises(EffdynError, match="optimizer must be 'gd'"):
        load_sweep(write_sweep(tmp_path / "d.toml", extra='[train]\noptimizer = "adam"'))
    with pytest.raises(EffdynError, match="file not found"):
        load_sweep(tmp_path / "missing.toml")
    with pytest.raises(EffdynError, match="invalid TOML"):
        (tmp_path / "e.toml").write_text("[sweep\n")
        load_sweep(tmp_path / "e.toml")


def test_train_options_from_train_and_sweep(tmp_path):
    _, _, options = load_sweep(write_sweep(tmp_path / "a.toml"))
    assert options is None  # no [train]: the science module's defaults
    path = write_sweep(
        tmp_path / "b.toml", {**CONTRACT, "tol": 0.0, "lr_scale": 0.25},
        extra="[train]\nlr = 0.01\nsteps = 500",
    )  # fmt: skip
    _, spec, options = load_sweep(path)
    assert options == {"lr": 0.01, "max_steps": 500, "tol": 0.0, "lr_scale": 0.25}
    assert dict(spec.options)["tol"] == 0.0 and spec.kind == "two_layer"


def test_points_are_the_cartesian_product_with_stable_ids():
    spec = sweep_from_table(TWO_LAYER)
    points = spec.points()
    assert len(points) == spec.n_points == 36
    assert spec.shape == (3, 2, 3, 2)
    assert points[0] == {"gamma": 0.5, "gamma_prime": 0.0, "width": 10, "seed": 0}
    assert points[1]["seed"] == 1 and points[2]["width"] == 20  # last dimension fastest
    ids = [point_id(p) for p in points]
    assert len(set(ids)) == 36
    assert ids[-1] == "gamma=1.75,gamma_prime=0.5,width=40,seed=1"
    assert [spec.index(p) for p in points[:2]] == [(0, 0, 0, 0), (0, 0, 0, 1)]
    # integers and floats name the same exponent; the spec survives its JSON
    again = sweep_from_table({**TWO_LAYER, "gamma": [0.5, 1, 1.75]})
    assert again == spec and [point_id(p) for p in again.points()] == ids
    assert SweepSpec.from_dict(json.loads(spec.to_json())) == spec


# ---------------------------------------------------------------------------------------------
# Engine declarations and batches


def _cubes(points):
    return [{"y": p["x"] ** 3, "k": p["n"] + 1, "error": None} for p in points]


def test_declaration_is_generic(tmp_path):
    """The engine stores whatever dims and fields a study declares."""
    spec = SweepSpec("demo", (Dim("x", (2, 1.5)), Dim("n", (3.0, 5), "int64")), (Field("y"),))
    assert spec.coords == {"x": (2.0, 1.5), "n": (3, 5)}
    assert [point_id(p) for p in spec.points()] == ["x=2.0,n=3", "x=2.0,n=5", "x=1.5,n=3",
                                                   "x=1.5,n=5"]  # fmt: skip
    assert spec.chunks == (2, 2)
    with pytest.raises(ValueError, match="distinct"):
        Dim("x", (1.0, 1))
    with pytest.raises(ValueError, match="dtype"):
        Field("y", "int8")
    spec = SweepSpec("demo", spec.grid, (Field("y"), Field("k", "int64")))
    done = run_sweep(Study(spec, _cubes), tmp_path / "demo.zarr")
    assert (done.computed, done.failed) == (4, 0)
    ds = open_store(tmp_path / "demo.zarr")
    assert list(ds.data_vars) == ["y", "k", "status", "error"] and ds.k.dtype == np.int64
    assert ds.y.sel(x=1.5, n=5).item() == 1.5**3 and ds.k.sel(x=2.0, n=3).item() == 4


def test_batches_group_by_key_with_balanced_sizes():
    points = fake_points()
    batches = make_batches(points, 5, sweep_fake.point_shape)
    assert sorted(len(b) for b in batches) == [4, 4, 4] * 3  # 12 per width → 3 × 4, not 5+5+2
    for batch in batches:
        assert len({p["width"] for p in batch}) == 1
    assert [b[0]["width"] for b in batches] == [10] * 3 + [20] * 3 + [40] * 3
    assert sorted(map(point_id, sum(batches, []))) == sorted(map(point_id, points))
    assert [len(b) for b in make_batches(points, 20)] == [18, 18]  # no key: one group


# ---------------------------------------------------------------------------------------------
# Store


def test_store_round_trip(tmp_path):
    spec = sweep_fake.spec()
    path = tmp_path / "s.zarr"
    store = SweepStore.open(path, spec, problem='{"model": 1}')
    assert store.counts() == {"pending": 36, "completed": 0, "failed": 0}
    p0, p1, p2 = spec.points()[:3]
    ok = {**sweep_fake.formula(p0), "extra": np.float32(2.5)}
    assert store.write(p0, ok) is Result.COMPLETED
    failed_result = {"rd_W1": None, "steps": 7, "error": "diverged\nat step 7"}
    assert store.write(p1, failed_result) is Result.FAILED
    store = SweepStore.open(path, spec, problem='{"model": 1}')  # reopen: same sweep
    assert store.counts() == {"pending": 34, "completed": 1, "failed": 1}
    assert store.pending_points()[0] == p1  # failed points are pending again
    (point, result), = store.results(Result.COMPLETED)  # fmt: skip
    assert point == p0
    assert result == {**sweep_fake.formula(p0), "extra": 2.5}
    assert isinstance(result["steps"], int)
    (_, failed), = store.results(Result.FAILED)  # fmt: skip
    assert failed["error"] == "diverged at step 7" and failed["steps"] == 7
    assert np.isnan(failed["rd_W1"])

    ds = open_store(path)
    assert dict(ds.sizes) == {"gamma": 3, "gamma_prime": 2, "width": 3, "seed": 2}
    assert list(ds.data_vars)[:4] == ["rd_W1", "rd_W2", "final_loss_ratio", "steps"]
    assert ds.width.dtype == np.int64 and ds.gamma.dtype == np.float64
    status = ds.status.sel(gamma=0.5, gamma_prime=0.0, width=10).values.tolist()
    assert [Result.from_value(s) for s in status] == [Result.COMPLETED, Result.FAILED]
    assert ds.error.sel(gamma=0.5, gamma_prime=0.0, width=10, seed=1).item() == "diverged at step 7"
    assert ds.extra.sel(gamma=0.5, gamma_prime=0.0, width=10, seed=0).item() == 2.5
    assert np.isnan(ds.extra.values).sum() == 35
    assert int(ds.steps.sel(gamma=1.0, gamma_prime=0.0, width=10, seed=0)) == -1  # not known
    assert json.loads(ds.attrs["effdyn_sweep"]) == spec.to_dict()
    assert int((ds.status == Result.PENDING).sum()) == 34
    assert p2 in store.pending_points()


def test_store_is_self_describing(tmp_path):
    """The name table of the result codes is in the store's attributes."""
    SweepStore.open(tmp_path / "s.zarr", sweep_fake.spec())
    ds = open_store(tmp_path / "s.zarr")
    table = {int(k): v for k, v in ds.attrs["effdyn_result_codes"].items()}
    assert table == NAME_TABLE
    assert table[int(ds.status.values.flat[0])] == "pending"
    meanings = dict(zip(ds.status.attrs["flag_values"],
                        ds.status.attrs["flag_meanings"].split(), strict=True))  # fmt: skip
    assert meanings == {int(c): c.label for c in (Result.PENDING, Result.COMPLETED, Result.FAILED)}


def test_store_written_by_an_older_effdyn_is_refused(tmp_path):
    path = tmp_path / "old.zarr"
    SweepStore.open(path, sweep_fake.spec())
    group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    attrs = dict(group.attrs)
    del attrs["effdyn_result_codes"]
    attrs["effdyn_store_version"] = 1  # status codes 0/1/2, no name table
    group.attrs.clear()
    group.attrs.update(attrs)
    with pytest.raises(EffdynError) as err:
        SweepStore.read(path)
    text = str(err.value)
    assert "written by an older effdyn" in text and "rerun the sweep into a new store" in text
    assert "\n" not in text


def test_store_refuses_another_sweep_or_problem(tmp_path):
    spec = sweep_fake.spec()
    path = tmp_path / "s.zarr"
    SweepStore.open(path, spec, problem='{"train": {"lr": 1}}')
    other = sweep_fake.spec({**sweep_fake.GRID, "width": [10, 20]})
    with pytest.raises(EffdynError) as err:
        SweepStore.open(path, other, problem='{"train": {"lr": 1}}')
    assert "holds a different sweep (width [10, 20, 40] vs [10, 20])" in str(err.value)
    with pytest.raises(EffdynError, match=r"different problem \(\[train\] changed\)"):
        SweepStore.open(path, spec, problem='{"train": {"lr": 2}}')
    with pytest.raises(EffdynError, match=r"different sweep \(tol absent vs 0.5\)"):
        SweepStore.open(path, sweep_fake.spec(options={"tol": 0.5}))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("x")
    with pytest.raises(EffdynError, match="is not a sweep store"):
        SweepStore.open(tmp_path / "plain", spec)
    (tmp_path / "empty").mkdir()  # an empty folder is fine: the store goes there
    assert SweepStore.open(tmp_path / "empty", spec).counts()["pending"] == 36
    assert not [p for p in tmp_path.iterdir() if ".creating-" in p.name]


def test_values_without_status_read_as_pending(tmp_path):
    """A kill between a point's values and its status must not make the point look done."""
    spec = sweep_fake.spec()
    store = SweepStore.open(tmp_path / "s.zarr", spec)
    point = spec.points()[5]
    index = spec.index(point)
    for name, value in sweep_fake.formula(point).items():
        if name != "error":
            store._arrays[name][index] = value  # the write, interrupted before `status`
    store = SweepStore.read(tmp_path / "s.zarr")
    assert point in store.pending_points() and store.counts()["completed"] == 0


# ---------------------------------------------------------------------------------------------
# Local runs: resume, failures


def test_run_then_rerun_skips_everything(tmp_path, fake):
    log = tmp_path / "log.txt"
    fake(log=log)
    out = run(tmp_path / "s.zarr", batch_size=8)
    assert (out["computed"], out["skipped"], out["failed"]) == (36, 0, 0)
    assert len(logged(log)) == 36
    assert out["store"] == str(tmp_path / "s.zarr") and out["failures"] == []
    ds = open_store(tmp_path / "s.zarr")
    for point in fake_points():  # every stored value is the formula's
        for name, value in sweep_fake.formula(point).items():
            if name != "error":
                assert ds[name].sel(point).item() == pytest.approx(value, rel=1e-15)
    json.dumps(out, allow_nan=False)

    again = run(tmp_path / "s.zarr")
    assert (again["computed"], again["skipped"], again["failed"]) == (0, 36, 0)
    assert len(logged(log)) == 36  # nothing evaluated again


def test_progress_bar_is_drawn(tmp_path, fake, monkeypatch):
    """``progress=True`` draws the one progress bar (effdyn.progress) with the study's label."""
    import effdyn.sweeps.run as run_module

    seen = []
    real = run_module.progress_bar

    def spy(description, total, **kwargs):
        seen.append((description, total, kwargs.get("enabled")))
        return real(description, total, **kwargs)

    monkeypatch.setattr(run_module, "progress_bar", spy)
    run_sweep(sweep_fake.study(), tmp_path / "s.zarr", progress=True, description="fake")
    assert seen == [("fake (local)", 36, True)]


RUNNER = """
import sys
import sweep_fake
from effdyn.sweeps.run import run_sweep

run_sweep(sweep_fake.study(), sys.argv[1], batch_size=2)
"""


def test_resume_after_sigkill(tmp_path, fake):
    """Kill a running sweep; the rerun computes exactly the points the store lacks."""
    store = tmp_path / "s.zarr"
    log1, log2 = tmp_path / "log1.txt", tmp_path / "log2.txt"
    config = fake(sleep=0.1, log=log1)
    env = {**os.environ, "EFFDYN_FAKE_CONFIG": str(config),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(store)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(logged(log1)) < 8:  # four batches of two evaluated
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the sweep did not start"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = done_ids(store)
    assert 6 <= len(finished) < 36  # the first three batches are surely stored

    fake(log=log2)
    out = run(store, batch_size=2)
    assert (out["computed"], out["skipped"], out["failed"]) == (
        36 - len(finished),
        len(finished),
        0,
    )
    recomputed = logged(log2)
    assert len(recomputed) == len(set(recomputed))
    assert not set(recomputed) & finished  # no finished point computed again
    assert set(recomputed) | finished == {point_id(p) for p in fake_points()}

    fake()
    run(tmp_path / "ref.zarr")  # uninterrupted
    xr.testing.assert_identical(open_store(store), open_store(tmp_path / "ref.zarr"))


def test_failed_point_is_stored_then_retried(tmp_path, fake):
    bad = "gamma=1.0,gamma_prime=0.0,width=20,seed=1"
    log = tmp_path / "log.txt"
    fake(fail=[bad], log=log)
    out = run(tmp_path / "s.zarr")
    assert (out["computed"], out["failed"]) == (35, 1)
    assert out["failures"] == [
        {"gamma": 1.0, "gamma_prime": 0.0, "width": 20, "seed": 1,
         "error": "fake failure second line"}
    ]  # fmt: skip
    ds = open_store(tmp_path / "s.zarr")
    where = dict(gamma=1.0, gamma_prime=0.0, width=20, seed=1)
    assert Result.from_value(ds.status.sel(where)) is Result.FAILED
    assert ds.error.sel(where).item() == "fake failure second line"

    fake(log=log)
    again = run(tmp_path / "s.zarr")
    assert (again["computed"], again["skipped"], again["failed"]) == (1, 35, 0)
    assert logged(log)[36:] == [bad]  # only the failed point was evaluated again
    ds = open_store(tmp_path / "s.zarr")
    assert Result.from_value(ds.status.sel(where)) is Result.COMPLETED
    assert ds.error.sel(where).item() == ""


def test_evaluator_crash_fails_its_batch_and_bad_input_stops(tmp_path, fake):
    fake(**{"raise": ["gamma=0.5,gamma_prime=0.0,width=10,seed=0"]})
    out = run(tmp_path / "s.zarr", batch_size=4)
    assert (out["computed"], out["failed"]) == (32, 4)  # the crashing batch only
    assert {f["error"] for f in out["failures"]} == {"RuntimeError: fake evaluator crashed"}

    def bad_input(points):
        raise EffdynError("unsupported activation")

    with pytest.raises(EffdynError, match="unsupported activation"):
        run_sweep(sweep_fake.study(evaluate=bad_input), tmp_path / "t.zarr")
    with pytest.raises(EffdynError, match="--executor must be local or dask"):
        run(tmp_path / "u.zarr", executor="slurm")
    (tmp_path / "file").write_text("x")
    with pytest.raises(EffdynError, match="is a file"):
        run(tmp_path / "file")
    with pytest.raises(EffdynError, match="holds a different sweep"):
        run(tmp_path / "s.zarr", {**sweep_fake.GRID, "seed": [0]})


def test_local_executor_checks_result_count():
    def short(points):
        return points[:-1]

    [(batch, results)] = LocalExecutor().map(short, [[{"a": 1}, {"a": 2}]])
    assert [r["error"] for r in results] == ["evaluator returned 1 results for 2 points"] * 2


# ---------------------------------------------------------------------------------------------
# Dask: a scheduler and two worker processes on loopback


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGKILL: quick, and safe here (no nannies, so no child processes are left behind)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        proc.wait(timeout=30)


@pytest.fixture
def dask_cluster(tmp_path, fake):
    """``dask scheduler`` + two ``dask worker --no-nanny`` processes; yields (address, workers)."""
    with _cluster(tmp_path, fake, [[], []]) as out:
        yield out


@contextlib.contextmanager
def _cluster(tmp_path, fake, worker_args):
    """A scheduler and one worker per entry of ``worker_args`` (extra arguments each)."""
    from distributed import Client

    config = fake()
    env = {**os.environ, "EFFDYN_FAKE_CONFIG": str(config),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}  # fmt: skip
    scheduler_file = tmp_path / "scheduler.json"
    logs = (tmp_path / "dask.log").open("w")
    procs = []
    try:
        procs.append(subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", scheduler_file],
            env=env, stdout=logs, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert procs[0].poll() is None, "dask scheduler exited"
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.05)
        workers = [
            subprocess.Popen(
                [DASK, "worker", "--scheduler-file", scheduler_file, "--nthreads", "1",
                 "--no-nanny", "--host", "127.0.0.1", "--no-dashboard", *extra],
                env=env, stdout=logs, stderr=subprocess.STDOUT,
            )
            for extra in worker_args
        ]  # fmt: skip
        procs += workers
        address = json.loads(scheduler_file.read_text())["address"]
        with Client(address, timeout=30) as client:
            client.wait_for_workers(len(worker_args), timeout=60)
        yield address, workers
    finally:
        _stop(procs)
        logs.close()


def test_dask_scheduler_matches_local(tmp_path, fake, dask_cluster):
    address, _ = dask_cluster
    local = run(tmp_path / "local.zarr")
    log = tmp_path / "log.txt"
    fake(log=log)
    out = run(tmp_path / "dask.zarr", executor="dask", scheduler=address)
    assert (out["computed"], out["skipped"], out["failed"]) == (36, 0, 0)
    assert local["computed"] == 36
    xr.testing.assert_identical(
        open_store(tmp_path / "dask.zarr"), open_store(tmp_path / "local.zarr")
    )
    assert len({line.split()[1] for line in log.read_text().splitlines()}) == 2  # both workers


def test_dask_sends_every_batch_to_the_worker_with_an_accelerator(tmp_path, fake):
    """One worker declares ``GPU=1``, one does not: every batch runs on the first."""
    with _cluster(tmp_path, fake, [["--resources", "GPU=1"], []]) as (address, workers):
        log = tmp_path / "log.txt"
        fake(log=log)
        out = run(tmp_path / "s.zarr", scheduler=address, batch_size=3)
        assert (out["computed"], out["failed"]) == (36, 0)
        pids = {int(line.split()[1]) for line in log.read_text().splitlines()}
        assert pids == {workers[0].pid}


def test_dask_worker_killed_mid_run_loses_no_point(tmp_path, fake, dask_cluster):
    address, workers = dask_cluster
    log = tmp_path / "log.txt"
    fake(sleep=0.2, log=log)
    killed: dict = {}

    def kill_a_busy_worker():
        pids = {w.pid: w for w in workers}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = log.read_text().splitlines() if log.exists() else []
            if len(logged(log)) >= 4:  # two batches done; now kill one that is evaluating
                started = [ln.split() for ln in lines if ln.startswith("start ")]
                done = {ln.split()[2] for ln in lines if ln.startswith("done ")}
                for _, pid, ids in reversed(started):
                    if int(pid) in pids and not set(ids.split(";")) <= done:
                        pids[int(pid)].send_signal(signal.SIGKILL)
                        killed.update(pid=int(pid), batch=ids.split(";"))
                        return
            time.sleep(0.01)

    watcher = threading.Thread(target=kill_a_busy_worker, daemon=True)
    watcher.start()
    out = run(tmp_path / "s.zarr", scheduler=address, batch_size=2)
    watcher.join(timeout=10)
    assert killed, "no worker was killed"
    assert workers[0].poll() is not None or workers[1].poll() is not None
    assert (out["computed"], out["failed"]) == (36, 0)
    counts = SweepStore.read(tmp_path / "s.zarr").counts()
    assert counts == {"pending": 0, "completed": 36, "failed": 0}
    # the killed worker's batch was evaluated again by the other worker
    survivors = {
        ln.split()[2] for ln in log.read_text().splitlines()
        if ln.startswith("done ") and int(ln.split()[1]) != killed["pid"]
    }  # fmt: skip
    assert set(killed["batch"]) <= survivors
    fake()
    run(tmp_path / "ref.zarr")
    xr.testing.assert_identical(open_store(tmp_path / "s.zarr"), open_store(tmp_path / "ref.zarr"))


def test_dask_local_cluster(tmp_path, fake):
    """``--executor dask`` without a scheduler: a LocalCluster of two processes."""
    grid = {**sweep_fake.GRID, "gamma_prime": [0.0]}
    log = tmp_path / "log.txt"
    fake(log=log)
    out = run(tmp_path / "s.zarr", grid, executor="dask")
    assert (out["computed"], out["failed"]) == (18, 0)
    assert len(logged(log)) == 18
    again = run(tmp_path / "s.zarr", grid, executor="dask")
    assert (again["computed"], again["skipped"]) == (0, 18)


# ---------------------------------------------------------------------------------------------
# The real science: tiny phase diagrams


def test_real_science_tiny_sweep(tmp_path):
    """The engine against effdyn.phase itself: a tiny sweep, a few hundred GD steps."""
    sweep = write_sweep(
        tmp_path / "sweep.toml",
        {"kind": "two_layer", "gamma": [0.5, 1.75], "gamma_prime": [0.0], "widths": [8, 16],
         "seeds": [0], "tol": 0.5},
        extra="[train]\nsteps = 200",
    )  # fmt: skip
    out = phase_diagram(sweep, tmp_path / "s.zarr")
    assert out["kind"] == "two_layer"
    assert (out["computed"], out["failed"]) == (4, 0)
    assert [set(g["slopes"]) for g in out["points"]] == [{"W1", "W2"}] * 2
    assert out["figure"] == str(tmp_path / "s.png") and Path(out["figure"]).exists()
    ds = open_store(tmp_path / "s.zarr")
    assert (ds.status == Result.COMPLETED).all() and (ds.steps <= 200).all()
    assert (ds.rd_W1 > 0).all()
    # each group's slope is the least-squares slope of log RD over log m, from the store
    for group in out["points"]:
        rd = ds.rd_W1.sel(gamma=group["gamma"], gamma_prime=0.0, seed=0)
        expected = np.polyfit(np.log(ds.width.values), np.log(rd.values), 1)[0]
        assert group["slopes"]["W1"] == pytest.approx(expected, rel=1e-10)
    json.dumps(out, allow_nan=False)
    again = phase_diagram(sweep, tmp_path / "s.zarr", figure=False)
    assert (again["computed"], again["skipped"]) == (0, 4) and again["points"] == out["points"]


@pytest.mark.parametrize("depth", [2, 3])
def test_contract_sweep_without_kind_gives_the_same_store(tmp_path, depth):
    """The contract's sweep file (no ``kind``) runs and stores what the same file with
    ``kind`` stores: same variables, same values, same attributes."""
    if depth == 2:
        table, kind = {"gamma": [0.5, 1.75], "gamma_prime": [0.0]}, "two_layer"
    else:
        table, kind = {"gamma_1": [0.5, 1.0], "gamma_2": [0.5]}, "three_layer"
    table = {**table, "widths": [6, 12], "seeds": [0]}
    extra = "[train]\nsteps = 30"
    plain = write_sweep(tmp_path / "plain.toml", table, depth=depth, extra=extra)
    tagged = write_sweep(tmp_path / "kind.toml", {"kind": kind, **table}, depth=depth, extra=extra)
    a = phase_diagram(plain, tmp_path / "plain.zarr", figure=False)
    b = phase_diagram(tagged, tmp_path / "kind.zarr", figure=False)
    assert a["kind"] == b["kind"] == kind
    assert (a["computed"], a["failed"]) == (4, 0)
    assert a["points"] == b["points"]
    ds = open_store(tmp_path / "plain.zarr")
    xr.testing.assert_identical(ds, open_store(tmp_path / "kind.zarr"))
    assert {f"rd_W{layer}" for layer in range(1, depth + 1)} <= set(ds.data_vars)
    assert (ds.steps == 30).all() or (ds.steps <= 30).all()
    # the file with kind resumes the store made without it: nothing computed again
    again = phase_diagram(tagged, tmp_path / "plain.zarr", figure=False)
    assert (again["computed"], again["skipped"]) == (0, 4)
