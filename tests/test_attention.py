"""The attention example (examples/attention.toml; Chen & Luo 2025, arXiv 2510.06954) through
``predict`` and ``compare`` (docs/theory/automatic.md#attention)."""

import math

import numpy as np
import pytest

from effdyn.compare import compare
from effdyn.dynamics.predict import predict
from effdyn.problem import load_problem

EXAMPLE = "examples/attention.toml"


def _v_hat(problem):
    """v = ⟨y · mean over tokens of x⟩, normalized (computed here from the data)."""
    x, y = problem.data.x, problem.data.y
    v = (y * x.mean(axis=1)).mean(axis=0)
    return v / np.linalg.norm(v)


def test_attention_prediction_freezes_query_and_key_and_condenses_the_value_columns():
    """q = 3 with W_Q, W_K frozen; the value matrix's units (its columns, unit axis 1)
    condense on ±v̂: the chain's energy is vᵀ W_V W1 W2."""
    problem = load_problem(EXAMPLE)
    result = predict(problem)
    assert result["degree"] == 3 and result["field_degree"] == 2
    assert result["frozen_parameters"] == ["attn/W_K", "attn/W_Q"]
    assert result["active_parameters"] == ["W1", "W2", "attn/W_V"]
    v = _v_hat(problem)
    columns = np.asarray(result["directions"]["attn/W_V"])
    assert result["n_orientations"]["attn/W_V"] == len(columns) == 2
    assert np.min(np.abs(columns @ v)) >= 0.99


@pytest.mark.slow
def test_attention_compare_escape_and_frozen_leaves_at_two_scales(tmp_path):
    """GD escape / predicted escape within 10% of 1 at the smaller ε and closer to 1 there;
    at t ≈ T*/2 the frozen leaves' relative change scales as ε² (slope 2 ± 0.5 between the
    two ε) while the active leaves' is O(1)."""
    base = load_problem(EXAMPLE)
    found = {}
    for eps in (3e-3, 1e-3):
        problem = base.with_(init={"scale": eps}, train={"steps": int(16000 * 1e-3 / eps)})
        found[eps] = compare(problem, tmp_path / f"eps{eps:g}", figures=False)
    ratios = {e: r["ratios"]["escape_over_predicted_escape"] for e, r in found.items()}
    assert abs(ratios[1e-3] - 1) <= 0.10
    assert abs(ratios[1e-3] - 1) <= abs(ratios[3e-3] - 1) + 1e-3
    change = {e: r["measured"]["half_t_star"]["relative_change"] for e, r in found.items()}
    for leaf in ("attn/W_Q", "attn/W_K"):
        slope = math.log(change[3e-3][leaf] / change[1e-3][leaf]) / math.log(3.0)
        assert 1.5 <= slope <= 2.5, (leaf, slope)
    for leaf in ("attn/W_V", "W1", "W2"):
        assert change[1e-3][leaf] >= 0.1, (leaf, change[1e-3][leaf])
