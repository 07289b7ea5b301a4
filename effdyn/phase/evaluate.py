"""Evaluating phase-diagram points: batched training, RD per layer, slopes over widths.

The sweep engine receives these through the phase study (:mod:`effdyn.phase.sweep_file`);
points and results are plain dicts (docs/theory/phase-diagrams.md#order-parameter).

- :func:`point_shape` — the batching key: points with equal shapes train in one vmapped run.
- :func:`evaluate_points` — train a batch of points of one shape and measure each layer's RD.
- :func:`slopes` — fit ``log RD`` against ``log m`` per group of points, classify the regime.

Point keys (:mod:`effdyn.phase.diagrams`):

- ``"two_layer"``: ``gamma``, ``gamma_prime``, ``width``, ``seed``
  (:mod:`effdyn.phase.two_layer`; docs/theory/phase-diagrams.md#two-layer).
- ``"three_layer"``: ``gamma_1``, ``gamma_2``, ``gamma_3``, ``gamma_out``, ``width``, ``seed``;
  missing exponents come from ``train_options`` (same keys) or
  :data:`~effdyn.phase.three_layer.DEFAULT_EXPONENTS` (:mod:`effdyn.phase.three_layer`;
  docs/theory/phase-diagrams.md#three-layer).

Either kind's point may also carry ``lr`` (a fixed step size) or ``lr_scale`` (``c`` in the
learning-rate rule), overriding ``train_options`` for that point.

``train_options`` (all optional): ``lr_scale`` (0.5), ``lr`` (fixed step, replacing the rule),
``tol`` (1e-3: stop once the loss is at most ``tol`` times its initial value), ``max_steps``
(60000), ``chunk`` (1000 steps per compiled call), and for three-layer the default exponents
``gamma_1``, ``gamma_2``, ``gamma_3``, ``gamma_out``.

Example::

    >>> from effdyn.problem import problem_from_dict
    >>> base = problem_from_dict({"model": {"depth": 2, "width": 10, "activation": "relu"},
    ...                           "data": {"dataset": "zhou2022-fig5"}})
    >>> pts = [{"gamma": 0.5, "gamma_prime": 0.0, "width": 20, "seed": s} for s in (0, 1)]
    >>> point_shape("two_layer", pts[0])
    ('two_layer', 20)
    >>> [r["error"] for r in evaluate_points("two_layer", base, pts)]
    [None, None]
"""

from __future__ import annotations

import math

import numpy as np

from .._jax import in_float64
from ..memory import check_arrays
from ..problem import Problem
from ..results import Result
from . import three_layer, two_layer
from .diagrams import POINT_KEYS, diagram, rd_field
from .regimes import (
    DEFAULT_CHUNK,
    DEFAULT_MAX_STEPS,
    DEFAULT_THRESHOLD,
    DEFAULT_TOL,
    relative_distance,
    slopes_of,
    train_batch,
)

ARRAYS_PER_POINT = 4
"""Weight-sized float64 arrays a point holds while it trains: its weights, their gradient,
its initial weights (for RD) and one more (the masked update)."""

TRAIN_OPTIONS = ("lr_scale", "lr", "tol", "max_steps", "chunk", *three_layer.EXPONENTS)


def point_shape(kind: str, point: dict) -> tuple:
    """The batching key ``(kind, width)``: points with equal keys have equal array shapes (the
    data are the sweep's, shared) and are trained together by :func:`evaluate_points`."""
    diagram(kind)
    return (kind, int(point["width"]))


@in_float64
def evaluate_points(
    kind: str, base: Problem, points: list[dict], *, train_options: dict | None = None
) -> list[dict]:
    """Train every point (all of one :func:`point_shape`) in ONE vmapped run; measure RD.

    Each point's network is initialized by its parametrization (``two_layer.initial_params``
    or ``three_layer.initial_params`` with the point's ``seed``), gets its own learning rate
    (the kind's rule, or ``lr``), and trains by full-batch GD on ``base``'s data and
    activation(s) (``base.model.widths`` are ignored: the width is the point's) until its loss
    is at most ``tol`` times its initial value or ``max_steps``. Computes in float64
    (docs/precision.md).

    Returns, per point, a dict: ``rd_W1``, ``rd_W2`` (and ``rd_W3`` for three layers) —
    :func:`~effdyn.phase.regimes.relative_distance` of each layer between initialization and
    the point's own stop step; ``final_loss_ratio`` (``R(θ_end)/R(θ_0)``; above ``tol`` when
    ``max_steps`` ran out); ``steps`` (the stop step); ``lr``; ``error`` — None, or one line
    when the loss became non-finite (then the RDs and the ratio are NaN). A failing point never
    raises and never changes the others' results.

    Raises:
        ValueError: an unknown kind or option, points of different shapes, a point without
            ``width``, or a problem that is not fully connected.
    """
    layers = diagram(kind).layers
    if not points:
        return []
    options = _options(train_options)
    shapes = {point_shape(kind, p) for p in points}
    if len(shapes) > 1:
        raise ValueError(f"evaluate_points needs points of one shape, got {sorted(shapes)}")
    if base.model.kind != "fc":
        raise ValueError(f"phase diagrams need a fully connected problem, got {base.model.kind!r}")
    xt, y = base.inputs(), base.data.y
    m = int(points[0]["width"])
    check_batch(kind, base, m, len(points))
    builder = _two_layer_member if kind == "two_layer" else _three_layer_member
    members = [builder(p, m, xt.shape[1], y.shape[1], options) for p in points]
    params0 = tuple(np.stack(ws) for ws in zip(*(mb[0] for mb in members), strict=True))
    run = train_batch(
        _activations(len(layers) - 1, base),
        params0,
        [mb[1] for mb in members],
        [mb[2] for mb in members],
        xt,
        y,
        tol=options["tol"],
        max_steps=options["max_steps"],
        chunk=options["chunk"],
    )
    return [_result(layers, run, i, params0, members[i][2]) for i in range(len(points))]


def point_weights(kind: str, m: int, input_dim: int, d_out: int) -> int:
    """Weights of one point: ``m·D + d_out·m`` (two layers), plus ``m²`` (three layers)."""
    hidden = len(diagram(kind).layers) - 1
    return m * input_dim + (hidden - 1) * m * m + d_out * m


def check_batch(kind: str, base: Problem, m: int, batch: int) -> None:
    """Refuse (one-line :class:`~effdyn.errors.ProblemError`) a batch of ``batch`` width-``m``
    points whose :data:`ARRAYS_PER_POINT` weight-sized float64 arrays would not fit in memory
    (docs/precision.md#memory), before anything is allocated."""
    weights = point_weights(kind, int(m), base.input_dim, base.d_out)
    label = "two-layer" if kind == "two_layer" else "three-layer"
    check_arrays(
        base.source,
        f"{ARRAYS_PER_POINT} copies of the {weights:.3g} weights of {batch} width-{m} "
        f"{label} point(s)",
        ARRAYS_PER_POINT * weights * int(batch),
    )


def slopes(
    kind: str, results: list[tuple[dict, dict]], *, threshold: float = DEFAULT_THRESHOLD
) -> list[dict]:
    """Slopes of ``log RD`` against ``log m``, per group of points.

    Groups are the points with equal keys other than ``width`` and ``seed``. Per group: its
    coordinates (those keys), ``slopes`` (``{"W1": S1, "W2": S2[, "W3": S3]}``, least squares
    over widths after averaging ``log RD`` over seeds; failed points left out; NaN with fewer
    than two widths), ``regime`` (per layer, :func:`~effdyn.phase.regimes.measured_regime`
    with ``threshold``: ``"linear"``, ``"critical"``, ``"condensed"``, or ``"unknown"`` for a
    NaN slope), ``widths`` (sorted, distinct) and ``n_seeds`` (distinct seeds).
    """
    return slopes_of(list(results), diagram(kind).layers, threshold)


# ---------------------------------------------------------------------------------------------


def _options(train_options: dict | None) -> dict:
    options = dict(train_options or {})
    unknown = sorted(set(options) - set(TRAIN_OPTIONS))
    if unknown:
        raise ValueError(f"unknown train option(s) {unknown} (allowed: {', '.join(TRAIN_OPTIONS)})")
    options.setdefault("lr_scale", two_layer.DEFAULT_LR_SCALE)
    options.setdefault("tol", DEFAULT_TOL)
    options.setdefault("max_steps", DEFAULT_MAX_STEPS)
    options.setdefault("chunk", min(DEFAULT_CHUNK, int(options["max_steps"])))
    return options


def _lr(point: dict, options: dict, rule) -> float:
    if "lr" in point:
        return float(point["lr"])
    if "lr_scale" in point:
        return rule(float(point["lr_scale"]))
    if "lr" in options:
        return float(options["lr"])
    return rule(float(options["lr_scale"]))


def _two_layer_member(point, m, input_dim, d_out, options):
    g, gp = (float(point[key]) for key in two_layer.EXPONENTS)
    seed = int(point.get(POINT_KEYS[1], 0))
    params = two_layer.initial_params(g, gp, m, seed, input_dim, d_out)
    lr = _lr(point, options, lambda c: two_layer.learning_rate(g, gp, m, c))
    return params, two_layer.output_multiplier(g, gp, m), lr


def _three_layer_member(point, m, input_dim, d_out, options):
    defaults = {k: options[k] for k in three_layer.EXPONENTS if k in options}
    e = three_layer.exponents_of(point, defaults)
    params = three_layer.initial_params(e, m, int(point.get(POINT_KEYS[1], 0)), input_dim, d_out)
    lr = _lr(point, options, lambda c: three_layer.learning_rate(e, m, c))
    return params, three_layer.output_multiplier(e, m), lr


def _activations(hidden: int, base: Problem) -> tuple[str, ...]:
    acts = tuple(base.model.activations)
    # The sweep's problem may be of another depth: use its activations in order, repeating
    # the last one for missing hidden layers.
    return tuple(acts[min(i, len(acts) - 1)] for i in range(hidden))


def _result(layers, run, i, params0, lr) -> dict:
    steps = int(run.steps[i])
    loss0, loss = float(run.loss0[i]), float(run.loss[i])
    if run.status[i] == Result.NONFINITE or not (math.isfinite(loss0) and math.isfinite(loss)):
        where = "initial loss" if steps == 0 else f"loss at step {steps}"
        error = (
            f"non-finite {where} (lr {lr:.4g}): the learning rate or the initialization scale "
            "is too large for this point; lower lr_scale"
        )
        return {
            **{rd_field(name): math.nan for name in layers},
            "final_loss_ratio": math.nan,
            "steps": steps,
            "lr": float(lr),
            "error": error,
        }
    rds = {
        rd_field(name): relative_distance(run.params[j][i], params0[j][i])
        for j, name in enumerate(layers)
    }
    return {**rds, "final_loss_ratio": loss / loss0, "steps": steps, "lr": float(lr), "error": None}
