"""Blow-up times of the effective dynamics against an independent scipy computation.

The reference integrates the ORIGINAL-time ODE ``θ' = F(θ)`` with the field written by hand
below in numpy (docs/theory/effective-dynamics.md#closed-forms — not effdyn's code) using
``scipy.integrate.solve_ivp``
(DOP853, rtol 1e-12, atol 1e-14) up to the terminal event ``|θ| = R`` and adds the tail
``R^{−(k−1)} / ((k−1) u·F(u))`` (``u = θ/|θ|`` at the event, ``k = 2`` here). Its own
convergence in ``R`` is checked (``R`` vs ``10 R``).

Cases, on random small initializations (entries ``N(0, ε²)``, ε from 1e-2 to 1e-1, seeded)
and the built-in ``zhou2022-fig2`` data (d = 5, n = 80):

- depth 3, tanh (c_1 = 1), widths 6 and 5: ``a' = WVz, W' = a(Vz)ᵀ, V' = (Wᵀa)zᵀ``;
- depth 2, x·tanh x (p = 2, c = 1), width 4: ``a_k' = w_kᵀMw_k, w_k' = 2 a_k M w_k``.

Also: the blow-up direction (depth 3), :func:`solve_ensemble` and
:func:`threshold_blowup_time` against :func:`solve_blowup`, and failure values (NaN start,
``z = 0``, tiny ``max_steps``) that must come back as result codes, never exceptions — unless
``throw=True``, which raises on a failure and never on an outcome.

Compilation dominates the run time: each case's model is built once and every solve with a
given (model layout, options, shape) reuses one compiled function.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from effdyn.data import load_dataset
from effdyn.dynamics.blowup import SolverOptions, solve_blowup, threshold_blowup_time
from effdyn.dynamics.ensemble import solve_ensemble
from effdyn.dynamics.model import effective_model, flatten
from effdyn.errors import EffdynError
from effdyn.results import Result
from effdyn.symbolic import derive

SOLVE_OPTS = SolverOptions(rtol=1e-10, atol=1e-13)
ENSEMBLE_OPTS = SolverOptions(rtol=1e-8, atol=1e-12)
SEEDS = (0, 1, 2)
EPSILONS = (1e-2, 3e-2, 1e-1)  # one scale per seed
R_FACTOR = 1e9  # event radius R = R_FACTOR · |θ₀| for the scipy reference
TSTAR_RTOL = 1e-8

solve = eqx.filter_jit(solve_blowup)
pytestmark = pytest.mark.usefixtures("x64_module")  # its own jit, jnp arrays, module fixtures

# --------------------------------------------------------------------------------------------
# independent reference: hand-written fields and a scipy solve in the original time
# --------------------------------------------------------------------------------------------


def field_depth3(theta, z, m1, m2):
    """Depth-3 tanh chain (c_1 = 1): V = W1 (m1 × D), W = W2 (m2 × m1), a = W3 (1 × m2)."""
    d = z.size
    v = theta[: m1 * d].reshape(m1, d)
    w = theta[m1 * d : m1 * d + m2 * m1].reshape(m2, m1)
    a = theta[m1 * d + m2 * m1 :]
    vz = v @ z
    return np.concatenate([np.outer(w.T @ a, z).ravel(), np.outer(a, vz).ravel(), w @ vz])


def field_two_layer(theta, mom, m):
    """Two-layer x·tanh x (p = 2, c = 1): rows w_k of W1 (m × D), a = W2 (1 × m)."""
    d = mom.shape[0]
    w = theta[: m * d].reshape(m, d)
    a = theta[m * d :]
    mw = w @ mom  # M symmetric: row k is (M w_k)ᵀ
    return np.concatenate([(2.0 * a[:, None] * mw).ravel(), np.sum(mw * w, axis=1)])


def scipy_blowup_time(field, theta0, radius_factor=R_FACTOR, k=2):
    """T* from the original-time ODE: event at |θ| = R, plus the tail R^{1−k}/((k−1)u·F(u))."""
    radius = radius_factor * np.linalg.norm(theta0)

    def reached(t, th):
        return np.linalg.norm(th) - radius

    reached.terminal = True
    reached.direction = 1.0
    sol = solve_ivp(
        lambda t, th: field(th),
        (0.0, np.inf),
        theta0,
        method="DOP853",
        rtol=1e-12,
        atol=1e-14,
        events=reached,
    )
    assert sol.status == 1 and len(sol.t_events[0]) == 1, sol.message
    th = sol.y_events[0][0]
    u = th / np.linalg.norm(th)
    rate = float(u @ field(u))
    assert rate > 0
    return sol.t_events[0][0] + radius ** (1 - k) / ((k - 1) * rate)


# --------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------


class Case:
    def __init__(self, name, seed_offset, derivation, template, field, xt, y):
        self.name = name
        self.seed_offset = seed_offset
        self.derivation = derivation
        self.template = template
        self.field = field
        self.xt, self.y = xt, y
        self.model = effective_model(derivation, xt, y, template)
        scales = zip(SEEDS, EPSILONS, strict=True)
        self.thetas = np.stack([self.initial(seed, eps) for seed, eps in scales])
        self.trajs = [solve(self.model, jnp.asarray(th), SOLVE_OPTS) for th in self.thetas]
        self.t_star = np.array([float(tr.t_star) for tr in self.trajs])
        self.results = [int(tr.result) for tr in self.trajs]

    def initial(self, seed, eps):
        rng = np.random.default_rng(self.seed_offset + seed)
        params = tuple(eps * rng.standard_normal(w.shape) for w in self.template)
        theta = np.asarray(flatten(params))
        # the flat layout the hand fields assume: row-major per layer, layers in order
        np.testing.assert_array_equal(theta, np.concatenate([p.ravel() for p in params]))
        return theta


@pytest.fixture(scope="module")
def data():
    x, y = load_dataset("zhou2022-fig2", 0)
    n = x.shape[0]
    xt = np.c_[x, np.ones(n)]
    z = y[:, 0] @ xt / n
    mom = (xt * y).T @ xt / n
    return xt, y, z, mom


@pytest.fixture(scope="module")
def depth3(data):
    xt, y, z, _ = data
    m1, m2, d = 6, 5, xt.shape[1]
    template = (np.zeros((m1, d)), np.zeros((m2, m1)), np.zeros((1, m2)))
    return Case(
        "depth3-tanh",
        300,
        derive("tanh", 3),
        template,
        lambda th: field_depth3(th, z, m1, m2),
        xt,
        y,
    )


@pytest.fixture(scope="module")
def two_layer(data):
    xt, y, _, mom = data
    m, d = 4, xt.shape[1]
    template = (np.zeros((m, d)), np.zeros((1, m)))
    return Case(
        "depth2-xtanhx",
        200,
        derive(["x*tanh(x)"]),
        template,
        lambda th: field_two_layer(th, mom, m),
        xt,
        y,
    )


@pytest.fixture(scope="module", params=["depth3", "two_layer"])
def case(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def reference(case):
    """scipy T* per seed at R and at 10 R."""
    at_r = np.array([scipy_blowup_time(case.field, th) for th in case.thetas])
    at_10r = np.array([scipy_blowup_time(case.field, th, 10 * R_FACTOR) for th in case.thetas])
    return at_r, at_10r


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


def test_hand_field_is_the_model_field(case):
    """Sanity for diagnosis: the hand-written numpy field equals effdyn's (1e-12 relative)."""
    th = case.thetas[0]
    ours = case.field(th)
    theirs = np.asarray(case.model.field(jnp.asarray(th)))
    assert np.max(np.abs(theirs - ours)) <= 1e-12 * np.max(np.abs(ours))


def test_scipy_reference_converged_in_radius(reference):
    """R → 10 R changes the tail-corrected scipy T* by < 1e-10 relative."""
    at_r, at_10r = reference
    np.testing.assert_allclose(at_10r, at_r, rtol=1e-10, atol=0)


@pytest.mark.parametrize("i", range(len(SEEDS)))
def test_blowup_time_matches_scipy(case, reference, i):
    """|T*_effdyn / T*_scipy − 1| ≤ 1e-8 on each random initialization."""
    assert case.results[i] == Result.BLOWUP
    ratio = case.t_star[i] / reference[0][i]
    assert abs(ratio - 1) <= TSTAR_RTOL, (case.name, i, case.t_star[i], reference[0][i])


def test_depth3_direction_condenses_on_z(depth3, data):
    """Every row of W1 in the blow-up direction is ±z/|z| (|cos| ≥ 1 − 1e-9), and the growth
    rate is that of the balanced rank-one limit, u*·F(u*) = c_1²|z|/√3 (1e-9 relative)."""
    _, _, z, _ = data
    m1, d = depth3.template[0].shape
    for tr in depth3.trajs:
        u = np.asarray(tr.direction)
        assert np.isclose(np.linalg.norm(u), 1.0, rtol=1e-12)
        rows = u[: m1 * d].reshape(m1, d)
        cos = rows @ z / (np.linalg.norm(rows, axis=1) * np.linalg.norm(z))
        assert np.all(np.abs(cos) >= 1 - 1e-9), cos
        np.testing.assert_allclose(float(tr.growth_rate), np.linalg.norm(z) / np.sqrt(3), 1e-9)


def test_ensemble_matches_solve_blowup(case):
    """solve_ensemble (rtol 1e-8) on the same initial conditions: same T* to 1e-8."""
    ens = solve_ensemble(case.model, case.thetas, ENSEMBLE_OPTS, chunk_size=len(SEEDS))
    assert ens.t_star.shape == (len(SEEDS),)
    np.testing.assert_array_equal(ens.result, Result.BLOWUP)
    np.testing.assert_allclose(ens.t_star, case.t_star, rtol=TSTAR_RTOL, atol=0)


def test_threshold_time_with_tail_is_consistent(depth3):
    """threshold_blowup_time(R) + R^{−1}/(u*·F(u*)) agrees with T* to 1e-6 (R = 1e4 |θ₀|)."""
    th = depth3.thetas[0]
    radius = 1e4 * np.linalg.norm(th)
    t_r = float(threshold_blowup_time(depth3.model, jnp.asarray(th), radius))
    assert np.isfinite(t_r) and t_r < depth3.t_star[0]
    corrected = t_r + 1.0 / (radius * float(depth3.trajs[0].growth_rate))
    assert abs(corrected / depth3.t_star[0] - 1) <= 1e-6


def test_nonfinite_initial_condition(depth3):
    """NaN in θ₀: result NONFINITE (4) and t_star NaN, alone and as one row of an ensemble."""
    bad = depth3.thetas.copy()
    bad[1, 3] = np.nan
    tr = solve(depth3.model, jnp.asarray(bad[1]), SOLVE_OPTS)
    assert Result.from_value(tr.result) is Result.NONFINITE
    assert np.isnan(float(tr.t_star))
    ens = solve_ensemble(depth3.model, bad, ENSEMBLE_OPTS, chunk_size=len(SEEDS))
    np.testing.assert_array_equal(ens.result, [Result.BLOWUP, Result.NONFINITE, Result.BLOWUP])
    assert np.isnan(ens.t_star[1])
    np.testing.assert_allclose(ens.t_star[[0, 2]], depth3.t_star[[0, 2]], rtol=TSTAR_RTOL)


@pytest.fixture(scope="module")
def zero_target(depth3):
    """The depth-3 model on y = 0 data (z = 0, so F ≡ 0)."""
    zero = effective_model(depth3.derivation, depth3.xt, 0.0 * depth3.y, depth3.template)
    assert float(jnp.max(jnp.abs(zero.z))) == 0.0

    # Put its data arrays into the case's model: the same model (the data arrays are its only
    # leaves), which reuses the compiled solves instead of compiling new ones.
    def leaves(m):
        return (m.xt, m.y, m.z, m.sigma, m.y2, m.labels)

    assert len(jax.tree.leaves(zero)) == len(leaves(zero))
    return eqx.tree_at(leaves, depth3.model, leaves(zero))


def test_zero_target_correlation_is_no_blowup(depth3, zero_target):
    """y = 0: solve_blowup gives NO_BLOWUP (2) and t_star NaN."""
    for th in depth3.thetas:
        tr = solve(zero_target, jnp.asarray(th), SOLVE_OPTS)
        assert Result.from_value(tr.result) is Result.NO_BLOWUP
        assert np.isnan(float(tr.t_star))


def test_zero_target_correlation_is_no_blowup_in_ensemble(depth3, zero_target):
    """y = 0: solve_ensemble gives NO_BLOWUP (2) and t_star NaN for every row — including the
    row whose τ-horizon sets the chunk's end point, whose t may end just short of the horizon."""
    ens = solve_ensemble(zero_target, depth3.thetas, ENSEMBLE_OPTS, chunk_size=len(SEEDS))
    np.testing.assert_array_equal(ens.result, Result.NO_BLOWUP)
    assert np.all(np.isnan(ens.t_star))


def test_max_steps_is_a_result_code(depth3):
    """SolverOptions(max_steps=3): result MAX_STEPS (3) and t_star NaN, without raising."""
    tiny = SolverOptions(rtol=1e-10, atol=1e-13, max_steps=3)
    tr = solve(depth3.model, jnp.asarray(depth3.thetas[0]), tiny)
    assert Result.from_value(tr.result) is Result.MAX_STEPS
    assert np.isnan(float(tr.t_star))
    ens = solve_ensemble(depth3.model, depth3.thetas, tiny, chunk_size=len(SEEDS))
    np.testing.assert_array_equal(ens.result, Result.MAX_STEPS)
    assert np.all(np.isnan(ens.t_star))


def test_throw_raises_on_failures_only(depth3, zero_target):
    """throw=True: MAX_STEPS and NONFINITE raise EffdynError with the data-dependent message;
    BLOWUP and NO_BLOWUP (outcomes) return the same trajectory as throw=False."""
    tiny = SolverOptions(rtol=1e-10, atol=1e-13, max_steps=3)
    th = jnp.asarray(depth3.thetas[0])
    with pytest.raises(EffdynError, match="max_steps"):
        solve_blowup(depth3.model, th, tiny, throw=True)
    bad = depth3.thetas[1].copy()
    bad[3] = np.nan
    with pytest.raises(EffdynError, match="non-finite"):
        solve_blowup(depth3.model, jnp.asarray(bad), SOLVE_OPTS, throw=True)
    tr = solve_blowup(depth3.model, th, SOLVE_OPTS, throw=True)
    assert Result.from_value(tr.result) is Result.BLOWUP
    assert float(tr.t_star) == depth3.t_star[0]  # the same compiled solve as throw=False
    zero = solve_blowup(zero_target, th, SOLVE_OPTS, throw=True)
    assert Result.from_value(zero.result) is Result.NO_BLOWUP
    with pytest.raises(EffdynError, match="outside jit"):
        eqx.filter_jit(solve_blowup)(depth3.model, th, SOLVE_OPTS, throw=True)


def test_ensemble_throw_counts_the_failed_rows(depth3, zero_target):
    """solve_ensemble(throw=True) raises if any row failed, naming how many and which code;
    an ensemble of outcomes (blow-up, no blow-up) returns."""
    bad = depth3.thetas.copy()
    bad[1, 3] = np.nan
    n = len(SEEDS)
    with pytest.raises(EffdynError, match=r"1 of 3 trajectories failed: 1 nonfinite \(rows 1\)"):
        solve_ensemble(depth3.model, bad, ENSEMBLE_OPTS, chunk_size=n, throw=True)
    tiny = SolverOptions(rtol=1e-10, atol=1e-13, max_steps=3)
    with pytest.raises(EffdynError, match=r"3 of 3 trajectories failed: 3 max_steps"):
        solve_ensemble(depth3.model, depth3.thetas, tiny, chunk_size=n, throw=True)
    ens = solve_ensemble(depth3.model, depth3.thetas, ENSEMBLE_OPTS, chunk_size=n, throw=True)
    assert all(Result.from_value(c) is Result.BLOWUP for c in ens.result)
    zero = solve_ensemble(zero_target, depth3.thetas, ENSEMBLE_OPTS, chunk_size=n, throw=True)
    assert all(Result.from_value(c) is Result.NO_BLOWUP for c in zero.result)
