"""The ``effdyn`` command line (typer). Every command is a thin layer over a library call.

Bad input never ends in a traceback: an :class:`~effdyn.errors.EffdynError` (or a usage
mistake) prints one line on stderr and exits with code 2; with ``--json`` a JSON object with
an ``error`` key goes to stdout as well.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from .errors import EffdynError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Leading-order effective dynamics of neural networks at small initialization.",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]

EXIT_BAD_INPUT = 2


@app.callback()
def _root() -> None:
    """Leading-order effective dynamics of neural networks at small initialization."""
    from .cache import enable_compilation_cache

    enable_compilation_cache()  # EFFDYN_CACHE_DIR (off disables): docs/precision.md


def _fail(message: str, as_json: bool) -> None:
    message = " ".join(str(message).split())  # one line, whatever the source
    if as_json:
        print(json.dumps({"error": message}))
    print(f"effdyn: error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_BAD_INPUT)


def guarded(command):
    """Turn user errors raised inside ``command`` into one line and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EffdynError as err:
            _fail(str(err), kwargs.get("json_out", False))

    return wrapper


def _emit(payload: dict, as_json: bool, human) -> None:
    if as_json:
        print(json.dumps(payload, allow_nan=False))
    else:
        human(payload)


@app.command()
@guarded
def derive(
    problem: Annotated[
        Path | None, typer.Argument(help="Problem file (TOML); or use --activation.")
    ] = None,
    activation: Annotated[
        str | None, typer.Option("--activation", "-a", help="Activation in x, or a name.")
    ] = None,
    depth: Annotated[
        int | None, typer.Option("--depth", "-L", help="Weight layers (default 2).")
    ] = None,
    latex: Annotated[bool, typer.Option("--latex", help="Print LaTeX equations.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Derive the leading-order effective dynamics (multiplicities, degree, equations)."""
    from .symbolic.derivation import derivation_summary
    from .symbolic.derivation import derive as derive_activations

    if (problem is None) == (activation is None):
        raise EffdynError("give either a problem file or --activation (not both)")
    if problem is not None:
        if depth is not None:
            raise EffdynError("--depth goes with --activation; a problem file sets its depth")
        from .kinds import kind_of
        from .problem import load_problem

        loaded = load_problem(problem)
        kind = kind_of(loaded)
        summary = kind.derive_summary(loaded, kind.derivation(loaded))
    else:
        summary = derivation_summary(derive_activations(activation, 2 if depth is None else depth))
    if summary.get("engine") == "automatic":
        _emit(summary, json_out, _print_expansion)
    else:
        _emit(summary, json_out, functools.partial(_print_derivation, latex=latex))


@app.command()
@guarded
def predict(
    problem: Annotated[Path, typer.Argument(help="Problem file (TOML).")],
    rtol: Annotated[float, typer.Option(help="Relative tolerance of the ODE solver.")] = 1e-10,
    horizon: Annotated[
        float | None, typer.Option(help="Give up after this time (default: automatic).")
    ] = None,
    around: Annotated[
        Path | None,
        typer.Option(
            help="Expand around this state (.npz of leaves by name, or a train.npz) instead "
            "of the small initialization; needs --small."
        ),
    ] = None,
    small: Annotated[
        str | None,
        typer.Option(help="With --around: the small leaves, comma-separated (e.g. W_Q,W_K)."),
    ] = None,
    snapshot: Annotated[
        int | None,
        typer.Option(help="With --around a train.npz: the snapshot index (default: final)."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Solve the effective dynamics from the problem's initialization (or around a state):
    T*, escape, directions."""
    if not (0 < rtol < 1):
        raise EffdynError(f"--rtol must lie in (0, 1), got {rtol}")
    if (around is None) != (small is None):
        raise EffdynError("--around and --small go together (a state and its small leaves)")
    if snapshot is not None and around is None:
        raise EffdynError("--snapshot needs --around (the train.npz to read it from)")
    from .dynamics.blowup import SolverOptions
    from .dynamics.predict import predict as run_predict
    from .problem import load_problem

    loaded = load_problem(problem)
    result = run_predict(
        loaded,
        SolverOptions(rtol=rtol, horizon=horizon),
        progress=not json_out,
        around=around,
        small=small,
        snapshot=snapshot,
    )
    _emit(result.to_json(), json_out, _print_prediction)


@app.command()
@guarded
def stages(
    problem: Annotated[Path, typer.Argument(help="Problem file (TOML).")],
    json_out: JsonFlag = False,
) -> None:
    """Predict the loss staircase, saddle to saddle: each drop's time, plateau levels and
    what is learned (docs/theory/staircases.md)."""
    from .problem import load_problem
    from .staircase import stages as run_stages

    result = run_stages(load_problem(problem), progress=not json_out)
    _emit(result.to_json(), json_out, _print_stages)


def _print_stages(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from .staircase.result import learned_text

    table = Table(title=f"Loss staircase ({r['method']}, time in {r['time_unit']})")
    for column in ("stage", r["time_unit"], "loss before", "loss after", "learned"):
        table.add_column(column)
    for i, stage in enumerate(r["stages"], 1):
        learned = learned_text(stage["learned"])
        table.add_row(
            str(i),
            f"{stage['t']:.6g}",
            f"{stage['loss_before']:.6g}",
            f"{stage['loss_after']:.6g}",
            learned,
        )
    console = Console(highlight=False)
    console.print(table)
    for warning in r.get("warnings", []):
        console.print(f"warning: {warning}")


def _print_prediction(r: dict) -> None:
    def fmt(v):
        return "—" if v is None else f"{v:.6g}"

    print(f"{r['kind']}: {r['message']}")
    print(
        f"  t_star = {fmt(r['t_star'])}   t_escape = {fmt(r['t_escape'])}   "
        f"growth rate = {fmt(r['growth_rate'])}"
    )
    if isinstance(r["n_orientations"], dict):  # per leaf (docs/user-models.md#unit-axes)
        counts = ", ".join(f"{k} {v}" for k, v in r["n_orientations"].items())
        print(f"  orientations per active leaf: {counts}")
    else:
        print(f"  first-layer orientations: {r['n_orientations']}")
    for name, dirs in r["directions"].items():
        for d in dirs[:6]:
            print(
                f"    {name}: ["
                + ", ".join(f"{v:+.4f}" for v in d[:8])
                + (", …]" if len(d) > 8 else "]")
            )
    if "per_neuron" in r and r["per_neuron"]["first"] is not None:
        pn = r["per_neuron"]
        print(f"  first neuron to blow up: #{pn['first']} at t = {fmt(pn['t_star_min'])}")
    if "around" in r:
        a = r["around"]
        where = f"snapshot {a['snapshot']} of " if a["snapshot"] is not None else ""
        step = f" (step {a['step']})" if a["step"] is not None else ""
        print(f"  around {where}{a['source']}{step}, small: {', '.join(a['small'])}")
    if "bilinear" in r:
        b = r["bilinear"]
        sv = ", ".join(f"{v:.4g}" for v in b["singular_values"][:6])
        print(f"  bilinear energy E = {b['form']}: singular values of F {sv}")
    for w in r["warnings"]:
        print(f"  warning: {w}")


OutDir = Annotated[Path, typer.Option("--out", help="Folder for the results.")]


@app.command("train")
@guarded
def train_command(
    problem: Annotated[Path, typer.Argument(help="Problem file (TOML).")],
    out: OutDir = Path("run"),
    json_out: JsonFlag = False,
) -> None:
    """Train the real network from the problem's initialization: OUT/train.npz, result.json."""
    from .problem import load_problem
    from .training import save_run, summary_of, train

    loaded = load_problem(problem)
    run = train(loaded, progress=not json_out)
    names = list(loaded.leaf_names())
    save_run(run, out, names=names)
    snapshots = [
        {"index": k, "step": int(step), "t": float(step) * run.lr}
        for k, step in enumerate(run.snapshot_steps)
    ]
    summary = {**summary_of(run), "out": str(out), "leaf_names": names, "snapshots": snapshots}
    _emit(summary, json_out, functools.partial(_print_training, out=out))


def _print_training(s: dict, out: Path) -> None:
    print(f"{s['result']}: {s['message']}\n  wrote {out / 'train.npz'} and {out / 'result.json'}")
    shown = ", ".join(f"{p['index']}: t = {p['t']:.4g}" for p in s["snapshots"])
    print(f"  snapshots (index: time; effdyn predict --around ... --snapshot INDEX): {shown}")


@app.command("compare")
@guarded
def compare_command(
    problem: Annotated[Path, typer.Argument(help="Problem file (TOML).")],
    out: OutDir = Path("compare"),
    json_out: JsonFlag = False,
) -> None:
    """Predict and train from one problem; write OUT/result.json and figures."""
    from .compare import compare
    from .problem import load_problem

    result = compare(load_problem(problem), out, progress=not json_out)
    _emit(result, json_out, _print_comparison)


def _print_comparison(r: dict) -> None:
    def fmt(v):
        return "—" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    p, m, q = r["predicted"], r["measured"], r["ratios"]
    print(r["setting"])
    leaf = m.get("leaf", "W1")
    count = p["n_orientations"]
    count = count.get(leaf) if isinstance(count, dict) else count
    print(
        f"  predicted: T* = {fmt(p['t_star'])}, t_escape = {fmt(p['t_escape'])}, "
        f"{fmt(count)} orientation(s) of {leaf}"
    )
    print(
        f"  measured:  t_escape = {fmt(m['t_escape'])}  (ratio to predicted escape "
        f"{fmt(q['escape_over_predicted_escape'])}, to T* {fmt(q['escape_over_t_star'])})"
    )
    for stage in ("initial_stage", "final"):
        s = m[stage]
        a = s["alignment"] or {}
        counts = ", ".join(
            f"{c['lines']} lines/{c['orientations']} orient. at {c['threshold']:g}"
            for c in s["counts"]
        )
        print(
            f"  {stage} (t = {fmt(s['t'])}): {s['n_grown']} grown, median |cos| with "
            f"prediction {fmt(a.get('median_abs_cos'))}; {counts}"
        )
    half = m.get("half_t_star")
    if half:  # the automatic kind: every leaf's relative change at T*/2
        change = ", ".join(f"{k} {fmt(v)}" for k, v in half["relative_change"].items())
        print(f"  relative change at t = {fmt(half['t'])} (≈ T*/2): {change}")
    kernels = m.get("kernels")
    if kernels:  # a two-layer CNN: every kernel against ±u₁
        stage = m["initial_stage"].get("kernels")
        print(
            f"  kernels at {kernels['at']} (t = {fmt(kernels['t'])}): median |cos| with ±u1 "
            f"{fmt(kernels['median_abs_cos'])} (min {fmt(kernels['min_abs_cos'])}, "
            f"{kernels['n']} kernels), median misalignment {fmt(kernels['misalignment'])}"
        )
        if stage:
            print(
                f"  kernels at the end of the initial stage: median misalignment "
                f"{fmt(stage['misalignment'])} (exact linear effective solution: "
                f"{fmt(stage.get('misalignment_effective'))})"
            )
    if r.get("paper_claim"):
        print(f"  paper: {r['paper_claim']['lines']} line(s) — {r['paper_claim']['source']}")
    if "first_neuron_matches" in q:
        print(
            f"  first neuron to grow: measured #{m['first_neuron']}, predicted "
            f"#{p['per_neuron']['first']} ({'match' if q['first_neuron_matches'] else 'no match'})"
        )


@app.command("phase-diagram")
@guarded
def phase_diagram_command(
    sweep: Annotated[Path, typer.Argument(help="Sweep file: a problem file with [sweep].")],
    out: Annotated[Path, typer.Option("--out", help="Result store (zarr folder).")] = Path(
        "phase.zarr"
    ),
    executor: Annotated[
        str, typer.Option("--executor", help="local (default) or dask (a LocalCluster).")
    ] = "local",
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Address of a running Dask scheduler.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Sweep initialization scales and draw the phase diagram; resumable (finished points kept)."""
    if executor not in ("local", "dask"):
        raise EffdynError(f"--executor must be 'local' or 'dask', got {executor!r}")
    from .phase.diagram import phase_diagram

    result = phase_diagram(
        sweep, out, executor=executor, scheduler=scheduler, progress=not json_out
    )
    _emit(result, json_out, _print_phase)


def _print_phase(r: dict) -> None:
    from .phase.diagram import summary_lines

    for line in summary_lines(r):
        print(line)


@app.command()
@guarded
def verify(
    cards: Annotated[list[str] | None, typer.Argument(help="Card ids (default: all).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The quick settings.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Run theorem cards and print claim, source, measured, expected, PASS/FAIL (exit 1 on FAIL)."""
    from .cards import load_cards, run_card, select

    chosen = select(load_cards(), cards)
    results = []
    for card in chosen:
        if not json_out:
            print(f"running {card.id} …", file=sys.stderr)
        results.append(run_card(card, quick=quick))
    payload = {
        "cards": [r.as_dict() for r in results],
        "passed": sum(r.passed for r in results),
        "failed": sum(not r.passed for r in results),
        "quick": quick,
    }
    _emit(payload, json_out, _print_cards)
    if payload["failed"]:
        raise typer.Exit(1)


def _print_cards(payload: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="effdyn verify", show_lines=True)
    table.add_column("card", no_wrap=True)
    table.add_column("claim", ratio=4, overflow="fold")
    table.add_column("source", ratio=1, overflow="fold")
    for col in ("measured", "expected", ""):
        table.add_column(col, no_wrap=True)
    for c in payload["cards"]:
        verdict = "[green]PASS[/green]" if c["passed"] else "[red]FAIL[/red]"
        table.add_row(
            c["id"],
            c["claim"],
            c["citation"],
            str(c["measured"]),
            f"{c['expected']} ± {c['tolerance']}",
            verdict,
        )
    Console().print(table)
    for c in payload["cards"]:
        print(f"{c['id']}: {c['summary']}")
    print(f"{payload['passed']} passed, {payload['failed']} failed")


@app.command()
@guarded
def reproduce(
    out: Annotated[Path, typer.Option("--out", help="Folder for the report.")] = Path("report"),
    quick: Annotated[bool, typer.Option("--quick", help="The quick settings.")] = False,
    cards: Annotated[
        list[str] | None, typer.Option("--card", help="Only these cards (repeatable).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Reproduce the papers' claims: every card and the comparisons, as OUT/report.md."""
    from .cards import load_cards, select
    from .report import reproduce as run_reproduce

    if cards:
        select(load_cards(), cards)  # unknown names are bad input: exit 2 before any work
    result = run_reproduce(out, quick=quick, cards=cards)
    payload = {
        "report": str(out / "report.md"),
        "seconds": result["seconds"],
        "passed": result["passed"],
        "failed": result["failed"],
    }
    _emit(
        payload,
        json_out,
        lambda r: print(
            f"report written to {r['report']} ({r['seconds']} s): "
            f"{r['passed']} cards passed, {r['failed']} failed"
        ),
    )
    if result["failed"]:
        raise typer.Exit(1)


def _print_derivation(s: dict, latex: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"Leading-order dynamics, depth {s['depth']}")
    for col in ("layer", "activation", "σ(0)", "p", "c_p", "smooth"):
        table.add_column(col)
    for i, act in enumerate(s["activations"]):
        p = s["multiplicities"][i]
        table.add_row(
            str(i + 1),
            act,
            s["sigma0_exact"][i],
            "—" if p is None else str(p),
            "—" if p is None else s["coefficients_exact"][i],
            _smoothness(s, i),
        )
    console.print(table)
    console.print(f"degree q = {s['degree']}, field degree k = {s['field_degree']}: {s['regime']}")
    style = "" if latex else "_text"
    templates = s["templates"] if latex else s["templates_text"]
    console.print("leading parts: " + "; ".join(templates))
    console.print(s["energy" if latex else "energy_text"])
    for eq in s["equations" + style].values():
        console.print("  " + eq)
    for t in s["drift"]:
        console.print(
            f"drift: σ{t['layer']}(0) = {t['sigma0_exact']} ≠ 0 adds a degree-{t['degree']} "
            f"term (lower than q): {t['latex' if latex else 'text']}"
        )


def _print_expansion(s: dict) -> None:
    """``effdyn derive`` for the automatic engine: the leaves and the leading order."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"Leading-order dynamics (automatic engine, loss {s['loss']})")
    for col in ("leaf", "shape", "exponent", "role"):
        table.add_column(col)
    roles = {n: "active" for n in s["active_parameters"]}
    roles.update({n: "frozen" for n in s["frozen_parameters"]})
    roles.update({n: "drift" for n in s["drift_parameters"]})
    for leaf in s["leaves"]:
        role = roles.get(leaf["name"], "held at O(1)" if leaf["exponent"] == 0 else "—")
        table.add_row(leaf["name"], "×".join(map(str, leaf["shape"])), str(leaf["exponent"]), role)
    console.print(table)
    k = s["field_degree"]
    regime = (
        "energy not homogeneous"
        if k is None
        else ("finite-time blow-up" if s["finite_time_blowup"] else "linear (exponential)")
    )
    console.print(f"degree q = {s['degree']}, field degree k = {'—' if k is None else k}: {regime}")
    homog = "yes (f(cθ) = c^q f(θ): f itself is f_q)" if s["model_homogeneous"] else "no"
    console.print(f"model positively homogeneous: {homog}")
    v = s["validation"]
    errs = ", ".join(f"{e:.2g}" for e in v["errors"])
    eps = ", ".join(f"{e:g}" for e in v["eps"])
    console.print(f"validated: relative error {errs} at ε = {eps}")


def _smoothness(s: dict, i: int) -> str:
    if s["smooth_layers"][i]:
        return "yes"
    kind = "positively homogeneous" if s["homogeneous"][i] else "one-sided leading power"
    return f"no ({kind}, degree {s['leading_powers'][i]})"


def main() -> None:
    """Console entry point: usage errors become one line and exit code 2, too."""
    try:
        code = app(standalone_mode=False)
    except typer.Exit as done:
        code = done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("effdyn: interrupted", file=sys.stderr)
        code = 130
    except typer.TyperException as err:  # usage mistakes: unknown option, missing value
        message = " ".join(err.format_message().split())
        if "--json" in sys.argv:
            print(json.dumps({"error": message}))
        print(f"effdyn: error: {message}", file=sys.stderr)
        code = getattr(err, "exit_code", EXIT_BAD_INPUT)
    except Exception as err:  # a bug, not bad input: still one line unless asked
        if os.environ.get("EFFDYN_DEBUG"):
            raise
        print(
            f"effdyn: internal error: {type(err).__name__}: {' '.join(str(err).split())} "
            "(set EFFDYN_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
