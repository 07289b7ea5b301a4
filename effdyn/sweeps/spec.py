"""A sweep's declaration: its grid (named dimensions with values and dtypes) and result fields.

The sweep engine knows no science. A science module (for phase diagrams :mod:`effdyn.phase`,
docs/theory/phase-diagrams.md) declares what it sweeps and what it measures, and the engine
stores whatever it is given (docs/problem-files.md#sweep):

- :class:`Dim` — one dimension of the grid: a name, its values (in order), a dtype
  (``"float64"`` or ``"int64"``) and the store's chunk along it;
- :class:`Field` — one result variable: a name and a dtype;
- :class:`SweepSpec` — the grid (``kind``, dims, fields, options): the points are the
  Cartesian product of the dims' values, last dimension fastest.

A point is a plain dict ``{dim name: value}`` in dimension order, with a stable id
(:func:`point_id`). :func:`values_of` validates a list from a parsed TOML table into a dim's
values with one-line messages (``sweep.toml: [sweep] widths[1] must be >= 1, got 0``).

    >>> spec = SweepSpec("demo", (Dim("a", (0.5, 1)), Dim("n", (10, 20), "int64")))
    >>> spec.dims, spec.shape
    (('a', 'n'), (2, 2))
    >>> point_id(spec.points()[1])
    'a=0.5,n=20'

Only the standard library is imported.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from effdyn.errors import EffdynError

DTYPES = ("float64", "int64")
"""The dtypes a dim or a field may have (floats fill with NaN, integers with -1)."""


def one_line(text: Any) -> str:
    """``text`` with every run of white space (newlines included) made one space."""
    return " ".join(str(text).split())


def shown(value: Any) -> str:
    """A short one-line ``repr`` of ``value`` for messages (at most 60 characters)."""
    text = one_line(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _normalized(value: Any, dtype: str) -> int | float:
    if dtype == "int64":
        return int(value)
    return float(value) + 0.0  # + 0.0 turns -0.0 into 0.0: one id per value


@dataclass(frozen=True)
class Dim:
    """One dimension of a sweep's grid.

    ``values`` are stored as Python floats (``"float64"``) or ints (``"int64"``); ``chunk``
    is the store's chunk length along the dim (``None``: the whole dim in one chunk).
    """

    name: str
    values: tuple
    dtype: str = "float64"
    chunk: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(
                f"dim {self.name!r}: dtype must be one of {DTYPES}, got {self.dtype!r}"
            )
        values = tuple(_normalized(v, self.dtype) for v in self.values)
        if not values or len(set(values)) != len(values):
            raise ValueError(f"dim {self.name!r}: values must be distinct and not empty")
        object.__setattr__(self, "values", values)

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "values": list(self.values),
                "chunk": self.chunk}  # fmt: skip


@dataclass(frozen=True)
class Field:
    """One result variable of a sweep: its name and dtype (``"float64"`` or ``"int64"``)."""

    name: str
    dtype: str = "float64"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(
                f"field {self.name!r}: dtype must be one of {DTYPES}, got {self.dtype!r}"
            )

    @property
    def fill(self) -> float | int:
        """The value of a field not (yet) known: NaN, or -1 for integers."""
        return -1 if self.dtype == "int64" else math.nan


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: its ``kind`` (the study's name), grid, result fields and options.

    ``grid`` holds the :class:`Dim` s in dimension order; ``fields`` the result variables a
    store starts with (a result carrying another number adds a float variable on first
    sight); ``options`` ``(name, value)`` pairs of JSON values that also define the results
    (e.g. a tolerance). ``source`` names the file in messages and takes no part in equality.
    """

    kind: str
    grid: tuple[Dim, ...]
    fields: tuple[Field, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    source: str = field(default="<dict>", compare=False)

    @property
    def dims(self) -> tuple[str, ...]:
        """The dimension names, in order."""
        return tuple(dim.name for dim in self.grid)

    @property
    def coords(self) -> dict[str, tuple]:
        """Values along each dimension, in :attr:`dims` order."""
        return {dim.name: dim.values for dim in self.grid}

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(dim.values) for dim in self.grid)

    @property
    def n_points(self) -> int:
        return math.prod(self.shape)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The store's chunk shape (each dim's ``chunk``, or the whole dim)."""
        return tuple(dim.chunk or len(dim.values) for dim in self.grid)

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
            return tuple(dim.values.index(point[dim.name]) for dim in self.grid)
        except (KeyError, ValueError):
            raise KeyError(f"{point_id(point)} is not a point of this sweep") from None

    def to_dict(self) -> dict:
        """A JSON-ready description (what a result store records and checks)."""
        return {
            "kind": self.kind,
            "dims": [dim.to_dict() for dim in self.grid],
            "fields": [{"name": f.name, "dtype": f.dtype} for f in self.fields],
            "options": dict(self.options),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> SweepSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            kind=str(d["kind"]),
            grid=tuple(
                Dim(g["name"], tuple(g["values"]), g["dtype"], g.get("chunk")) for g in d["dims"]
            ),
            fields=tuple(Field(f["name"], f["dtype"]) for f in d.get("fields", ())),
            options=tuple(dict(d.get("options") or {}).items()),
            source=source,
        )

    def difference(self, other: SweepSpec) -> str | None:
        """A short phrase naming how ``other``'s grid or options differ, or ``None``.

        The fields take no part: a store holds whatever fields its results bring.
        """
        if self.kind != other.kind:
            return f"kind {self.kind!r} vs {other.kind!r}"
        if self.dims != other.dims:
            return f"dims {list(self.dims)} vs {list(other.dims)}"
        mine = {**self.coords, **dict(self.options)}
        theirs = {**other.coords, **dict(other.options)}
        for name in dict.fromkeys([*mine, *theirs]):
            a, b = mine.get(name), theirs.get(name)
            if a != b:
                return f"{name} {_shown_value(a)} vs {_shown_value(b)}"
        return None


def _shown_value(value: Any) -> str:
    if value is None:
        return "absent"
    return shown(list(value) if isinstance(value, tuple) else value)


def point_id(point: Mapping[str, Any]) -> str:
    """A stable, readable key of a point, e.g. ``"a=0.5,n=20"``.

    Integers print as integers, every other value as a Python float (``repr``, which
    round-trips), in the point's own key order (the grid's dimension order).
    """
    parts = []
    for name, value in point.items():
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        parts.append(f"{name}={int(value)!r}" if integral else f"{name}={float(value)!r}")
    return ",".join(parts)


# ---------------------------------------------------------------------------------------------
# Validating a parsed table


def is_number(value: Any) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def values_of(
    error: Callable[[str], EffdynError],
    key: str,
    value: Any,
    dtype: str = "float64",
    *,
    low: int | float | None = None,
) -> tuple:
    """Validate the TOML list ``value`` under ``key`` into a dim's values.

    A non-empty array of finite numbers (``"float64"``) or integers (``"int64"``; ``2.0``
    counts as ``2``), each at least ``low`` when given, no value twice. ``error(message)``
    makes the exception raised (it prefixes the file and table).
    """
    what = "integers" if dtype == "int64" else "numbers"
    if not isinstance(value, list | tuple):
        raise error(f"{key} must be an array of {what}, e.g. {key} = [1, 2], got {shown(value)}")
    if len(value) == 0:
        raise error(f"{key} is an empty array (give at least one value)")
    out = []
    for i, item in enumerate(value):
        if dtype == "int64":
            if isinstance(item, float) and math.isfinite(item) and item.is_integer():
                item = int(item)
            if not (isinstance(item, numbers.Integral) and not isinstance(item, bool)):
                raise error(f"{key}[{i}] must be an integer, got {shown(item)}")
        else:
            if not is_number(item):
                raise error(f"{key}[{i}] must be a number, got {shown(item)}")
            if not math.isfinite(item):
                raise error(f"{key}[{i}] must be finite, got {item}")
        if low is not None and item < low:
            raise error(f"{key}[{i}] must be >= {low}, got {item}")
        item = _normalized(item, dtype)
        if item in out:
            raise error(f"{key} has the value {item!r} twice")
        out.append(item)
    return tuple(out)
