"""Theorem cards: discovery, the verify table, and that a card can fail."""

import json
import re

import pytest
from conftest import run_cli

from effdyn.cards import Card, Outcome, load_cards, run_card, within
from effdyn.errors import EffdynError
from effdyn.papers import PAPERS


def test_every_card_names_a_paper_and_states_its_claim():
    cards = load_cards()
    assert len(cards) >= 1
    for card in cards.values():
        assert card.paper in PAPERS and all(a in PAPERS for a in card.also)
        assert card.claim and card.maths and card.check and card.why
        assert isinstance(card.quick, dict) and isinstance(card.full, dict)


def test_every_card_source_names_its_papers_by_arxiv_id():
    """The report and ``verify`` cite each card's papers as authors, year, ``arXiv NNNN.NNNNN``."""
    for card in load_cards().values():
        ids = re.findall(r"arXiv (\d{4}\.\d{4,5})", card.source)  # 4 digits before 2015
        assert ids == [card.paper, *card.also], card.id
        first = PAPERS[card.paper]
        assert card.source.startswith(f"{first.authors[0].split()[-1]} ")
        assert str(first.year) in card.source


def test_a_card_with_an_unknown_paper_is_refused():
    with pytest.raises(EffdynError, match="unknown paper"):
        _toy(1.0).with_(paper="0000.00000")


def _toy(expected):
    """A card whose measurement is exact: the blow-up time of x' = x², x(0) = 1 is 1."""

    def run(card, settings, out_dir):
        from scipy.integrate import solve_ivp

        def hit(t, x):
            return x[0] - 1e12

        hit.terminal = True
        sol = solve_ivp(lambda t, x: x**2, (0, 2), [1.0], rtol=1e-12, atol=0, events=hit)
        measured = sol.t_events[0][0] + 1e-12  # tail: 1/x at the event
        return Outcome(measured, within(measured, card.expected, card.tolerance), "T*")

    return Card(
        id="toy",
        claim="x' = x² from 1 blows up at 1",
        maths="T* = 1/x0",
        paper="2402.15958",
        check="solve_ivp",
        expected=expected,
        tolerance=1e-8,
        why="rtol 1e-12",
        quick={},
        full={},
        run=run,
    )


def test_a_wrong_expected_value_fails():
    assert run_card(_toy(1.0)).passed
    assert not run_card(_toy(1.1)).passed
    assert not run_card(_toy(1.0).with_(expected=0.9)).passed


def test_a_real_card_with_a_wrong_expected_value_fails():
    card = load_cards()["blowup_depth"]
    result = run_card(card.with_(expected=-2.0), quick=True)  # the slope is −(k−1) = −1
    assert not result.passed
    assert result.outcome.details["slope"] == pytest.approx(-1.0, abs=0.05)


def test_a_crashing_card_fails_with_a_reason():
    def run(card, settings, out_dir):
        raise RuntimeError("boom")

    result = run_card(_toy(1.0).with_(run=run))
    assert not result.passed and "boom" in result.error


def test_unknown_card_is_bad_input():
    code, out, err = run_cli("verify", "no_such_card", "--json")
    assert code == 2 and "unknown card" in json.loads(out)["error"]
    with pytest.raises(EffdynError):
        from effdyn.cards import select

        select(load_cards(), ["nope"])


def test_the_report_lists_every_cards_paper_with_authors_year_and_arxiv_id():
    from effdyn.cards import CardResult
    from effdyn.report import references

    cards = list(load_cards().values())
    results = [CardResult(c, Outcome(None, True, ""), 0.0) for c in cards]
    listed = references(results)
    assert len({p.arxiv for p in listed}) == len(listed)
    for card in cards:
        for arxiv in (card.paper, *card.also):
            (paper,) = [p for p in listed if p.arxiv == arxiv]
            line = paper.reference()
            assert f"arXiv {arxiv}" in line and f"({paper.year})" in line
            assert paper.authors[0] in line
