"""Every loss through the built-in kinds' ``predict`` (docs/theory/losses.md): the closed
forms computed here independently of the library."""

import numpy as np
import pytest

from effdyn.data.datasets import load_dataset
from effdyn.dynamics.predict import predict
from effdyn.problem import load_problem, problem_from_dict


def test_cross_entropy_growth_rate_is_the_top_singular_value_of_the_centred_onehot_z():
    """Two-layer tanh with K logits: the field is c₁[[0, Z], [Zᵀ, 0]] with
    Z = ⟨(onehot − 1/K) x̃ᵀ⟩ (c₁ = 1), so the growth rate is s₁(Z)."""
    problem = load_problem("examples/classifier_ce.toml")
    x, labels = load_dataset("digits-classes", 0)
    k = int(labels.max()) + 1
    onehot = np.eye(k)[labels.astype(int).ravel()]
    xt = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    z = (onehot - 1.0 / k).T @ xt / len(x)
    s1 = np.linalg.svd(z, compute_uv=False)[0]
    result = predict(problem)
    assert problem.layer_shapes()[-1] == (k, 20)  # K from the labels sizes the last layer
    assert result["growth_rate"] == pytest.approx(s1, rel=1e-10)
    assert result["growth_rate_solved"] == pytest.approx(s1, rel=1e-3)
    # the square loss on one-hot targets would follow a different Z (no centring)
    assert np.linalg.svd(onehot.T @ xt / len(x), compute_uv=False)[0] > 1.05 * s1


def test_logistic_blow_up_time_is_twice_the_exponential_one():
    """ℓ'(0) is −y/2 for the logistic loss and −y for the exponential one: the same field up
    to a factor 1/2, so on the same initialization T* doubles exactly (depth 3, q = 3)."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3))
    y = np.sign(x[:, 0] - 0.2 * x[:, 1] + 0.1)

    def problem(loss):
        return problem_from_dict(
            {
                "model": {"depth": 3, "width": 6, "activation": "tanh", "loss": loss},
                "data": {"x": x.tolist(), "y": y.tolist()},
                "init": {"scale": 1e-3, "seed": 1},
            }
        )

    logistic, exponential = predict(problem("logistic")), predict(problem("exponential"))
    assert logistic["t_star"] == pytest.approx(2 * exponential["t_star"], rel=1e-8)
