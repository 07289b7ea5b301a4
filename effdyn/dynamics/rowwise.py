"""A batch of independent ODEs, each with its own adaptive step: explicit RK 8(5,3).

The ensemble solver integrates ``B`` initial conditions of one autonomous system
``y' = f(y)`` stacked as a pytree of arrays with leading dimension ``B`` (``N`` numbers per
row in all; a tuple, not one concatenated array, so that no stage copies the state).

Every row keeps its own step size, error estimate and accept/reject decision, so a chunk
takes as many iterations as its slowest row needs alone. A shared step (one ODE for the
whole chunk, error norm = max over rows) makes every row as slow as the stiffest instant of
any row: about twice the steps on the benchmark problem.

Method: the Dormand–Prince 8(5,3) pair of Hairer, Nørsett & Wanner (*Solving ODEs I*,
§II.10), the method of ``scipy.integrate.solve_ivp(method="DOP853")``, whose coefficients
it reads from scipy (12 stages, plus ``f(y_{n+1})`` reused as the next first stage). The
error of a step of size ``h`` is estimated from the 5th- and 3rd-order embedded solutions
(``e₅``, ``e₃``, each scaled by ``atol + rtol·max(|y_n|, |y_{n+1}|)``):

    err = |h| · ‖e₅‖² / √( N (‖e₅‖² + 0.01 ‖e₃‖²) ),

and the step is accepted when ``err ≤ 1``; the next step is ``h·clip(0.9 err^{−1/8}, 0.2,
10)`` (no growth right after a rejection). The first step follows Hairer's starting-step
rule. Rows whose ``done`` test holds, or that leave the domain (``alive`` false), freeze.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate._ivp import dop853_coefficients as _dop

from .._jax import enable_x64
from ..results import Result

enable_x64()

_STAGES = _dop.N_STAGES  # 12
_A = np.asarray(_dop.A[:_STAGES, :_STAGES], dtype=np.float64)
_B = np.asarray(_dop.B, dtype=np.float64)
_E3 = np.asarray(_dop.E3, dtype=np.float64)  # over the 12 stages and f(y_{n+1})
_E5 = np.asarray(_dop.E5, dtype=np.float64)
_ORDER_ERR = 7  # the step-size exponent is −1/(7 + 1)
SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0

RUNNING, DONE, STOPPED, OUT_OF_STEPS, STEP_UNDERFLOW, NONFINITE = (int(Result.RUNNING), int(Result.CONVERGED), int(Result.STOPPED), int(Result.MAX_STEPS), int(Result.SOLVER_FAILED), int(Result.NONFINITE))  # noqa: E501
"""Row status: still integrating; ``done`` held; ``alive`` failed (horizon, non-finite);
``max_steps`` attempts used; the step size underflowed; it underflowed because every
proposal was non-finite (the field overflows or returns NaN there)."""


def _combine(coefs: np.ndarray, ks: list) -> object:
    """``Σ_j coefs[j] k_j`` over the non-zero coefficients (one fused pass per leaf)."""
    pairs = [(float(c), k) for c, k in zip(coefs, ks, strict=False) if c != 0.0]

    def leafwise(*leaves):
        out = pairs[0][0] * leaves[0]
        for (c, _), leaf in zip(pairs[1:], leaves[1:], strict=True):
            out = out + c * leaf
        return out

    return jax.tree.map(leafwise, *[k for _, k in pairs])


def _axpy(y, h: jax.Array, dy):
    """``y + h·dy`` with a per-row ``h``."""
    return jax.tree.map(lambda a, b: a + _rows(h, b) * b, y, dy)


def _rows(v: jax.Array, like: jax.Array) -> jax.Array:
    """Per-row scalars ``v`` (``(B,)``) shaped to broadcast against ``like``."""
    return v.reshape(v.shape + (1,) * (like.ndim - 1))


def _row_sum(tree) -> jax.Array:
    """``Σ`` over each row of every leaf: ``(B,)``."""
    leaves = jax.tree.leaves(tree)
    return sum(jnp.sum(a.reshape(a.shape[0], -1), axis=1) for a in leaves)


def _sq_norm(tree, scale) -> jax.Array:
    """``Σ (a/s)²`` over each row: ``(B,)``."""
    return _row_sum(jax.tree.map(lambda a, s: (a / s) ** 2, tree, scale))


def _rms(tree, scale) -> jax.Array:
    return jnp.sqrt(_sq_norm(tree, scale) / _row_size(tree))


def _row_size(tree) -> int:
    return sum(int(np.prod(a.shape[1:])) for a in jax.tree.leaves(tree))


def _where(mask: jax.Array, a, b):
    """Row-wise select between two pytrees."""
    return jax.tree.map(lambda x, y: jnp.where(_rows(mask, x), x, y), a, b)


def _all_finite(tree) -> jax.Array:
    return _row_sum(jax.tree.map(lambda a: ~jnp.isfinite(a), tree)) == 0


def integrate_rows(
    f: Callable,
    y0,
    *,
    done: Callable,
    alive: Callable,
    rtol: float,
    atol: float,
    max_steps: int,
) -> dict:
    """Integrate ``y' = f(y)`` row by row from ``y0`` until every row has stopped.

    ``y0`` is a pytree of arrays with leading dimension ``B``; ``f`` maps such a pytree to
    one of the same structure, row by row. ``done(y, f(y))`` and ``alive(y)`` return ``(B,)``
    booleans. Returns ``y``, ``f`` (at ``y``), ``tau`` (the time reached), ``status`` (see
    the row status constants), ``steps`` (accepted) and ``attempts`` per row. Rows with
    ``alive`` false at the start are frozen at once.
    """
    n = _row_size(y0)
    f0 = f(y0)
    scale0 = jax.tree.map(lambda a: atol + rtol * jnp.abs(a), y0)
    # Hairer's starting step: h₀ = 0.01 |y₀|/|f₀|, refined by a second-derivative estimate.
    d0, d1 = _rms(y0, scale0), _rms(f0, scale0)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.maximum(d1, 1e-300))
    f1 = f(_axpy(y0, h0, f0))
    d2 = _rms(jax.tree.map(jnp.subtract, f1, f0), scale0) / h0
    big = jnp.maximum(d1, d2)
    h1 = jnp.where(
        big <= 1e-15,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.maximum(big, 1e-300)) ** (1.0 / (_ORDER_ERR + 1)),
    )
    h_init = jnp.minimum(100 * h0, h1)

    rows = h_init.shape[0]
    alive0 = alive(y0)
    status0 = jnp.where(alive0, RUNNING, STOPPED)
    status0 = jnp.where(alive0 & done(y0, f0), DONE, status0)
    zeros = jnp.zeros(rows, dtype=jnp.int32)
    state0 = (y0, f0, jnp.zeros(rows), h_init, status0, zeros, zeros, jnp.zeros(rows, bool))

    def cond(state):
        return jnp.any(state[4] == RUNNING)

    def body(state):
        y, fy, tau, h, status, steps, attempts, rejected = state
        running = status == RUNNING
        ks = [fy]
        for i in range(1, _STAGES):  # unrolled: each stage combines only its non-zero a_ij
            ks.append(f(_axpy(y, h, _combine(_A[i, :i], ks))))
        y_new = _axpy(y, h, _combine(_B, ks))
        f_new = f(y_new)
        ks.append(f_new)
        scale = jax.tree.map(
            lambda a, b: atol + rtol * jnp.maximum(jnp.abs(a), jnp.abs(b)), y, y_new
        )
        e5 = _sq_norm(_combine(_E5, ks), scale)
        e3 = _sq_norm(_combine(_E3, ks), scale)
        denom = e5 + 0.01 * e3
        err = jnp.where(denom > 0, jnp.abs(h) * e5 / jnp.sqrt(jnp.maximum(denom, 1e-300) * n), 0)
        finite = _all_finite(y_new) & jnp.isfinite(err)
        accept = running & finite & (err <= 1.0)
        factor = jnp.where(
            err == 0, MAX_FACTOR, SAFETY * jnp.maximum(err, 1e-300) ** (-1.0 / (_ORDER_ERR + 1))
        )
        grow = jnp.clip(factor, MIN_FACTOR, jnp.where(rejected, 1.0, MAX_FACTOR))
        shrink = jnp.where(finite, jnp.clip(factor, MIN_FACTOR, 1.0), MIN_FACTOR)
        h_next = jnp.where(accept, h * grow, h * shrink)

        y = _where(accept, y_new, y)
        fy = _where(accept, f_new, fy)
        tau = jnp.where(accept, tau + h, tau)
        steps = steps + accept
        attempts = attempts + running
        ended = accept & done(y, fy)
        stopped = accept & ~alive(y)
        # (a NaN step size, from a field that is NaN from the start, counts as underflow)
        big_enough = h_next > 1e-14 * jnp.maximum(jnp.abs(tau), 1e-300)
        underflow = running & ~accept & ~big_enough
        status = jnp.select(
            [~running, ended, stopped, underflow & ~finite, underflow, attempts >= max_steps],
            [status, DONE, STOPPED, NONFINITE, STEP_UNDERFLOW, OUT_OF_STEPS],
            default=RUNNING,
        )
        h = jnp.where(running, h_next, h)
        rejected = jnp.where(running, ~accept, rejected)
        return y, fy, tau, h, status, steps, attempts, rejected

    y, fy, tau, _, status, steps, attempts, _ = jax.lax.while_loop(cond, body, state0)
    return dict(y=y, f=fy, tau=tau, status=status, steps=steps, attempts=attempts)
