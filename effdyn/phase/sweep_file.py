"""Phase-diagram sweep files: a problem file plus a ``[sweep]`` table → a :class:`Study`.

The contract (docs/problem-files.md#sweep; the diagrams in docs/theory/phase-diagrams.md)::

    [sweep]
    gamma = [0.5, 1.0, 1.75]    # two-layer ([model] depth = 2): gamma and gamma_prime
    gamma_prime = [0.0]
    widths = [100, 400, 1600]   # hidden width m (the sweep's widths replace [model] width)
    seeds = [0, 1]
    # kind = "two_layer" | "three_layer" is optional: inferred from depth and keys

A three-layer sweep (``[model] depth = 3``) gives one list per layer exponent instead:
``gamma_1`` and ``gamma_2`` (required), ``gamma_3`` and ``gamma_out`` (optional; left out, the
evaluator's defaults apply). The keys of each diagram are declared once, in
:mod:`effdyn.phase.diagrams`.

**Which diagram.** ``[model] depth`` names it (2: ``two_layer``, 3: ``three_layer``); without
a problem (:func:`sweep_from_table` with no ``depth``) the exponent keys present do. ``kind``,
when given, must agree; a disagreement, keys of the other diagram, or missing keys are one-line
:class:`~effdyn.errors.EffdynError` s naming what was expected, e.g.
``sweep.toml: [sweep] missing required key 'gamma_prime' (two_layer needs gamma, gamma_prime,
widths and seeds)``.

Two optional numbers tune the training of every point: ``lr_scale`` (``c`` in the width-aware
learning-rate rule) and ``tol`` (stop once the loss is ``tol`` times its initial value; 0 runs
every point the full number of steps). The problem's ``[train]`` table may be left out (the
evaluator's defaults then apply); when given, its ``lr`` fixes every point's step size
(replacing the rule), its ``steps`` caps the steps (``max_steps``), and ``optimizer`` must be
``"gd"`` (full-batch gradient descent, docs/theory/phase-diagrams.md#order-parameter).

The points are the Cartesian product of the lists, in the order
``(exponents..., width, seed)``; each is a plain dict such as
``{"gamma": 0.5, "gamma_prime": 0.0, "width": 100, "seed": 0}`` with a stable id
(:func:`effdyn.sweeps.spec.point_id`), ``"gamma=0.5,gamma_prime=0.0,width=100,seed=0"``.

    >>> spec = sweep_from_table({"gamma": [0.5, 1], "gamma_prime": [0], "widths": [10, 20],
    ...                          "seeds": [0]})
    >>> spec.kind, spec.dims, spec.shape
    ('two_layer', ('gamma', 'gamma_prime', 'width', 'seed'), (2, 1, 2, 1))
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import EffdynError
from ..problem import Problem
from ..sweeps.spec import Dim, SweepSpec, is_number, one_line, shown, values_of
from ..sweeps.study import Study
from .diagrams import BY_DEPTH, DIAGRAMS, GRID_KEYS, KINDS, OPTION_KEYS, Diagram
from .evaluate import check_batch, evaluate_points, point_shape


class PhaseSweep(NamedTuple):
    """A loaded sweep file: the base problem, the grid, and the evaluator's training options."""

    problem: Problem
    spec: SweepSpec
    train_options: dict | None

    def study(self) -> Study:
        """The sweep as the engine's :class:`~effdyn.sweeps.study.Study`."""
        return phase_study(self.problem, self.spec, self.train_options)


def _names(keys) -> str:
    keys = list(keys)
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + " and " + keys[-1]


def _needs(d: Diagram) -> str:
    return f"{d.kind} needs {_names([*d.required, *GRID_KEYS])}"


def _kind(table: Mapping[str, Any], depth: int | None, error) -> str:
    """The diagram of a ``[sweep]`` table: ``kind`` if given, else ``depth``, else the keys."""
    by_keys = [k for k, d in DIAGRAMS.items() if any(key in table for key in d.exponents)]
    by_depth = None
    if depth is not None:
        if depth not in BY_DEPTH:
            depths = " or ".join(f"{d.depth} ({d.kind})" for d in DIAGRAMS.values())
            raise error(f"phase diagrams need [model] depth = {depths}, got depth = {depth}")
        by_depth = BY_DEPTH[depth].kind
    if "kind" in table:
        kind = table["kind"]
        if kind not in KINDS:
            raise error(f"kind must be {' or '.join(map(repr, KINDS))}, got {shown(kind)}")
        if by_depth is not None and kind != by_depth:
            raise error(
                f"kind {kind!r} needs [model] depth = {DIAGRAMS[kind].depth}, got depth = "
                f"{depth} (the {by_depth} diagram)"
            )
        return kind
    if by_depth is not None:
        others = [k for k in by_keys if k != by_depth]
        if others and by_depth not in by_keys:
            other = DIAGRAMS[others[0]]
            given = [key for key in other.exponents if key in table]
            raise error(
                f"{_names(given)} {'is' if len(given) == 1 else 'are'} {other.kind} keys "
                f"(depth {other.depth}) but [model] depth = {depth} is the {by_depth} diagram "
                f"({_needs(DIAGRAMS[by_depth])})"
            )
        return by_depth
    if len(by_keys) == 1:
        return by_keys[0]
    ways = "; ".join(_needs(d) for d in DIAGRAMS.values())
    if not by_keys:
        raise error(f"cannot tell the diagram from the keys: {ways} (or give kind)")
    raise error(f"keys of both diagrams ({ways}); give kind, or keep one diagram's keys")


def sweep_from_table(
    table: Mapping[str, Any] | None, *, source: str = "<dict>", depth: int | None = None
) -> SweepSpec:
    """Validate a ``[sweep]`` table (the parsed TOML) into a :class:`SweepSpec`.

    ``depth`` (the problem's ``[model] depth``), when given, names the diagram; ``kind``, when
    given, must agree with it. Raises :class:`~effdyn.errors.EffdynError` with a one-line
    message.
    """

    def error(message: str) -> EffdynError:
        return EffdynError(one_line(f"{source}: [sweep] {message}"))

    if table is None:
        raise EffdynError(
            f"{source}: no [sweep] table (a sweep file is a problem file plus a [sweep] table)"
        )
    if not isinstance(table, Mapping):
        raise error(f"must be a table, got {shown(table)}")
    d = DIAGRAMS[_kind(table, depth, error)]
    allowed = ("kind", *d.exponents, *GRID_KEYS, *OPTION_KEYS)
    for key in table:
        if key not in allowed:
            raise error(f"unknown key {key!r} (allowed for {d.kind}: {', '.join(allowed)})")
    missing = [key for key in (*d.required, *GRID_KEYS) if key not in table]
    if missing:
        keys = ", ".join(map(repr, missing))
        raise error(f"missing required key{'s' if len(missing) > 1 else ''} {keys} ({_needs(d)})")

    grid = [Dim(name, values_of(error, name, table[name]), chunk=1) for name in d.exponents
            if name in table]  # fmt: skip
    for key, name in GRID_KEYS.items():
        low = 1 if name == "width" else 0
        grid.append(Dim(name, values_of(error, key, table[key], "int64", low=low), "int64"))
    options = []
    for key in OPTION_KEYS:
        if key in table:
            value = table[key]
            if not is_number(value):
                raise error(f"{key} must be a number, got {shown(value)}")
            low_ok = value > 0 if key == "lr_scale" else 0 <= value < 1
            if not (math.isfinite(value) and low_ok):
                bounds = "finite and > 0" if key == "lr_scale" else "in [0, 1)"
                raise error(f"{key} must be {bounds}, got {value}")
            options.append((key, float(value)))
    return SweepSpec(d.kind, tuple(grid), d.fields(), tuple(options), source)


def load_sweep(path: str | Path) -> PhaseSweep:
    """Read a sweep file: ``(problem, spec, train_options)`` (a :class:`PhaseSweep`).

    ``problem`` is the validated base problem (:func:`effdyn.problem.problem_from_dict`), a
    fully connected network of depth 2 or 3, which names the diagram; ``[model] width`` may be
    left out (the sweep's widths replace it; the first is used to validate).
    ``train_options`` comes from :func:`train_options`: ``None`` when neither ``[train]`` nor
    the ``[sweep]`` options are given (the evaluator's defaults then apply).
    """
    from ..problem import problem_from_dict, read_toml

    path = Path(path)
    source = str(path)
    table = read_toml(path)
    sweep = table.get("sweep")
    if sweep is None:
        sweep_from_table(None, source=source)  # raises: no [sweep] table
    model = table.get("model")
    if isinstance(model, dict) and "width" not in model and "widths" not in model:
        widths = sweep.get("widths") if isinstance(sweep, Mapping) else None
        first = widths[0] if isinstance(widths, list) and widths else None
        # only to validate the problem; every point sets its own width (checked below)
        model["width"] = first if isinstance(first, int) and first >= 1 else 1
    problem = problem_from_dict(table, source=source, base_dir=path.parent)
    if problem.model.kind != "fc":
        raise EffdynError(
            f"{source}: [sweep] phase diagrams need a fully connected network "
            f"([model] kind = 'fc'), got {problem.model.kind!r}"
        )
    spec = sweep_from_table(sweep, source=source, depth=problem.model.depth)
    widest = max(int(p["width"]) for p in spec.points()) if spec.n_points else 1
    check_batch(spec.kind, problem, widest, 1)  # the widest point alone must fit
    return PhaseSweep(problem, spec, train_options(problem, spec))


def train_options(problem: Problem, spec: SweepSpec) -> dict | None:
    """The evaluator's training options from ``[train]`` and ``[sweep]`` (``None``: defaults).

    ``[train] lr`` → ``lr`` (one fixed step size), ``[train] steps`` → ``max_steps``,
    ``[sweep] lr_scale`` and ``tol`` as they are; ``[train] optimizer`` must be ``"gd"``.
    """
    train = dict((problem.raw or {}).get("train") or {})
    if train.get("optimizer", "gd") != "gd":
        raise EffdynError(
            f"{problem.source}: [train] optimizer must be 'gd' for a phase diagram "
            "(full-batch gradient descent, docs/theory/phase-diagrams.md#order-parameter), "
            f"got {train['optimizer']!r}"
        )
    options: dict[str, Any] = {}
    if "lr" in train:
        options["lr"] = float(problem.train.lr)
    if "steps" in train:
        options["max_steps"] = int(problem.train.steps)
    options.update(spec.options)
    return options or None


def problem_fingerprint(problem: Problem) -> str:
    """JSON of the problem's tables without ``[sweep]`` and the width (which points set).

    A result store records it so that a changed problem file is not mixed into old results.
    """
    raw = {k: dict(v) for k, v in (problem.raw or {}).items() if k != "sweep"}
    model = raw.get("model", {})
    for key in ("width", "widths"):
        model.pop(key, None)
    return json.dumps(raw, sort_keys=True, default=_jsonable)


def phase_study(problem: Problem, spec: SweepSpec, options: dict | None = None) -> Study:
    """The engine's :class:`~effdyn.sweeps.study.Study` of a phase sweep: ``spec`` (grid and
    fields), :func:`~effdyn.phase.evaluate.evaluate_points` on ``problem`` with ``options``
    (picklable, for Dask workers), batched by :func:`~effdyn.phase.evaluate.point_shape`."""
    return Study(
        spec=spec,
        run_points=functools.partial(evaluate_points, spec.kind, problem, train_options=options),
        batch_key=functools.partial(point_shape, spec.kind),
        fingerprint=problem_fingerprint(problem),
    )


def _jsonable(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    return tolist() if tolist is not None else repr(value)
