"""Blow-up times for many initial conditions: effdyn's chunked ensemble solver vs a scipy loop.

The problem (issue target: effdyn ≥ 50× faster per trajectory than a scipy loop on CPU, and
≥ 100 000 trajectories/s on one H100): N depth-3 tanh networks (W1 m × (d+1), W2 m × m,
W3 1 × m) on the built-in ``zhou2022-fig2`` data (d = 5), entries N(0, ε²) with ε = 1e-3.

- effdyn: :func:`effdyn.dynamics.ensemble.solve_ensemble` (rtol 1e-8, atol 1e-12). A warm-up
  call on one chunk (the same chunk shape, so the timed run compiles nothing) is timed
  separately; the compile time is the warm-up minus a second, compiled, run of that chunk.
- scipy: ``solve_ivp(method="DOP853", rtol=1e-8, atol=1e-12)``, one trajectory at a time, on
  the same rescaled-time system (docs/theory/blowup.md#rescaled-time), state ``(u, log r, t)``:
  ``du/dτ = F(u) − (u·F(u))u``, ``d log r/dτ = u·F(u)``, ``dt/dτ = exp(−(k−1) log r)``,
  terminal event at effdyn's stopping rule (grown by ``(k−1)(log r − log r₀) = 36`` with the
  direction settled, ``|du/dτ| ≤ max(1e-10, 10·rtol)·|u·F(u)|``, or by 300), then the tail
  ``exp(−(k−1) log r) / ((k−1) u·F(u))``; the field is written by hand in numpy
  (``a' = WVz, W' = a(Vz)ᵀ, V' = (Wᵀa)zᵀ``, c_1 = 1). To bound the run time the loop runs on
  a random subset (``--scipy-subset``) and its per-trajectory time is extrapolated to N.

Prints one JSON object.

    .venv/bin/python benchmarks/ensemble_vs_scipy.py [--n 2000] [--chunk-size 32]
        [--scipy-subset 200] [--width 20] [--gpu-n 100000] [--gpu-chunk-size 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from effdyn.data import load_dataset  # noqa: E402
from effdyn.dynamics.blowup import SolverOptions  # noqa: E402
from effdyn.dynamics.ensemble import solve_ensemble  # noqa: E402
from effdyn.dynamics.model import effective_model  # noqa: E402
from effdyn.dynamics.results import Result  # noqa: E402
from effdyn.symbolic import derive  # noqa: E402

RTOL, ATOL = 1e-8, 1e-12
LOG_GROWTH = 36.0
DIRECTION_TOL = 1e-10
SETTLE_TOL = max(DIRECTION_TOL, 10 * RTOL)  # effdyn.dynamics.blowup.settle_tolerance
MAX_LOG_GROWTH = 300.0
EPSILON = 1e-3
TARGET_SPEEDUP = 50.0
TARGET_GPU_RATE = 100_000.0


def make_field(z: np.ndarray, m: int):
    """Depth-3 tanh chain (c_1 = 1) on a flat vector (W1 m × D, W2 m × m, W3 1 × m)."""
    d = z.size
    n1, n2 = m * d, m * d + m * m

    def field(theta: np.ndarray) -> np.ndarray:
        v = theta[:n1].reshape(m, d)
        w = theta[n1:n2].reshape(m, m)
        a = theta[n2:]
        vz = v @ z
        return np.concatenate([np.outer(w.T @ a, z).ravel(), np.outer(a, vz).ravel(), w @ vz])

    return field


def scipy_blowup_time(field, theta0: np.ndarray, k: int = 2) -> tuple[float, int]:
    """T* by the rescaled-time system with scipy's DOP853; returns (T*, field evaluations)."""
    p = theta0.size
    log_r0 = np.log(np.linalg.norm(theta0))

    def rhs(tau, state):
        u = state[:p] / np.linalg.norm(state[:p])
        f = field(u)
        g = u @ f
        out = np.empty(p + 2)
        out[:p] = f - g * u
        out[p] = g
        out[p + 1] = np.exp(-(k - 1) * state[p])
        return out

    def stop(tau, state):
        # effdyn's stopping rule (SolverOptions.log_growth, direction_tol): grown by
        # LOG_GROWTH with the direction settled, |du/dτ| ≤ tol·|u·F(u)|; positive when both hold
        u = state[:p] / np.linalg.norm(state[:p])
        f = field(u)
        g = u @ f
        drift = np.linalg.norm(f - g * u)
        settled = np.log(SETTLE_TOL * abs(g) + 1e-300) - np.log(drift + 1e-300)
        return min((k - 1) * (state[p] - log_r0) - LOG_GROWTH, settled)

    def cap(tau, state):  # ... or grown by MAX_LOG_GROWTH, settled or not
        return (k - 1) * (state[p] - log_r0) - MAX_LOG_GROWTH

    for event in (stop, cap):
        event.terminal = True
        event.direction = 1.0
    state0 = np.concatenate([theta0 / np.exp(log_r0), [log_r0, 0.0]])
    sol = solve_ivp(
        rhs, (0.0, np.inf), state0, method="DOP853", rtol=RTOL, atol=ATOL, events=(stop, cap)
    )
    if sol.status != 1:
        return float("nan"), sol.nfev
    end = next(ys[0] for ys in sol.y_events if len(ys))
    u = end[:p] / np.linalg.norm(end[:p])
    g = u @ field(u)
    return float(end[p + 1] + np.exp(-(k - 1) * end[p]) / ((k - 1) * g)), sol.nfev


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="trajectories (CPU run)")
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--scipy-subset", type=int, default=200, help="trajectories for scipy")
    parser.add_argument("--width", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu-n", type=int, default=100_000, help="trajectories on a GPU")
    parser.add_argument("--gpu-chunk-size", type=int, default=20_000)
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)  # other processes skew the timings

    x, y = load_dataset("zhou2022-fig2", 0)
    n_data = x.shape[0]
    xt = np.c_[x, np.ones(n_data)]
    z = y[:, 0] @ xt / n_data
    m, d = args.width, xt.shape[1]
    template = (np.zeros((m, d)), np.zeros((m, m)), np.zeros((1, m)))
    n_params = sum(w.size for w in template)
    model = effective_model(derive("tanh", 3), xt, y, template)
    opts = SolverOptions(rtol=RTOL, atol=ATOL, log_growth=LOG_GROWTH, direction_tol=DIRECTION_TOL)
    rng = np.random.default_rng(args.seed)
    thetas = EPSILON * rng.standard_normal((args.n, n_params))

    # --- effdyn ------------------------------------------------------------------------------
    chunk = max(1, min(args.chunk_size, args.n))
    warm = thetas[:chunk]
    _, warmup_s = timed(solve_ensemble, model, warm, opts, chunk_size=chunk)
    _, chunk_s = timed(solve_ensemble, model, warm, opts, chunk_size=chunk)
    ens, effdyn_s = timed(solve_ensemble, model, thetas, opts, chunk_size=chunk)
    blowups = int(np.sum(ens.result == Result.BLOWUP))

    # --- scipy loop on a subset --------------------------------------------------------------
    subset = np.sort(rng.choice(args.n, size=min(args.scipy_subset, args.n), replace=False))
    field = make_field(z, m)
    # The hand-written field is effdyn's field (else the comparison means nothing).
    probe = thetas[subset[0]]
    field_err = float(
        np.max(np.abs(np.asarray(model.field(jax.numpy.asarray(probe))) - field(probe)))
        / np.max(np.abs(field(probe)))
    )
    t_scipy, nfev = np.empty(subset.size), np.empty(subset.size, dtype=int)
    start = time.perf_counter()
    for j, i in enumerate(subset):
        t_scipy[j], nfev[j] = scipy_blowup_time(field, thetas[i])
    scipy_subset_s = time.perf_counter() - start
    rel = np.abs(ens.t_star[subset] / t_scipy - 1)

    effdyn_per = effdyn_s / args.n
    scipy_per = scipy_subset_s / subset.size
    report = {
        "benchmark": "ensemble_vs_scipy",
        "problem": {
            "network": "depth 3, tanh (leading order: deep linear, c_1 = 1)",
            "data": "zhou2022-fig2 (d = 5, n = 80)",
            "shapes": ["x".join(map(str, w.shape)) for w in template],
            "parameters": n_params,
            "init": f"N(0, eps^2), eps = {EPSILON}, seed {args.seed}",
            "rtol": RTOL,
            "atol": ATOL,
            "log_growth": LOG_GROWTH,
        },
        "N": args.n,
        "chunk_size": chunk,
        "effdyn": {
            "total_s": round(effdyn_s, 4),
            "per_trajectory_s": effdyn_per,
            "trajectories_per_s": round(args.n / effdyn_s, 1),
            "warmup_one_chunk_s": round(warmup_s, 3),
            "compile_s": round(warmup_s - chunk_s, 3),
            "compiled_one_chunk_s": round(chunk_s, 4),
            "blowups": blowups,
            "accepted_steps_median": int(np.median(ens.steps)),
        },
        "scipy": {
            "method": "solve_ivp DOP853, one trajectory at a time, same rescaled system",
            "subset": int(subset.size),
            "subset_s": round(scipy_subset_s, 3),
            "per_trajectory_s": scipy_per,
            "total_s_extrapolated": round(scipy_per * args.n, 2),
            "note": f"scipy timed on {subset.size} random trajectories of {args.n}; "
            "total_s_extrapolated = per_trajectory_s * N",
            "field_evaluations_median": int(np.median(nfev)),
            "hand_field_vs_effdyn_max_rel": field_err,
        },
        "speedup": round(scipy_per / effdyn_per, 2),
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": bool(scipy_per / effdyn_per >= TARGET_SPEEDUP),
        "agreement": {
            "t_star_max_rel_diff": float(np.max(rel)),
            "t_star_median_rel_diff": float(np.median(rel)),
            "all_finite": bool(np.all(np.isfinite(rel))),
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else None,
            "jax_backend": jax.default_backend(),
            "jax_devices": [str(dev) for dev in jax.devices()],
            "jax": jax.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "load_average_1min_at_start": load_at_start,
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        },
    }

    # --- GPU throughput ----------------------------------------------------------------------
    if jax.default_backend() == "gpu":
        gpu_chunk = max(1, min(args.gpu_chunk_size, args.gpu_n))
        big = EPSILON * rng.standard_normal((args.gpu_n, n_params))
        _, gpu_warm_s = timed(solve_ensemble, model, big[:gpu_chunk], opts, chunk_size=gpu_chunk)
        gens, gpu_s = timed(solve_ensemble, model, big, opts, chunk_size=gpu_chunk)
        rate = args.gpu_n / gpu_s
        report["gpu"] = {
            "N": args.gpu_n,
            "chunk_size": gpu_chunk,
            "total_s": round(gpu_s, 3),
            "warmup_one_chunk_s": round(gpu_warm_s, 3),
            "trajectories_per_s": round(rate, 1),
            "target_trajectories_per_s": TARGET_GPU_RATE,
            "meets_target": bool(rate >= TARGET_GPU_RATE),
            "blowups": int(np.sum(gens.result == Result.BLOWUP)),
        }
    else:
        report["gpu"] = {
            "skipped": f"no GPU backend (jax backend {jax.default_backend()!r}); "
            f"--gpu-n {args.gpu_n} runs only when jax.default_backend() == 'gpu'",
            "target_trajectories_per_s": TARGET_GPU_RATE,
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
