"""Sweep files: a problem file plus a ``[sweep]`` table, validated into a :class:`SweepSpec`.

A sweep runs one problem (``[model]``, ``[data]``, ``[init]``, optional ``[train]``) over a
grid of initialization scalings (docs/theory/phase-diagrams.md) and network widths and seeds::

    [sweep]
    kind = "two_layer"          # or "three_layer"
    gamma = [0.5, 1.0, 1.75]    # two_layer: gamma and gamma_prime
    (docs/theory/phase-diagrams.md#two-layer)
    gamma_prime = [0.0]
    widths = [100, 400, 1600]   # hidden width m (the sweep's widths replace [model] width)
    seeds = [0, 1]

``three_layer`` takes one list per layer exponent instead: ``gamma_1`` and ``gamma_2``
(required), ``gamma_3`` and ``gamma_out`` (optional; left out, the science module's defaults
apply). Two optional numbers tune the training of every point (:mod:`effdyn.phase`):
``lr_scale`` (``c`` in the width-aware learning-rate rule) and ``tol`` (stop once the loss is
``tol`` times its initial value; 0 runs every point the full number of steps).

The problem's ``[train]`` table may be left out (the science module's defaults then apply);
when given, its ``lr`` fixes every point's step size (replacing the rule), its ``steps`` caps
the steps (``max_steps``), and ``optimizer`` must be ``"gd"`` (docs/theory/phase-diagrams.md:
full-batch GD).

The points are the Cartesian product of the lists, in the order
``(exponents..., width, seed)``; each is a plain dict such as
``{"gamma": 0.5, "gamma_prime": 0.0, "width": 100, "seed": 0}`` with a stable id
(:func:`point_id`), ``"gamma=0.5,gamma_prime=0.0,width=100,seed=0"``.

Every mistake is an :class:`~effdyn.errors.EffdynError` with one line naming the file, the
table and the key, e.g. ``sweep.toml: [sweep] widths[1] must be >= 1, got 0``.

Only the standard library is imported (and :mod:`effdyn.problem` to load a file).

    >>> spec = sweep_from_table({"kind": "two_layer", "gamma": [0.5, 1], "gamma_prime": [0],
    ...                          "widths": [10, 20], "seeds": [0]})
    >>> spec.dims, spec.shape
    (('gamma', 'gamma_prime', 'width', 'seed'), (2, 1, 2, 1))
    >>> point_id(spec.points()[1])
    'gamma=0.5,gamma_prime=0.0,width=20,seed=0'
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effdyn.errors import EffdynError

KINDS = ("two_layer", "three_layer")

# Exponent coordinates of each kind: (required, optional), in the store's dimension order.
EXPONENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "two_layer": (("gamma", "gamma_prime"), ()),
    "three_layer": (("gamma_1", "gamma_2"), ("gamma_3", "gamma_out")),
}
DEPTHS = {"two_layer": 2, "three_layer": 3}
"""Weight layers of the fully connected network each kind sweeps."""

GRID_KEYS = ("widths", "seeds")
OPTION_KEYS = ("lr_scale", "tol")
"""Optional numbers of ``[sweep]`` passed on to the evaluator as training options."""
POINT_KEYS = ("width", "seed")
"""The two dimensions after the exponents; slopes are fitted over width, averaged over seed."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _show(value: Any) -> str:
    text = _one_line(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: its kind, exponent lists, widths and seeds.

    ``exponents`` holds ``(name, values)`` pairs in dimension order; ``options`` the
    ``(name, value)`` training options given (``lr_scale``, ``tol``); ``source`` names the
    file in messages and takes no part in equality.
    """

    kind: str
    exponents: tuple[tuple[str, tuple[float, ...]], ...]
    widths: tuple[int, ...]
    seeds: tuple[int, ...]
    options: tuple[tuple[str, float], ...] = ()
    source: str = field(default="<dict>", compare=False)

    @property
    def exponent_names(self) -> tuple[str, ...]:
        """Names of the exponent coordinates, e.g. ``("gamma", "gamma_prime")``."""
        return tuple(name for name, _ in self.exponents)

    @property
    def dims(self) -> tuple[str, ...]:
        """All dimensions of the grid: the exponents, then ``width`` and ``seed``."""
        return (*self.exponent_names, *POINT_KEYS)

    @property
    def coords(self) -> dict[str, tuple]:
        """Values along each dimension, in :attr:`dims` order."""
        out: dict[str, tuple] = dict(self.exponents)
        out["width"] = self.widths
        out["seed"] = self.seeds
        return out

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(values) for values in self.coords.values())

    @property
    def n_points(self) -> int:
        return math.prod(self.shape)

    @property
    def depth(self) -> int:
        """Weight layers of the swept network (2 for ``two_layer``, 3 for ``three_layer``)."""
        return DEPTHS[self.kind]

    def points(self) -> list[dict]:
        """Every point of the grid (the Cartesian product, last dimension fastest)."""
        names = self.dims
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*self.coords.values())
        ]

    def index(self, point: Mapping[str, Any]) -> tuple[int, ...]:
        """Position of ``point`` in the grid (one integer per dimension)."""
        try:
            return tuple(values.index(point[name]) for name, values in self.coords.items())
        except (KeyError, ValueError):
            raise KeyError(f"{point_id(point)} is not a point of this sweep") from None

    def to_dict(self) -> dict:
        """A JSON-ready description (what a result store records and checks)."""
        return {
            "kind": self.kind,
            **{k: list(v) for k, v in self.coords.items()},
            **dict(self.options),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> SweepSpec:
        """Inverse of :meth:`to_dict`."""
        table = {
            ("widths" if k == "width" else "seeds" if k == "seed" else k): v for k, v in d.items()
        }
        return sweep_from_table(table, source=source)

    def difference(self, other: SweepSpec) -> str | None:
        """A short phrase naming how ``other`` differs from this sweep, or ``None``."""
        if self.kind != other.kind:
            return f"kind {self.kind!r} vs {other.kind!r}"
        mine = {**self.coords, **dict(self.options)}
        theirs = {**other.coords, **dict(other.options)}
        for name in dict.fromkeys([*mine, *theirs]):
            a, b = mine.get(name), theirs.get(name)
            if a != b:
                return f"{name} {_shown(a)} vs {_shown(b)}"
        return None


def _shown(value: Any) -> str:
    if value is None:
        return "absent"
    return _show(list(value) if isinstance(value, tuple) else value)


def point_id(point: Mapping[str, Any]) -> str:
    """A stable, readable key of a point: ``"gamma=0.5,gamma_prime=0.0,width=100,seed=0"``.

    Exponents print as Python floats (``repr``, which round-trips), width and seed as
    integers, in the point's own key order (the grid's dimension order).
    """
    parts = []
    for name, value in point.items():
        shown = repr(int(value)) if name in POINT_KEYS else repr(float(value))
        parts.append(f"{name}={shown}")
    return ",".join(parts)


# ---------------------------------------------------------------------------------------------
# Parsing


def sweep_from_table(
    table: Mapping[str, Any] | None, *, source: str = "<dict>", depth: int | None = None
) -> SweepSpec:
    """Validate a ``[sweep]`` table (the parsed TOML) into a :class:`SweepSpec`.

    ``depth`` (the problem's ``[model] depth``), when given, must match the kind. Raises
    :class:`~effdyn.errors.EffdynError` with a one-line message.
    """

    def error(message: str) -> EffdynError:
        return EffdynError(_one_line(f"{source}: [sweep] {message}"))

    if table is None:
        raise EffdynError(
            f"{source}: no [sweep] table (a sweep file is a problem file plus a [sweep] table)"
        )
    if not isinstance(table, Mapping):
        raise error(f"must be a table, got {_show(table)}")
    if "kind" not in table:
        raise error(f"missing required key 'kind' ({' or '.join(map(repr, KINDS))})")
    kind = table["kind"]
    if kind not in KINDS:
        raise error(f"kind must be {' or '.join(map(repr, KINDS))}, got {_show(kind)}")
    required, optional = EXPONENTS[kind]
    allowed = ("kind", *required, *optional, *GRID_KEYS, *OPTION_KEYS)
    for key in table:
        if key not in allowed:
            raise error(f"unknown key {key!r} (allowed for {kind}: {', '.join(allowed)})")
    for key in (*required, *GRID_KEYS):
        if key not in table:
            raise error(f"missing required key {key!r}")
    if depth is not None and depth != DEPTHS[kind]:
        raise error(f"kind {kind!r} needs [model] depth = {DEPTHS[kind]}, got depth = {depth}")

    exponents = tuple(
        (name, tuple(_numbers(error, name, table[name])))
        for name in (*required, *optional)
        if name in table
    )
    widths = tuple(_integers(error, "widths", table["widths"], low=1))
    seeds = tuple(_integers(error, "seeds", table["seeds"], low=0))
    options = []
    for key in OPTION_KEYS:
        if key in table:
            value = table[key]
            if not _is_number(value):
                raise error(f"{key} must be a number, got {_show(value)}")
            low_ok = value > 0 if key == "lr_scale" else 0 <= value < 1
            if not (math.isfinite(value) and low_ok):
                bounds = "finite and > 0" if key == "lr_scale" else "in [0, 1)"
                raise error(f"{key} must be {bounds}, got {value}")
            options.append((key, float(value)))
    return SweepSpec(kind, exponents, widths, seeds, tuple(options), source)


def _items(error, key: str, value: Any, what: str) -> list:
    if not isinstance(value, list | tuple):
        raise error(f"{key} must be an array of {what}, e.g. {key} = [1, 2], got {_show(value)}")
    if len(value) == 0:
        raise error(f"{key} is an empty array (give at least one value)")
    return list(value)


def _no_repeats(error, key: str, values: list) -> list:
    seen = set()
    for value in values:
        if value in seen:
            raise error(f"{key} has the value {value!r} twice")
        seen.add(value)
    return values


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _numbers(error, key: str, value: Any) -> list[float]:
    out = []
    for i, item in enumerate(_items(error, key, value, "numbers")):
        if not _is_number(item):
            raise error(f"{key}[{i}] must be a number, got {_show(item)}")
        if not math.isfinite(item):
            raise error(f"{key}[{i}] must be finite, got {item}")
        out.append(float(item) + 0.0)  # + 0.0 turns -0.0 into 0.0: one id per value
    return _no_repeats(error, key, out)


def _integers(error, key: str, value: Any, low: int) -> list[int]:
    out = []
    for i, item in enumerate(_items(error, key, value, "integers")):
        if isinstance(item, float) and math.isfinite(item) and item.is_integer():
            item = int(item)
        if not (isinstance(item, numbers.Integral) and not isinstance(item, bool)):
            raise error(f"{key}[{i}] must be an integer, got {_show(item)}")
        if item < low:
            raise error(f"{key}[{i}] must be >= {low}, got {item}")
        out.append(int(item))
    return _no_repeats(error, key, out)


def load_sweep(path: str | Path):
    """Read a sweep file: ``(problem, spec, train_options)``.

    ``problem`` is the validated base problem (:func:`effdyn.problem.problem_from_dict`), a
    fully connected network of the kind's depth; ``[model] width`` may be left out (the
    sweep's widths replace it; the first is used to validate). ``train_options`` comes from
    :func:`train_options`: ``None`` when neither ``[train]`` nor the ``[sweep]`` options are
    given (the science module's defaults then apply).
    """
    from effdyn.problem import problem_from_dict, read_toml

    path = Path(path)
    source = str(path)
    table = read_toml(path)

    spec = sweep_from_table(table.get("sweep"), source=source)
    model = table.get("model")
    if isinstance(model, dict) and "width" not in model and "widths" not in model:
        model["width"] = spec.widths[0]  # only to validate; every point sets its own width
    problem = problem_from_dict(table, source=source, base_dir=path.parent)
    if problem.model.kind != "fc":
        raise EffdynError(
            f"{source}: [sweep] phase diagrams need a fully connected network "
            f"([model] kind = 'fc'), got {problem.model.kind!r}"
        )
    if problem.model.depth != spec.depth:
        raise EffdynError(
            f"{source}: [sweep] kind {spec.kind!r} needs [model] depth = {spec.depth}, "
            f"got depth = {problem.model.depth}"
        )
    return problem, spec, train_options(problem, spec)


def train_options(problem, spec: SweepSpec) -> dict | None:
    """The evaluator's training options from ``[train]`` and ``[sweep]`` (``None``: defaults).

    ``[train] lr`` → ``lr`` (one fixed step size), ``[train] steps`` → ``max_steps``,
    ``[sweep] lr_scale`` and ``tol`` as they are; ``[train] optimizer`` must be ``"gd"``.
    """
    train = dict((problem.raw or {}).get("train") or {})
    if train.get("optimizer", "gd") != "gd":
        raise EffdynError(
            f"{problem.source}: [train] optimizer must be 'gd' for a phase diagram "
            f"(full-batch gradient descent, docs/theory/phase-diagrams.md), got "
            f"{train['optimizer']!r}"
        )
    options: dict[str, Any] = {}
    if "lr" in train:
        options["lr"] = float(problem.train.lr)
    if "steps" in train:
        options["max_steps"] = int(problem.train.steps)
    options.update(spec.options)
    return options or None


def problem_fingerprint(problem) -> str:
    """JSON of the problem's tables without ``[sweep]`` and the width (which points set).

    A result store records it so that a changed problem file is not mixed into old results.
    """
    raw = {k: dict(v) for k, v in (problem.raw or {}).items() if k != "sweep"}
    model = raw.get("model", {})
    for key in ("width", "widths"):
        model.pop(key, None)
    return json.dumps(raw, sort_keys=True, default=_jsonable)


def _jsonable(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    return tolist() if tolist is not None else repr(value)
