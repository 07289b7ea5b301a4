"""The attention two-stage card and the cross-entropy card: their judgement of a measurement
(a wrong expected value fails without re-running the card) and their helpers."""

import copy

import numpy as np
import pytest

from effdyn.cards import load_cards


@pytest.fixture(scope="module")
def cards():
    return load_cards()


def _attention_measurement():
    """A measurement shaped like the card's (the figures of a quick run, rounded)."""
    return {
        "lr": 0.5,
        "degree": 3,
        "frozen": ["attn/W_K", "attn/W_Q"],
        "active": ["W1", "W2", "attn/W_V"],
        "stage1": [
            {
                "eps": 3e-3,
                "t_star": 2037.3,
                "escape_over_t_star": 0.9937,
                "w_v_stable_rank": 1.001,
                "w_v_cos_v": 0.9999,
            },
            {
                "eps": 1e-3,
                "t_star": 6111.8,
                "escape_over_t_star": 0.9980,
                "w_v_stable_rank": 1.0001,
                "w_v_cos_v": 0.99996,
            },
        ],
        "stage2": {
            "eps": 1e-3,
            "saddle_t": 6255.0,
            "degree": 2,
            "active": ["attn/W_K", "attn/W_Q"],
            "singular_values_F": [0.006367, 0.002708, 0.000811, 0.000117],
            "growth_rate_gd": {"attn/W_Q": 0.006212, "attn/W_K": 0.006224},
            "qk_stable_rank": 1.00003,
            "qk_cos_left": 0.9997,
            "qk_cos_right": 0.9998,
        },
    }


def test_attention_card_judges_a_measurement_and_fails_a_wrong_expected_value(cards):
    card = cards["attention_two_stages"]
    module = card.run.__globals__
    m = _attention_measurement()
    assert module["judge"](card, m).passed
    assert not module["judge"](card.with_(expected=1.2), m).passed
    worse = copy.deepcopy(m)
    worse["stage2"]["growth_rate_gd"]["attn/W_Q"] = 0.0052  # 18% below s₁(F)
    assert not module["judge"](card, worse).passed
    flat = copy.deepcopy(m)
    flat["stage1"][1]["escape_over_t_star"] = 0.98  # moves away from 1 as ε shrinks
    assert not module["judge"](card, flat).passed
    ranked = copy.deepcopy(m)
    ranked["stage2"]["qk_stable_rank"] = 1.5
    assert not module["judge"](card, ranked).passed


def test_attention_card_helpers():
    from effdyn.cards import THEORY_DIR

    cards = load_cards(THEORY_DIR)
    g = cards["attention_two_stages"].run.__globals__
    a = np.outer([1.0, 2.0, 0.0], [0.0, 1.0]) + np.diag([0.0, 0.5, 0.0])[:, :2] * 0
    s = np.linalg.svd(a, compute_uv=False)
    assert g["stable_rank"](a) == pytest.approx(np.sum(s**2) / s[0] ** 2)
    assert g["stable_rank"](np.eye(3)) == pytest.approx(3.0)
    # two drops with a flat stretch between them: the saddle is in the flat stretch
    t = np.arange(0.0, 300.0)
    loss = 1.0 - 0.6 / (1 + np.exp(-(t - 50) / 3)) - 0.3 / (1 + np.exp(-(t - 200) / 3))
    assert 100 <= g["saddle_step"](t, loss, after=40) <= 150  # before the first drop's peak
    assert 100 <= g["saddle_step"](t, loss, after=60) <= 150  # after it


def _ce_measurement():
    return {
        "eps": 1e-8,
        "lr": 0.1,
        "width": 20,
        "growth_rate_predicted": 0.2407088,
        "s1_ce": 0.2407088,
        "s2_ce": 0.2106,
        "s1_mse_onehot": 1.0644,
        "cos_v1_ce_v1_mse": 0.016,
        "t_escape_predicted": 76.95,
        "t_escape_gd": 74.8,
        "escape_step": 748,
        "median_abs_cos_v1_ce": 0.988,
        "median_abs_cos_v1_mse": 0.013,
    }


def test_classifier_card_judges_a_measurement_and_fails_a_wrong_expected_value(cards):
    card = cards["classifier_ce"]
    judge = card.run.__globals__["judge"]
    m = _ce_measurement()
    assert judge(card, m).passed
    assert not judge(card.with_(expected=1.2), m).passed
    assert not judge(card, {**m, "median_abs_cos_v1_ce": 0.8}).passed
    assert not judge(card, {**m, "growth_rate_predicted": 0.25}).passed


def test_classifier_card_correlation_matrices_against_a_loop():
    """Z_ce = ⟨(e_y − 1/K) x̃ᵀ⟩ and Z_mse = ⟨e_y x̃ᵀ⟩, summed sample by sample here."""
    from types import SimpleNamespace

    g = load_cards()["classifier_ce"].run.__globals__
    rng = np.random.default_rng(0)
    x = rng.random((30, 4))
    y = rng.integers(0, 3, size=(30, 1)).astype(float)
    y[0, 0] = 2.0
    problem = SimpleNamespace(data=SimpleNamespace(x=x, y=y))
    z_ce, z_mse = g["correlation_matrices"](problem)
    want_ce, want_mse = np.zeros((3, 5)), np.zeros((3, 5))
    for xi, yi in zip(x, y[:, 0].astype(int), strict=True):
        xt = np.append(xi, 1.0)
        e = np.zeros(3)
        e[yi] = 1.0
        want_ce += np.outer(e - 1 / 3, xt) / 30
        want_mse += np.outer(e, xt) / 30
    np.testing.assert_allclose(z_ce, want_ce, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(z_mse, want_mse, rtol=1e-12, atol=1e-15)
