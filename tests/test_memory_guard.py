"""A problem whose arrays cannot fit is refused before allocation (docs/precision.md#memory).

The bound is ``8 · (3 P + n H)`` bytes for a problem (P weights, n samples, H the sum of the
hidden widths) and ``8 · 4 P`` per phase-diagram point; the tests compute both from the shapes
themselves, and check the refusal at one byte below and above.
"""

import tracemalloc

import pytest

from effdyn.errors import ProblemError
from effdyn.memory import available_bytes, format_bytes, parse_size
from effdyn.phase.sweep_file import load_sweep
from effdyn.problem import problem_from_dict


def _table(width, depth=2):
    return {
        "model": {"depth": depth, "width": width, "activation": "tanh"},
        "data": {"dataset": "zhou2022-fig2"},
    }


def _bound(width, depth=2):
    probe = problem_from_dict(_table(10, depth))  # the data: n and the input dimension
    n, inputs, out = probe.n, probe.input_dim, probe.d_out
    weights = width * inputs + (depth - 2) * width * width + out * width
    return 8 * (3 * weights + n * width * (depth - 1))


def test_a_width_of_1e11_is_refused_before_allocating(cli):
    tracemalloc.start()
    with pytest.raises(ProblemError) as err:
        problem_from_dict(_table(100_000_000_000), source="big.toml")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20  # nothing of the 1e11-wide arrays was allocated
    message = str(err.value)
    assert "\n" not in message and message.startswith("big.toml:")
    assert format_bytes(_bound(100_000_000_000)) in message


def test_the_cli_exits_2_with_the_size(cli, tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(
        '[model]\ndepth = 2\nwidth = 100000000000\nactivation = "tanh"\n'
        '[data]\ndataset = "zhou2022-fig2"\n'
    )
    code, out, err = cli("predict", str(path))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "MemoryError" not in err and "Traceback" not in err
    assert format_bytes(_bound(100_000_000_000)) in lines[0]


def test_the_limit_is_the_bound_to_the_byte(monkeypatch):
    need = _bound(1000)
    monkeypatch.setenv("EFFDYN_MEMORY_LIMIT", str(need - 1))
    with pytest.raises(ProblemError, match="EFFDYN_MEMORY_LIMIT"):
        problem_from_dict(_table(1000))
    monkeypatch.setenv("EFFDYN_MEMORY_LIMIT", str(need))
    assert problem_from_dict(_table(1000)).model.widths == (1000,)
    monkeypatch.setenv("EFFDYN_MEMORY_LIMIT", "off")
    assert problem_from_dict(_table(10**9)).model.widths == (10**9,)  # shapes only


def test_sizes_parse_and_bad_ones_are_one_line(monkeypatch):
    assert parse_size("64GiB") == 64 * 2**30
    assert parse_size("500 MB") == 500e6
    assert parse_size("1.5T") == 1.5e12
    monkeypatch.setenv("EFFDYN_MEMORY_LIMIT", "lots")
    with pytest.raises(ProblemError, match="EFFDYN_MEMORY_LIMIT must be"):
        available_bytes()


def test_the_widest_phase_point_is_checked_at_load(tmp_path, monkeypatch):
    path = tmp_path / "sweep.toml"
    path.write_text(
        '[model]\ndepth = 3\nactivation = "relu"\n[data]\ndataset = "zhou2022-fig5"\n'
        "[sweep]\ngamma_1 = [1.0]\ngamma_2 = [1.0]\nwidths = [100, 1000000]\nseeds = [0]\n"
    )
    with pytest.raises(ProblemError) as err:
        load_sweep(path)
    # 4 copies of m·D + m² + m weights at m = 10⁶ (D = 2: x and the bias): about 29 TiB
    weights = 10**6 * 2 + 10**12 + 10**6
    assert format_bytes(8 * 4 * weights) in str(err.value)
    assert "width-1000000 three-layer" in str(err.value)
