"""The fully connected kind (``kind = "fc"``): depth ``L ≥ 2`` (docs/theory/effective-dynamics.md).

Extra keys for ``effdyn predict``: for two-layer ``p = 1`` the growth rate in closed form,
``|c_1| s_1(Z)`` with ``Z = ⟨y x̃ᵀ⟩`` (each neuron's block is ``c_1 [[0, Z], [Zᵀ, 0]]``,
docs/theory/effective-dynamics.md#closed-forms); for two-layer networks the per-neuron
solve (neurons decouple; the network's ``T*`` is the minimum) and, where a closed form
exists (``p = 1``; ``p = 2``; 1-d input with bias), the critical orientations of ``F`` on the
sphere, whose stable ones are the first-layer directions.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import EffdynError
from ..losses import get_loss
from .base import ModelKind, RealNetwork, Units, num, solve_units

PREDICTED_MERGE = 1e-6
"""Limit directions closer than ``1 − cos < 1e-6`` are one orientation (they converge to
machine precision; distinct orientations are far apart)."""


class FullyConnected(ModelKind):
    """``f(x) = W_L σ(⋯ σ(W_1 x̃))`` (docs/theory/conventions.md)."""

    name = "fc"
    drift_note_text = (
        "σ{layer}(0) = {sigma0} ≠ 0 adds a degree-{degree} drift that dominates early; the "
        "prediction covers the centred part (docs/theory/multiplicity.md#drift)"
    )
    escape_note = (
        "the leading-order loss never drops by 10% along the effective trajectory (its "
        "best fit along the escape direction explains under 10% of ⟨|y|²⟩/2): "
        "t_escape is null; use t_star or growth_rate"
    )

    def derivation(self, problem):
        from ..symbolic.derivation import derive

        return derive(list(problem.model.activations), problem.model.depth)

    def real_network(self, problem):
        from ..training.network import first_layer_preactivation, network

        return RealNetwork(
            network(problem),
            problem.inputs(),
            first_layer_preactivation,
            ("fc", problem.model.activations),
        )

    def effective_model(self, problem, params0, *, deriv=None, loss="mse", around=None, small=None):
        from ..dynamics.model import effective_model

        self.check_reserved(loss, around, small)
        deriv = self.derivation(problem) if deriv is None else deriv
        return effective_model(deriv, problem.inputs(), problem.data.y, params0, loss=loss)

    def units(self, problem, params0, deriv):
        """Two-layer: neuron ``k`` is ``(w_k, a_k)`` = (row k of W1, column k of W2)."""
        if deriv.depth != 2:
            return None
        w1, w2 = (np.asarray(p) for p in params0)
        model = self.effective_model(
            problem, (w1[:1], w2[:, :1]), deriv=deriv, loss=problem.model.loss
        )
        return Units(model, np.concatenate([w1, w2.T], axis=1), w1.shape[1])

    def closed_forms(self, problem, deriv, params0, model, traj, out, opts, progress):
        extra: dict = {}
        xt = problem.inputs()
        y = get_loss(problem.model.loss).effective_target(problem.data.y, problem.d_out)
        if deriv.field_degree == 1 and deriv.depth == 2 and deriv.smooth:
            z = y.T @ xt / len(xt)  # Z = ⟨ỹ x̃ᵀ⟩ (docs/theory/losses.md#cross-entropy)
            extra["growth_rate"] = abs(float(deriv.activations[0].coefficient)) * float(
                np.linalg.svd(z, compute_uv=False)[0]
            )
            extra["growth_rate_solved"] = num(traj.growth_rate)
        directions = layer_directions(traj.direction, params0, model)
        units = self.units(problem, params0, deriv)
        if units is not None:
            solved = solve_units(units, opts, progress=progress)
            points = _critical_points(deriv, problem, y)
            orientations = None if points is not None else (solved.orientations() or None)
            extra["critical_points"] = points
            extra["per_neuron"] = {**solved.keys, "orientations": orientations}
            if points is not None:
                directions["W1"] = [c["direction"] for c in points if c["kind"] in ("max", "min")]
            elif orientations is not None:
                directions["W1"] = orientations
        return extra, directions, []

    def stages(self, problem, opts=None, *, progress: bool = False):
        """Deep linear networks (``activation = "x"``, square loss): the exact staircase of
        Z's modes on whitened data from a spectral balanced initialization — detected from
        the data and the weights, never declared — and otherwise, on whitened data, the
        chained prediction (docs/theory/staircases.md#deep-linear-networks). Non-linear
        two-layer networks get the unit-by-unit chained prediction
        (:mod:`effdyn.staircase.units`)."""
        from ..problem import initial_leaves
        from ..staircase.chained import chained
        from ..staircase.modes import detect, is_linear, staircase, whitened

        if not is_linear(problem):
            if problem.model.depth != 2:
                raise EffdynError(
                    f"{problem.source}: no staircase method applies to a non-linear fully "
                    f"connected network of depth {problem.model.depth} in this version (the "
                    "unit-by-unit chained prediction is for two-layer networks; the deep "
                    "linear methods need activation = 'x')"
                )
            return self._unit_stages(problem, progress)
        if problem.model.loss != "mse":
            raise EffdynError(
                f"{problem.source}: the deep linear staircase is for the square loss (mse), "
                f"not {problem.model.loss!r}"
            )
        xt, y, leaves = problem.inputs(), problem.data.y, initial_leaves(problem)
        modes, reason = detect(xt, y, leaves)
        if modes is not None:
            return staircase(modes)
        gap = whitened(xt)
        if gap is not None:
            raise EffdynError(
                f"{problem.source}: no staircase method applies: the inputs are not whitened "
                f"(max |⟨x̃x̃ᵀ⟩ − I| = {gap:.2g}); both deep linear methods need "
                "⟨x̃x̃ᵀ⟩ = I (bias = false, or centred inputs)"
            )
        z = y.T @ xt / len(xt)
        constant = 0.5 * float(np.mean(np.sum(y * y, axis=1))) - 0.5 * float(np.sum(z * z))
        found = chained(z, leaves, constant)
        note = f"exact modes do not apply ({reason}): chained prediction"
        return type(found)(
            found.stages, found.method, found.time_unit, found.extra, (note, *found.notes)
        )

    def _unit_stages(self, problem, progress):
        """Two-layer non-linear networks: the unit-by-unit chained prediction over the
        problem's training time (docs/theory/staircases.md#two-layer-networks)."""
        from ..problem import initial_leaves
        from ..staircase.units import chained_units
        from ..symbolic.activation import analyze_activation

        found = chained_units(
            problem.inputs(),
            problem.data.y,
            initial_leaves(problem),
            analyze_activation(problem.model.activations[0]),
            get_loss(problem.model.loss),
            problem.train.steps * problem.train.lr,
            progress=progress,
        )
        if problem.train.optimizer == "gd":
            return found
        note = (
            f"the prediction is gradient flow over t = steps × lr; a {problem.train.optimizer} "
            "run's t = k·lr is not gradient-flow time"
        )
        return dataclasses.replace(found, notes=(*found.notes, note))


def layer_directions(direction, params0, model) -> dict:
    """Cluster the rows of each layer of the blow-up direction into orientations."""
    from ..analysis.orientations import cluster_orientations

    direction = np.asarray(direction)
    if not np.all(np.isfinite(direction)):
        return {f"W{i + 1}": [] for i in range(len(params0))}
    out = {}
    for i, w in enumerate(model.unravel(direction)):
        found = cluster_orientations(np.asarray(w), PREDICTED_MERGE, min_relative_norm=1e-6)
        out[f"W{i + 1}"] = found.directions.tolist()
    return out


def _critical_points(deriv, problem, y) -> list[dict] | None:
    """The critical orientations of ``F`` on the sphere where a closed form exists."""
    from ..dynamics.critical import critical_orientations

    act = deriv.activations[0]
    if not (act.smooth and problem.d_out == 1):
        return None
    found = critical_orientations(act.degree, problem.inputs(), y)
    if found is None:
        return None
    return [
        {
            "direction": c.direction.tolist(),
            "value": c.value,
            "kind": c.kind,
            "attracts": c.attracts,
        }
        for c in found
    ]
