"""``effdyn reproduce``: the main job — every theorem card and the comparison figures, as one
Markdown report (``DIR/report.md``) with its figures and a JSON summary (``DIR/result.json``).

Sections (docs/commands.md#reproduce): (1) every card of ``theory/``: claim, source paper
(authors, year, arXiv id), check, measured against expected, PASS/FAIL, figures; (2) prediction
against training for the paper settings (``effdyn compare`` on example problems), each figure
with a one-line caption; (3) the multiplicity of each activation
(docs/theory/multiplicity.md#multiplicity) and the derived dynamics of the example problems;
(4) the staircase study: the chained prediction of each drop of a non-linear two-layer
network beside gradient descent's (docs/theory/staircases.md#two-layer-networks);
(5) references: every paper cited above, with authors, year, title and arXiv id
(:mod:`effdyn.papers`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .cards import CardResult, load_cards, run_card
from .kinds import kind_of
from .papers import PAPERS, Paper
from .problem import load_problem
from .staircase.result import learned_text
from .symbolic.activation import analyze_activation
from .symbolic.derivation import derive

# The activations the papers use, plus the ones the table of docs/theory/multiplicity.md adds.
TABLE_ACTIVATIONS = [
    "tanh",
    "xtanh",
    "x2tanh",
    "sin(x)",
    "x - sin(x)",
    "sigmoid",
    "softplus",
    "silu",
    "gelu",
    "relu",
    "leaky_relu",
]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# (example file, what it shows); quick mode runs the first two.
COMPARISONS = [
    ("fig5_xtanh_small.toml", "Zhou 2022 Fig. 5 data, x·tanh x (p = 2), ε = 1e-3, GD"),
    ("fig2_tanh_small.toml", "Zhou 2022 Fig. 2 data, tanh (p = 1), ε = 1e-6, GD"),
    ("fig2_tanh.toml", "Zhou 2022 Fig. 2 as in the paper: tanh, Adam, ε = 0.005, 100 steps"),
    ("fig2_xtanh.toml", "Zhou 2022 Fig. 2 as in the paper: x·tanh x, Adam, ε = 0.005"),
    ("fig2_x2tanh.toml", "Zhou 2022 Fig. 2 as in the paper: x²·tanh x, Adam, ε = 0.005"),
]
QUICK_COMPARISONS = 3

# The staircase study (a study, not a card: its figures are reported whatever they are):
# each drop predicted by the chained method beside gradient descent's.
STUDIES = [
    ("staircase_xtanh.toml", "x·tanh x (p = 2), width 100, ε = 1e-3"),
    ("staircase_tanh.toml", "tanh (p = 1), width 100, ε = 1e-6"),
]

MULTIPLICITY_PAPER = "2105.11686"
"""Zhou et al. 2022: the multiplicity table and the comparison settings (Fig. 2, Fig. 5)."""

CAPTIONS = {
    "loss.png": "training loss against t = k·lr with the measured escape (10% drop), the "
    "predicted t_escape and T* marked",
    "alignment.png": "per grown neuron at the initial stage: 1 − max |cos| with the predicted "
    "directions (dashed: |cos| = 0.99)",
    "angle_norm.png": "neurons as (angle of (w, b), norm) at the initial stage, predicted "
    "critical orientations as dotted lines",
    "cosine_initial.png": "cosine similarity of grown neurons at the initial stage (ordered "
    "by cluster)",
    "cosine_final.png": "cosine similarity of grown neurons at the end of training",
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def reproduce(out: str | Path, quick: bool = True, cards: list[str] | None = None) -> dict:
    """Write the report; return the summary (also in ``out/result.json``)."""
    from .plotting import leading_parts_figure

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    acts = [analyze_activation(a) for a in TABLE_ACTIVATIONS]
    leading_parts_figure(acts, str(out / "activations.png"))
    rows = [_activation_row(act) for act in acts]
    problems = [
        {"problem": path.name, **_derive_summary(load_problem(path))}
        for path in sorted(EXAMPLES.glob("*.toml"))
        if "[sweep]" not in path.read_text()  # sweep files are phase diagrams
    ]

    results: list[CardResult] = []
    all_cards = load_cards()
    chosen = [all_cards[c] for c in cards] if cards else list(all_cards.values())
    for i, card in enumerate(chosen, start=1):
        _log(f"[{i}/{len(chosen)}] card {card.id} …")
        results.append(run_card(card, quick=quick, out_dir=out / "cards" / card.id))
        _log(f"    {'PASS' if results[-1].passed else 'FAIL'} in {results[-1].seconds:.0f} s")

    chosen_comparisons = COMPARISONS[:QUICK_COMPARISONS] if quick else COMPARISONS
    comparisons = _compare_examples(chosen_comparisons, out / "compare", "compare")
    studies = _compare_examples(STUDIES, out / "study", "staircase study")

    summary = {
        "quick": quick,
        "cards": [{**r.as_dict(), "seconds": round(r.seconds, 1)} for r in results],
        "passed": sum(r.passed for r in results),
        "failed": sum(not r.passed for r in results),
        "comparisons": [
            {
                "problem": c["problem"],
                "ratios": c["result"]["ratios"],
                "paper_claim": c["result"]["paper_claim"],
                "final_counts": c["result"]["measured"]["final"]["counts"],
            }
            for c in comparisons
        ],
        "studies": [
            {
                "problem": c["problem"],
                "predicted": c["result"]["predicted"].get("stages"),
                "measured": c["result"]["measured"]["stages"],
                "stage_times": c["result"]["ratios"].get("stage_times"),
                "seconds": c["seconds"],
            }
            for c in studies
        ],
        "activations": rows,
        "references": [
            {"arxiv": p.arxiv, "citation": p.cite(), "reference": p.reference()}
            for p in references(results)
        ],
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "result.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "report.md").write_text(
        _markdown(rows, problems, results, comparisons, studies, out, quick)
    )
    return summary


def _compare_examples(examples, folder: Path, label: str) -> list[dict]:
    """``effdyn compare`` on each ``(example file, what it shows)``, into ``folder/<stem>``."""
    from .compare import compare

    found = []
    for name, what in examples:
        _log(f"{label} {name} …")
        begun = time.perf_counter()
        result = compare(load_problem(EXAMPLES / name), folder / Path(name).stem)
        found.append(
            {
                "problem": name,
                "what": what,
                "folder": folder / Path(name).stem,
                "result": result,
                "seconds": round(time.perf_counter() - begun, 1),
            }
        )
    return found


def references(results: list[CardResult]) -> list[Paper]:
    """Every paper the report cites: the cards' papers (in card order), then the rest."""
    ids = [a for r in results for a in (r.card.paper, *r.card.also)] + [MULTIPLICITY_PAPER]
    return [PAPERS[a] for a in dict.fromkeys(ids)]


def _activation_row(act) -> dict:
    return {
        "activation": act.source,
        "sigma0": str(act.sigma0),
        "p": act.multiplicity,
        "c_p": None if act.coefficient is None else str(act.coefficient),
        "q_depth2": derive([act], 2).degree,
        "q_depth3": derive([act, act], 3).degree,
    }


def _study_lines(studies, out: Path) -> list[str]:
    """The staircase study: predicted and measured drops side by side, and the figure."""
    lines = [
        "## Staircase study: beyond the first plateau",
        "",
        "A two-layer network on the Zhou 2022 Fig. 5 data (1-d, with bias), trained by "
        "gradient descent well past its first escape. The chained prediction "
        "(docs/theory/staircases.md#two-layer-networks) follows it unit by unit; each "
        "measured drop is paired with the predicted drop that spans its midpoint level. A "
        "study, not a card: nothing here passes or fails.",
        "",
    ]
    for study in studies:
        r = study["result"]
        predicted = r["predicted"].get("stages") or []
        measured = r["measured"]["stages"]
        lines += [
            f"### {study['what']} (`examples/{study['problem']}`)",
            "",
            f"Setting: {r['setting']}.",
            "",
            "| drop | predicted t | GD t | GD / predicted | plateaus, predicted | "
            "plateaus, GD | learned units |",
            "|---|---|---|---|---|---|---|",
        ]
        for pair in r["ratios"].get("stage_times", []):
            m = measured[pair["measured_stage"]]
            p = None if pair["predicted_stage"] is None else predicted[pair["predicted_stage"]]
            lines.append(
                f"| {pair['measured_stage'] + 1} | {_num(p and p['t'])} | {_num(m['t'])} | "
                f"{_num(pair['ratio'], '.4f')} | "
                f"{_levels(p)} | {_levels(m)} | {_learned_units(p)} |"
            )
        matched = {q["predicted_stage"] for q in r["ratios"].get("stage_times", [])}
        unmatched = [i + 1 for i in range(len(predicted)) if i not in matched]
        if unmatched:
            lines += ["", f"Predicted drops with no measured drop: {unmatched}."]
        for warning in r["predicted"].get("stages_warnings", []):
            lines += ["", f"Warning: {warning}."]
        lines += [
            "",
            f"![stages]({_rel(study['folder'] / 'stages.png', out)})",
            "",
            f"*training loss against t with the predicted drops and plateaus — {r['setting']}*",
            "",
        ]
    return lines


def _num(value, spec: str = ".6g") -> str:
    return "—" if value is None else format(value, spec)


def _levels(stage) -> str:
    if stage is None:
        return "—"
    return f"{stage['loss_before']:.5g} → {stage['loss_after']:.5g}"


def _learned_units(stage) -> str:
    if stage is None:
        return "—"
    learned = stage["learned"]
    empty = not any(learned.values()) if isinstance(learned, dict) else not learned
    return "none new" if empty else learned_text(learned)


def _rel(path: str | Path, out: Path) -> str:
    return Path(path).resolve().relative_to(out.resolve()).as_posix()


def _derive_summary(problem) -> dict:
    """The ``effdyn derive --json`` object of an example problem, through its kind."""
    kind = kind_of(problem)
    return kind.derive_summary(problem, kind.derivation(problem))


def _automatic_lines(s: dict) -> list[str]:
    """A user model's derivation (the automatic engine, docs/theory/automatic.md)."""
    frozen = ", ".join(s["frozen_parameters"]) or "none"
    drift = ", ".join(s["drift_parameters"]) or "none"
    regime = "finite-time blow-up" if s["finite_time_blowup"] else "no finite-time blow-up"
    return [
        f"### {s['problem']}: automatic engine, loss {s['loss']}",
        "",
        f"q = {s['degree']}, field degree {s['field_degree']}: {regime}. Active: "
        f"{', '.join(s['active_parameters'])}; frozen: {frozen}; drift: {drift}. Validated "
        f"at ε = {', '.join(f'{e:g}' for e in s['validation']['eps'])} (relative errors "
        f"{', '.join(f'{e:.2g}' for e in s['validation']['errors'])}).",
        "",
    ]


def _markdown(rows, problems, results, comparisons, studies, out: Path, quick: bool) -> str:
    n_pass = sum(r.passed for r in results)
    lines = [
        "# effdyn report",
        "",
        f"Settings: {'quick' if quick else 'full'}. Theorem cards: **{n_pass} of "
        f"{len(results)} PASS**.",
        "",
        "## Theorem cards",
        "",
        "| card | claim | source | measured | expected | |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        verdict = "PASS" if r.passed else "**FAIL**"
        lines.append(
            f"| {r.card.id} | {r.card.claim} | {r.card.citation} | "
            f"{r.outcome.measured} | {r.card.expected} ± {r.card.tolerance} | "
            f"{verdict} |"
        )
    lines.append("")
    for r in results:
        c = r.card
        lines += [
            f"### {c.id} — {'PASS' if r.passed else 'FAIL'}",
            "",
            f"**Claim.** {c.claim}",
            "",
            f"**Maths.** {c.maths}",
            "",
            f"**Source.** {c.source}.",
            "",
            f"**Check.** {c.check} Tolerance: {c.tolerance} — {c.why}.",
            "",
            f"**Measured.** {r.outcome.summary if r.error is None else r.error} "
            f"({r.seconds:.0f} s)",
            "",
        ]
        for path, caption in r.outcome.figures:
            lines += [f"![{c.id}]({_rel(path, out)})", "", f"*{caption}*", ""]
    lines += [f"## Prediction against training ({PAPERS[MULTIPLICITY_PAPER].cite()})", ""]
    for comp in comparisons:
        r = comp["result"]
        ratios = ", ".join(
            f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
            for k, v in r["ratios"].items()
            if v is not None
        )
        counts = "; ".join(
            f"{c['lines']} line(s) / {c['orientations']} orientation(s) at "
            f"threshold {c['threshold']:g}"
            for c in r["measured"]["final"]["counts"]
        )
        lines += [
            f"### {comp['what']} (`examples/{comp['problem']}`)",
            "",
            f"Setting: {r['setting']}.",
            "",
        ]
        if ratios:
            lines += [f"Ratios: {ratios}.", ""]
        if counts:
            lines += [f"Measured at the end of training: {counts}.", ""]
        if r.get("paper_claim"):
            lines += [
                f"The paper reports {r['paper_claim']['lines']} line(s) "
                f"({r['paper_claim']['source']}); the counts above are what effdyn "
                "measures, whatever they are.",
                "",
            ]
        for fig in r.get("figures", []):
            caption = f"{CAPTIONS.get(fig, fig)} — {r['setting']}"
            lines += [f"![{fig}]({_rel(comp['folder'] / fig, out)})", "", f"*{caption}*", ""]
    lines += [
        f"## Multiplicity of each activation ({PAPERS[MULTIPLICITY_PAPER].cite()})",
        "",
        "| activation | σ(0) | p | c_p | q, depth 2 | q, depth 3 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        p = "— (non-smooth)" if row["p"] is None else row["p"]
        lines.append(
            f"| {row['activation']} | {row['sigma0']} | {p} | {row['c_p'] or '—'} "
            f"| {row['q_depth2']} | {row['q_depth3']} |"
        )
    lines += [
        "",
        "![activations](activations.png)",
        "",
        "*Each activation (blue) against its leading part c_p s^p at 0 (red, dashed): they "
        "touch to order p — the multiplicity that sets the degree of the effective dynamics.*",
        "",
        "## Derived effective dynamics of the example problems",
        "",
    ]
    for s in problems:
        if s.get("engine") == "automatic":
            lines += _automatic_lines(s)
            continue
        lines += [
            f"### {s['problem']}: depth {s['depth']}, activations {', '.join(s['activations'])}",
            "",
            f"q = {s['degree']}, field degree {s['field_degree']}: {s['regime']}.",
            "",
            f"$$ {s['energy']} $$",
            "",
        ]
        lines += [f"$$ {eq} $$" for eq in s["equations"].values()]
        lines += [
            f"Drift from σ_{t['layer']}(0) ≠ 0 (degree {t['degree']}): $ {t['latex']} $"
            for t in s["drift"]
        ]
        lines.append("")
    lines += _study_lines(studies, out)
    lines += ["## References", ""]
    lines += [f"- {paper.reference()}" for paper in references(results)]
    lines.append("")
    return "\n".join(lines)
