"""Theorem cards: one runnable check per claim of a paper (docs/cards.md).

A card (a file in ``theory/``) states a claim in words and maths, names its source paper by
arXiv id (:mod:`effdyn.papers`), and says
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
from .papers import Paper, paper

THEORY_DIR = Path(__file__).resolve().parent.parent / "theory"


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
        paper: the arXiv id of the paper the claim comes from (a key of
            :data:`effdyn.papers.PAPERS`), e.g. ``"2105.11686"``.
        check: how it is checked: problems, measured quantity, relation.
        expected: the expected value or bounds the check compares against.
        tolerance: the allowed deviation (meaning stated in ``why``).
        why: why this tolerance.
        quick: settings for ``--quick`` (minutes on 2 cores in total for all cards).
        full: settings for the full check.
        run: ``run(card, settings, out_dir) -> Outcome``; uses ``card.expected`` and
            ``card.tolerance``.
        also: arXiv ids of further papers the card relies on (e.g. reported values).
    """

    id: str
    claim: str
    maths: str
    paper: str
    check: str
    expected: Any
    tolerance: float
    why: str
    quick: dict
    full: dict
    run: Callable[[Card, dict, Path | None], Outcome]
    also: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for arxiv in (self.paper, *self.also):
            paper(arxiv)  # an unknown arXiv id is an EffdynError when the card is made

    @property
    def papers(self) -> tuple[Paper, ...]:
        """The source paper first, then :attr:`also`."""
        return tuple(paper(arxiv) for arxiv in (self.paper, *self.also))

    @property
    def source(self) -> str:
        """``"Zhou et al. 2022, <title>, arXiv 2105.11686"`` (then ``; with ...`` for
        :attr:`also`)."""
        main, *more = self.papers
        text = f"{main.short}, {main.title}, arXiv {main.arxiv}"
        return text + "".join(f"; with {p.cite()}" for p in more)

    @property
    def citation(self) -> str:
        """Short form of :attr:`source`: ``"Zhou et al. 2022, arXiv 2105.11686"``."""
        return "; ".join(p.cite() for p in self.papers)

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
            "citation": self.card.citation,
            "paper": self.card.paper,
            "papers": [self.card.paper, *self.card.also],
            "seed": self.card.paper,  # older name of "paper" (kept: keys are only added)
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
