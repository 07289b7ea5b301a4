"""`predict`: closed forms (docs/theory/effective-dynamics.md#closed-forms), condensed
directions, and failure values.

Expected numbers come from the closed forms (derived in docs/theory/effective-dynamics.md)
or from independent computations in this file (numpy eigen/singular vectors, a dense grid
on the circle).
"""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from effdyn.dynamics.blowup import SolverOptions, solve_blowup
from effdyn.dynamics.model import effective_model, flatten
from effdyn.dynamics.predict import predict
from effdyn.problem import problem_from_dict
from effdyn.results import Result
from effdyn.symbolic import derive

solve = solve_blowup  # compiles itself, in float64 (docs/precision.md)
OPTS = SolverOptions(rtol=1e-11, atol=1e-14)


def _data_1d(n=25, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1.5, 1.5, n))
    y = np.sin(2 * x) + 0.5 * np.cos(3 * x) + 0.3
    return x[:, None], y[:, None]


def _problem(tmp_path, activation, depth, width, x, y, params, **init):
    """A problem with inline data and the given initial weights (saved as init.npz)."""
    path = tmp_path / "init.npz"
    np.savez(path, **{f"W{i + 1}": w for i, w in enumerate(params)})
    return problem_from_dict(
        {
            "model": {"depth": depth, "width": width, "activation": activation},
            "data": {"x": x.tolist(), "y": y.ravel().tolist()},
            "init": {"path": str(path), **init},
        }
    )


def _F(p, xt, y, u):
    return np.mean(y.ravel() * (xt @ u) ** p)


def _circle_critical_points(p, xt, y, grid=200_000):
    """Local extrema of φ ↦ F(cos φ, sin φ), refined with a bounded scalar minimizer."""
    phi = np.linspace(0, 2 * np.pi, grid, endpoint=False)
    pts = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    vals = np.mean(y.ravel()[:, None] * (xt @ pts.T) ** p, axis=0)
    prev, nxt = np.roll(vals, 1), np.roll(vals, -1)
    found = []
    for i in np.flatnonzero(((vals > prev) & (vals > nxt)) | ((vals < prev) & (vals < nxt))):
        sign = -1.0 if vals[i] > prev[i] else 1.0
        h = 2 * np.pi / grid
        res = minimize_scalar(
            lambda a, s=sign: s * _F(p, xt, y, np.array([np.cos(a), np.sin(a)])),
            bounds=(phi[i] - 2 * h, phi[i] + 2 * h),
            method="bounded",
            options={"xatol": 1e-13},
        )
        found.append(np.array([np.cos(res.x), np.sin(res.x)]))
    return found


# ---------------------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("activation", "p", "c"),
    [
        ("x*tanh(x)", 2, 1.0),
        ("2*x*tanh(x)", 2, 2.0),
        ("x - sin(x)", 3, 1 / 6),
        ("x**2*tanh(x)", 3, 1.0),
        ("(x*tanh(x))**2/2", 4, 0.5),
    ],
)
def test_two_layer_balanced_neuron_closed_form(activation, p, c):
    """T* = a0^{1−p} / ((p−1) c_p F(u*) p^{p/2}) for |w| = √p a0 on a critical u*."""
    x, y = _data_1d()
    xt = np.c_[x, np.ones(len(x))]
    candidates = _circle_critical_points(p, xt, y)
    u = max(candidates, key=lambda v: c * _F(p, xt, y, v))  # c_p F(u*) > 0, largest
    a0 = 0.05
    params = (np.sqrt(p) * a0 * u[None, :], np.array([[a0]]))
    model = effective_model(derive(activation, 2), xt, y, params)
    traj = solve(model, flatten(params), OPTS)
    exact = a0 ** (1 - p) / ((p - 1) * c * _F(p, xt, y, u) * p ** (p / 2))
    assert Result.from_value(traj.result) is Result.BLOWUP
    assert float(traj.t_star) == pytest.approx(exact, rel=1e-8)


def test_two_layer_p2_top_eigenvalue_form():
    """p = 2 (x·tanh x): T* = 1/(2 λ a0) with λ the top eigenvalue of M = ⟨y x̃x̃ᵀ⟩."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3))
    xt = np.c_[x, np.ones(40)]
    y = (np.sin(x[:, 0]) + x[:, 1] ** 2)[:, None]
    m = (xt * y).T @ xt / 40
    lam, vec = np.linalg.eigh(m)
    a0 = 0.02
    params = (np.sqrt(2) * a0 * vec[:, -1][None, :], np.array([[a0]]))
    traj = solve(effective_model(derive("x*tanh(x)", 2), xt, y, params), flatten(params), OPTS)
    assert float(traj.t_star) == pytest.approx(1 / (2 * lam[-1] * a0), rel=1e-8)


@pytest.mark.parametrize(
    ("depth", "activation", "c"),
    [(3, "tanh", 1.0), (3, "3*tanh(x/2)", 1.5), (4, "tanh", 1.0), (4, "sin(2*x)", 2.0)],
)
def test_deep_balanced_rank_one_closed_form(depth, activation, c):
    """T* = r0^{2−L} / ((L−2) c^{L−1} |z|) for W1 = r β̂_1 ẑᵀ, W_l = r β̂_l β̂_{l−1}ᵀ."""
    rng = np.random.default_rng(depth)
    n, d, m = 30, 4, 5
    x = rng.normal(size=(n, d))
    xt = np.c_[x, np.ones(n)]
    y = (x @ rng.normal(size=(d, 1))) + 0.5
    z = (y.T @ xt / n)[0]
    unit = [v / np.linalg.norm(v) for v in rng.normal(size=(depth - 1, m))]
    r0 = 0.05
    params = [r0 * np.outer(unit[0], z / np.linalg.norm(z))]
    params += [r0 * np.outer(unit[i], unit[i - 1]) for i in range(1, depth - 1)]
    params += [r0 * unit[-1][None, :]]
    traj = solve(effective_model(derive(activation, depth), xt, y, params), flatten(params), OPTS)
    exact = r0 ** (2 - depth) / ((depth - 2) * c ** (depth - 1) * np.linalg.norm(z))
    assert float(traj.t_star) == pytest.approx(exact, rel=1e-8)


@pytest.mark.parametrize(
    ("activation", "c", "d_out"), [("tanh", 1.0, 1), ("3*tanh(x/2)", 1.5, 1), ("sin(x)", 1.0, 2)]
)
def test_p1_growth_rate_is_c_times_top_singular_value(tmp_path, activation, c, d_out):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(30, 3))
    y = np.c_[x @ rng.normal(size=3), np.cos(x[:, 0])][:, :d_out] + 0.2
    xt = np.c_[x, np.ones(30)]
    s1 = np.linalg.svd(y.T @ xt / 30, compute_uv=False)[0]
    params = (1e-3 * rng.normal(size=(6, 4)), 1e-3 * rng.normal(size=(d_out, 6)))
    problem = problem_from_dict(
        {
            "model": {"depth": 2, "width": 6, "activation": activation},
            "data": {"x": x.tolist(), "y": y.tolist() if d_out > 1 else y.ravel().tolist()},
            "init": {"path": str(_save(tmp_path, params))},
        }
    )
    out = predict(problem, SolverOptions(rtol=1e-11, atol=1e-15))
    assert out["kind"] == "exponential" and out["t_star"] is None
    assert out["growth_rate"] == pytest.approx(abs(c) * s1, rel=1e-12)
    assert out["growth_rate_solved"] == pytest.approx(abs(c) * s1, rel=1e-8)


def _save(tmp_path, params):
    path = tmp_path / "w.npz"
    np.savez(path, **{f"W{i + 1}": w for i, w in enumerate(params)})
    return path


# ---------------------------------------------------------------------------------------
# Condensed directions
# ---------------------------------------------------------------------------------------


def test_depth3_tanh_first_layer_condenses_on_plus_minus_z(tmp_path):
    from effdyn.data import load_dataset

    x, y = load_dataset("zhou2022-fig2", 0)
    rng = np.random.default_rng(11)
    params = (
        1e-3 * rng.normal(size=(8, 6)),
        1e-3 * rng.normal(size=(8, 8)),
        1e-3 * rng.normal(size=(1, 8)),
    )
    problem = _problem(tmp_path, "tanh", 3, 8, x, y, params)
    out = predict(problem)
    xt = np.c_[x, np.ones(len(x))]
    zhat = (y.T @ xt)[0] / np.linalg.norm(y.T @ xt)
    cosines = [abs(np.dot(u, zhat)) for u in out["directions"]["W1"]]
    assert out["result"] == "blowup" and out["n_orientations"] == 2
    assert min(cosines) >= 1 - 1e-9
    assert np.dot(out["directions"]["W1"][0], out["directions"]["W1"][1]) == pytest.approx(-1)
    assert len(out["directions"]["W2"]) == 2  # the middle layer tends to rank one: ±β̂


def test_two_layer_p1_directions_are_plus_minus_z(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 3))
    y = np.sin(x @ np.array([1.0, -2.0, 0.5])) + 0.1
    xt = np.c_[x, np.ones(30)]
    zhat = y @ xt / np.linalg.norm(y @ xt)
    params = (1e-4 * rng.normal(size=(10, 4)), 1e-4 * rng.normal(size=(1, 10)))
    out = predict(_problem(tmp_path, "tanh", 2, 10, x, y[:, None], params))
    assert out["n_orientations"] == 2
    assert all(abs(np.dot(u, zhat)) >= 1 - 1e-12 for u in out["directions"]["W1"])


@pytest.mark.parametrize(("activation", "p"), [("x*tanh(x)", 2), ("x**2*tanh(x)", 3)])
def test_two_layer_1d_directions_are_exactly_the_critical_points(tmp_path, activation, p):
    x, y = _data_1d(seed=p)
    xt = np.c_[x, np.ones(len(x))]
    expected = _circle_critical_points(p, xt, y)
    rng = np.random.default_rng(p)
    params = (1e-3 * rng.normal(size=(12, 2)), 1e-3 * rng.normal(size=(1, 12)))
    out = predict(_problem(tmp_path, activation, 2, 12, x, y, params))
    got = np.array(out["directions"]["W1"])
    assert out["n_orientations"] == len(expected) <= 2 * p
    for u in expected:  # a one-to-one match, orientation included
        assert np.max(got @ u) >= 1 - 1e-9
    # neurons that blow up do so toward one of those orientations: the first one does
    first = out["per_neuron"]["first"]
    assert out["t_star"] == pytest.approx(out["per_neuron"]["t_star_min"], rel=1e-8)
    assert first is not None


# ---------------------------------------------------------------------------------------
# Failure is a value
# ---------------------------------------------------------------------------------------


def _depth3(tmp_path, y, params, **kw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    return _problem(tmp_path, "tanh", 3, 4, x, y, params, **kw)


def _small_params(seed=0, scale=1e-2):
    rng = np.random.default_rng(seed)
    return (
        scale * rng.normal(size=(4, 4)),
        scale * rng.normal(size=(4, 4)),
        scale * rng.normal(size=(1, 4)),
    )


def test_zero_target_correlation_is_no_blowup_with_reason(tmp_path):
    out = predict(_depth3(tmp_path, np.zeros(20), _small_params()))
    assert out["result"] == "no_blowup" and out["t_star"] is None
    assert "z = 0" in out["message"]


def test_negative_energy_balanced_start_is_no_blowup(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    xt = np.c_[x, np.ones(20)]
    y = x[:, 0] + 0.3
    z = y @ xt / 20
    b1, b2 = np.eye(4)[0], np.eye(4)[1]
    r = 0.05  # a = −β̂₂: E(θ0) = −r³|z| < 0 and r' = −c²|z| r² decays
    params = (r * np.outer(b1, z / np.linalg.norm(z)), r * np.outer(b2, b1), -r * b2[None, :])
    out = predict(_problem(tmp_path, "tanh", 3, 4, x, y, params))
    assert out["result"] == "no_blowup" and out["energy0"] < 0
    assert "E(θ₀)" in out["message"]


def test_nan_initialization_is_a_result_not_a_crash():
    model = effective_model(derive("tanh", 3), np.ones((5, 4)), np.ones((5, 1)), _small_params())
    theta = np.asarray(flatten(_small_params())).copy()
    theta[3] = np.nan
    traj = solve(model, theta, OPTS)
    assert Result.from_value(traj.result) is Result.NONFINITE and np.isnan(float(traj.t_star))


def test_max_steps_is_a_result_not_a_crash():
    rng = np.random.default_rng(1)
    xt = np.c_[rng.normal(size=(20, 3)), np.ones(20)]
    model = effective_model(derive("tanh", 3), xt, rng.normal(size=(20, 1)), _small_params())
    traj = solve(model, flatten(_small_params()), SolverOptions(max_steps=3))
    assert Result.from_value(traj.result) is Result.MAX_STEPS and np.isnan(float(traj.t_star))
