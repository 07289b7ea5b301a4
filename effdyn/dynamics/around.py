"""Expansion around a given state: ``θ = θ_b + εθ̄`` on the leaves named small
(docs/theory/reexpansion.md).

Around a state ``θ_b`` (a saddle the training reached, say) with a chosen set of leaves
small, the small leaves are set to 0 in ``θ_b`` and the rest held at their values there; the
leading order of ``R(θ_b + εθ̄) − R(θ_b)`` in the small leaves is what the automatic engine
finds for exponents 1 on the small leaves and 0 on the others
(docs/theory/automatic.md#per-leaf-exponents), with the residual ``g = ∂ℓ(f(θ_b), y)`` in
place of ``−y``. The small leaves' stored values are the initial condition of the expanded
dynamics.

:func:`problem_around` rewrites a problem that way, so that ``predict`` — and every kind
behind it — needs nothing new: the rewritten problem goes through the automatic kind.
:func:`read_state` reads a state: a ``.npz`` of leaves by name, or what ``effdyn train``
saves (``train.npz``: the final leaves, or snapshot ``K`` of its ``snapshot_steps``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import EffdynError

__all__ = ["State", "problem_around", "read_state"]


@dataclasses.dataclass(frozen=True)
class State:
    """A state to expand around.

    Attributes:
        leaves: name → array, for every leaf of the problem.
        source: where it came from (a path, or ``"<mapping>"``).
        snapshot: the snapshot index of a ``train.npz`` (None: its final leaves, or a plain
            file of leaves).
        step: the training step of that state, when the file says.
    """

    leaves: dict
    source: str
    snapshot: int | None = None
    step: int | None = None

    def describe(self) -> dict:
        return {"source": self.source, "snapshot": self.snapshot, "step": self.step}


def read_state(
    state: str | Path | Mapping | State,
    names: Sequence[str],
    shapes: Sequence[tuple[int, ...]],
    *,
    snapshot: int | None = None,
) -> State:
    """Read ``state`` and check that it has every leaf in ``names`` with its shape, finite.

    ``state`` is a mapping name → array, or a ``.npz`` path: leaves by name, or a
    ``train.npz`` (``leaf_names``, ``snapshot_steps`` and ``snapshots_<name>``); ``snapshot``
    picks snapshot ``K`` there (an index into ``snapshot_steps``, negative from the end).

    Raises:
        EffdynError: one line naming the missing leaf, the wrong shape, the bad index or the
            unreadable file.
    """
    if isinstance(state, State):
        arrays, source, step = dict(state.leaves), state.source, state.step
    elif isinstance(state, Mapping):
        arrays, source, step = dict(state), "<mapping>", None
    else:
        path = Path(state)
        source = str(path)
        try:
            with np.load(path, allow_pickle=False) as loaded:
                arrays = {name: loaded[name] for name in loaded.files}
        except FileNotFoundError:
            raise EffdynError(f"state {source!r}: file not found") from None
        except Exception as err:
            raise EffdynError(f"state {source!r} cannot be read as .npz ({err})") from None
        step = None
    if snapshot is not None:
        arrays, step = _snapshot(arrays, source, int(snapshot), names)
    elif "snapshot_steps" in arrays and len(arrays["snapshot_steps"]):
        step = int(np.asarray(arrays["snapshot_steps"])[-1])  # train.npz: the final leaves
    leaves = {}
    for name, shape in zip(names, shapes, strict=True):
        if name not in arrays:
            have = ", ".join(n for n in arrays if not n.startswith("snapshots_")) or "nothing"
            raise EffdynError(f"state {source!r} has no leaf {name!r} (it has: {have})")
        w = np.asarray(arrays[name], dtype=np.float64)
        if w.shape != tuple(shape):
            raise EffdynError(
                f"state {source!r}: leaf {name!r} has shape {w.shape}, the model's is "
                f"{tuple(shape)}"
            )
        if not np.all(np.isfinite(w)):
            raise EffdynError(f"state {source!r}: leaf {name!r} has non-finite values")
        leaves[name] = np.array(w)
    return State(leaves, source, snapshot, step)


def _snapshot(arrays: dict, source: str, k: int, names: Sequence[str]):
    if "snapshot_steps" not in arrays:
        raise EffdynError(
            f"state {source!r} holds no snapshots (it is not a train.npz); drop --snapshot"
        )
    steps = np.asarray(arrays["snapshot_steps"])
    count = len(steps)
    if not -count <= k < count:
        raise EffdynError(
            f"snapshot {k} is out of range: state {source!r} has {count} snapshots "
            f"(0..{count - 1}, steps {int(steps[0])}..{int(steps[-1])})"
        )
    picked = {}
    for name in names:
        key = f"snapshots_{name}"
        if key in arrays:
            picked[name] = np.asarray(arrays[key])[k]
    return picked, int(steps[k])


def problem_around(problem, state, small: str | Sequence[str], *, snapshot: int | None = None):
    """``problem`` expanded around ``state`` with the leaves ``small`` small (module doc).

    Returns ``(problem', State)``: ``problem'`` has initial leaves = the state and exponents
    1 on ``small``, 0 elsewhere, so ``predict(problem')`` gives the leading-order dynamics of
    the small leaves around ``θ_b`` (the state with the small leaves set to 0), started
    from their stored values.

    Raises:
        EffdynError: an unknown or repeated leaf name in ``small``, none given, or a state
            that lacks a leaf (one line).
    """
    names = list(problem.leaf_names())
    if isinstance(small, str):
        small = [s.strip() for s in small.split(",") if s.strip()]
    small = list(small or ())
    if not small:
        raise EffdynError("an expansion around a state needs at least one small leaf (--small)")
    unknown = [s for s in small if s not in names]
    if unknown:
        raise EffdynError(
            f"--small names no leaf {', '.join(map(repr, unknown))} (the leaves are: "
            f"{', '.join(names)})"
        )
    if len(set(small)) != len(small):
        raise EffdynError(f"--small repeats a leaf: {', '.join(small)}")
    found = read_state(state, names, problem.leaf_shapes(), snapshot=snapshot)
    exponents = tuple(1 if n in small else 0 for n in names)
    values = tuple(found.leaves[n] for n in names)
    init = dataclasses.replace(problem.init, values=values, exponents=exponents, path=None)
    return dataclasses.replace(problem, init=init), found
