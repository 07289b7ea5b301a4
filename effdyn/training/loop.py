"""Training the real network: full-batch gradient descent or Adam, compiled in chunks.

Gradient descent with step ``lr`` on ``R(θ) = (1/2n) Σ_i |f(x_i) − y_i|²``
(docs/theory/conventions.md),

    θ_{k+1} = θ_k − lr ∇R(θ_k),

is compared with gradient flow at ``t_k = k·lr``; ``"adam"`` is ``optax.adam(lr)`` with optax's
defaults (β1 = 0.9, β2 = 0.999, ε = 1e-8, bias correction).

How it runs: one jitted function advances a fixed number of steps (``chunk``) with
``jax.lax.scan``; each step is one fused computation (loss and gradient by ``jax.value_and_grad``,
optimizer update) and records the loss ``R(θ_k)`` *before* its update. The function is traced
once per run (per network, optimizer, chunk length and shapes — later runs of the same kind
reuse it): the last, partial chunk runs through the same function, its steps past the end
leaving θ unchanged. Each step is branch-free straight-line code. Parameters are kept only at
log-spaced snapshot steps, written inside the scan into a preallocated buffer that is carried
(and donated) from chunk to chunk. Between chunks Python only looks at the chunk's losses:
to stop after a non-finite loss, to stop early once the loss has dropped (``stop_below``), and
to update the progress bar.

A non-finite loss is a result, not an exception (docs/results.md): the step
that produced it does not update ``θ``, the run ends after that chunk, and the arrays end at
that step with ``result = "nonfinite"`` and a message naming the likely cause.

Example::

    >>> from effdyn.problem import problem_from_dict
    >>> p = problem_from_dict({"model": {"depth": 2, "width": 10, "activation": "tanh"},
    ...                        "data": {"dataset": "zhou2022-fig5"},
    ...                        "init": {"scale": 0.1}, "train": {"lr": 0.1, "steps": 100}})
    >>> run = train(p)
    >>> run.result, float(run.t[-1]), run.loss.shape
    ('completed', 10.0, (101,))
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from .._jax import enable_x64
from ..errors import EffdynError
from ..problem import OPTIMIZERS, Problem, initial_params
from .network import loss_function, network, network_inputs

enable_x64()

RESULTS = ("completed", "stopped", "nonfinite")

_TRACES = [0]
"""How many times a chunk function has been traced (compiled) in this process — for tests."""


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
        result: ``"completed"``, ``"stopped"`` (``stop_below`` reached before the last step)
            or ``"nonfinite"`` (the loss became NaN/inf at step ``K``).
        message: one line saying what happened (for ``"nonfinite"``: where and why).
        optimizer: ``"gd"`` or ``"adam"``.
        lr: the step size.
        steps_requested: the number of steps asked for.
    """

    t: np.ndarray
    loss: np.ndarray
    max_preactivation: np.ndarray
    params: tuple[np.ndarray, ...]
    snapshot_steps: np.ndarray
    snapshots: tuple[np.ndarray, ...]
    result: str
    message: str
    optimizer: str
    lr: float
    steps_requested: int

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
            f"TrainRun(result={self.result!r}, steps={self.steps}/{self.steps_requested}, "
            f"optimizer={self.optimizer!r}, lr={self.lr:g}, final_loss={self.loss[-1]:.6g}, "
            f"snapshots={len(self.snapshot_steps)})"
        )


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
) -> TrainRun:
    """Train the problem's real network from :func:`~effdyn.problem.initial_params`.

    Full-batch: every step uses all ``n`` samples. Deterministic: the same problem and
    options give bit-identical arrays on the same machine (the only randomness is the
    seeded initialization).

    Args:
        problem: a fully connected or two-layer CNN problem.
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

    Returns:
        A :class:`TrainRun`; a non-finite loss gives ``result = "nonfinite"``, not an error.

    Raises:
        EffdynError: a bad argument (one line).
    """
    steps = problem.train.steps if steps is None else steps
    lr = problem.train.lr if lr is None else lr
    optimizer = problem.train.optimizer if optimizer is None else optimizer
    _check_arguments(steps, lr, optimizer, n_snapshots, chunk, stop_below)
    steps, lr, chunk = int(steps), float(lr), min(int(chunk), int(steps))

    params0 = initial_params(problem)
    xt = jnp.asarray(network_inputs(problem))  # x̃, or a CNN's patches P(x̃_i)
    y = jnp.asarray(problem.data.y)
    activations = problem.model.activations

    planned = snapshot_schedule(steps, n_snapshots)
    # steps < K are recorded inside the scan; K itself is the final θ. Padding with -1 (never
    # hit) keeps the buffer's shape a function of n_snapshots alone.
    inside = planned[planned < steps]
    inside = np.concatenate([inside, np.full(n_snapshots - len(inside), -1)]).astype(np.int64)
    buffers = tuple(jnp.zeros((n_snapshots + 1, *w.shape)) for w in params0)  # +1: spare row
    start_params = tuple(jnp.array(w) for w in params0)  # copies: the carry is donated
    opt_state = _optimizer(optimizer, lr).init(start_params)
    carry = (start_params, opt_state, jnp.int64(0), buffers)
    args = (xt, y, jnp.float64(lr))

    pieces: list[np.ndarray] = []
    pre_pieces: list[np.ndarray] = []
    end, result = steps, "completed"
    with _progress(progress, optimizer, steps) as bar:
        run_chunk = _chunk_function(activations, optimizer, chunk)
        for start in range(0, steps, chunk):
            carry, (losses, pre) = run_chunk(
                carry, *args, jnp.int64(start), jnp.int64(steps), jnp.asarray(inside)
            )
            losses = np.asarray(losses)[: min(chunk, steps - start)]
            pieces.append(losses)
            # each step left a few partial maxima (see _partial_max): finish the max here
            pre_pieces.append(np.max(np.asarray(pre)[: len(losses)], axis=1))
            bar(len(losses), losses[-1])
            bad = ~np.isfinite(losses)
            if bad.any():
                end, result = start + int(np.argmax(bad)), "nonfinite"
                break
            if stop_below is not None and np.any(losses < stop_below * pieces[0][0]):
                if start + len(losses) < steps:
                    end, result = start + len(losses), "stopped"
                break

    params, _, n_recorded, buffers = carry
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
    if result == "nonfinite":
        loss, pre = loss[: end + 1], pre[: end + 1]
    else:
        final = _loss_function(problem.model.activations)(params, xt, y)
        loss = np.append(loss[:end], float(final))
        pre = np.append(pre[:end], float(np.max(np.abs(np.asarray(xt) @ params[0].T))))
    message = _message(result, loss, end, steps, optimizer, lr, stop_below, params0)
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


@functools.lru_cache(maxsize=64)
def _chunk_function(activations: tuple[str, ...], optimizer: str, chunk: int):
    """The jitted ``chunk``-step advance for one network and optimizer (cached across runs).

    A step is straight-line code, no branch: the loss and gradient, the optimizer update, the
    largest pre-activation and the snapshot write. Steps past ``stop`` (the last, partial
    chunk) and a non-finite loss keep ``θ_k`` by a select, not a conditional: every later step
    of the chunk then sees the same θ (the wasted arithmetic of a partial chunk happens once
    per run; a branch in every step costs more).
    """
    value_and_grad = jax.value_and_grad(loss_function(network(list(activations))))

    def run_chunk(carry, xt, y, lr, start, stop, snap_steps):
        _TRACES[0] += 1  # Python side effect: runs once per trace, never per step
        opt = _optimizer(optimizer, lr)
        spare = snap_steps.shape[0]  # index of the buffer's spare row

        def step(state, j):
            params, opt_state, slot, buffers = state
            k = start + j
            loss, grads = value_and_grad(params, xt, y)
            # The largest first-layer pre-activation |w_k·x̃_i|
            # (docs/theory/measuring.md#initial-stage): the
            # leading-order expansion of σ holds while it is small.
            pre = _partial_max(jnp.abs(xt @ params[0].T))
            # Snapshot θ_k if k is the next scheduled step: every step writes θ_k into the
            # buffer, into the spare row unless scheduled (cheaper than a conditional copy).
            hit = k == snap_steps[jnp.minimum(slot, spare - 1)]
            row = jnp.where(hit, slot, spare)
            buffers = tuple(
                lax.dynamic_update_index_in_dim(b, w, row, axis=0)
                for b, w in zip(buffers, params, strict=True)
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
            return (params, opt_state, slot + hit, buffers), (loss, pre)

        return lax.scan(step, carry, jnp.arange(chunk))

    return jax.jit(run_chunk, donate_argnums=0)


def _partial_max(a: jax.Array) -> jax.Array:
    """Maxima of ``a`` over ``lanes`` interleaved slices (``lanes`` = 8, 4, 2 or 1, the largest
    that divides ``a.size``): their max is ``max(a)``. XLA's CPU reduction of a whole array to
    one scalar runs as a serial chain (plus a separate tiny reduction); reducing to a short
    vector vectorizes across the lanes and saves ~8% of a GD step (Fig. 2 setting). The
    caller takes the last max outside the compiled loop."""
    lanes = next(w for w in (8, 4, 2, 1) if a.size % w == 0)
    return jnp.max(a.reshape(-1, lanes), axis=0)


@functools.lru_cache(maxsize=64)
def _loss_function(activations: tuple[str, ...]):
    return jax.jit(loss_function(network(list(activations))))


# ---------------------------------------------------------------------------------------------
# Arguments, messages, progress


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
    if result == "nonfinite":
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
    if result == "stopped":
        return (
            f"stopped after {end} of {steps} {optimizer} steps (t = {t:g}): the loss fell "
            f"below {stop_below:g} x its initial value ({change})"
        )
    return f"completed {end} {optimizer} steps with lr {lr:g} (t = {t:g}): {change}"


class _NoBar:
    def __enter__(self):
        return lambda advance, loss: None

    def __exit__(self, *exc):
        return False


class _Bar:
    """A transient rich progress bar on stderr (stdout stays clean for ``--json``)."""

    def __init__(self, optimizer: str, steps: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=Console(stderr=True),
        )
        self.optimizer = optimizer
        self.task = self.progress.add_task(f"training ({optimizer})", total=steps)

    def __enter__(self):
        self.progress.__enter__()
        return self.advance

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def advance(self, advance: int, loss: float) -> None:
        description = f"training ({self.optimizer}), loss {loss:.4g}"
        self.progress.update(self.task, advance=advance, description=description)


def _progress(enabled: bool, optimizer: str, steps: int):
    return _Bar(optimizer, steps) if enabled else _NoBar()
