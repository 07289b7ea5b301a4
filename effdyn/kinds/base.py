"""The model-kind interface: what ``predict`` (and ``compare``) ask of a network kind.

``predict`` looks the kind up ONCE (:func:`effdyn.kinds.kind_of`) and then only calls the
methods of :class:`ModelKind` (docs/extending.md#adding-a-model-kind). The pieces every kind
shares live here, once: the contract's keys (:func:`contract_keys`), the per-unit block
(:func:`solve_units`: a kind whose units — neurons, channels — decouple at leading order
solves them as one ensemble, docs/theory/effective-dynamics.md#two-layer) and the warnings
builder (:func:`build_warnings`).

Every kind takes every loss of :mod:`effdyn.losses` (``loss``). An expansion around a given
state needs nothing of a kind: ``predict`` rewrites the problem to per-leaf exponents (1 on
the small leaves, 0 elsewhere) started from the state
(:func:`effdyn.dynamics.around.problem_around`, docs/theory/reexpansion.md), which the
automatic kind expands; the ``around``/``small`` arguments of :meth:`ModelKind.effective_model`
stay refused with one line. :meth:`ModelKind.stages` is reserved for later work. A leaf's
*units* are the slices along its unit axis (``[model] unit_axes``; rows by default):
:meth:`ModelKind.unit_rows`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EffdynError
from ..results import Result, describe

if TYPE_CHECKING:
    from ..dynamics.blowup import SolverOptions
    from ..problem import Problem
    from ..symbolic.derivation import Derivation

UNIT_MERGE = 1e-4
"""Limit directions of the per-unit solves closer than ``1 − cos < 1e-4`` are one
orientation."""


def num(value) -> float | None:
    """A finite float, or None (JSON's null) for NaN/inf."""
    value = float(value)
    return value if math.isfinite(value) else None


def solve_one(model, theta0, opts: SolverOptions | None = None):
    """:func:`~effdyn.dynamics.blowup.solve_blowup`, compiled once per model shape and
    shared by every caller (every kind, the agreement cards); it computes in float64 whatever
    the caller's setting (docs/precision.md)."""
    from ..dynamics.blowup import DEFAULT_OPTIONS, solve_blowup

    # solve_blowup compiles itself (once per model layout, options and shape) in float64
    return solve_blowup(model, theta0, DEFAULT_OPTIONS if opts is None else opts)


@dataclass(frozen=True)
class Units:
    """A kind's decomposition into decoupled units (docs/theory/effective-dynamics.md#two-layer).

    Attributes:
        model: the effective model of ONE unit (a template with one neuron / channel).
        thetas: ``(N, P)`` the units' flat initial states, one row each.
        first_block: how many leading entries of a unit's state are its first-layer
            weights (its direction is read from them).
    """

    model: Any
    thetas: np.ndarray
    first_block: int


@dataclass(frozen=True)
class UnitSolve:
    """What :func:`solve_units` found: per-unit keys and the grown units' limit directions."""

    keys: dict
    limit: np.ndarray
    grown: np.ndarray

    def orientations(self) -> list:
        """The grown units' limit first-layer directions clustered into orientations."""
        from ..analysis.orientations import cluster_orientations

        if not self.grown.any():
            return []
        return cluster_orientations(self.limit[self.grown], UNIT_MERGE).directions.tolist()


def solve_units(units: Units, opts: SolverOptions, *, progress: bool = False) -> UnitSolve:
    """The one per-unit block: solve every unit as an ensemble
    (:func:`~effdyn.dynamics.ensemble.solve_ensemble`); the network's ``T*`` is the
    smallest unit's. Keys: ``t_star`` and ``result`` per unit, ``first``, ``t_star_min``."""
    from ..dynamics.ensemble import solve_ensemble

    ens = solve_ensemble(units.model, units.thetas, opts, progress=progress)
    t_star = ens.t_star
    first = int(np.nanargmin(t_star)) if np.any(np.isfinite(t_star)) else None
    limit = np.where(np.isfinite(ens.direction), ens.direction, 0.0)[:, : units.first_block]
    keys = {
        "t_star": [num(t) for t in t_star],
        "result": [Result.from_value(c).label for c in ens.result],
        "first": first,
        "t_star_min": num(np.nanmin(t_star)) if first is not None else None,
    }
    return UnitSolve(keys, limit, np.isin(ens.result, (Result.BLOWUP, Result.ESCAPED)))


def contract_keys(deriv: Derivation, traj, opts: SolverOptions, scales, z_norm: float) -> dict:
    """The contract's keys of ``effdyn predict`` (docs/commands.md#predict) from one solve
    ``traj`` of the whole network (``warnings`` is filled in by :func:`build_warnings`)."""
    code = Result.from_value(traj.result)
    return {
        "kind": "blowup" if deriv.field_degree >= 2 else "exponential",
        "t_star": num(traj.t_star),
        "growth_rate": num(traj.growth_rate),
        "t_escape": num(traj.t_escape),
        "result": code.label,
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
        "warnings": [],
    }


def build_warnings(kind: ModelKind, deriv: Derivation, notes: list[str], out: dict) -> list[str]:
    """The one warnings builder: the drift notes (docs/theory/multiplicity.md#drift), a
    non-smooth note, the kind's own ``notes``, and — when the solve grew but the
    leading-order loss never dropped by 10% — the kind's null-``t_escape`` note."""
    found = [kind.drift_note(term) for term in deriv.drift]
    if not deriv.smooth:
        found.append("non-smooth activation: the leading-order field is piecewise")
    found.extend(notes)
    if out["t_escape"] is None and Result.from_name(out["result"]).ok:
        found.append(kind.escape_note)
    return found


@dataclass(frozen=True, eq=False)
class RealNetwork:
    """What training needs of a kind (docs/extending.md#adding-a-model-kind).

    Attributes:
        f: ``f(leaves, inputs) -> (n, K)`` — the real network on the parameter LEAVES (a
            tuple in leaf order: ``W1..WL``, or a user model's flatten order).
        inputs: the array ``f`` takes (``x̃``, a CNN's patches, a user model's raw ``x``).
        preactivation: ``preactivation(leaves, inputs)`` -> array whose largest absolute
            entry is the "pre-activation" of the initial-stage rule
            (docs/theory/measuring.md#initial-stage).
        key: hashable, equal for networks that compute the same function (the training
            loop caches its compiled chunk on ``(key, loss, optimizer, chunk)``).
    """

    f: Any
    inputs: Any
    preactivation: Any
    key: Any


def derive_keys(problem: Problem, deriv) -> dict:
    """The keys every kind adds to ``effdyn derive`` for a symbolic derivation
    (docs/commands.md#derive): ``active_parameters`` (every weight: each enters ``E``),
    ``frozen_parameters`` (none), ``drift_parameters`` (the leaves that enter at order 1:
    ``W_L`` when ``σ_{L−1}(0) ≠ 0``), ``model_homogeneous`` (every activation equals its
    leading part, so ``f(cθ) = c^q f(θ)``) and ``loss``."""
    names = list(problem.leaf_names())
    last = deriv.activations[-1]
    drift = [names[-1]] if float(last.sigma0) != 0 else []
    return {
        "active_parameters": names,
        "frozen_parameters": [],
        "drift_parameters": drift,
        "model_homogeneous": bool(
            all(a.homogeneous and float(a.sigma0) == 0 for a in deriv.activations)
        ),
        "loss": problem.model.loss,
    }


@dataclass(frozen=True)
class Measurements:
    """A kind's own measurements for ``compare`` (docs/commands.md#compare): keys added to
    ``measured``, to ``measured["initial_stage"]`` and to ``definitions``, and the weights
    at the measured escape step where the kind draws them (else None)."""

    measured: dict = field(default_factory=dict)
    initial_stage: dict = field(default_factory=dict)
    definitions: dict = field(default_factory=dict)
    escape_params: tuple | None = None


class ModelKind(ABC):
    """One network kind (``kind = "fc"``, ``"cnn"``, …): docs/extending.md#adding-a-model-kind.

    ``predict`` calls, in order: :meth:`derivation`, :meth:`effective_model` (the whole
    network, for the one full solve), :meth:`units` (the decoupled units, or None) and
    :meth:`closed_forms` (the kind's extra keys, its directions and notes). ``train`` calls
    :meth:`real_network`; ``compare`` reads the units of :meth:`main_leaf` through
    :meth:`unit_rows`, asks :meth:`capture_steps` for extra steps to keep θ at and adds
    :meth:`measure`'s keys.
    """

    name: str = ""
    drift_note_text: str = ""
    escape_note: str = ""

    @abstractmethod
    def derivation(self, problem: Problem) -> Derivation:
        """The leading-order derivation of the problem's network."""

    @abstractmethod
    def effective_model(
        self,
        problem: Problem,
        params0,
        *,
        deriv: Derivation | None = None,
        loss: str = "mse",
        around=None,
        small=None,
    ):
        """The effective model bound to the problem's data, laid out like ``params0``.

        ``loss`` names the training loss (:mod:`effdyn.losses`); ``around`` (expand around
        this state) and ``small`` (which leaves are small there) are reserved: see
        :meth:`check_reserved`.
        """

    def initial_state(self, problem: Problem, leaves0, model, deriv):
        """The solvers' flat initial state for the initial leaves ``leaves0``."""
        from ..dynamics.model import flatten

        return flatten(leaves0)

    def units(self, problem: Problem, params0, deriv: Derivation) -> Units | None:
        """The per-unit decomposition, or None where the units do not decouple."""
        return None

    @abstractmethod
    def closed_forms(self, problem, deriv, params0, model, traj, out: dict, opts, progress):
        """``(extra keys, directions, notes)`` of this kind for ``effdyn predict``."""

    def measure(self, problem, run, predicted, t_escape, stage_w1, stage_t) -> Measurements:
        """The kind's extra measurements of a training ``run`` for ``compare`` (none by
        default): ``t_escape`` is the measured escape time (or None), ``stage_w1`` and
        ``stage_t`` the first layer and time at the end of the initial stage."""
        return Measurements()

    def real_network(self, problem: Problem) -> RealNetwork:
        """The real network for training (:class:`RealNetwork`)."""
        raise NotImplementedError(f"kind {self.name!r} has no real network")

    def derive_summary(self, problem: Problem, deriv) -> dict:
        """The ``effdyn derive --json`` object of ``problem`` (docs/commands.md#derive)."""
        from ..symbolic.derivation import derivation_summary

        return {**derivation_summary(deriv), **derive_keys(problem, deriv)}

    def unit_axes(self, problem: Problem) -> tuple[int, ...]:
        """Per leaf, the axis that indexes its units (``[model] unit_axes``; 0 = rows)."""
        return tuple(problem.model.unit_axis(name) for name in problem.leaf_names())

    def main_leaf(self, problem: Problem, predicted) -> str:
        """The leaf whose units ``compare`` measures at top level (the first layer)."""
        return problem.leaf_names()[0]

    def unit_rows(self, problem: Problem, leaves, name: str) -> np.ndarray:
        """The units of leaf ``name`` as the rows of a matrix: the leaf with its unit axis
        first, the other axes flattened (a vector or scalar is one unit)."""
        w = np.asarray(leaves[problem.leaf_names().index(name)])
        if w.ndim < 2:
            return w.reshape(1, -1)
        axis = problem.model.unit_axis(name)
        return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)

    def capture_steps(self, problem: Problem, predicted) -> tuple[int, ...]:
        """Steps at which ``compare`` keeps θ besides the initial-stage and escape ones (a
        :class:`~effdyn.training.Capture` ``at_step`` each); they reach :meth:`measure`
        through ``run.captured[2:]``."""
        return ()

    def setting(self, problem: Problem) -> str:
        """One line naming the problem's setting (figure titles, ``compare``'s JSON)."""
        m = problem.model
        acts = ", ".join(dict.fromkeys(m.activations))
        return (
            f"{problem.data.name}, depth {m.depth}, width {'/'.join(map(str, m.widths))}, "
            f"{acts}{loss_label(problem)}, ε = {eps_label(problem)}, "
            f"{problem.train.optimizer} lr {problem.train.lr:g}"
        )

    def stages(self, *args, **kwargs):
        """The stage-by-stage dynamics of the kind (reserved for later work)."""
        raise EffdynError(f"stages are not available for kind {self.name!r}")

    def drift_note(self, term) -> str:
        """The warning for one drift term ``σ_l(0) ≠ 0``."""
        return self.drift_note_text.format(layer=term.layer, sigma0=term.sigma0, degree=term.degree)

    def check_reserved(self, loss: str = "mse", around=None, small=None) -> None:
        """Refuse what this kind does not implement yet (one line)."""
        from ..losses import get_loss

        get_loss(loss)  # an unknown name is one line
        if around is not None or small is not None:
            raise EffdynError(
                f"an expansion around a given state is not available for kind {self.name!r}"
            )


def loss_label(problem: Problem) -> str:
    loss = problem.model.loss
    return "" if loss == "mse" else f", {loss} loss"


def eps_label(problem: Problem) -> str:
    return ", ".join(f"{s:g}" for s in dict.fromkeys(problem.init.scales))
