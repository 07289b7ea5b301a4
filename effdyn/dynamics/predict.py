"""``effdyn predict``: what training from a problem's small initialization will do.

From the derived field and the problem's own initial weights (the same draw ``train`` starts
from) this solves the effective dynamics and reports (docs/commands.md#predict):

- ``kind``: ``"blowup"`` (field degree ``k ≥ 2``) or ``"exponential"`` (``k = 1``);
- ``t_star``: the first blow-up time (gradient-flow time), rescaled-time method with tail;
- ``growth_rate``: ``u*·F(u*)`` — for ``k = 1`` the top eigenvalue, in closed form for a
  two-layer ``p = 1`` network: ``|c_1| s_1(Z)``, ``Z = ⟨y x̃ᵀ⟩``;
- ``t_escape``: the time at which the leading-order loss along the effective trajectory has
  dropped by 10% (the rule ``compare`` applies to the training loss);
- ``directions``: per layer, the predicted condensed unit vectors (rows of each weight
  matrix, clustered into orientations), and ``n_orientations`` for the first layer. For
  two-layer networks with a closed form (p = 1; p = 2; 1-d input with bias) the first-layer
  directions are the stable critical orientations of ``F`` on the sphere
  (docs/theory/effective-dynamics.md#two-layer).
- two-layer networks also get per-neuron ``t_star`` (neurons decouple; the network's
  ``T*`` is the minimum) and the index of the first neuron to blow up.
"""

from __future__ import annotations

import math

import equinox as eqx
import numpy as np

from .._jax import enable_x64
from ..analysis.orientations import cluster_orientations
from ..api import derive_problem
from ..problem import Problem, initial_params
from ..symbolic.derivation import Derivation
from .blowup import SolverOptions, solve_blowup
from .critical import critical_orientations
from .ensemble import solve_ensemble
from .model import effective_model, flatten
from .results import Result, describe

enable_x64()

PREDICTED_MERGE = 1e-6
"""Limit directions closer than ``1 − cos < 1e-6`` are one orientation (they converge to
machine precision; distinct orientations are far apart)."""

solve_one = eqx.filter_jit(solve_blowup)
""":func:`~effdyn.dynamics.blowup.solve_blowup`, compiled once per model shape and shared by
every caller (fully connected, CNN, the agreement cards)."""


def _num(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def contract_keys(
    deriv: Derivation, traj, opts: SolverOptions, scales, z_norm: float, warnings: list[str]
) -> dict:
    """The contract's keys of ``effdyn predict`` (docs/commands.md#predict) from one solve
    ``traj``."""
    code = Result(int(traj.result))
    return {
        "kind": "blowup" if deriv.field_degree >= 2 else "exponential",
        "t_star": _num(traj.t_star),
        "growth_rate": _num(traj.growth_rate),
        "t_escape": _num(traj.t_escape),
        "result": code.name.lower(),
        "message": describe(
            code,
            energy0=float(traj.energy0),
            field_norm0=float(traj.field_norm0),
            z_norm=z_norm,
            horizon=float(traj.horizon),
        ),
        "degree": deriv.degree,
        "field_degree": deriv.field_degree,
        "epsilon": [float(e) for e in scales],
        "energy0": float(traj.energy0),
        "solver": {"steps": int(traj.steps), "rtol": opts.rtol, "atol": opts.atol},
        "warnings": warnings,
    }


def predict(problem: Problem, opts: SolverOptions | None = None, *, progress: bool = False) -> dict:
    """Solve the effective dynamics of ``problem`` from its initialization (see module doc).

    A two-layer CNN (``kind = "cnn"``) goes to :func:`~effdyn.dynamics.cnn.predict_cnn`
    (the same keys, plus ``u1``, ``gap``, ``misalignment``; docs/theory/cnn.md#misalignment).
    """
    if problem.model.kind == "cnn":
        from .cnn import predict_cnn

        return predict_cnn(problem, opts, progress=progress)
    opts = opts or SolverOptions()
    deriv = derive_problem(problem)
    params0 = initial_params(problem)
    xt, y = problem.inputs(), problem.data.y
    model = effective_model(deriv, xt, y, params0)
    traj = solve_one(model, flatten(params0), opts)
    code = Result(int(traj.result))
    z = y.T @ xt / len(xt)
    out = contract_keys(
        deriv, traj, opts, problem.init.scales, float(np.linalg.norm(z)), _warnings(deriv)
    )
    if deriv.field_degree == 1 and deriv.depth == 2 and deriv.smooth:
        # Two-layer p = 1: each neuron's block is c_1 [[0, Z], [Zᵀ, 0]]
        # (docs/theory/effective-dynamics.md#two-layer).
        out["growth_rate"] = abs(float(deriv.activations[0].coefficient)) * float(
            np.linalg.svd(z, compute_uv=False)[0]
        )
        out["growth_rate_solved"] = _num(traj.growth_rate)
    directions = _layer_directions(traj.direction, params0, model)
    if deriv.depth == 2:
        out.update(_two_layer(deriv, problem, params0, opts, progress))
        if out.get("critical_points") is not None:
            stable = [c["direction"] for c in out["critical_points"] if c["kind"] in ("max", "min")]
            directions["W1"] = stable
        elif out["per_neuron"]["orientations"] is not None:
            directions["W1"] = out["per_neuron"]["orientations"]
    if out["t_escape"] is None and code.ok:
        out["warnings"].append(
            "the leading-order loss never drops by 10% along the effective trajectory (its "
            "best fit along the escape direction explains under 10% of ⟨|y|²⟩/2): "
            "t_escape is null; use t_star or growth_rate"
        )
    out["directions"] = directions
    out["n_orientations"] = len(directions.get("W1") or [])
    return out


def _warnings(deriv: Derivation) -> list[str]:
    notes = []
    for term in deriv.drift:
        notes.append(
            f"σ{term.layer}(0) = {term.sigma0} ≠ 0 adds a degree-{term.degree} drift that "
            "dominates early; the prediction covers the centred part "
            "(docs/theory/multiplicity.md#drift)"
        )
    if not deriv.smooth:
        notes.append("non-smooth activation: the leading-order field is piecewise")
    return notes


def _layer_directions(direction, params0, model) -> dict:
    """Cluster the rows of each layer of the blow-up direction into orientations."""
    direction = np.asarray(direction)
    if not np.all(np.isfinite(direction)):
        return {f"W{i + 1}": [] for i in range(len(params0))}
    layers = model.unravel(direction)
    out = {}
    for i, w in enumerate(layers):
        w = np.asarray(w)
        found = cluster_orientations(w, PREDICTED_MERGE, min_relative_norm=1e-6)
        out[f"W{i + 1}"] = found.directions.tolist()
    return out


def _two_layer(deriv, problem, params0, opts, progress) -> dict:
    """Per-neuron solves (vmapped ensemble) and, where they exist, the critical points."""
    w1, w2 = (np.asarray(p) for p in params0)
    neuron_template = (w1[:1], w2[:, :1])
    model = effective_model(deriv, problem.inputs(), problem.data.y, neuron_template)
    thetas = np.concatenate([w1, w2.T], axis=1)  # ravel order of (w_k, a_k)
    ens = solve_ensemble(model, thetas, opts, progress=progress)
    t_star = ens.t_star
    first = int(np.nanargmin(t_star)) if np.any(np.isfinite(t_star)) else None
    limit_w = np.where(np.isfinite(ens.direction), ens.direction, 0.0)[:, : w1.shape[1]]
    orientations = None
    act = deriv.activations[0]
    points = None
    if act.smooth and problem.d_out == 1:
        found = critical_orientations(act.degree, problem.inputs(), problem.data.y)
        if found is not None:
            points = [
                {
                    "direction": c.direction.tolist(),
                    "value": c.value,
                    "kind": c.kind,
                    "attracts": c.attracts,
                }
                for c in found
            ]
    if points is None:
        grown = np.isin(ens.result, (Result.BLOWUP, Result.ESCAPED))
        if np.any(grown):
            orientations = cluster_orientations(limit_w[grown], 1e-4).directions.tolist()
    return {
        "critical_points": points,
        "per_neuron": {
            "t_star": [_num(t) for t in t_star],
            "result": [Result(int(c)).name.lower() for c in ens.result],
            "first": first,
            "t_star_min": _num(np.nanmin(t_star)) if first is not None else None,
            "orientations": orientations,
        },
    }
