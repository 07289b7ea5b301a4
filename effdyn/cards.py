"""Theorem cards: one runnable check per claim of the seed papers.

A card (a file in ``theory/``) states a claim in words and maths, names its source, and says
how it is checked: which problems, which measured quantity, the expected value or relation,
the tolerance and why. Its ``run`` function measures and compares against the card's own
``expected`` and ``tolerance`` — so a card given a wrong expected value fails.

Cards are plain Python files defining ``CARD = Card(...)``; they are discovered in
``theory/`` next to the package and loaded by path (they are not part of the package).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EffdynError

THEORY_DIR = Path(__file__).resolve().parent.parent / "theory"

SEEDS = {
    "000": "Chen & Luo 2024, On the dynamics of three-layer neural networks: initial condensation",
    "001": "Chen et al. 2023, Phase diagram of initial condensation for two-layer networks",
    "002": "Zhou et al. 2022, Towards understanding the condensation of neural networks at "
    "initial training",
    "003": "Zhou et al. 2022, Empirical phase diagram for three-layer neural networks with "
    "infinite width",
    "004": "Zhou et al. 2023, Understanding the initial condensation of convolutional neural "
    "networks",
}


@dataclass(frozen=True)
class Outcome:
    """What a card measured.

    Attributes:
        measured: the headline number (or short text) shown in the table.
        passed: whether it meets the card's expected value within tolerance.
        summary: one line: what was measured against what.
        details: everything else worth keeping (goes to JSON and the report).
        figures: PNG files the card drew (paths), each with a one-line caption.
    """

    measured: Any
    passed: bool
    summary: str
    details: dict = field(default_factory=dict)
    figures: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Card:
    """A claim and its numerical check.

    Attributes:
        id: short name (the file name), used on the command line.
        claim: the statement in words.
        maths: the statement in formulas (Unicode or LaTeX).
        seed: the seed paper it comes from (``"000"`` … ``"004"``).
        check: how it is checked: problems, measured quantity, relation.
        expected: the expected value or bounds the check compares against.
        tolerance: the allowed deviation (meaning stated in ``why``).
        why: why this tolerance.
        quick: settings for ``--quick`` (minutes on 2 cores in total for all cards).
        full: settings for the full check.
        run: ``run(card, settings, out_dir) -> Outcome``; uses ``card.expected`` and
            ``card.tolerance``.
    """

    id: str
    claim: str
    maths: str
    seed: str
    check: str
    expected: Any
    tolerance: float
    why: str
    quick: dict
    full: dict
    run: Callable[[Card, dict, Path | None], Outcome]

    @property
    def source(self) -> str:
        return f"seed {self.seed}: {SEEDS.get(self.seed, 'unknown')}"

    def with_(self, **changes) -> Card:
        """A copy with some fields changed (e.g. a different ``expected``)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class CardResult:
    card: Card
    outcome: Outcome
    seconds: float
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.outcome.passed

    def as_dict(self) -> dict:
        o = self.outcome
        return {
            "id": self.card.id,
            "claim": self.card.claim,
            "source": self.card.source,
            "seed": self.card.seed,
            "measured": o.measured,
            "expected": self.card.expected,
            "tolerance": self.card.tolerance,
            "passed": self.passed,
            "summary": o.summary if self.error is None else self.error,
            "details": o.details,
            "figures": [{"path": p, "caption": c} for p, c in o.figures],
        }


def load_cards(directory: Path = THEORY_DIR) -> dict[str, Card]:
    """Every ``theory/*.py`` file's ``CARD``, by id, in file-name order."""
    if not directory.is_dir():
        raise EffdynError(f"no theorem cards: {directory} is not a folder")
    cards = {}
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"effdyn_theory_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        card = getattr(module, "CARD", None)
        if not isinstance(card, Card):
            raise EffdynError(f"{path} defines no CARD = Card(...)")
        cards[card.id] = card
    return cards


def select(cards: dict[str, Card], names: list[str] | None) -> list[Card]:
    if not names:
        return list(cards.values())
    unknown = [n for n in names if n not in cards]
    if unknown:
        raise EffdynError(f"unknown card(s) {', '.join(unknown)} (known: {', '.join(cards)})")
    return [cards[n] for n in names]


def run_card(card: Card, *, quick: bool = True, out_dir: Path | None = None) -> CardResult:
    """Run one card; an exception inside it becomes a failed result with a one-line reason."""
    settings = card.quick if quick else card.full
    start = time.perf_counter()
    try:
        outcome = card.run(card, settings, out_dir)
        error = None
    except Exception as err:  # a card that crashes fails; it does not stop the others
        outcome = Outcome(measured=None, passed=False, summary="")
        error = f"{type(err).__name__}: {' '.join(str(err).split())}"
    return CardResult(card, outcome, time.perf_counter() - start, error)


def within(value: float, expected: float, tolerance: float) -> bool:
    """``|value − expected| ≤ tolerance`` (NaN never passes)."""
    return value is not None and abs(float(value) - float(expected)) <= tolerance
