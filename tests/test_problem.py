"""Problem files: loading, every validation error, built-in data sets, initialization."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from effdyn.data import DATASETS, load_dataset
from effdyn.errors import ProblemError
from effdyn.problem import (
    DEFAULT_SCALE,
    MODEL_KEYS,
    Problem,
    initial_params,
    load_problem,
    problem_from_dict,
    uniform_problem,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# A small valid problem: 4 samples of 2-d data, inline.
BASE = {
    "model": {"depth": 2, "width": 5, "activation": "tanh(x)"},
    "data": {"x": [[0.0, 1.0], [1.0, 0.0], [2.0, -1.0], [-1.0, 3.0]], "y": [1.0, 0.0, -1.0, 2.0]},
}

VALID_TOML = """
[model]
depth = 3
widths = [7, 4]
activation = ["x*tanh(x)", "tanh(x)"]

[data]
x = [[0.0, 1.0, 2.0], [1.0, 0.0, 0.5], [2.0, -1.0, 1.0]]
y = [[1.0, 0.0], [0.0, 1.0], [-1.0, 2.0]]

[init]
scales = [0.1, 0.2, 0.3]
seed = 4

[train]
optimizer = "adam"
lr = 0.01
steps = 50
"""


def with_changes(section: str, changes: dict, base: dict = BASE) -> dict:
    """BASE with keys of one section set (a value of ... removes the key)."""
    table = copy.deepcopy(base)
    sec = table.setdefault(section, {})
    for key, value in changes.items():
        if value is ...:
            sec.pop(key, None)
        else:
            sec[key] = value
    return table


def raises_problem_error(fn, *args, fragments=(), **kwargs) -> str:
    """Call ``fn``; require a one-line ProblemError containing every fragment."""
    with pytest.raises(ProblemError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# A valid problem


def test_valid_file_loads_with_right_shapes(tmp_path):
    p = load_problem(write(tmp_path, VALID_TOML, "ok.toml"))
    assert p.model.kind == "fc" and p.model.depth == 3 and p.model.bias is True
    assert p.model.widths == (7, 4)
    assert p.model.activations == ("x*tanh(x)", "tanh(x)")
    assert (p.n, p.d, p.d_out, p.input_dim) == (3, 3, 2, 4)
    assert p.data.x.dtype == np.float64 and p.data.x.shape == (3, 3)
    assert p.data.y.shape == (3, 2) and p.data.name == "inline"
    assert p.layer_shapes() == [(7, 4), (4, 7), (2, 4)]
    assert p.init.scales == (0.1, 0.2, 0.3) and p.init.seed == 4 and p.init.path is None
    assert (p.train.optimizer, p.train.lr, p.train.steps) == ("adam", 0.01, 50)
    assert p.source == str(tmp_path / "ok.toml") and p.sweep is None


def test_defaults_and_expansion():
    p = problem_from_dict(with_changes("model", {"depth": 4}))
    assert p.model.widths == (5, 5, 5)
    assert p.model.activations == ("tanh(x)",) * 3
    assert p.init.scales == (DEFAULT_SCALE,) * 4 and p.init.seed == 0
    assert (p.train.optimizer, p.train.lr, p.train.steps) == ("gd", 1e-3, 10000)
    assert p.data.seed == 0 and p.source == "<dict>"


def test_one_dimensional_y_becomes_column():
    p = problem_from_dict(BASE)
    assert p.data.y.shape == (4, 1)
    np.testing.assert_array_equal(p.data.y[:, 0], BASE["data"]["y"])


def test_inputs_put_ones_column_last():
    p = problem_from_dict(BASE)
    x_tilde = p.inputs()
    assert x_tilde.shape == (4, 3)
    np.testing.assert_array_equal(x_tilde[:, :2], p.data.x)
    np.testing.assert_array_equal(x_tilde[:, -1], np.ones(4))
    no_bias = problem_from_dict(with_changes("model", {"bias": False}))
    assert no_bias.input_dim == 2 and no_bias.layer_shapes()[0] == (5, 2)
    np.testing.assert_array_equal(no_bias.inputs(), no_bias.data.x)


def test_data_arrays_are_read_only_copies():
    x = np.array(BASE["data"]["x"])
    p = problem_from_dict(with_changes("data", {"x": x}))
    assert not p.data.x.flags.writeable
    assert x.flags.writeable  # the caller's array is untouched


def test_sweep_section_is_kept_raw():
    p = problem_from_dict({**BASE, "sweep": {"scale": [1e-3, 1e-2], "nested": {"a": 1}}})
    assert p.sweep == {"scale": [1e-3, 1e-2], "nested": {"a": 1}}


def test_relative_data_path_is_resolved_against_problem_file(tmp_path, monkeypatch):
    folder = tmp_path / "problems"
    folder.mkdir()
    x = np.arange(12.0).reshape(6, 2)
    np.savez(folder / "data.npz", x=x, y=np.sin(x[:, 0]))
    text = '[model]\ndepth = 2\nwidth = 3\nactivation = "tanh"\n[data]\npath = "data.npz"\n'
    path = write(folder, text, "p.toml")
    monkeypatch.chdir(tmp_path)  # a different working directory
    p = load_problem("problems/p.toml")
    np.testing.assert_array_equal(p.data.x, x)
    assert p.data.y.shape == (6, 1)
    assert p.data.name == str((folder / "data.npz").resolve())
    assert Path(path).exists()


def test_examples_load():
    files = sorted(EXAMPLES.glob("*.toml"))
    assert {f.name for f in files} >= {"fig2_tanh.toml", "fig5_xtanh.toml", "depth3_mixed.toml"}
    for f in files:
        if "[sweep]" in f.read_text():  # sweep files: a problem plus [sweep], width per point
            from effdyn.phase.sweep_file import load_sweep

            load_sweep(f)
        else:
            load_problem(f)
    fig2 = load_problem(EXAMPLES / "fig2_tanh.toml")
    assert fig2.layer_shapes() == [(50, 6), (1, 50)] and fig2.train.optimizer == "adam"
    fig5 = load_problem(EXAMPLES / "fig5_xtanh.toml")
    assert fig5.model.activations == ("x*tanh(x)",) and fig5.layer_shapes() == [(100, 2), (1, 100)]
    mixed = load_problem(EXAMPLES / "depth3_mixed.toml")
    assert mixed.model.activations == ("x*tanh(x)", "tanh(x)") and mixed.model.widths == (20, 20)


def test_uniform_problem():
    p = uniform_problem("tanh(x)", 3, width=20)
    assert p.model.widths == (20, 20) and p.model.activations == ("tanh(x)", "tanh(x)")
    assert p.data.name == "zhou2022-fig2" and p.layer_shapes() == [(20, 6), (20, 20), (1, 20)]
    raises_problem_error(uniform_problem, "tanh(x)", 1, fragments=["<command line>", "depth"])


def test_with_changes_and_revalidates():
    p = problem_from_dict(BASE)
    q = p.with_(model={"widths": [9]}, init={"scale": 0.1, "seed": 3})
    assert q.model.widths == (9,) and q.init.scales == (0.1, 0.1) and q.init.seed == 3
    assert p.model.widths == (5,)  # the original is unchanged
    r = q.with_(data={"dataset": "zhou2022-fig5"})  # replaces the inline x and y
    assert r.data.name == "zhou2022-fig5" and r.n == 40
    raises_problem_error(p.with_, model={"depth": 1}, fragments=["[model]", "depth"])


# ---------------------------------------------------------------------------------------------
# Every validation error: one line, naming the section and the key

ERROR_CASES = [
    # unknown keys, any section
    ("model", {"widht": 3}, ["[model]", "unknown key 'widht'", "allowed: kind, depth, width"]),
    ("data", {"sede": 3}, ["[data]", "'sede'"]),
    ("init", {"scael": 0.1}, ["[init]", "'scael'"]),
    ("train", {"learning_rate": 0.1}, ["[train]", "'learning_rate'"]),
    # missing required keys
    ("model", {"depth": ...}, ["[model]", "missing required key 'depth'"]),
    ("model", {"activation": ...}, ["[model]", "'activation'"]),
    ("model", {"width": ...}, ["[model]", "'width'", "widths"]),
    # mutually exclusive keys
    ("model", {"widths": [5]}, ["[model]", "width", "widths", "not both"]),
    ("init", {"scale": 0.1, "scales": [0.1, 0.1]}, ["[init]", "scale", "not both"]),
    # wrong types (bool is not an integer)
    ("model", {"depth": "3"}, ["[model]", "depth", "integer", "'3'"]),
    ("model", {"depth": True}, ["[model]", "depth", "integer", "True"]),
    ("model", {"depth": 2.0}, ["[model]", "depth", "integer"]),
    ("model", {"width": 2.5}, ["[model]", "width", "integer", "2.5"]),
    ("model", {"bias": "yes"}, ["[model]", "bias", "true or false", "'yes'"]),
    ("model", {"kind": 1}, ["[model]", "kind", "string"]),
    ("model", {"activation": 3}, ["[model]", "activation", "string"]),
    ("model", {"depth": 3, "activation": ["tanh", 2]}, ["[model]", "activation[1]", "string"]),
    ("train", {"lr": "fast"}, ["[train]", "lr", "number", "'fast'"]),
    ("train", {"steps": 1.5}, ["[train]", "steps", "integer"]),
    ("init", {"seed": "zero"}, ["[init]", "seed", "integer"]),
    ("data", {"seed": False}, ["[data]", "seed", "integer"]),
    ("init", {"path": 3}, ["[init]", "path", "string"]),
    # bad values
    ("model", {"depth": 1}, ["[model]", "depth", ">= 2", "got 1"]),
    ("model", {"width": 0}, ["[model]", "width", ">= 1", "got 0"]),
    ("model", {"depth": 3, "width": ..., "widths": [3, -1]}, ["[model]", "widths[1]", ">= 1"]),
    ("model", {"kind": "rnn"}, ["[model]", "kind", "fc, cnn", "'rnn'"]),
    ("model", {"activation": "  "}, ["[model]", "activation", "empty"]),
    ("model", {"depth": 3, "activation": ["tanh", ""]}, ["[model]", "activation[1]", "empty"]),
    ("train", {"optimizer": "sgd"}, ["[train]", "optimizer", "gd, adam", "'sgd'"]),
    ("train", {"lr": 0}, ["[train]", "lr", "> 0"]),
    ("train", {"lr": -1e-3}, ["[train]", "lr", "> 0"]),
    ("train", {"lr": math.inf}, ["[train]", "lr", "finite"]),
    ("train", {"lr": math.nan}, ["[train]", "lr", "finite"]),
    ("train", {"steps": 0}, ["[train]", "steps", ">= 1"]),
    ("init", {"scale": 0.0}, ["[init]", "scale", "> 0"]),
    ("init", {"scales": [1e-3, -1.0]}, ["[init]", "scales[1]", "> 0"]),
    ("init", {"seed": -1}, ["[init]", "seed", ">= 0"]),
    # array lengths and shapes
    ("model", {"depth": 3, "width": ..., "widths": [5]}, ["[model]", "widths", "2 entries"]),
    ("model", {"depth": 3, "activation": ["tanh"]}, ["[model]", "activation", "2 entries"]),
    ("init", {"scales": [0.1, 0.1, 0.1]}, ["[init]", "scales", "2 entries", "got 3"]),
    ("init", {"scales": 0.1}, ["[init]", "scales", "array"]),
    ("init", {"scales": [[0.1], [0.1, 0.2]]}, ["[init]", "scales[0]", "number"]),
    ("model", {"width": ..., "widths": [[1, 2]]}, ["[model]", "widths[0]", "integer"]),
    ("data", {"x": [1.0, 2.0, 3.0, 4.0]}, ["[data]", "x", "2-d", "(4,)"]),
    ("data", {"y": [1.0, 2.0, 3.0]}, ["[data]", "y has 3 rows but x has 4"]),
    ("data", {"y": [[[1.0]]] * 4}, ["[data]", "y", "(4, 1, 1)"]),
    ("data", {"x": [[1.0, 2.0], [1.0]]}, ["[data]", "x", "rectangular"]),
    ("data", {"x": [["a", "b"]] * 4}, ["[data]", "x", "numbers"]),
    ("data", {"x": [], "y": []}, ["[data]", "empty data"]),
    ("data", {"x": [[]] * 4}, ["[data]", "empty data"]),
    # NaN or inf: how many and where
    ("data", {"x": [[0.0, 1.0], [1.0, 0.0], [math.nan, math.inf], [0.0, -math.inf]]},
     ["[data]", "x contains 3 NaN/inf values", "first at row 2"]),
    ("data", {"y": [1.0, math.nan, 0.0, 0.0]}, ["[data]", "y contains 1 NaN/inf", "entry 1"]),
    # data given twice, or not at all
    ("data", {"dataset": "zhou2022-fig2"}, ["[data]", "given twice", "dataset and x"]),
    ("data", {"x": ..., "y": ..., "dataset": "zhou2022-fig2", "path": "d.npz"},
     ["[data]", "given twice", "dataset and path"]),
    ("data", {"x": ..., "y": ...}, ["[data]", "no data"]),
    ("data", {"x": ...}, ["[data]", "y needs x"]),
    ("data", {"y": ...}, ["[data]", "missing required key 'y'"]),
    ("data", {"x": ..., "y": [1.0], "dataset": "zhou2022-fig2"}, ["[data]", "y", "inline"]),
    ("data", {"x": ..., "y": ..., "dataset": "mnist"},
     ["[data]", "unknown dataset 'mnist'", "zhou2022-fig2"]),
    ("data", {"x": ..., "y": ..., "path": "no/such.npz"}, ["[data]", "path", "not found"]),
    ("init", {"path": "no/such.npz"}, ["[init]", "path", "not found"]),
    ("init", {"path": "."}, ["[init]", "path", "not found"]),
    ("init", {"path": "a\x00b"}, ["[init]", "path", "not a usable path"]),
    ("data", {"x": ..., "y": ..., "path": "~no_such_user_x/d.npz"}, ["[data]", "path"]),
    # keys of the other network kind
    ("model", {"channels": 4}, ["[model]", "'channels'", "cnn"]),
    ("model", {"stride": 1}, ["[model]", "'stride'", "cnn"]),
    ("model", {"kind": "cnn", "width": ..., "channels": 2, "kernel": 1, "depth": 3},
     ["[model]", "depth must be 2"]),
    ("model", {"kind": "cnn", "channels": 2, "kernel": 1}, ["[model]", "'width'", "channels"]),
    ("model", {"kind": "cnn", "width": ..., "kernel": 2}, ["[model]", "'channels'"]),
    ("model", {"kind": "cnn", "width": ..., "channels": 2}, ["[model]", "'kernel'"]),
    ("model", {"kind": "cnn", "width": ..., "channels": 0, "kernel": 1}, ["channels", ">= 1"]),
    ("model", {"kind": "cnn", "width": ..., "channels": 2, "kernel": 1},
     ["[data]", "x", "(n, H, W)"]),
]  # fmt: skip


@pytest.mark.parametrize(("section", "changes", "fragments"), ERROR_CASES)
def test_validation_error(section, changes, fragments):
    raises_problem_error(problem_from_dict, with_changes(section, changes), fragments=fragments)


@pytest.mark.parametrize(
    ("table", "fragments"),
    [
        ({**BASE, "modle": {}}, ["unknown section [modle]", "[model], [data]"]),
        ({**BASE, "depth": 3}, ["unknown section [depth]"]),
        ({"data": BASE["data"]}, ["missing section [model]"]),
        ({"model": BASE["model"]}, ["missing section [data]"]),
        ({**BASE, "train": 3}, ["[train] must be a table", "3"]),
        ({**BASE, "sweep": []}, ["[sweep] must be a table"]),
        ([1, 2], ["table of sections"]),
    ],
)
def test_section_errors(table, fragments):
    raises_problem_error(problem_from_dict, table, fragments=["<dict>: ", *fragments])


def test_file_errors_name_the_file(tmp_path):
    text = '[model]\nwidht = 3\ndepth = 2\nwidth = 3\nactivation = "tanh"\n'
    text += '[data]\ndataset = "zhou2022-fig5"\n'
    path = write(tmp_path, text)
    message = raises_problem_error(load_problem, path)
    allowed = ", ".join(MODEL_KEYS)
    assert message == f"{path}: [model] unknown key 'widht' (allowed: {allowed})"


def test_toml_syntax_error_is_one_line(tmp_path):
    path = write(tmp_path, "[model]\ndepth = \nwidth = [1,\n")
    raises_problem_error(load_problem, path, fragments=[str(path), "invalid TOML", "line 2"])


def test_missing_and_unreadable_files(tmp_path):
    raises_problem_error(load_problem, tmp_path / "nope.toml", fragments=["nope.toml", "not found"])
    raises_problem_error(load_problem, tmp_path, fragments=[str(tmp_path), "cannot be read"])
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"# caf\xe9\n")
    raises_problem_error(load_problem, path, fragments=["invalid TOML"])


def test_nan_in_toml_file(tmp_path):
    text = (
        '[model]\ndepth = 2\nwidth = 3\nactivation = "tanh"\n'
        "[data]\nx = [[1.0], [nan], [2.0], [inf]]\ny = [1.0, 2.0, 3.0, 4.0]\n"
    )
    raises_problem_error(
        load_problem, write(tmp_path, text), fragments=["x contains 2 NaN/inf values", "row 1"]
    )


def test_data_path_errors(tmp_path):
    np.savez(tmp_path / "no_y.npz", x=np.zeros((3, 2)))
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip archive")
    np.save(tmp_path / "single.npy", np.zeros((3, 2)))
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 2)), y=np.zeros(0))
    np.savez(tmp_path / "mismatch.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    cases = {
        "no_y.npz": ["[data]", "no array 'y'"],
        "junk.npz": ["[data]", "cannot be read as .npz"],
        "single.npy": ["[data]", "cannot be read as .npz", "single .npy"],
        "empty.npz": ["[data]", "empty data"],
        "mismatch.npz": ["[data]", "y has 4 rows but x has 3"],
    }
    for name, fragments in cases.items():
        table = with_changes("data", {"x": ..., "y": ..., "path": name})
        raises_problem_error(problem_from_dict, table, base_dir=tmp_path, fragments=fragments)


# ---------------------------------------------------------------------------------------------
# Initialization


def test_initial_params_reproducible_and_seeded():
    p = problem_from_dict(with_changes("model", {"depth": 3}))
    first, again = initial_params(p), initial_params(p)
    assert [w.shape for w in first] == p.layer_shapes()
    assert all(w.dtype == np.float64 for w in first)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = initial_params(p.with_(init={"seed": 1}))
    assert all(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_initial_params_follow_documented_draw_order():
    p = problem_from_dict(with_changes("init", {"scales": [0.1, 0.3], "seed": 7}))
    rng = np.random.default_rng(7)
    expected = [0.1 * rng.standard_normal((5, 3)), 0.3 * rng.standard_normal((1, 5))]
    for got, want in zip(initial_params(p), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_initial_std_matches_scale():
    # 2000 x 3 and 1 x 2000 entries: the sample std is within ~2% of the scale (3 sigma).
    p = problem_from_dict(with_changes("model", {"width": 2000}))
    p = p.with_(init={"scales": [1e-3, 4e-3]})
    for weights, scale in zip(initial_params(p), p.init.scales, strict=True):
        assert abs(weights.std() / scale - 1) < 0.05


def test_init_path_round_trip(tmp_path):
    p = problem_from_dict(with_changes("model", {"depth": 3}))
    rng = np.random.default_rng(123)
    saved = {f"W{i + 1}": rng.standard_normal(s) for i, s in enumerate(p.layer_shapes())}
    np.savez(tmp_path / "init.npz", **saved, t=np.arange(3))  # other arrays are ignored
    table = with_changes("model", {"depth": 3})
    table["init"] = {"path": "init.npz"}
    q = problem_from_dict(table, base_dir=tmp_path)
    assert q.init.path == str((tmp_path / "init.npz").resolve())
    loaded = initial_params(q)
    assert len(loaded) == 3
    for i, weights in enumerate(loaded):
        np.testing.assert_array_equal(weights, saved[f"W{i + 1}"])
        assert weights.dtype == np.float64


@pytest.mark.parametrize(
    ("arrays", "fragments"),
    [
        ({"W1": np.zeros((5, 3))}, ["[init]", "no array 'W2'", "W1..W2"]),
        ({"W1": np.zeros((5, 2)), "W2": np.zeros((1, 5))},
         ["[init]", "'W1'", "shape (5, 2)", "expected (5, 3)"]),
        ({"W1": np.zeros((5, 3)), "W2": np.full((1, 5), np.inf)},
         ["[init]", "'W2'", "contains 5 NaN/inf"]),
        ({"W1": np.zeros((5, 3)), "W2": np.zeros((1, 5)), "W3": np.zeros(1)},
         ["[init]", "'W3'", "depth is 2"]),
        ({"W1": np.array(["a"] * 15).reshape(5, 3), "W2": np.zeros((1, 5))},
         ["[init]", "'W1'", "numbers"]),
    ],
)  # fmt: skip
def test_init_path_errors(tmp_path, arrays, fragments):
    np.savez(tmp_path / "init.npz", **arrays)
    table = with_changes("init", {"path": "init.npz"})
    raises_problem_error(problem_from_dict, table, base_dir=tmp_path, fragments=fragments)


# ---------------------------------------------------------------------------------------------
# Built-in data sets (docs/theory/experiments.md#settings-from-the-papers)


def test_zhou2022_fig2_dataset():
    x, y = load_dataset("zhou2022-fig2", seed=3)
    assert x.shape == (80, 5) and y.shape == (80, 1)
    assert x.dtype == np.float64 and y.dtype == np.float64
    assert x.min() >= -4 and x.max() <= 2 and x.max() - x.min() > 5  # U[-4, 2]^5
    expected = [sum(3.5 * math.sin(5 * xk + 1) for xk in row) for row in x]
    np.testing.assert_allclose(y[:, 0], expected, rtol=1e-13, atol=1e-12)
    np.testing.assert_array_equal(load_dataset("zhou2022-fig2", seed=3)[0], x)
    assert not np.array_equal(load_dataset("zhou2022-fig2", seed=4)[0], x)


def test_zhou2022_fig5_dataset():
    x, y = load_dataset("zhou2022-fig5")
    assert x.shape == (40, 1) and y.shape == (40, 1)
    assert x[0, 0] == -1.0 and x[-1, 0] == 1.5
    np.testing.assert_allclose(np.diff(x[:, 0]), 2.5 / 39)
    expected = [math.sin(3 * t) + math.sin(6 * t) / 2 for t in x[:, 0]]
    np.testing.assert_allclose(y[:, 0], expected, rtol=1e-13, atol=1e-14)


def test_digits_dataset():
    from sklearn.datasets import load_digits

    x, y = load_dataset("digits")
    assert x.shape == (1797, 8, 8) and y.shape == (1797, 1)
    assert x.min() == 0.0 and x.max() == 1.0
    labels = load_digits().target
    np.testing.assert_allclose(y[:, 0], (labels - labels.mean()) / labels.std())
    assert abs(y.mean()) < 1e-12 and abs(y.std() - 1) < 1e-12


def test_unknown_dataset_lists_known_names():
    message = raises_problem_error(load_dataset, "cifar10", fragments=["'cifar10'"])
    for name in DATASETS:
        assert name in message


def test_dataset_in_problem_uses_seed():
    table = with_changes("data", {"x": ..., "y": ..., "dataset": "zhou2022-fig2", "seed": 5})
    p = problem_from_dict(table)
    np.testing.assert_array_equal(p.data.x, load_dataset("zhou2022-fig2", seed=5)[0])
    assert (p.n, p.d, p.d_out, p.data.seed) == (80, 5, 1, 5)


# ---------------------------------------------------------------------------------------------
# Two-layer CNN


def cnn_problem(x, channels=3, kernel=2, stride=1, bias=True) -> Problem:
    model = {"kind": "cnn", "channels": channels, "kernel": kernel, "stride": stride}
    model |= {"activation": "tanh(x)", "bias": bias}
    return problem_from_dict({"model": model, "data": {"x": x, "y": np.ones(len(x))}})


def test_cnn_shapes_and_patches():
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 4))  # (n, C, H, W)
    p = cnn_problem(x, kernel=2, stride=2)
    assert p.model.widths == (3,) and p.model.depth == 2
    assert p.image_shape == (2, 5, 4) and p.n_positions == 2 * 2
    assert (p.d, p.input_dim) == (8, 9)
    assert p.layer_shapes() == [(3, 9), (3, 4)]
    patches = p.patches()
    assert patches.shape == (2, 4, 9)
    expected = [
        np.append(x[i, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].ravel(), 1.0)
        for i in range(2)
        for r in range(2)
        for c in range(2)
    ]
    np.testing.assert_array_equal(patches.reshape(8, 9), expected)
    assert [w.shape for w in initial_params(p)] == p.layer_shapes()
    raises_problem_error(p.inputs, fragments=["'fc'"])


def test_cnn_single_channel_images_without_bias():
    x = np.arange(2 * 4 * 4, dtype=float).reshape(2, 4, 4)  # (n, H, W)
    p = cnn_problem(x, kernel=3, bias=False)
    assert p.image_shape == (1, 4, 4) and p.layer_shapes() == [(3, 9), (3, 4)]
    np.testing.assert_array_equal(p.patches()[1, 3], x[1, 1:4, 1:4].ravel())


def test_cnn_errors():
    x = np.zeros((2, 4, 4))
    raises_problem_error(cnn_problem, x, kernel=5, fragments=["[data]", "kernel"])
    p = cnn_problem(x)
    raises_problem_error(p.with_, data={"y": np.zeros((2, 2))}, fragments=["[data]", "(n, 1)"])
    fc = problem_from_dict(BASE)
    raises_problem_error(fc.patches, fragments=["'cnn'"])


# ---------------------------------------------------------------------------------------------
# Generated inputs: junk never escapes as anything but ProblemError

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(depth=JUNK.filter(lambda v: not (isinstance(v, int) and not isinstance(v, bool) and v > 1)))
def test_junk_depth_is_a_problem_error(depth):
    raises_problem_error(problem_from_dict, with_changes("model", {"depth": depth}))


@settings(max_examples=100, deadline=None)
@given(widths=st.lists(st.integers(max_value=0), min_size=2, max_size=2))
def test_non_positive_widths_are_problem_errors(widths):
    table = with_changes("model", {"depth": 3, "width": ..., "widths": widths})
    raises_problem_error(problem_from_dict, table, fragments=["[model]", "widths["])


KEYS = [("model", k) for k in MODEL_KEYS]
KEYS += [("data", k) for k in ("dataset", "path", "x", "y", "seed")]
KEYS += [("init", k) for k in ("scale", "scales", "seed", "path")]
KEYS += [("train", k) for k in ("optimizer", "lr", "steps")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(KEYS), value=JUNK)
def test_any_junk_value_loads_or_is_a_problem_error(where, value):
    section, key = where
    changes = {key: value}
    if section == "data" and key in ("dataset", "path"):
        changes |= {"x": ..., "y": ...}  # the only data source, so it is really read
    try:
        problem_from_dict(with_changes(section, changes))
    except ProblemError as err:
        assert "\n" not in str(err)
