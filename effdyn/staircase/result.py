"""What ``effdyn stages`` returns: a staircase of stages (docs/theory/staircases.md).

A **stage** is one drop of the loss from one plateau to the next: its time ``t`` (the loss
crosses the midpoint between the two plateau levels), the plateau levels ``loss_before`` and
``loss_after``, and what was ``learned`` in it — mode indices for a deep linear network,
coordinates with their signs for a diagonal network, unit indices per leaf for the chained
prediction. ``method`` names how the staircase was computed and ``time_unit`` the clock its
times are on (``"t"``, gradient-flow time; ``"t/log(1/alpha)"``, the diagonal networks'
rescaled time).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

METHODS = ("exact-modes", "pesme-flammarion", "chained")
"""The three ways a staircase is computed (docs/theory/staircases.md)."""
TIME_UNITS = ("t", "t/log(1/alpha)")


@dataclass(frozen=True)
class Stage:
    """One drop of the loss: at ``t`` it crosses the midpoint of ``loss_before`` and
    ``loss_after``; ``learned`` says what grew, ``extra`` holds the method's own keys."""

    t: float
    loss_before: float
    loss_after: float
    learned: list
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "t": self.t,
            "loss_before": self.loss_before,
            "loss_after": self.loss_after,
            "learned": copy.deepcopy(self.learned),
            **copy.deepcopy(self.extra),
        }


@dataclass(frozen=True)
class Staircase:
    """The predicted stages of a problem, in the order they happen."""

    stages: tuple[Stage, ...]
    method: str
    time_unit: str = "t"
    extra: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown staircase method {self.method!r}")
        if self.time_unit not in TIME_UNITS:
            raise ValueError(f"unknown time unit {self.time_unit!r}")

    @property
    def times(self) -> list[float]:
        return [s.t for s in self.stages]

    def to_json(self) -> dict:
        """The JSON object of ``effdyn stages --json`` (docs/commands.md#stages)."""
        return {
            "method": self.method,
            "time_unit": self.time_unit,
            "stages": [s.to_json() for s in self.stages],
            **copy.deepcopy(self.extra),
            "warnings": list(self.notes),
        }


def learned_text(learned, *, most: int = 6) -> str:
    """``learned`` in words, for tables: mode indices (``mode 0``), signed coordinates
    (``+β3``), or the units of a two-layer network (``units 2, 7`` — once when every leaf
    lists the same units; ``32 units (2, 3, …)`` past ``most``); ``—`` when empty."""
    if isinstance(learned, dict):  # units per leaf (the two-layer chained prediction)
        lists = list(learned.values())
        if lists and all(units == lists[0] for units in lists):
            return _units(lists[0], most)
        return "; ".join(f"{leaf}: {_units(units, most)}" for leaf, units in learned.items())
    return ", ".join(_item(item) for item in learned) or "—"


def _units(units, most: int) -> str:
    if not units:
        return "—"
    shown = ", ".join(map(str, units[:most]))
    if len(units) > most:
        return f"{len(units)} units ({shown}, …)"
    return f"unit{'s' if len(units) > 1 else ''} {shown}"


def _item(item) -> str:
    if isinstance(item, dict) and "coordinate" in item:
        return f"{'+' if item['sign'] > 0 else '−'}β{item['coordinate']}"
    if isinstance(item, dict):
        return ", ".join(f"{k}: {v}" for k, v in item.items())
    return f"mode {item}"
