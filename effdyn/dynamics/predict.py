"""``effdyn predict``: what training from a problem's small initialization will do.

From the derived field and the problem's own initial weights (the same draw ``train`` starts
from) this solves the effective dynamics and reports (docs/commands.md#predict):

- ``kind``: ``"blowup"`` (field degree ``k ≥ 2``) or ``"exponential"`` (``k = 1``);
- ``t_star``: the first blow-up time (gradient-flow time), rescaled-time method with tail
  (docs/theory/blowup.md#rescaled-time);
- ``growth_rate``: ``u*·F(u*)`` — for ``k = 1`` the top eigenvalue;
- ``t_escape``: the time at which the leading-order loss along the effective trajectory has
  dropped by 10% (the rule ``compare`` applies to the training loss;
  docs/theory/blowup.md#escape-time);
- ``directions``: per layer, the predicted condensed unit vectors, clustered into
  orientations, and ``n_orientations`` for the first layer;
- the kind's own keys (:meth:`~effdyn.kinds.base.ModelKind.closed_forms`: per-neuron
  ``T*``, critical points, a CNN's ``u1``/``gap``/``misalignment``, …).

:func:`predict` looks the network kind up once (:func:`~effdyn.kinds.kind_of`) and returns
a :class:`Prediction`: read-only mapping access (``result["t_star"]``) and
:meth:`Prediction.to_json` (the command's JSON object).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .._jax import in_float64
from ..errors import EffdynError
from ..kinds import build_warnings, contract_keys, kind_of, solve_one
from ..problem import Problem, initial_leaves
from ..results import Result, check
from .around import problem_around
from .blowup import SolverOptions

__all__ = ["Prediction", "predict", "solve_one"]


@dataclass(frozen=True, eq=False)
class Prediction(Mapping):
    """What ``effdyn predict`` found: a read-only mapping of the JSON keys.

    ``prediction["t_star"]``, ``.get``, ``in``, iteration and ``keys()`` read it; assignment
    fails. :meth:`to_json` gives the command's JSON object (a fresh, mutable copy).
    """

    data: Mapping = field(repr=False)

    def __post_init__(self):
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    def __getitem__(self, key: str):
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def code(self) -> Result:
        """The result code of the full-network solve (docs/results.md)."""
        return Result.from_name(self.data["result"])

    @property
    def t_star(self) -> float | None:
        return self.data["t_star"]

    @property
    def t_escape(self) -> float | None:
        return self.data["t_escape"]

    @property
    def growth_rate(self) -> float | None:
        return self.data["growth_rate"]

    @property
    def message(self) -> str:
        return self.data["message"]

    def __reduce__(self):  # picklable (a mapping proxy is not): rebuild from a plain dict
        return (Prediction, (dict(self.data),))

    def to_json(self) -> dict:
        """The JSON object of ``effdyn predict --json`` (a deep copy)."""
        return copy.deepcopy(dict(self.data))

    def __repr__(self) -> str:
        return (
            f"Prediction(result={self.data['result']!r}, t_star={self.t_star!r}, "
            f"t_escape={self.t_escape!r}, growth_rate={self.growth_rate!r})"
        )


@in_float64
def predict(
    problem: Problem,
    opts: SolverOptions | None = None,
    *,
    progress: bool = False,
    throw: bool = False,
    around: str | Path | Mapping | None = None,
    small: str | Sequence[str] | None = None,
    snapshot: int | None = None,
) -> Prediction:
    """Solve the effective dynamics of ``problem`` from its initialization (module doc).

    Args:
        problem: a loaded problem (any kind in :data:`effdyn.kinds.KINDS`).
        opts: solver options (default :class:`~effdyn.dynamics.blowup.SolverOptions`).
        progress: show a progress bar for the per-unit solves.
        throw: raise on a failure code (``max_steps``, ``nonfinite``, ``solver_failed``)
            instead of returning it (docs/results.md); "no blow-up within the horizon" is an
            outcome and never raises.
        around: expand around this state instead of the small initialization
            (docs/theory/reexpansion.md): a mapping leaf name → array, a ``.npz`` of leaves
            by name, or a ``train.npz``; the leaves named in ``small`` are small there and
            their stored values are the initial condition. Adds the key ``around``.
        small: the small leaves' names (a list, or one comma-separated string).
        snapshot: with a ``train.npz``, the index of the snapshot to expand around (its
            final leaves by default).

    Raises:
        EffdynError: bad input (one line), or a failure with ``throw=True``.
    """
    opts = opts or SolverOptions()
    state = None
    if around is not None or small is not None or snapshot is not None:
        if around is None or small is None:
            raise EffdynError("an expansion around a state needs both a state and small leaves")
        problem, state = problem_around(problem, around, small, snapshot=snapshot)
    kind = kind_of(problem)
    deriv = kind.derivation(problem)
    params0 = initial_leaves(problem)
    model = kind.effective_model(problem, params0, deriv=deriv, loss=problem.model.loss)
    traj = solve_one(model, kind.initial_state(problem, params0, model, deriv), opts)
    out = contract_keys(
        deriv, traj, opts, problem.init.scales, float(np.linalg.norm(np.asarray(model.z)))
    )
    extra, directions, notes = kind.closed_forms(
        problem, deriv, params0, model, traj, out, opts, progress
    )
    out.update(extra)
    out["warnings"] = build_warnings(kind, deriv, notes, out)
    out["directions"] = directions
    if "n_orientations" not in out:  # a kind with per-leaf units gives its own counts
        out["n_orientations"] = len(directions.get("W1") or [])
    if state is not None:
        out["around"] = {
            **state.describe(),
            "small": [
                n for n, g in zip(problem.leaf_names(), problem.init.exponents, strict=True) if g
            ],
        }
    check(traj.result, out["message"], throw=throw)
    return Prediction(out)
