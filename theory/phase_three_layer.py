"""Card: in one three-layer network, different layers can sit in different regimes.

docs/theory/phase-diagrams.md#three-layer; the finding of Zhou et al. 2022, arXiv 2205.12101.
"""

from pathlib import Path

from effdyn.cards import Card, Outcome
from effdyn.phase import evaluate_points, slopes, three_layer
from effdyn.phase.plot import plot_rd_over_widths
from effdyn.problem import problem_from_dict


def run(card, settings, out_dir):
    base = problem_from_dict(
        {
            "model": {"depth": 3, "width": 10, "activation": "relu"},
            "data": {"dataset": "zhou2022-fig5"},
        }
    )
    results = []
    for m in settings["widths"]:
        points = [{**three_layer.MIXED_SETTING, "width": m, "seed": s} for s in settings["seeds"]]
        results += list(zip(points, evaluate_points("three_layer", base, points), strict=True))
    groups = slopes("three_layer", results)
    (group,) = groups
    s1, s2 = group["slopes"]["W1"], group["slopes"]["W2"]
    gap = min(s1, -s2)  # both layers clear of the critical band, on opposite sides
    figures = []
    if out_dir is not None:
        setting = (
            f"ReLU on zhou2022-fig5, (γ₁, γ₂, γ₃) = (1, 0.5, 0.5), widths {settings['widths']}"
        )
        path = Path(out_dir) / "phase_three_layer_rd.png"
        figures = [
            (
                plot_rd_over_widths(results, groups, ["W1", "W2"], path, setting),
                "one network, two regimes: RD of the first hidden layer's input weights grows "
                "with the width (condensed), the second layer's shrinks (linear)",
            )
        ]
    return Outcome(
        measured=round(gap, 4),
        passed=bool(gap >= card.expected - card.tolerance and s1 > 0 > s2),
        summary=(
            f"slope of log RD: first hidden layer {s1:+.3f} ({group['regime']['W1']}), "
            f"second {s2:+.3f} ({group['regime']['W2']}) at "
            f"{three_layer.MIXED_SETTING}"
        ),
        details={
            "slopes": group["slopes"],
            "regime": group["regime"],
            "setting": three_layer.MIXED_SETTING,
            "widths": settings["widths"],
        },
        figures=figures,
    )


CARD = Card(
    id="phase_three_layer",
    claim=(
        "Different layers of one three-layer ReLU network can lie in different dynamical "
        "regimes: the first hidden layer's input weights condense while the second's stay "
        "in the linear regime."
    ),
    maths="W_l ~ N(0, m^{−2γ_l});  S_l = d log RD(W_l) / d log m:  S_1 > 0 > S_2",
    paper="2205.12101",
    check=(
        "zhou2022-fig5 data, ReLU, widths both m, per-layer exponents "
        "(γ1, γ2, γ3) = (1, 0.5, 0.5), GD with the normalized learning rate; measured: "
        "min(S_1, −S_2), the distance of both slopes from 0 on opposite sides."
    ),
    expected=0.1,
    tolerance=0.0,
    why=(
        "the regime threshold |S| > 0.1 separates linear/condensed from critical; measured "
        "S_1 ≈ +0.5 and S_2 ≈ −0.44, far from it"
    ),
    quick={"widths": list(three_layer.MIXED_WIDTHS), "seeds": [0]},
    full={"widths": list(three_layer.MIXED_WIDTHS), "seeds": [0, 1]},
    run=run,
)
