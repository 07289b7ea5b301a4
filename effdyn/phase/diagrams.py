"""The two phase diagrams effdyn draws, declared once (docs/theory/phase-diagrams.md).

A :class:`Diagram` names what a diagram sweeps and what it measures; everything else in
:mod:`effdyn.phase` (the sweep file's keys, the store's dims and fields, the evaluator, the
slopes and the figure) reads it from here:

- ``two_layer`` (depth 2; docs/theory/phase-diagrams.md#two-layer; Luo et al. 2021, arXiv
  2007.07497): the exponents ``gamma`` and ``gamma_prime``
  (:data:`effdyn.phase.two_layer.EXPONENTS`), one RD per weight layer ``W1``, ``W2``;
- ``three_layer`` (depth 3; docs/theory/phase-diagrams.md#three-layer; Zhou et al. 2022, arXiv
  2205.12101): one exponent per layer, ``gamma_1`` and ``gamma_2`` required, ``gamma_3`` and
  ``gamma_out`` optional (:data:`effdyn.phase.three_layer.EXPONENTS`), RDs of ``W1``, ``W2``,
  ``W3``.

A point of either diagram is its exponents, then ``width`` and ``seed``
(:data:`POINT_KEYS`): slopes are fitted over width and averaged over seed
(docs/theory/phase-diagrams.md#order-parameter). Its result fields are ``rd_<layer>`` per
layer (:func:`rd_field`), ``final_loss_ratio``, ``steps`` (int64) and ``lr``.

    >>> DIAGRAMS["two_layer"].layers, [f.name for f in DIAGRAMS["two_layer"].fields()][:2]
    (('W1', 'W2'), ['rd_W1', 'rd_W2'])
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sweeps.spec import Field
from . import three_layer, two_layer

POINT_KEYS = ("width", "seed")
"""The two dimensions after the exponents."""

GRID_KEYS = {"widths": "width", "seeds": "seed"}
"""``[sweep]`` keys of the two point dimensions → the dimension they fill."""

OPTION_KEYS = ("lr_scale", "tol")
"""Optional numbers of ``[sweep]`` passed on to the evaluator as training options."""


def rd_field(layer: str) -> str:
    """The result field of ``layer``'s relative distance: ``"W1"`` → ``"rd_W1"``."""
    return f"rd_{layer}"


@dataclass(frozen=True)
class Diagram:
    """One phase diagram: its kind, network depth and exponent keys."""

    kind: str
    depth: int
    required: tuple[str, ...]
    """Exponent keys a sweep must give (in the store's dimension order, with ``optional``)."""
    optional: tuple[str, ...] = ()
    """Exponent keys a sweep may give (left out: the evaluator's defaults)."""

    @property
    def exponents(self) -> tuple[str, ...]:
        """Every exponent key, in dimension order."""
        return (*self.required, *self.optional)

    @property
    def layers(self) -> tuple[str, ...]:
        """The weight layers, ``("W1", ..., "W<depth>")``."""
        return tuple(f"W{layer}" for layer in range(1, self.depth + 1))

    def fields(self) -> tuple[Field, ...]:
        """The result fields of a point: RD per layer, the loss ratio, steps and lr."""
        rds = tuple(Field(rd_field(layer)) for layer in self.layers)
        return (*rds, Field("final_loss_ratio"), Field("steps", "int64"), Field("lr"))


DIAGRAMS: dict[str, Diagram] = {
    "two_layer": Diagram("two_layer", 2, two_layer.EXPONENTS),
    "three_layer": Diagram("three_layer", 3, three_layer.EXPONENTS[:2], three_layer.EXPONENTS[2:]),
}
"""Every diagram by kind (the one list of kinds and exponents)."""

KINDS = tuple(DIAGRAMS)
"""``("two_layer", "three_layer")``."""

BY_DEPTH = {diagram.depth: diagram for diagram in DIAGRAMS.values()}


def diagram(kind: str) -> Diagram:
    """The diagram of ``kind``; ``ValueError`` for an unknown kind."""
    if kind not in DIAGRAMS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return DIAGRAMS[kind]
