"""Finite-time blow-up of a homogeneous field by rescaled time.

The method is in docs/theory/blowup.md#rescaled-time.

``θ' = F(θ)`` with ``F`` homogeneous of degree ``k``. Writing ``θ = r u`` (``|u| = 1``) and
``dτ = r^{k−1} dt``:

    du/dτ = F(u) − (u·F(u)) u,     d log r/dτ = u·F(u),     dt/dτ = exp(−(k−1) log r).

Nothing overflows: the solve runs in ``τ`` until ``log r`` has grown by ``log_growth/(k−1)``
(``r^{−(k−1)}`` has shrunk by ``e^{−log_growth}``), and the remaining time to blow-up is the
tail ``r^{−(k−1)} / ((k−1) u·F(u))``. One solve gives ``T*``, the blow-up direction ``u*``
(the predicted condensed state) and the growth rate ``u*·F(u*)``. For ``k = 1`` the same
system has ``τ = t``: ``u`` tends to the top eigenvector and ``u·F(u)`` to the top eigenvalue.

The predicted escape time is found on the way: the first time the leading-order loss
``R_q(θ(t))`` is ``(1 − escape_fraction)·R_q(θ₀)`` (an event with Newton root finding).

:func:`threshold_blowup_time` is the cross-check (docs/theory/blowup.md#threshold-estimator):
integrate in ``t`` until ``|θ| = R``; its error is ``O(R^{−(k−1)})``.

Every entry point computes in float64 inside JAX's scoped context (docs/precision.md);
results are :class:`~effdyn.results.Result` codes (docs/results.md).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._jax import in_float64, is_traced
from ..errors import EffdynError
from ..results import Result, check, describe
from . import aot
from .model import EffectiveModel


class SolverOptions(eqx.Module):
    """Numerical settings of the rescaled solve (defaults suit float64 and T* to ~1e-10)."""

    rtol: float = 1e-10
    atol: float = 1e-13
    max_steps: int = 20_000
    log_growth: float = 36.0
    direction_tol: float = 1e-10
    """… and the direction has settled: ``|du/dτ| ≤ max(direction_tol, 10·rtol)·|u·F(u)|``
    (a direction is never resolved below the solve's own tolerance: at rtol 1e-8 the
    residual drift of an exactly settling flow sits near 1e-8). A slowly converging
    direction (small spectral gap) is given until ``max_log_growth``."""
    max_log_growth: float = 300.0
    """Stop when ``(k−1)·Δlog r`` (``Δlog r`` for k = 1) reaches this: e^-36 ≈ 2e-16."""
    escape_fraction: float = 0.1
    horizon_factor: float = 1e8
    """The horizon is this many initial time scales ``|θ₀| / |F(θ₀)|`` (or ``horizon``)."""
    horizon: float | None = None


DEFAULT_OPTIONS = SolverOptions()


class Trajectory(eqx.Module):
    """Outcome of one solve; every field is an array, so a batch is a vmapped Trajectory."""

    t_star: jax.Array
    t_escape: jax.Array
    growth_rate: jax.Array
    direction: jax.Array
    log_r: jax.Array
    t_end: jax.Array
    result: jax.Array
    steps: jax.Array
    energy0: jax.Array
    field_norm0: jax.Array
    horizon: jax.Array


def _rescaled_field(model: EffectiveModel):
    k = model.field_degree

    def vf(tau, state, args):
        u, log_r, _ = state
        u = u / jnp.linalg.norm(u)
        f = model.field(u)
        g = jnp.dot(u, f)
        return f - g * u, g, jnp.exp(-(k - 1) * log_r)

    return vf


def settle_tolerance(opts: SolverOptions) -> float:
    """Relative drift ``|du/dτ| / |u·F(u)|`` below which the direction counts as settled."""
    return max(opts.direction_tol, 10.0 * opts.rtol)


def is_done(model: EffectiveModel, y, log_r0, opts: SolverOptions):
    """Grown by ``log_growth`` with the direction settled, or by ``max_log_growth``.

    Works on one state or on a stacked batch (leading axis) alike.
    """
    u, log_r, _ = y
    grown = max(model.field_degree - 1, 1) * (log_r - log_r0)
    u = u / jnp.linalg.norm(u, axis=-1, keepdims=True)
    f = jax.vmap(model.field)(u) if u.ndim == 2 else model.field(u)
    g = jnp.sum(u * f, axis=-1)
    drift = jnp.linalg.norm(f - g[..., None] * u, axis=-1)
    settled = drift <= settle_tolerance(opts) * jnp.abs(g)
    return ((grown >= opts.log_growth) & settled) | (grown >= opts.max_log_growth)


def _solve(model, state0, tau1, events, opts, root_finder=None):
    import diffrax  # imported here: a warm process runs the exported solve

    return diffrax.diffeqsolve(
        diffrax.ODETerm(_rescaled_field(model)),
        diffrax.Dopri8(),
        t0=0.0,
        t1=tau1,
        dt0=None,
        y0=state0,
        stepsize_controller=diffrax.PIDController(rtol=opts.rtol, atol=opts.atol),
        event=diffrax.Event(events, root_finder=root_finder),
        max_steps=opts.max_steps,
        throw=False,
    )


@in_float64
def solve_blowup_traced(
    model: EffectiveModel, theta0: jax.Array, opts: SolverOptions = DEFAULT_OPTIONS
) -> Trajectory:
    """The traced computation of :func:`solve_blowup`: the same :class:`Trajectory`, never
    raising, safe under ``jit`` and ``vmap`` (``eqx.filter_jit(solve_blowup_traced)``).

    Failures are result codes (:class:`~effdyn.results.Result`) in ``Trajectory.result``.
    diffrax's own outcome is read through its public ``diffrax.RESULTS`` operations
    (equality and ``RESULTS.where``) and mapped to effdyn's integer codes with
    ``jnp.select`` (docs/results.md).
    """
    import diffrax  # imported here: a warm process runs the exported solve
    import optimistix as optx

    k = model.field_degree
    norm0 = jnp.linalg.norm(theta0)
    finite0 = jnp.all(jnp.isfinite(theta0)) & (norm0 > 0)
    safe0 = jnp.where(finite0, theta0, jnp.ones_like(theta0))
    u0 = safe0 / jnp.linalg.norm(safe0)
    log_r0 = jnp.log(jnp.linalg.norm(safe0))
    f0 = model.field(safe0)
    fnorm0 = jnp.linalg.norm(f0)
    t_scale = jnp.linalg.norm(safe0) / jnp.maximum(fnorm0, 1e-300)
    horizon = opts.horizon if opts.horizon is not None else opts.horizon_factor * t_scale
    horizon = jnp.minimum(horizon, 1e300)
    # τ advances by r^{k−1} dt: bound τ by the horizon measured at the initial radius.
    tau1 = horizon * jnp.exp((k - 1) * log_r0)
    loss0 = model.loss(safe0)
    target = (1.0 - opts.escape_fraction) * loss0

    # diffrax calls event conditions with the keywords t, y, args.
    def grown(t, y, args, **kw):
        return is_done(model, y, log_r0, opts)

    def out_of_time(t, y, args, **kw):
        return y[2] >= horizon

    def nonfinite(t, y, args, **kw):
        return ~jnp.all(jnp.isfinite(y[0])) | ~jnp.isfinite(y[1])

    def loss_dropped(t, y, args, **kw):
        u, log_r, _ = y
        gap = model.loss(jnp.exp(log_r) * u / jnp.linalg.norm(u)) - target
        # Far along a blow-up the loss overflows; an infinite loss has not dropped.
        return jnp.where(jnp.isfinite(gap), gap, 1e300)

    state0 = (u0, log_r0, jnp.zeros(()))
    first = _solve(
        model,
        state0,
        tau1,
        (loss_dropped, grown, out_of_time, nonfinite),
        opts,
        root_finder=optx.Newton(rtol=1e-12, atol=1e-14),
    )
    escaped = first.event_mask[0]
    t_escape = jnp.where(escaped, first.ys[2][-1], jnp.nan)
    state1 = jax.tree.map(lambda a: a[-1], first.ys)
    second = _solve(model, state1, tau1 - first.ts[-1], (grown, out_of_time, nonfinite), opts)
    # If phase one already ended by growth/horizon/non-finite, phase two starts where it
    # stopped and ends at once; use phase one's reason in that case.
    done_first = first.event_mask[1] | first.event_mask[2] | first.event_mask[3]
    mask = jax.tree.map(
        lambda a, b: jnp.where(done_first, a, b),
        tuple(first.event_mask[1:]),
        tuple(second.event_mask),
    )
    sol_result = diffrax.RESULTS.where(done_first, first.result, second.result)
    u, log_r, t = jax.tree.map(lambda a: a[-1], second.ys)
    u = u / jnp.linalg.norm(u)
    g = jnp.dot(u, model.field(u))
    if k >= 2:
        t_star = t + jnp.exp(-(k - 1) * log_r) / ((k - 1) * g)
    else:
        t_star = jnp.nan
    code = jnp.select(
        [
            ~jnp.all(jnp.isfinite(theta0)),
            norm0 == 0,
            mask[2],
            mask[0],
            mask[1],
            sol_result == diffrax.RESULTS.max_steps_reached,
            # an event would have set a mask; anything but reaching t1 is a failure
            sol_result != diffrax.RESULTS.successful,
        ],
        [
            int(Result.NONFINITE),
            int(Result.NO_BLOWUP),
            int(Result.NONFINITE),
            int(Result.BLOWUP if k >= 2 else Result.ESCAPED),
            int(Result.NO_BLOWUP),
            int(Result.MAX_STEPS),
            int(Result.SOLVER_FAILED),
        ],
        default=int(Result.NO_BLOWUP),
    )
    ok = (code == int(Result.BLOWUP)) | (code == int(Result.ESCAPED))
    nan = jnp.nan
    return Trajectory(
        t_star=jnp.where(code == int(Result.BLOWUP), t_star, nan),
        t_escape=jnp.where(finite0, t_escape, nan),
        growth_rate=jnp.where(ok, g, nan),
        direction=jnp.where(ok, u, nan),
        log_r=log_r,
        t_end=t,
        result=code,
        steps=first.stats["num_steps"] + second.stats["num_steps"],
        energy0=model.energy(safe0),
        field_norm0=fnorm0,
        horizon=horizon,
    )


_solve_compiled = eqx.filter_jit(solve_blowup_traced)


def _as_dict(module: eqx.Module) -> dict:
    """A module's fields as a plain dict (an export's output must be a plain pytree)."""
    return {f.name: getattr(module, f.name) for f in dataclasses.fields(module)}


@in_float64
def solve_blowup(
    model: EffectiveModel,
    theta0: jax.Array,
    opts: SolverOptions = DEFAULT_OPTIONS,
    *,
    throw: bool = False,
) -> Trajectory:
    """Solve ``θ' = F(θ)`` from ``θ₀`` (flat) to blow-up (or growth, for k = 1).

    Returns a :class:`Trajectory`. Its ``result`` is an integer
    :class:`~effdyn.results.Result` code: an outcome (``BLOWUP``, ``ESCAPED``,
    ``NO_BLOWUP``) or a failure (``MAX_STEPS``, ``NONFINITE``, ``SOLVER_FAILED``).

    Called on concrete arrays, the solve is compiled (:func:`solve_blowup_traced` under
    ``eqx.filter_jit``, once per model layout, options and shape). Inside a caller's
    ``jit``/``vmap`` (``eqx.filter_jit(solve_blowup)``, ``jax.vmap`` over a batch of ``θ₀``)
    it is :func:`solve_blowup_traced` inlined. With ``throw=False`` (the default) failures
    are codes, never exceptions. With
    ``throw=True`` a failure raises :class:`~effdyn.errors.EffdynError` with its
    data-dependent message (:func:`~effdyn.results.describe`); an outcome never raises.
    The check reads the concrete code after the solve, so ``throw=True`` needs a call
    outside ``jit``/``vmap`` (docs/results.md).
    """
    traced = is_traced(model, theta0)
    if not traced:
        theta0 = jnp.asarray(theta0, dtype=jnp.float64)
        run = None
        if aot.enabled():  # a serialized export, traced once per shape and settings
            run = aot.compiled(
                "solve_blowup",
                lambda m, th: _as_dict(solve_blowup_traced(m, th, opts)),
                model,
                (theta0,),
                settings=opts,
                module=__name__,
            )
        if run is not None:
            traj = Trajectory(**run(model, theta0))
        else:
            traj = _solve_compiled(model, theta0, opts)
        check(traj.result, solve_message(model, traj) if throw else None, throw=throw)
        return traj
    if throw:
        raise EffdynError(
            "solve_blowup(..., throw=True) needs concrete results: call it outside "
            "jit/vmap (inside, use throw=False and read Trajectory.result)"
        )
    # Inside the caller's jit/vmap: the traced computation itself, inlined.
    return solve_blowup_traced(model, theta0, opts)


def solve_message(model: EffectiveModel, traj: Trajectory) -> str:
    """The one-line, data-dependent explanation of one (concrete) solve's result code."""
    return describe(
        int(traj.result),
        energy0=float(traj.energy0),
        field_norm0=float(traj.field_norm0),
        z_norm=float(np.linalg.norm(np.asarray(model.z))),
        horizon=float(traj.horizon),
    )


def _original_field(t, theta, args):
    model, _ = args
    return model.field(theta)


def _norm_reached(t, y, args, **kw):
    _, radius = args
    return jnp.linalg.norm(y) - radius


@in_float64
@eqx.filter_jit
def threshold_blowup_time(
    model: EffectiveModel,
    theta0: jax.Array,
    radius: float,
    rtol: float = 1e-10,
    atol: float = 1e-13,
    max_steps: int = 100_000,
) -> jax.Array:
    """Cross-check: the first ``t`` with ``|θ(t)| = radius`` in the original time.

    Underestimates ``T*`` by about ``radius^{−(k−1)} / ((k−1) u*·F(u*))``.
    """
    import diffrax  # imported here: a warm process runs the exported solve
    import optimistix as optx

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_original_field),
        diffrax.Dopri8(),
        t0=0.0,
        t1=jnp.inf,
        dt0=None,
        y0=theta0,
        args=(model, radius),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        event=diffrax.Event(_norm_reached, root_finder=optx.Newton(rtol=1e-12, atol=1e-14)),
        max_steps=max_steps,
        throw=False,
    )
    return jnp.where(sol.event_mask, sol.ts[-1], jnp.nan)


@in_float64
@eqx.filter_jit
def trajectory(
    model: EffectiveModel,
    theta0: jax.Array,
    ts: jax.Array,
    rtol: float = 1e-10,
    atol: float = 1e-13,
    max_steps: int = 100_000,
) -> jax.Array:
    """``θ(t)`` of the effective flow at the times ``ts`` (increasing, before ``T*``).

    Rows of the result are the flat states at ``ts``; rows after a failure are NaN. Use it to
    put the effective trajectory next to gradient descent at ``t = k·lr``.
    """
    import diffrax  # imported here: a warm process runs the exported solve

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_original_field),
        diffrax.Dopri8(),
        t0=0.0,
        t1=ts[-1],
        dt0=None,
        y0=theta0,
        args=(model, None),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=False,
    )
    return sol.ys
