"""Expansion around a given state (docs/theory/reexpansion.md): the bilinear energy of the
attention logits around a frozen value chain, the state files and their errors."""

import json

import numpy as np
import pytest
from conftest import run_cli

from effdyn.dynamics.around import problem_around, read_state
from effdyn.errors import EffdynError
from effdyn.problem import load_problem

EXAMPLE = "examples/attention.toml"
SMALL = "attn/W_Q,attn/W_K"


def _state(problem, seed=1):
    """A value chain at O(1) (W_V, W1, W2 drawn here) and small query/key matrices."""
    rng = np.random.default_rng(seed)
    leaves = {}
    for name, shape in zip(problem.leaf_names(), problem.leaf_shapes(), strict=True):
        scale = 1e-3 if name in ("attn/W_Q", "attn/W_K") else 0.8 / np.sqrt(shape[0])
        leaves[name] = scale * rng.standard_normal(shape)
    return leaves


def _f_by_hand(problem, leaves):
    """F of E = tr(W_Qᵀ F W_K) around the chain, from the residual at θ_b (square loss):
    F = −⟨ g σ′(h_b) (Σ_r x_r)(Σ_t (c_t − c̄) x_t)ᵀ ⟩ / (s²√d), c_t = x_tᵀ W_V W1 W2,
    h_b = mean-token · w, g = tanh(h_b) − y: the first-order change of the softmax."""
    x, y = problem.data.x, problem.data.y[:, 0]
    n, s, d = x.shape
    w = (leaves["attn/W_V"] @ leaves["W1"] @ leaves["W2"])[:, 0]
    h = x.mean(axis=1) @ w
    g = np.tanh(h) - y
    c = x @ w  # (n, s)
    a = x.sum(axis=1)  # (n, d)
    b = np.einsum("nt,ntd->nd", c - c.mean(axis=1, keepdims=True), x)
    weight = g * (1.0 - np.tanh(h) ** 2)
    return -np.einsum("n,ni,nj->ij", weight, a, b) / n / (s**2 * np.sqrt(d))


def test_bilinear_matrix_of_the_attention_logits_equals_the_hand_assembled_one(tmp_path):
    """Through the command line: ``predict --around STATE --small W_Q,W_K --json`` reports
    E = tr(W_Kᵀ F' W_Q) (leaf order) with F' = Fᵀ equal to the hand-assembled F to rtol
    1e-10, a linear field (degree 2) and the growth rate s₁(F)."""
    problem = load_problem(EXAMPLE)
    leaves = _state(problem)
    state = tmp_path / "state.npz"
    np.savez(state, **leaves)
    code, out, err = run_cli(
        "predict", EXAMPLE, "--around", str(state), "--small", SMALL, "--json", timeout=300
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["degree"] == 2 and result["field_degree"] == 1
    assert result["kind"] == "exponential"
    assert sorted(result["active_parameters"]) == ["attn/W_K", "attn/W_Q"]
    assert result["around"]["small"] == ["attn/W_K", "attn/W_Q"]
    bil = result["bilinear"]
    assert bil["leaves"] == ["attn/W_K", "attn/W_Q"] and bil["shared_axes"] == [1, 1]
    f_hand = _f_by_hand(problem, leaves)
    f_engine = np.asarray(result["bilinear_matrix"]).T
    np.testing.assert_allclose(f_engine, f_hand, rtol=1e-10, atol=1e-10 * np.abs(f_hand).max())
    s_hand = np.linalg.svd(f_hand, compute_uv=False)
    np.testing.assert_allclose(bil["singular_values"], s_hand, rtol=1e-9)
    assert result["growth_rate"] == pytest.approx(s_hand[0], rel=1e-6)


def test_a_train_file_is_read_by_leaf_names_and_snapshot(tmp_path):
    """What ``train`` saves: the final leaves by name, or snapshot K (negative from the end)."""
    problem = load_problem(EXAMPLE)
    names, shapes = problem.leaf_names(), problem.leaf_shapes()
    rng = np.random.default_rng(0)
    snaps = {
        f"snapshots_{n}": rng.standard_normal((3, *s)) for n, s in zip(names, shapes, strict=True)
    }
    final = {n: snaps[f"snapshots_{n}"][-1] for n in names}
    path = tmp_path / "train.npz"
    np.savez(path, **final, **snaps, leaf_names=np.array(names), snapshot_steps=np.array([0, 5, 9]))
    last = read_state(path, names, shapes)
    assert last.step == 9 and all(np.array_equal(last.leaves[n], final[n]) for n in names)
    first = read_state(path, names, shapes, snapshot=1)
    assert first.step == 5
    assert np.array_equal(first.leaves["attn/W_V"], snaps["snapshots_attn/W_V"][1])
    assert read_state(path, names, shapes, snapshot=-3).step == 0
    with pytest.raises(EffdynError, match="out of range"):
        read_state(path, names, shapes, snapshot=3)
    rewritten, _ = problem_around(problem, path, ["attn/W_Q", "attn/W_K"], snapshot=1)
    exps = dict(zip(names, rewritten.init.exponents, strict=True))
    assert exps == {"W1": 0, "W2": 0, "attn/W_K": 1, "attn/W_Q": 1, "attn/W_V": 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--small", "attn/W_X"], "--small names no leaf 'attn/W_X'"),
        (["--small", SMALL, "--drop", "W1"], "has no leaf 'W1'"),
        (["--small", SMALL, "--snapshot", "2"], "holds no snapshots"),
        (["--small", SMALL, "--shape"], "has shape"),
    ],
)
def test_bad_states_and_leaf_names_are_one_line_errors(tmp_path, args, message):
    problem = load_problem(EXAMPLE)
    leaves = _state(problem)
    if "--drop" in args:
        leaves.pop(args[args.index("--drop") + 1])
        args = args[: args.index("--drop")]
    if "--shape" in args:
        leaves["attn/W_V"] = np.zeros((2, 2))
        args = args[: args.index("--shape")]
    state = tmp_path / "state.npz"
    np.savez(state, **leaves)
    code, out, err = run_cli("predict", EXAMPLE, "--around", str(state), *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_around_without_small_is_a_one_line_error(tmp_path):
    code, _, err = run_cli("predict", EXAMPLE, "--around", str(tmp_path / "missing.npz"))
    assert code == 2 and "--around and --small go together" in err
