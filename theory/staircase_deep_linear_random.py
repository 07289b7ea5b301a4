"""Card: from a random small initialization, the chained prediction gives a deep linear
network's staircase (docs/theory/staircases.md#the-chained-prediction; Jacot et al. 2021,
arXiv 2106.15933)."""

import math
from pathlib import Path

import numpy as np

from effdyn.cards import Card, Outcome, within
from effdyn.problem import problem_from_dict
from effdyn.staircase import measured_stages, stages
from effdyn.training import train

SINGULAR = (3.0, 2.0, 1.0)


def _data(n=32, d=4, seed=0):
    """Whitened inputs (⟨xxᵀ⟩ = I) and targets with ⟨yxᵀ⟩ = Z of singular values 3, 2, 1."""
    rng = np.random.default_rng(seed)
    x = math.sqrt(n) * np.linalg.qr(rng.standard_normal((n, d)))[0]
    u = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    v = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :3]
    return x, x @ (u @ np.diag(SINGULAR) @ v.T).T


def _case(case):
    x, y = _data()
    problem = problem_from_dict(
        {
            "model": {
                "depth": case["depth"],
                "width": case["width"],
                "activation": "x",
                "bias": False,
            },
            "data": {"x": x.tolist(), "y": y.tolist()},
            "init": {"scale": case["eps"], "seed": case["seed"]},
            "train": {"lr": case["lr"], "steps": case["steps"]},
        }
    )
    predicted = stages(problem)
    run = train(problem, n_snapshots=2)
    measured = measured_stages(run.t, run.loss)
    k = case["checked"]
    times, gd = predicted.times[:k], [s.t for s in measured[:k]]
    gap = max(abs(m / p - 1) for p, m in zip(times, gd, strict=True)) if len(gd) == k else math.inf
    return {
        "depth": case["depth"],
        "eps": case["eps"],
        "seed": case["seed"],
        "method": predicted.method,
        "order": [s.learned[0] for s in predicted.stages],
        "predicted": predicted.times,
        "gd": [s.t for s in measured],
        "checked": k,
        "gap": gap,
        "curve": (run.t, run.loss),
    }


def run(card, settings, out_dir):
    rows = [_case(case) for case in settings["cases"]]
    measured = max(r["gap"] for r in rows)
    ordered = all(r["order"] == sorted(r["order"]) for r in rows)
    chained = all(r["method"] == "chained" for r in rows)
    figures = [] if out_dir is None else [_figure(rows, Path(out_dir))]
    for r in rows:
        r.pop("curve")
    return Outcome(
        measured=round(measured, 4) if math.isfinite(measured) else None,
        passed=bool(chained and ordered and within(measured, card.expected, card.tolerance)),
        summary="; ".join(
            f"depth {r['depth']}, ε = {r['eps']:g}: predicted "
            + ", ".join(f"{t:.4g}" for t in r["predicted"][: r["checked"]])
            + " / GD "
            + ", ".join(f"{t:.4g}" for t in r["gd"][: r["checked"]])
            for r in rows
        )
        + f" — largest |GD/predicted − 1| = {measured:.3g}; modes largest first: {ordered}",
        details={"cases": rows},
        figures=figures,
    )


def _figure(rows, out_dir):
    from effdyn import plotting

    plt = plotting._pyplot()
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.4), squeeze=False)
    for ax, r in zip(axes[0], rows, strict=True):
        t, loss = r["curve"]
        plotting.plot_staircase(t, loss, r["predicted"], [], ax=ax)
        ax.set_title(f"depth {r['depth']}, random init, ε = {r['eps']:g}", fontsize=9)
    fig.tight_layout()
    Path(out_dir).mkdir(parents=True, exist_ok=True)  # the report gives a folder per card
    path = out_dir / "staircase_deep_linear_random.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return (
        str(path),
        "GD loss of deep linear networks from a random small initialization, with the "
        "chained prediction's drop times",
    )


CARD = Card(
    id="staircase_deep_linear_random",
    claim=(
        "From a random small initialization on whitened data, a deep linear network still "
        "learns Z's modes one at a time, largest first; chaining the leading-order escape "
        "around each saddle with the reduced model of the grown modes predicts the drops."
    ),
    maths=(
        "small part: gradient flow of ⟨Z_⊥, W_{L,S}⋯W_{1,S}⟩ to the switch; grown part: "
        "gradient flow of ½‖Z − W_L⋯W_1‖² to the next saddle; drop at the midpoint of the "
        "two plateau levels"
    ),
    paper="2106.15933",
    also=("1312.6120",),
    check=(
        "whitened 32×4 inputs, Z with singular values 3, 2, 1, width 6, Gaussian "
        "initialization; effdyn stages (chained) against GD's measured staircase: every drop "
        "at depth 2 (ε = 1e-6), the first two at depth 3 (ε = 1e-3, since T* ∝ 1/ε); "
        "measured: the largest |t_GD/t_predicted − 1|, and the order of the modes."
    ),
    expected=0.0,
    tolerance=0.10,
    why=(
        "the chained prediction drops the parts of the small modes that overlap the grown "
        "ones at each saddle; they decay at a rate set by the learned singular values, which "
        "moves the drops by a few percent at these ε"
    ),
    quick={
        "cases": [
            {
                "depth": 2,
                "width": 6,
                "eps": 1e-6,
                "seed": 0,
                "lr": 5e-3,
                "steps": 3600,
                "checked": 3,
            },
            {
                "depth": 3,
                "width": 6,
                "eps": 1e-3,
                "seed": 0,
                "lr": 0.02,
                "steps": 20000,
                "checked": 2,
            },
        ]
    },
    full={
        "cases": [
            {
                "depth": 2,
                "width": 6,
                "eps": 1e-6,
                "seed": s,
                "lr": 2e-3,
                "steps": 9000,
                "checked": 3,
            }
            for s in range(3)
        ]
        + [
            {
                "depth": 3,
                "width": 6,
                "eps": 1e-3,
                "seed": s,
                "lr": 0.01,
                "steps": 40000,
                "checked": 2,
            }
            for s in range(3)
        ]
    },
    run=run,
)
