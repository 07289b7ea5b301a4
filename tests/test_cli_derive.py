"""``effdyn derive``: the contract's JSON keys, problem files, and one-line errors."""

import json
import math
from pathlib import Path

import pytest
from conftest import run_cli

KEYS = {
    "multiplicities",
    "coefficients",
    "coefficients_exact",
    "sigma0",
    "smooth",
    "degree",
    "field_degree",
    "finite_time_blowup",
    "equations",
}


# Every smooth row of the table in docs/theory/multiplicity.md#multiplicity, plus two activations it
# does not list
# (cos x − 1: σ''(0)/2 = −1/2; 5·sin(x)³: p = 3, c = 5).
ROWS = [
    ("tanh", 1, 1.0, 0.0),
    ("x*tanh(x)", 2, 1.0, 0.0),
    ("x**2*tanh(x)", 3, 1.0, 0.0),
    ("sin(x)", 1, 1.0, 0.0),
    ("x - sin(x)", 3, 1 / 6, 0.0),
    ("sigmoid", 1, 0.25, 0.5),
    ("softplus", 1, 0.5, math.log(2)),
    ("silu", 1, 0.5, 0.0),
    ("gelu", 1, 0.5, 0.0),
    ("cos(x) - 1", 2, -0.5, 0.0),
    ("5*sin(x)**3", 3, 5.0, 0.0),
]


@pytest.mark.parametrize(("activation", "p", "c", "sigma0"), ROWS)
def test_derive_json_uniform(activation, p, c, sigma0):
    code, out, err = run_cli("derive", "--activation", activation, "--depth", "3", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert KEYS <= set(s)
    assert s["multiplicities"] == [p, p]
    assert s["coefficients"] == pytest.approx([c, c], rel=1e-15)
    assert s["sigma0"] == pytest.approx([sigma0, sigma0], abs=1e-15)
    assert s["degree"] == 1 + p * (1 + p)
    assert set(s["equations"]) >= {"W1", "W2", "W3"}


def test_relu_reports_non_smooth():
    code, out, _ = run_cli("derive", "-a", "relu", "-L", "2", "--json")
    s = json.loads(out)
    assert code == 0 and s["smooth"] is False
    assert s["multiplicities"] == [None] and s["degree"] == 2


def _problem(tmp_path: Path, activation: str, depth: int, widths: str = "[8, 8]") -> Path:
    path = tmp_path / "p.toml"
    path.write_text(
        f'[model]\nkind = "fc"\ndepth = {depth}\nwidths = {widths}\nactivation = {activation}\n'
        '[data]\ndataset = "zhou2022-fig2"\n'
    )
    return path


@pytest.mark.parametrize(
    ("activation", "q"), [('["x*tanh(x)", "tanh"]', 4), ('["tanh", "x*tanh(x)"]', 5)]
)
def test_mixed_layers_from_problem_file(tmp_path, activation, q):
    code, out, err = run_cli("derive", str(_problem(tmp_path, activation, 3)), "--json")
    assert code == 0, err
    assert json.loads(out)["degree"] == q


@pytest.mark.parametrize(
    "args",
    [
        ["-a", "exp(-1/x**2)"],
        ["-a", "1/x"],
        ["-a", "log(x)"],
        ["-a", "foo(x)"],
        ["-a", "x.__class__"],
        ["-a", "tanh", "-L", "1"],
        ["-a", "tanh", "--nonsense"],
        [],
        ["/nonexistent/problem.toml"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(args):
    code, out, err = run_cli("derive", *args, "--json")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "error" in json.loads(out)


def test_malicious_activation_runs_nothing(tmp_path):
    target = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path('{target}').touch()"
    code, _, err = run_cli("derive", "-a", payload)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert not target.exists()


def test_bad_activation_in_problem_file(tmp_path):
    code, _, err = run_cli("derive", str(_problem(tmp_path, '["tanh", "exec(1)"]', 3)))
    assert code == 2 and "exec" in err and len(err.strip().splitlines()) == 1


def test_human_output_names_the_regime():
    code, out, _ = run_cli("derive", "-a", "tanh", "-L", "3")
    assert code == 0 and "blow-up" in out
