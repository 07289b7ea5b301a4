"""One prepared accelerator run: the four throughputs users wait for, against the bandwidth ceiling.

    .venv/bin/python benchmarks/gpu.py [--small] [--out FILE]

Runs on whatever JAX's default backend is (one GPU when there is one; ``--small`` is the CPU
test, seconds) and writes one JSON object to ``FILE`` (default ``gpu.json``) and stdout:

1. ``ensemble`` — blow-up trajectories per second of
   :func:`effdyn.dynamics.ensemble.solve_ensemble` at N = 10⁴ and 10⁵ (``--small``: 64): the
   depth-3 tanh network of width 20 on the ``zhou2022-fig2`` data (d = 5, bias), entries
   N(0, 10⁻⁶), rtol 1e-8, atol 1e-12, in chunks of up to 20 000 rows (target ≥ 10⁵/s).
2. ``gd`` — gradient-descent seed-steps per second for 1024 seeds (``--small``: 16) of the
   Zhou et al. 2022 (arXiv 2105.11686) Fig. 2 setting (``examples/fig2_tanh.toml``: two-layer
   tanh, width 50, scale 0.005), trained together by
   :func:`effdyn.phase.regimes.train_batch` (one vmapped ``lax.scan``), 20 000 steps
   (``--small``: 200) with the loss tolerance off (target ≥ 10⁷/s).
3. ``phase`` — phase-diagram points per second at width 4000 (``--small``: 100): the 25
   points of ``examples/phase_two_layer_map.toml``'s (γ, γ') grid, one batch, to 1e-2 of the
   initial loss or 100 000 steps (``--small``: 4 points, 500 steps).
4. ``three_layer`` — one three-layer ReLU point at width 10 000 (``--small``: 200) at
   γ₁ = γ₂ = 1 (the defaults otherwise), to the default tolerance or 60 000 steps
   (``--small``: 200) (target under a minute).

Each measure is timed after a warm-up call of the same shapes (compilation reported
apart), and reported with an estimate of its memory-bandwidth ceiling: the bytes a step
must move at least (float64 arrays read and written, counted below per measure) over the
device's bandwidth (``--bandwidth``, default 4.8e12 B/s, an H200's HBM3e). The estimates are
lower bounds on the traffic, so the ceilings are upper bounds on the rate.

The script imports neither zarr nor dask: it measures the compute, not the store.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

import jax  # noqa: E402
import numpy as np  # noqa: E402

from effdyn._jax import in_float64  # noqa: E402
from effdyn.data import load_dataset  # noqa: E402
from effdyn.dynamics.blowup import SolverOptions  # noqa: E402
from effdyn.dynamics.ensemble import solve_ensemble  # noqa: E402
from effdyn.dynamics.model import effective_model  # noqa: E402
from effdyn.phase.evaluate import evaluate_points  # noqa: E402
from effdyn.phase.regimes import train_batch  # noqa: E402
from effdyn.problem import initial_leaves, load_problem, problem_from_dict  # noqa: E402
from effdyn.results import Result  # noqa: E402
from effdyn.symbolic import derive  # noqa: E402

BYTES = 8  # float64
H200_BANDWIDTH = 4.8e12
TARGETS = {"trajectories_per_s": 1e5, "seed_steps_per_s": 1e7, "three_layer_point_s": 60.0}

FULL = {
    "ensemble_n": [10_000, 100_000],
    "ensemble_chunk": 20_000,
    "gd_seeds": 1024,
    "gd_steps": 20_000,
    "phase_width": 4000,
    "phase_points": 25,
    "phase_steps": 100_000,
    "three_width": 10_000,
    "three_steps": 60_000,
}
SMALL = {
    "ensemble_n": [64],
    "ensemble_chunk": 32,
    "gd_seeds": 16,
    "gd_steps": 200,
    "phase_width": 100,
    "phase_points": 4,
    "phase_steps": 500,
    "three_width": 200,
    "three_steps": 200,
}


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def ceiling(bytes_per_unit: float, bandwidth: float) -> float:
    """Units per second if moving ``bytes_per_unit`` were all a unit cost."""
    return bandwidth / bytes_per_unit


# --------------------------------------------------------------------------------------------
# 1. ensemble blow-up


def ensemble(cfg: dict, bandwidth: float) -> dict:
    x, y = load_dataset("zhou2022-fig2", 0)
    xt = np.c_[x, np.ones(x.shape[0])]
    m, d = 20, xt.shape[1]
    template = (np.zeros((m, d)), np.zeros((m, m)), np.zeros((1, m)))
    n_params = sum(w.size for w in template)
    model = effective_model(derive("tanh", 3), xt, y, template)
    opts = SolverOptions(rtol=1e-8, atol=1e-12)
    rng = np.random.default_rng(0)
    runs = []
    for n in cfg["ensemble_n"]:
        chunk = min(cfg["ensemble_chunk"], n)
        thetas = 1e-3 * rng.standard_normal((n, n_params))
        _, warm_s = timed(solve_ensemble, model, thetas[:chunk], opts, chunk_size=chunk)
        ens, seconds = timed(solve_ensemble, model, thetas, opts, chunk_size=chunk)
        steps = float(np.mean(ens.steps))
        # A DOP853 step: 12 stages, each reading the state and writing a stage (2 arrays of P
        # numbers), the field's evaluation reading the weights and writing its value (2 more),
        # and the error estimate and update reading all 12 stages once: ≥ (12·4 + 12)·P.
        per_traj = steps * (12 * 4 + 12) * n_params * BYTES
        rate = n / seconds
        runs.append(
            {
                "N": n,
                "chunk_size": chunk,
                "seconds": round(seconds, 4),
                "warmup_s": round(warm_s, 3),
                "trajectories_per_s": round(rate, 1),
                "mean_steps": round(steps, 1),
                "blowups": int(np.sum(ens.result == Result.BLOWUP)),
                "ceiling_trajectories_per_s": round(ceiling(per_traj, bandwidth), 1),
                "fraction_of_ceiling": round(rate / ceiling(per_traj, bandwidth), 4),
            }
        )
    return {
        "setting": "depth-3 tanh, width 20, d = 5 (+bias), ε = 1e-3, rtol 1e-8, atol 1e-12",
        "params": n_params,
        "runs": runs,
        "target_trajectories_per_s": TARGETS["trajectories_per_s"],
        "meets_target": all(r["trajectories_per_s"] >= TARGETS["trajectories_per_s"] for r in runs),
    }


# --------------------------------------------------------------------------------------------
# 2. GD seed-steps


def gd(cfg: dict, bandwidth: float) -> dict:
    problem = load_problem(ROOT / "examples" / "fig2_tanh.toml")
    seeds, steps = cfg["gd_seeds"], cfg["gd_steps"]
    shapes = problem.layer_shapes()
    # member s starts from the problem's own initialization with init.seed = s
    draws = [
        initial_leaves(dataclasses.replace(problem, init=dataclasses.replace(problem.init, seed=s)))
        for s in range(seeds)
    ]
    params0 = [np.stack(leaf) for leaf in zip(*draws, strict=True)]
    args = (
        tuple(problem.model.activations),
        tuple(params0),
        np.ones(seeds),
        np.full(seeds, 0.05),
        problem.inputs(),
        problem.data.y,
    )
    kwargs = {"tol": 0.0, "max_steps": steps, "chunk": min(steps, 1000)}
    _, warm_s = timed(train_batch, *args, **kwargs)
    run, seconds = timed(train_batch, *args, **kwargs)
    rate = seeds * steps / seconds
    n, m, dim = problem.n, problem.model.widths[0], problem.input_dim
    n_params = sum(int(np.prod(s)) for s in shapes)
    # A seed-step reads the weights, writes the gradient, reads both and writes the weights
    # (4P), and writes and reads the pre-activations and activations of the n samples (4nm).
    per = (4 * n_params + 4 * n * m) * BYTES
    return {
        "setting": f"Zhou et al. 2022 Fig. 2: two-layer tanh, width {m}, d+1 = {dim}, n = {n}",
        "seeds": seeds,
        "steps": steps,
        "seconds": round(seconds, 4),
        "warmup_s": round(warm_s, 3),
        "seed_steps_per_s": round(rate, 1),
        "finite": int(np.sum(np.isfinite(run.loss))),
        "ceiling_seed_steps_per_s": round(ceiling(per, bandwidth), 1),
        "fraction_of_ceiling": round(rate / ceiling(per, bandwidth), 4),
        "target_seed_steps_per_s": TARGETS["seed_steps_per_s"],
        "meets_target": bool(rate >= TARGETS["seed_steps_per_s"]),
    }


# --------------------------------------------------------------------------------------------
# 3. phase points at width 4000, 4. one three-layer point


def _fig5(depth: int):
    return problem_from_dict(
        {
            "model": {"depth": depth, "width": 10, "activation": "relu"},
            "data": {"dataset": "zhou2022-fig5"},
        }
    )


def phase(cfg: dict, bandwidth: float) -> dict:
    base, m = _fig5(2), cfg["phase_width"]
    grid = [(g, gp) for g in (0.5, 1.0, 1.5, 2.0, 2.5) for gp in (-0.5, 0.0, 0.5, 1.0, 1.5)]
    points = [
        {"gamma": g, "gamma_prime": gp, "width": m, "seed": 0}
        for g, gp in grid[: cfg["phase_points"]]
    ]
    options = {"tol": 1e-2, "max_steps": cfg["phase_steps"]}
    warm = {**options, "max_steps": min(1000, cfg["phase_steps"]), "tol": 0.0}
    _, warm_s = timed(evaluate_points, "two_layer", base, points, train_options=warm)
    out, seconds = timed(evaluate_points, "two_layer", base, points, train_options=options)
    steps = max(r["steps"] for r in out)
    n, dim = base.n, base.input_dim
    # Every member moves while any runs (masked update): per member-step 4 weight copies of
    # m·(D + 1) numbers and 4 n·m activations.
    per_step = len(points) * (4 * m * (dim + 1) + 4 * n * m) * BYTES
    step_rate = steps / seconds
    return {
        "setting": f"two-layer ReLU on zhou2022-fig5, width {m}, tol 1e-2",
        "points": len(points),
        "seconds": round(seconds, 3),
        "warmup_s": round(warm_s, 3),
        "points_per_s": round(len(points) / seconds, 4),
        "batch_steps": int(steps),
        "batch_steps_per_s": round(step_rate, 1),
        "ceiling_batch_steps_per_s": round(ceiling(per_step, bandwidth), 1),
        "fraction_of_ceiling": round(step_rate / ceiling(per_step, bandwidth), 6),
        "errors": sum(r["error"] is not None for r in out),
    }


def three_layer(cfg: dict, bandwidth: float) -> dict:
    base, m = _fig5(3), cfg["three_width"]
    point = {"gamma_1": 1.0, "gamma_2": 1.0, "width": m, "seed": 0}
    options = {"max_steps": cfg["three_steps"]}
    # warm-up: one chunk of the same shapes and chunk length (the compiled function is reused)
    warm = {"max_steps": min(1000, cfg["three_steps"]), "tol": 0.0}
    _, warm_s = timed(evaluate_points, "three_layer", base, [point], train_options=warm)
    (result,), seconds = timed(evaluate_points, "three_layer", base, [point], train_options=options)
    steps = max(int(result["steps"]), 1)
    # A step reads W2 (m²), writes its gradient, reads both and writes W2 again, and keeps the
    # initial W2: ≥ 4 m² numbers moved; the n·m activations are small beside them.
    per_step = 4 * m * m * BYTES
    step_rate = steps / seconds
    return {
        "setting": f"three-layer ReLU on zhou2022-fig5, width {m}, γ₁ = γ₂ = 1",
        "seconds": round(seconds, 3),
        "warmup_s": round(warm_s, 3),
        "steps": steps,
        "steps_per_s": round(step_rate, 2),
        "final_loss_ratio": result["final_loss_ratio"],
        "error": result["error"],
        "ceiling_steps_per_s": round(ceiling(per_step, bandwidth), 2),
        "fraction_of_ceiling": round(step_rate / ceiling(per_step, bandwidth), 4),
        "arrays_of_width_squared": 4,
        "target_s": TARGETS["three_layer_point_s"],
        "meets_target": bool(seconds < TARGETS["three_layer_point_s"]),
    }


@in_float64
def measure(cfg: dict, bandwidth: float) -> dict:
    out = {}
    for name, fn in (
        ("ensemble", ensemble),
        ("gd", gd),
        ("phase", phase),
        ("three_layer", three_layer),
    ):
        start = time.perf_counter()
        out[name] = fn(cfg, bandwidth)
        out[name]["wall_s"] = round(time.perf_counter() - start, 2)
        print(f"gpu.py: {name} done in {out[name]['wall_s']} s", file=sys.stderr, flush=True)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (the CPU test)")
    parser.add_argument("--out", default="gpu.json", help="the JSON file to write")
    parser.add_argument("--bandwidth", type=float, default=H200_BANDWIDTH, help="bytes/s")
    args = parser.parse_args(argv)
    cfg = SMALL if args.small else FULL
    start = time.perf_counter()
    report = {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "small": bool(args.small),
        "bandwidth_bytes_per_s": args.bandwidth,
        **measure(cfg, args.bandwidth),
    }
    report["total_s"] = round(time.perf_counter() - start, 2)
    text = json.dumps(report, indent=2)
    Path(args.out).write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
