"""The model-kind seam, the typed predict result and capture-in-one-run.

- ``predict`` returns a :class:`~effdyn.dynamics.predict.Prediction`: read-only mapping
  access and ``to_json()`` with exactly the contract's keys (docs/commands.md#predict);
- ``throw=True`` raises on a failure code and never on ``no_blowup`` (docs/results.md);
- ``train(capture=…)`` keeps ``θ_k`` at the first step a trigger holds; the independent check
  is a fresh ``train(steps=k)``, whose final weights are ``θ_k`` (``loss[k] = R(θ_k)``).
"""

import pickle

import numpy as np
import pytest

from effdyn.dynamics.blowup import SolverOptions
from effdyn.dynamics.predict import Prediction, predict
from effdyn.errors import EffdynError
from effdyn.kinds import KINDS, kind_of
from effdyn.problem import problem_from_dict
from effdyn.results import Result
from effdyn.training import Capture, train
from effdyn.training.network import loss_function, network

CONTRACT = {
    "kind",
    "t_star",
    "growth_rate",
    "t_escape",
    "result",
    "message",
    "degree",
    "field_degree",
    "epsilon",
    "energy0",
    "solver",
    "warnings",
    "directions",
    "n_orientations",
}


def _depth3(y, scale=1e-2):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    return problem_from_dict(
        {
            "model": {"depth": 3, "width": 4, "activation": "tanh"},
            "data": {"x": x.tolist(), "y": list(map(float, y))},
            "init": {"scale": scale, "seed": 0},
        }
    )


@pytest.fixture(scope="module")
def depth3_prediction():
    rng = np.random.default_rng(1)
    return predict(_depth3(rng.normal(size=20) + 0.5))


def test_prediction_is_a_read_only_mapping_with_the_contract_keys(depth3_prediction):
    r = depth3_prediction
    assert isinstance(r, Prediction)
    assert set(r.to_json()) == CONTRACT  # depth 3: no per-neuron or closed-form extras
    assert set(r.keys()) == CONTRACT and set(r) == CONTRACT and len(r) == len(CONTRACT)
    assert "t_star" in r and r.get("missing", 7) == 7
    assert r["t_star"] == r.t_star and r.code is Result.BLOWUP and r["result"] == "blowup"
    with pytest.raises(TypeError):
        r["t_star"] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        r.data = {}  # type: ignore[misc]
    payload = r.to_json()
    payload["t_star"] = None  # a copy: the prediction is unchanged
    assert r["t_star"] is not None and type(payload) is dict
    assert pickle.loads(pickle.dumps(r)).to_json() == r.to_json()


def test_throw_raises_on_a_failure_only():
    problem = _depth3(np.random.default_rng(2).normal(size=20) + 0.5)
    quiet = predict(problem, SolverOptions(max_steps=2))
    assert quiet.code is Result.MAX_STEPS and quiet.code.failed
    with pytest.raises(EffdynError, match="max_steps"):
        predict(problem, SolverOptions(max_steps=2), throw=True)
    # zero target correlation: nothing grows — an outcome, never raised
    none = predict(_depth3(np.zeros(20)), throw=True)
    assert none.code is Result.NO_BLOWUP and "z = 0" in none["message"]


def test_kind_registry_and_reserved_parameters():
    problem = _depth3(np.ones(20))
    kind = kind_of(problem)
    assert kind is KINDS["fc"] and kind.unit_axes(problem) == (0, 0, 0)
    with pytest.raises(EffdynError, match="no staircase method applies to a non-linear"):
        kind.stages(problem)  # the deep linear methods need activation = "x"
    with pytest.raises(EffdynError, match="unknown loss 'ce'"):
        kind.effective_model(problem, None, loss="ce")
    with pytest.raises(EffdynError, match="around a given state is not available"):
        kind.effective_model(problem, None, around=(1.0,), small=("W1",))


def _fig5(width=12, scale=0.05):
    return problem_from_dict(
        {
            "model": {"depth": 2, "width": width, "activation": "tanh"},
            "data": {"dataset": "zhou2022-fig5"},
            "init": {"scale": scale, "seed": 0},
            "train": {"lr": 0.1, "steps": 600},
        }
    )


def test_captured_params_equal_a_fresh_shorter_run():
    """θ at the first step with a 1% / 10% loss drop (or pre-activation 0.3), kept inside the
    compiled loop across chunks, equals the final θ of ``train(steps=k)`` to 1e-12; the step
    is the first k with loss[k] ≤ (1 − drop)·loss[0] on the run's own arrays."""
    problem = _fig5()
    captures = (
        Capture(loss_drop=0.01, max_preactivation=0.3),
        Capture(loss_drop=0.1),
        Capture(max_preactivation=1e6),  # never holds
    )
    run = train(problem, chunk=64, capture=captures)
    assert run.captured[2] is None
    f = loss_function(network(problem))
    xt, y = problem.inputs(), problem.data.y
    for capture, entry in zip(captures[:2], run.captured[:2], strict=True):
        assert entry is not None
        k, theta = entry
        hit = run.loss <= (1 - capture.loss_drop) * run.loss[0]
        if capture.max_preactivation is not None:
            hit |= run.max_preactivation >= capture.max_preactivation
        assert 0 < k < run.steps and k == int(np.flatnonzero(hit)[0])
        fresh = train(problem, steps=k, n_snapshots=2).params
        for a, b in zip(theta, fresh, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        assert float(f(theta, xt, y)) == pytest.approx(run.loss[k], rel=1e-12)
        assert run.params_at(k) is theta


def test_params_at_serves_kept_steps_and_refuses_others():
    run = train(_fig5(), steps=50, n_snapshots=4, capture=(Capture(loss_drop=0.5),))
    assert run.captured == (None,)
    np.testing.assert_array_equal(run.params_at(0)[0], run.snapshots[0][0])
    assert run.params_at(50) is run.params
    mid = int(run.snapshot_steps[1])
    np.testing.assert_array_equal(run.params_at(mid)[1], run.snapshots[1][1])
    missing = next(k for k in range(1, 50) if k not in run.snapshot_steps)
    with pytest.raises(EffdynError, match=f"no parameters at step {missing}"):
        run.params_at(missing)


def test_capture_rejects_an_empty_trigger():
    with pytest.raises(EffdynError, match="loss_drop, max_preactivation or at_step"):
        Capture()
    with pytest.raises(EffdynError, match=r"\(0, 1\)"):
        Capture(loss_drop=1.5)
