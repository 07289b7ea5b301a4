"""``effdyn predict``: the contract's keys on a paper setting, and one-line errors."""

import json

import numpy as np
from conftest import run_cli

KEYS = {"kind", "t_star", "growth_rate", "t_escape", "directions", "n_orientations", "result"}


def test_predict_json_on_fig5_xtanh():
    code, out, err = run_cli("predict", "examples/fig5_xtanh.toml", "--json", timeout=300)
    assert code == 0, err
    r = json.loads(out)
    assert KEYS <= set(r)
    assert r["kind"] == "blowup" and r["result"] == "blowup"
    # x·tanh x has p = 2: at most 2p = 4 orientations on 1-d data with bias
    assert 1 <= r["n_orientations"] <= 4
    assert (
        r["t_star"] == min(t for t in r["per_neuron"]["t_star"] if t is not None)
        or abs(r["t_star"] / r["per_neuron"]["t_star_min"] - 1) < 1e-8
    )
    assert 0 < r["t_escape"] <= r["t_star"]
    units = np.array(r["directions"]["W1"])
    np.testing.assert_allclose(np.linalg.norm(units, axis=1), 1.0, rtol=1e-12)


def test_predict_bad_inputs_exit_2(tmp_path):
    bad = tmp_path / "nan.toml"
    bad.write_text(
        '[model]\ndepth = 2\nwidth = 3\nactivation = "tanh"\n'
        "[data]\nx = [[0.0], [nan]]\ny = [1.0, 2.0]\n"
    )
    for args in (
        ["predict", str(bad)],
        ["predict", "examples/fig5_xtanh.toml", "--rtol", "5"],
        ["predict", str(tmp_path / "missing.toml")],
    ):
        code, out, err = run_cli(*args, "--json")
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "error" in json.loads(out)
