"""Gradient descent against the effective trajectory at the same time ``t = k·lr``.

Used by the agreement theorem cards: the relative distance ``|θ_GD − θ_eff| / |θ_eff|`` at
``t ≈ τ·T*``, split by a Richardson step (GD at ``lr`` and ``lr/2``) into GD's own ``O(lr)``
error and what is left when ``lr → 0`` (the ``O(ε^r)`` Taylor remainder of the activations).
"""

from __future__ import annotations

import math

import numpy as np

from .._jax import in_float64
from ..api import derive_problem
from ..dynamics.blowup import trajectory
from ..dynamics.model import effective_model, flatten
from ..kinds import solve_one
from ..problem import Problem, initial_params
from ..training import train


def euler_estimate(lr, t, t_star):
    """First-order GD error of the blow-up mode r' = a r² at time t (derived from the modified
    equation r' = a r² − lr a² r³): δr/r ≈ (lr/T*) · log(1/(1 − τ)) / (1 − τ), τ = t/T*."""
    tau = t / t_star
    return lr / t_star * math.log(1.0 / (1.0 - tau)) / (1.0 - tau)


@in_float64
def gd_vs_effective(problem: Problem, lr: float, fractions) -> tuple[float, list[dict]]:
    """Relative distances |θ_GD − θ_eff| / |θ_eff| at t = k·lr ≈ τ·T* for each τ.

    GD is run at lr (k steps) and at lr/2 (2k steps): ``plain`` is the distance of GD at lr;
    ``lr0`` that of the Richardson extrapolation 2θ(lr/2) − θ(lr) (GD's O(lr) error removed:
    what is left is the O(ε²) Taylor part, plus O(lr²/T*²)); ``discrete`` = |θ(lr) − θ_lr0|
    is GD's own O(lr) error.
    """
    params0 = initial_params(problem)
    model = effective_model(derive_problem(problem), problem.inputs(), problem.data.y, params0)
    theta0 = flatten(params0)
    t_star = float(solve_one(model, theta0).t_star)
    steps = [round(f * t_star / lr) for f in fractions]
    eff = np.asarray(trajectory(model, theta0, np.asarray([s * lr for s in steps])))
    rows = []
    for k, theta_eff in zip(steps, eff, strict=True):
        full = np.asarray(flatten(train(problem, steps=k, lr=lr, n_snapshots=2).params))
        half = np.asarray(flatten(train(problem, steps=2 * k, lr=lr / 2, n_snapshots=2).params))
        lr0 = 2 * half - full
        norm = float(np.linalg.norm(theta_eff))
        rows.append(
            {
                "t": k * lr,
                "t_over_t_star": k * lr / t_star,
                "steps": k,
                "plain": float(np.linalg.norm(full - theta_eff)) / norm,
                "lr0": float(np.linalg.norm(lr0 - theta_eff)) / norm,
                "discrete": float(np.linalg.norm(full - lr0)) / norm,
                "euler_estimate": euler_estimate(lr, k * lr, t_star),
                "growth": norm / float(np.linalg.norm(theta0)),
            }
        )
    return t_star, rows
