"""The ``partial_small_init`` card: its degree count, checked without effdyn's engine, and
its verdict, which a wrong expected value turns into FAIL (docs/theory/partial-small.md)."""

import importlib.util

import numpy as np
import pytest

from effdyn.api import derive_problem
from effdyn.cards import THEORY_DIR, load_cards


def _card_module():
    spec = importlib.util.spec_from_file_location(
        "partial_small_init_card", THEORY_DIR / "partial_small_init.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_chain(seed=0, n=12, d=3, width=5):
    """x̃ (with a ones column), y, and four weight matrices of a depth-4 chain."""
    rng = np.random.default_rng(seed)
    xt = np.concatenate([rng.uniform(-2, 2, (n, d)), np.ones((n, 1))], axis=1)
    y = rng.standard_normal((n, 1))
    shapes = [(width, d + 1), (width, width), (width, width), (1, width)]
    ws = [rng.standard_normal(s) / np.sqrt(s[1]) for s in shapes]
    return xt, y, ws


def _f(ws, xt):
    """``W4 tanh(W3 tanh(W2 tanh(W1 x̃)))`` on the rows of x̃."""
    h = xt
    for w in ws[:-1]:
        h = np.tanh(h @ w.T)
    return h @ ws[-1].T


def _loss(ws, xt, y):
    return 0.5 * np.mean(np.sum((_f(ws, xt) - y) ** 2, axis=1))


def _scaled(ws, r, eps):
    """The last ``r`` matrices times ``eps`` (the small ones), the others as they are."""
    return [w * eps if j >= 4 - r else w for j, w in enumerate(ws)]


@pytest.mark.parametrize("r", [2, 3, 4])
def test_the_loss_change_is_of_order_eps_to_the_r(r):
    """``R(θ_ε) − R(θ_0) = −ε^r ⟨y W̄4⋯W̄_{5−r} φ(x)⟩ + O(ε^{r+2})`` with ``φ`` the O(1)
    layers' own (nonlinear) feature map; ``θ_0`` has the small layers at 0 (so ``f = 0``)."""
    xt, y, ws = _tiny_chain()
    r0 = 0.5 * np.mean(y**2)
    eps = 1e-2
    d1 = _loss(_scaled(ws, r, eps), xt, y) - r0
    d2 = _loss(_scaled(ws, r, eps / 2), xt, y) - r0
    assert d1 / d2 == pytest.approx(2.0**r, rel=1e-2)
    phi = xt
    for w in ws[: 4 - r]:
        phi = np.tanh(phi @ w.T)
    chain = np.eye(ws[-1].shape[1])
    for w in ws[4 - r : -1][::-1]:
        chain = chain @ w
    leading = -np.mean(y * (phi @ (ws[-1] @ chain).T))
    assert d1 / eps**r == pytest.approx(leading, rel=1e-3)
    if r < 4:  # the O(1) layers enter through tanh: their linearisation is not the energy
        lin = xt
        for w in ws[: 4 - r]:
            lin = lin @ w.T
        wrong = -np.mean(y * (lin @ (ws[-1] @ chain).T))
        assert abs(wrong / leading - 1) > 0.05


def test_the_engine_finds_degree_r_for_three_small_layers():
    """effdyn's expansion (what ``predict`` reports ``degree``/``field_degree`` from) of the
    card's r = 3 problem: degree 3, field degree 2, W2..W4 active, a finite-time blow-up."""
    card = _card_module()
    problem = card.problem(3, 1e-2, 0.01, 1, width=8, dataset="zhou2022-fig2")
    s = derive_problem(problem).summary()
    assert (s["degree"], s["polynomial_degree"], s["field_degree"]) == (3, 3, 2)
    assert s["active_parameters"] == ["W2", "W3", "W4"] and not s["frozen_parameters"]
    assert s["finite_time_blowup"]


def _measurement(slope3=-0.99, slope4=-1.97, delay_ratio=1.003):
    """A hand-made measurement in the shape :func:`measure` returns."""
    rate = 1.25
    predicted = float(np.log(1e2) / rate)

    def row(r, source="derive"):
        return {
            "source": source,
            "degree": r,
            "field_degree": r - 1,
            "kind": "exponential" if r == 2 else "blowup",
            "active": ["W1", "W2", "W3", "W4"][4 - r :],
            "frozen": [],
        }

    return {
        "width": 8,
        "dataset": "zhou2022-fig2",
        "structure": {2: row(2), 3: row(3), 4: row(4)},
        "slopes": {3: {"slope": slope3}, 4: {"slope": slope4}},
        "delay": {
            "eps": [1e-2, 1e-4],
            "lr": 0.01,
            "t_escape": [3.0, 3.0 + delay_ratio * predicted],
            "growth_rate": rate,
            "growth_rate_source": "closed form",
            "growth_rate_predicted": None,
            "growth_rate_closed_form": rate,
            "growth_rate_if_linearised": 1.9,
            "delays": [delay_ratio * predicted],
            "predicted_delays": [predicted],
        },
        "curves": [],
    }


def test_the_verdict_follows_the_cards_expected_value():
    module = _card_module()
    card = load_cards()["partial_small_init"]
    assert card.expected == {3: -1.0, 4: -2.0}  # −(r − 2)
    good = module.judge(card, _measurement())
    assert good.passed, good.summary
    assert good.measured == {3: -0.99, 4: -1.97}
    assert not module.judge(card.with_(expected={3: -2.0, 4: -3.0}), _measurement()).passed
    assert not module.judge(card.with_(expected={3: -1.0, 4: -1.0}), _measurement()).passed
    assert not module.judge(card.with_(tolerance=0.01), _measurement()).passed


def test_the_verdict_fails_on_a_wrong_delay_degree_or_slope():
    module = _card_module()
    card = load_cards()["partial_small_init"]
    assert not module.judge(card, _measurement(delay_ratio=1.08)).passed
    assert not module.judge(card, _measurement(slope4=-1.5)).passed
    assert not module.judge(card, _measurement(slope3=None)).passed
    bad = _measurement()
    bad["structure"][3] = {**bad["structure"][3], "field_degree": 1, "kind": "exponential"}
    assert not module.judge(card, bad).passed
    wrong_rate = _measurement()
    wrong_rate["delay"]["growth_rate_predicted"] = wrong_rate["delay"]["growth_rate"] = 1.3
    assert not module.judge(card, wrong_rate).passed
