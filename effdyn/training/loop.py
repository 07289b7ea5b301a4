"""Training the real network: full-batch gradient descent or Adam, compiled in chunks.

Gradient descent with step ``lr`` on the problem's loss ``R(θ) = ⟨ℓ(f(x_i; θ), y_i)⟩``
(``[model] loss``, :mod:`effdyn.losses`; the default ``mse`` is ``(1/2n) Σ_i |f(x_i) − y_i|²``,
docs/theory/conventions.md), for any kind's real network
(:meth:`~effdyn.kinds.base.ModelKind.real_network`: a built-in one or a user's model),

    θ_{k+1} = θ_k − lr ∇R(θ_k),

is compared with gradient flow at ``t_k = k·lr``; ``"adam"`` is ``optax.adam(lr)`` with optax's
defaults (β1 = 0.9, β2 = 0.999, ε = 1e-8, bias correction).

How it runs: one jitted function advances a fixed number of steps (``chunk``) with
``jax.lax.scan``; each step is one fused computation (loss and gradient by ``jax.value_and_grad``,
optimizer update) and records the loss ``R(θ_k)`` *before* its update. The function is traced
once per run (per network, loss, optimizer, chunk length and shapes — later runs of the same
network reuse it): the last, partial chunk runs through the same function, its steps past the end
leaving θ unchanged. Each step is branch-free straight-line code. Parameters are kept only at
log-spaced snapshot steps, written inside the scan into a preallocated buffer that is carried
(and donated) from chunk to chunk. Between chunks Python only looks at the chunk's losses:
to stop after a non-finite loss, to stop early once the loss has dropped (``stop_below``), and
to update the progress bar.

A non-finite loss is a result, not an exception (docs/results.md): the step that produced it
does not update ``θ``, the run ends after that chunk, and the arrays end at that step with
``result = Result.NONFINITE`` and a message naming the likely cause; ``throw=True`` raises it
as an :class:`~effdyn.errors.EffdynError` instead. ``Result.COMPLETED`` and
``Result.STOPPED`` are outcomes and never raise. The computation runs in float64 inside
JAX's scoped context (docs/precision.md).

Example::

    >>> from effdyn.problem import problem_from_dict
    >>> p = problem_from_dict({"model": {"depth": 2, "width": 10, "activation": "tanh"},
    ...                        "data": {"dataset": "zhou2022-fig5"},
    ...                        "init": {"scale": 0.1}, "train": {"lr": 0.1, "steps": 100}})
    >>> run = train(p)
    >>> run.result.label, float(run.t[-1]), run.loss.shape
    ('completed', 10.0, (101,))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from .._jax import in_float64
from ..errors import EffdynError
from ..losses import get_loss
from ..problem import OPTIMIZERS, Problem, initial_leaves
from ..progress import progress_bar
from ..results import Result, check

RESULTS = (Result.COMPLETED, Result.STOPPED, Result.NONFINITE)
"""The codes a training run can end with."""

_TRACES = [0]
"""How many times a chunk function has been traced (compiled) in this process — for tests."""


@dataclass(frozen=True)
class Capture:
    """A trigger for keeping ``θ_k`` at the first step where it holds (``train(capture=…)``).

    The step is the first ``k`` (``0 ≤ k ≤ K``) with ``loss_k ≤ (1 − loss_drop)·loss_0``,
    ``max_preactivation_k ≥ max_preactivation`` or ``k = at_step`` (a field left ``None``
    never triggers), read
    from the same ``loss`` and ``max_preactivation`` arrays the :class:`TrainRun` holds; the
    kept parameters are ``θ_k``, the ones whose loss is ``loss_k``. This is how ``compare``
    reads the initial stage and the escape step in one run (docs/theory/measuring.md#initial-stage,
    docs/theory/measuring.md#escape-time).
    """

    loss_drop: float | None = None
    max_preactivation: float | None = None
    at_step: int | None = None

    def __post_init__(self):
        if self.loss_drop is None and self.max_preactivation is None and self.at_step is None:
            raise EffdynError("a Capture needs loss_drop, max_preactivation or at_step")
        if self.at_step is not None and not (_is_int(self.at_step) and self.at_step >= 0):
            raise EffdynError(f"Capture.at_step must be an integer >= 0, got {self.at_step!r}")
        if self.loss_drop is not None and not (
            _is_real(self.loss_drop) and 0.0 < self.loss_drop < 1.0
        ):
            raise EffdynError(f"Capture.loss_drop must lie in (0, 1), got {self.loss_drop!r}")
        if self.max_preactivation is not None and not (
            _is_real(self.max_preactivation) and math.isfinite(self.max_preactivation)
        ):
            raise EffdynError(
                f"Capture.max_preactivation must be a finite number, got {self.max_preactivation!r}"
            )

    def first_step(self, loss: np.ndarray, max_preactivation: np.ndarray) -> int | None:
        """The first ``k`` at which the trigger holds on these arrays, or None."""
        hit = np.zeros(len(loss), dtype=bool)
        if self.loss_drop is not None:
            hit |= loss <= (1.0 - self.loss_drop) * loss[0]
        if self.max_preactivation is not None:
            hit |= max_preactivation >= self.max_preactivation
        if self.at_step is not None and self.at_step < len(loss):
            hit[self.at_step] = True
        over = np.flatnonzero(hit)
        return int(over[0]) if over.size else None


@dataclass(frozen=True, eq=False)
class TrainRun:
    """A training run: the loss at every step, the final weights and log-spaced snapshots.

    Attributes:
        t: ``(K+1,)`` times ``t_k = k·lr``, ``k = 0..K`` (``K`` = steps actually run).
        loss: ``(K+1,)`` ``R(θ_k)``, the loss before update ``k+1``; ``loss[0] = R(θ_0)``.
        max_preactivation: ``(K+1,)`` ``max_{i,k} |w_k·x̃_i|`` at ``θ_k`` (first layer): the
            small-initialization regime lasts while it is small.
        params: the final weights ``(W1, …, WL)`` = ``θ_K``.
        snapshot_steps: ``(S,)`` increasing, log-spaced step indices, always with 0 and ``K``.
        snapshots: per layer, ``(S, *W_l.shape)``: ``θ`` at those steps.
        result: a :class:`~effdyn.results.Result`: ``COMPLETED``, ``STOPPED``
            (``stop_below`` reached before the last step) or ``NONFINITE`` (the loss became
            NaN/inf at step ``K``); ``result.label`` is the JSON name (``"completed"``, …).
        message: one line saying what happened (for ``NONFINITE``: where and why).
        optimizer: ``"gd"`` or ``"adam"``.
        lr: the step size.
        steps_requested: the number of steps asked for.
        captured: one entry per :class:`Capture` asked for: ``(step, params)`` with ``θ`` at
            the first step its trigger held, or None if it never held.
    """

    t: np.ndarray
    loss: np.ndarray
    max_preactivation: np.ndarray
    params: tuple[np.ndarray, ...]
    snapshot_steps: np.ndarray
    snapshots: tuple[np.ndarray, ...]
    result: Result
    message: str
    optimizer: str
    lr: float
    steps_requested: int
    captured: tuple[tuple[int, tuple[np.ndarray, ...]] | None, ...] = ()

    def params_at(self, step: int) -> tuple[np.ndarray, ...]:
        """``θ_step``: step 0, the last step ``K``, a captured step or a snapshot step.

        Raises:
            EffdynError: any other step (the run did not keep ``θ`` there).
        """
        step = int(step)
        if step == self.steps:
            return self.params
        for entry in self.captured:
            if entry is not None and entry[0] == step:
                return entry[1]
        where = np.flatnonzero(self.snapshot_steps == step)
        if where.size:
            return tuple(s[int(where[0])] for s in self.snapshots)
        raise EffdynError(
            f"the run kept no parameters at step {step} (kept: 0, {self.steps}, the "
            "snapshot steps and the captured steps); pass a Capture to train()"
        )

    @property
    def steps(self) -> int:
        """``K``, the number of steps run (``len(t) − 1``)."""
        return len(self.t) - 1

    @property
    def snapshot_t(self) -> np.ndarray:
        """Times of the snapshots, ``snapshot_steps · lr``."""
        return self.snapshot_steps * self.lr

    def __repr__(self) -> str:  # shapes and the outcome, not thousands of numbers
        return (
            f"TrainRun(result={self.result.label!r}, steps={self.steps}/{self.steps_requested}, "
            f"optimizer={self.optimizer!r}, lr={self.lr:g}, final_loss={self.loss[-1]:.6g}, "
            f"snapshots={len(self.snapshot_steps)})"
        )


@in_float64
def train(
    problem: Problem,
    *,
    steps: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    n_snapshots: int = 60,
    chunk: int = 1000,
    stop_below: float | None = None,
    progress: bool = False,
    capture: Sequence[Capture] = (),
    throw: bool = False,
) -> TrainRun:
    """Train the problem's real network from :func:`~effdyn.problem.initial_params`.

    Full-batch: every step uses all ``n`` samples. Deterministic: the same problem and
    options give bit-identical arrays on the same machine (the only randomness is the
    seeded initialization).

    Args:
        problem: a problem of any kind (its real network and loss).
        steps: number of steps ``K`` (default ``problem.train.steps``), ``≥ 1``.
        lr: step size (default ``problem.train.lr``), finite and ``> 0``.
        optimizer: ``"gd"`` (``θ ← θ − lr ∇R``) or ``"adam"`` (``optax.adam(lr)``); default
            ``problem.train.optimizer``.
        n_snapshots: how many log-spaced steps to keep ``θ`` at (``≥ 2``: 0 and ``K``).
        chunk: steps per compiled call (between progress updates and stopping checks).
        stop_below: if given, stop at the end of the first chunk in which the loss fell
            below ``stop_below · loss[0]`` — to end a run soon after the escape from the
            small-initialization plateau.
        progress: show a transient progress bar on stderr.
        capture: :class:`Capture` triggers; ``θ_k`` at the first step each holds is kept
            (inside the compiled loop, no second run) in :attr:`TrainRun.captured`.
        throw: raise on a failure (a non-finite loss) instead of returning it as a code.

    Returns:
        A :class:`TrainRun`; a non-finite loss gives ``result = Result.NONFINITE``, not an
        error (unless ``throw``).

    Raises:
        EffdynError: a bad argument (one line); with ``throw=True``, a non-finite loss
            (the run's message).
    """
    steps = problem.train.steps if steps is None else steps
    lr = problem.train.lr if lr is None else lr
    optimizer = problem.train.optimizer if optimizer is None else optimizer
    _check_arguments(steps, lr, optimizer, n_snapshots, chunk, stop_below)
    capture = tuple(capture)
    if not all(isinstance(c, Capture) for c in capture):
        raise EffdynError("capture must be a sequence of effdyn.training.Capture")
    steps, lr, chunk = int(steps), float(lr), min(int(chunk), int(steps))

    from ..kinds import kind_of

    net = kind_of(problem).real_network(problem)
    params0 = initial_leaves(problem)  # the leaves in leaf order (W1..WL, or flatten order)
    xt = jnp.asarray(net.inputs)  # x̃, a CNN's patches P(x̃_i), or a user model's x
    y = jnp.asarray(problem.data.y)
    lossname = problem.model.loss

    planned = snapshot_schedule(steps, n_snapshots)
    # steps < K are recorded inside the scan; K itself is the final θ. Padding with -1 (never
    # hit) keeps the buffer's shape a function of n_snapshots alone.
    inside = planned[planned < steps]
    inside = np.concatenate([inside, np.full(n_snapshots - len(inside), -1)]).astype(np.int64)
    buffers = tuple(jnp.zeros((n_snapshots + 1, *w.shape)) for w in params0)  # +1: spare row
    start_params = tuple(jnp.array(w) for w in params0)  # copies: the carry is donated
    opt_state = _optimizer(optimizer, lr).init(start_params)
    carry = (start_params, opt_state, jnp.int64(0), buffers, _capture_state(capture, params0))
    args = (xt, y, jnp.float64(lr), *_capture_thresholds(capture))

    pieces: list[np.ndarray] = []
    pre_pieces: list[np.ndarray] = []
    end, result = steps, Result.COMPLETED
    with progress_bar(f"training ({optimizer})", total=steps, enabled=progress) as bar:
        run_chunk = _chunk_function(net, lossname, optimizer, chunk)
        for start in range(0, steps, chunk):
            carry, (losses, pre) = run_chunk(
                carry, *args, jnp.int64(start), jnp.int64(steps), jnp.asarray(inside)
            )
            losses = np.asarray(losses)[: min(chunk, steps - start)]
            pieces.append(losses)
            # each step left a few partial maxima (see _partial_max): finish the max here
            pre_pieces.append(np.max(np.asarray(pre)[: len(losses)], axis=1))
            bar.advance(len(losses), description=f"training ({optimizer}), loss {losses[-1]:.4g}")
            bad = ~np.isfinite(losses)
            if bad.any():
                end, result = start + int(np.argmax(bad)), Result.NONFINITE
                break
            if stop_below is not None and np.any(losses < stop_below * pieces[0][0]):
                if start + len(losses) < steps:
                    end, result = start + len(losses), Result.STOPPED
                break

    params, _, n_recorded, buffers, (_, cap_steps, cap_buffers) = carry
    params = tuple(np.asarray(w) for w in params)
    recorded = inside[: int(n_recorded)]
    keep = recorded < end
    snapshot_steps = np.append(recorded[keep], end)
    snapshots = tuple(
        np.concatenate([np.asarray(b)[: int(n_recorded)][keep], w[None]])
        for b, w in zip(buffers, params, strict=True)
    )
    loss = np.concatenate(pieces)
    pre = np.concatenate(pre_pieces)
    if result is Result.NONFINITE:
        loss, pre = loss[: end + 1], pre[: end + 1]
    else:
        final, final_pre = _final_function(net, lossname)(params, xt, y)
        loss = np.append(loss[:end], float(final))
        pre = np.append(pre[:end], float(final_pre))
    message = _message(result, loss, end, steps, optimizer, lr, stop_below, params0)
    check(result, message, throw=throw)
    captured = _captured(capture, cap_steps, cap_buffers, end, loss, pre, params)
    return TrainRun(
        t=np.arange(end + 1) * lr,
        loss=loss,
        max_preactivation=pre,
        params=params,
        snapshot_steps=snapshot_steps,
        snapshots=snapshots,
        result=result,
        message=message,
        optimizer=optimizer,
        lr=lr,
        steps_requested=steps,
        captured=captured,
    )


def snapshot_schedule(steps: int, n_snapshots: int) -> np.ndarray:
    """Up to ``n_snapshots`` increasing step indices: 0, then log-spaced from 1 to ``steps``.

    ``round(geomspace(1, K, n_snapshots − 1))`` with duplicates removed (for small ``K``
    every step), so consecutive ratios are roughly constant and 0 and ``K`` are included.
    """
    if n_snapshots < 2:
        raise EffdynError(f"n_snapshots must be >= 2 (steps 0 and K), got {n_snapshots}")
    logs = np.rint(np.geomspace(1, steps, n_snapshots - 1)).astype(np.int64)
    return np.unique(np.concatenate([[0], logs, [steps]]))


# ---------------------------------------------------------------------------------------------
# The compiled chunk


def _optimizer(name: str, lr) -> optax.GradientTransformation:
    # optax.sgd(lr) applies θ + (−lr·g), bit-identical to θ − lr·g.
    return optax.adam(lr) if name == "adam" else optax.sgd(lr)


_CACHE_SIZE = 64
_CHUNKS: dict = {}
"""Compiled chunk and final-loss functions by ``(network key, loss, optimizer, chunk)``."""


def _cached(key, build):
    """``_CHUNKS[key]``, built on first use (the oldest entry leaves past 64)."""
    fn = _CHUNKS.get(key)
    if fn is None:
        if len(_CHUNKS) >= _CACHE_SIZE:
            _CHUNKS.pop(next(iter(_CHUNKS)))
        fn = _CHUNKS[key] = build()
    return fn


def _objective(net, lossname: str):
    """``R(leaves, inputs, y) = ⟨ℓ(f(leaves, inputs), y)⟩`` of a real network."""
    lossfn = get_loss(lossname)

    def objective(params, xt, y):
        return lossfn.mean(net.f(params, xt), y)

    return objective


def _chunk_function(net, lossname: str, optimizer: str, chunk: int):
    """The jitted ``chunk``-step advance for one network, loss and optimizer (cached across
    runs on the network's ``key``)."""
    return _cached(
        (net.key, lossname, optimizer, chunk),
        lambda: _build_chunk(net, lossname, optimizer, chunk),
    )


def _final_function(net, lossname: str):
    """The jitted ``(loss, largest pre-activation)`` at the final parameters."""
    objective = _objective(net, lossname)

    def final(params, xt, y):
        return objective(params, xt, y), jnp.max(jnp.abs(net.preactivation(params, xt)))

    return _cached((net.key, lossname, "final"), lambda: jax.jit(final))


def _build_chunk(net, lossname: str, optimizer: str, chunk: int):
    """The ``chunk``-step advance (:func:`_chunk_function`).

    A step is straight-line code, no branch: the loss and gradient, the optimizer update, the
    largest pre-activation and the snapshot write. Steps past ``stop`` (the last, partial
    chunk) and a non-finite loss keep ``θ_k`` by a select, not a conditional: every later step
    of the chunk then sees the same θ (the wasted arithmetic of a partial chunk happens once
    per run; a branch in every step costs more).
    """
    value_and_grad = jax.value_and_grad(_objective(net, lossname))

    def run_chunk(carry, xt, y, lr, cap_factor, cap_pre, cap_at, start, stop, snap_steps):
        _TRACES[0] += 1  # Python side effect: runs once per trace, never per step
        opt = _optimizer(optimizer, lr)
        spare = snap_steps.shape[0]  # index of the buffer's spare row

        def step(state, j):
            params, opt_state, slot, buffers, cap = state
            k = start + j
            loss, grads = value_and_grad(params, xt, y)
            # The largest pre-activation of the kind's rule (first layer |w_k·x̃_i|,
            # docs/theory/measuring.md#initial-stage): the leading-order expansion holds
            # while it is small.
            pre = _partial_max(jnp.abs(net.preactivation(params, xt)))
            # Snapshot θ_k if k is the next scheduled step: every step writes θ_k into the
            # buffer, into the spare row unless scheduled (cheaper than a conditional copy).
            hit = k == snap_steps[jnp.minimum(slot, spare - 1)]
            row = jnp.where(hit, slot, spare)
            buffers = tuple(
                lax.dynamic_update_index_in_dim(b, w, row, axis=0)
                for b, w in zip(buffers, params, strict=True)
            )
            cap = _capture_step(
                cap, params, k, loss, jnp.max(pre), cap_factor, cap_pre, cap_at, stop
            )
            updates, new_state = opt.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            # A non-finite loss leaves θ_k in place, so the run can end exactly at step k.
            keep = jnp.isfinite(loss) & (k < stop)
            params, opt_state = jax.tree.map(
                lambda new, old: jnp.where(keep, new, old),
                (new_params, new_state),
                (params, opt_state),
            )
            return (params, opt_state, slot + hit, buffers, cap), (loss, pre)

        return lax.scan(step, carry, jnp.arange(chunk))

    return jax.jit(run_chunk, donate_argnums=0)


def _capture_state(capture: tuple[Capture, ...], params0):
    """The capture part of the carry: ``(loss_0, first steps (−1: not yet), θ buffers)``;
    each buffer has one row per capture plus a spare row that unhit steps write into."""
    n = len(capture)
    buffers = tuple(jnp.zeros((n + 1, *np.shape(w))) for w in params0)
    return (jnp.float64(jnp.nan), jnp.full((max(n, 1),), -1, dtype=jnp.int64), buffers)


def _capture_thresholds(capture: tuple[Capture, ...]) -> tuple[jax.Array, ...]:
    """``(1 − loss_drop, max_preactivation, at_step)`` per capture; a missing rule never
    fires (``−inf`` factor: ``loss ≤ −inf`` is false for a finite loss; ``+inf`` threshold;
    step −1)."""
    factor = [-np.inf if c.loss_drop is None else 1.0 - c.loss_drop for c in capture]
    pre = [np.inf if c.max_preactivation is None else c.max_preactivation for c in capture]
    at = [-1 if c.at_step is None else int(c.at_step) for c in capture]
    return (
        jnp.asarray(factor or [-np.inf]),
        jnp.asarray(pre or [np.inf]),
        jnp.asarray(at or [-1], dtype=jnp.int64),
    )


def _capture_step(cap, params, k, loss, pre, factor, threshold, at_step, stop):
    """Keep ``θ_k`` for every capture whose trigger first holds at step ``k < stop``
    (straight-line code: a dynamic row write, into the spare row when nothing fires)."""
    loss0, first, buffers = cap
    loss0 = jnp.where(k == 0, loss, loss0)
    fires = (loss <= factor * loss0) | (pre >= threshold) | (k == at_step)
    fires = fires & (first < 0) & (k < stop)
    first = jnp.where(fires, k, first)
    spare = buffers[0].shape[0] - 1
    for i in range(spare):
        row = jnp.where(fires[i], i, spare)
        buffers = tuple(
            lax.dynamic_update_index_in_dim(b, w, row, axis=0)
            for b, w in zip(buffers, params, strict=True)
        )
    return loss0, first, buffers


def _captured(capture, steps, buffers, end, loss, pre, params):
    """``(step, θ)`` per capture: a step the scan kept (``< end``), else the last step ``end``
    if the trigger holds there (its loss is computed after the loop), else None."""
    steps = np.asarray(steps)
    out = []
    for i, c in enumerate(capture):
        k = int(steps[i])
        if 0 <= k < end:
            out.append((k, tuple(np.asarray(b[i]) for b in buffers)))
        elif c.first_step(loss, pre) == end:
            out.append((end, params))
        else:
            out.append(None)
    return tuple(out)


def _partial_max(a: jax.Array) -> jax.Array:
    """Maxima of ``a`` over ``lanes`` interleaved slices (``lanes`` = 8, 4, 2 or 1, the largest
    that divides ``a.size``): their max is ``max(a)``. XLA's CPU reduction of a whole array to
    one scalar runs as a serial chain (plus a separate tiny reduction); reducing to a short
    vector vectorizes across the lanes and saves ~8% of a GD step (Fig. 2 setting). The
    caller takes the last max outside the compiled loop."""
    lanes = next(w for w in (8, 4, 2, 1) if a.size % w == 0)
    return jnp.max(a.reshape(-1, lanes), axis=0)


# ---------------------------------------------------------------------------------------------
# Arguments and messages


def _check_arguments(steps, lr, optimizer, n_snapshots, chunk, stop_below) -> None:
    if not _is_int(steps) or steps < 1:
        raise EffdynError(f"steps must be an integer >= 1, got {steps!r}")
    if not _is_real(lr) or not (math.isfinite(lr) and lr > 0):
        raise EffdynError(f"lr must be a finite number > 0, got {lr!r}")
    if optimizer not in OPTIMIZERS:
        raise EffdynError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if not _is_int(n_snapshots) or n_snapshots < 2:
        raise EffdynError(
            f"n_snapshots must be an integer >= 2 (steps 0 and K), got {n_snapshots!r}"
        )
    if not _is_int(chunk) or chunk < 1:
        raise EffdynError(f"chunk must be an integer >= 1, got {chunk!r}")
    if stop_below is not None and (
        not _is_real(stop_below) or not (math.isfinite(stop_below) and stop_below > 0)
    ):
        raise EffdynError(
            f"stop_below must be a finite number > 0 (a fraction), got {stop_below!r}"
        )


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _message(result, loss, end, steps, optimizer, lr, stop_below, params0) -> str:
    t = end * lr
    if result is Result.NONFINITE:
        what = "NaN" if np.isnan(loss[end]) else "inf"
        largest = max(float(np.max(np.abs(w))) for w in params0)
        if end == 0:
            return (
                f"the initial loss is {what} (step 0): the initialization is likely too large "
                f"(largest |weight| {largest:.3g}) or the activation overflows; lower the scale"
            )
        return (
            f"the loss became {what} at step {end} (t = {t:g}; it was {loss[end - 1]:.4g} one "
            f"step before): the learning rate {lr:g} is likely too large for this network "
            f"(or the initialization scale, largest |weight| {largest:.3g}); lower lr"
        )
    change = f"loss {loss[0]:.6g} -> {loss[-1]:.6g}"
    if result is Result.STOPPED:
        return (
            f"stopped after {end} of {steps} {optimizer} steps (t = {t:g}): the loss fell "
            f"below {stop_below:g} x its initial value ({change})"
        )
    return f"completed {end} {optimizer} steps with lr {lr:g} (t = {t:g}): {change}"
