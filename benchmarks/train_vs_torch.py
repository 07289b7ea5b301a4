"""Full-batch GD steps per second: effdyn's compiled training loop vs an idiomatic PyTorch loop.

The issue's target: in the Fig. 2 setting, effdyn ≥ 20× the GD steps per second of an
idiomatic PyTorch loop (CPU, one thread) when PyTorch is installed; and many seeds at once
(``jax.vmap``) on a GPU where one is lent.

The setting (``examples/fig2_tanh.toml``, docs/theory/conventions.md,
docs/theory/experiments.md#settings-from-the-papers): two-layer tanh network, width 50,
``zhou2022-fig2`` data (d = 5, n = 80, bias column LAST, so ``W1`` is 50 × 6 and ``W2`` 1 × 50),
every weight N(0, 0.005²) from :func:`effdyn.problem.initial_params` (init seed 0), loss
``R = (1/2n) Σ_i |f(x_i) − y_i|²`` written out in both (``torch.nn.MSELoss`` omits the ½),
full-batch gradient descent with lr 0.01, float64 in BOTH.

- effdyn: ``train(problem, steps=S, lr=0.01, optimizer="gd", n_snapshots=2)`` (default chunk
  1000). A first run of one chunk compiles; the compile time is that run minus the fastest of
  ``--repeats`` compiled runs of the same length. Then ``S`` steps, median of ``--repeats`` runs.
- PyTorch: ``nn.Module`` with two ``nn.Linear(bias=False)`` layers (the inputs already carry
  the ones column), ``torch.optim.SGD(lr=0.01)``, ``zero_grad`` / ``loss.backward()`` /
  ``step()``; the loss is recorded every step either with ``loss.item()`` (a float per step)
  or as a detached tensor stacked at the end ("without .item()"). ``torch.set_num_threads(1)``.
  Median of ``--repeats`` runs of ``--torch-steps`` steps.
- The timed runs are interleaved (effdyn, torch with ``.item()``, torch without, repeated), so a
  drifting load from other processes hits both sides alike; rates are given from the median
  wall time and, as a cross-check less sensitive to that load, from the median CPU time of this
  process.
- Agreement: after ``--check-steps`` steps the final weights and the loss curves of both.
- Many seeds: ``jax.jit(jax.vmap(lax.scan(GD step)))`` over ``K`` initializations
  (init seeds 0..K−1 through ``initial_params``, same data), built from
  :func:`effdyn.training.network` / :func:`effdyn.training.loss_function`, recording the loss
  at every step; seed-steps per second = K·S / time. On a GPU backend it also runs
  ``--gpu-seeds`` (default 4096) seeds. The same scan on seed 0 without vmap is a reference
  for what ``train()``'s per-step extras cost.

JAX is pinned to one CPU thread as well (``--jax-threads 1``, the default: XLA_FLAGS set before
JAX is imported); ``--jax-threads all`` leaves XLA's default. Prints one JSON object.

    .venv/bin/python benchmarks/train_vs_torch.py [--steps 20000] [--torch-steps 5000]
        [--repeats 3] [--check-steps 1000] [--seeds 64] [--seed-steps 2000]
        [--gpu-seeds 4096] [--gpu-seed-steps 2000] [--jax-threads 1|all]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

PROBLEM_FILE = ROOT / "examples" / "fig2_tanh.toml"
LR = 0.01
TARGET_SPEEDUP = 20.0
ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def timed(fn) -> tuple[float, float, object]:
    """One call of ``fn()``: (wall seconds, this process's CPU seconds, its output)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def median_time(fn, repeats: int) -> tuple[float, list[float], object]:
    """Median wall time of ``repeats`` calls of ``fn()`` (and all times, and the last output)."""
    times, out = [], None
    for _ in range(repeats):
        wall, _, out = timed(fn)
        times.append(wall)
    return statistics.median(times), times, out


def rate_report(steps: int, walls: list[float], cpus: list[float]) -> dict:
    """Steps per second from the median wall time (and from the median process CPU time)."""
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {
        "steps": steps,
        "median_s": round(wall, 4),
        "times_s": [round(t, 4) for t in walls],
        "steps_per_s": round(steps / wall, 1),
        "cpu_times_s": [round(t, 4) for t in cpus],
        "steps_per_cpu_s": round(steps / cpu, 1),
    }


def rel_diff(a, b) -> float:
    """``max |a − b| / max |b|`` (one number for a whole array)."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ---------------------------------------------------------------------------------------------
# PyTorch


def torch_loop(params0, xt, y):
    """The idiomatic PyTorch loop: ``run(n_steps, item) -> (model, loss curve)`` (one thread)."""
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(1)
    dtype = torch.float64

    class TwoLayer(nn.Module):
        """f(x̃) = W2 tanh(W1 x̃): the ones column is already in x̃, so no nn.Linear biases."""

        def __init__(self, w1: np.ndarray, w2: np.ndarray):
            super().__init__()
            self.hidden = nn.Linear(w1.shape[1], w1.shape[0], bias=False, dtype=dtype)
            self.out = nn.Linear(w2.shape[1], w2.shape[0], bias=False, dtype=dtype)
            with torch.no_grad():
                self.hidden.weight.copy_(torch.tensor(w1, dtype=dtype))
                self.out.weight.copy_(torch.tensor(w2, dtype=dtype))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.tanh(self.hidden(x)))

    x_t = torch.tensor(np.asarray(xt), dtype=dtype)  # copies (the arrays are read-only)
    y_t = torch.tensor(np.asarray(y), dtype=dtype)

    def run(n_steps: int, item: bool):
        model = TwoLayer(*params0)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        losses = []
        for _ in range(n_steps):
            opt.zero_grad()
            residual = model(x_t) - y_t
            loss = 0.5 * (residual * residual).sum(dim=-1).mean()  # (1/2n) Σ |f − y|²
            loss.backward()
            opt.step()
            losses.append(loss.item() if item else loss.detach())
        curve = np.asarray(losses) if item else torch.stack(losses).numpy()
        return model, curve

    info = {
        "loop": "nn.Module (2 x nn.Linear(bias=False), tanh), optim.SGD(lr=0.01), "
        "zero_grad/backward/step, loss 0.5*mean(sum((f-y)^2)) written out",
        "dtype": "float64",
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
    }
    return run, info


# ---------------------------------------------------------------------------------------------
# Many seeds (jax.vmap)


def many_seeds(problem, xt, y, n_seeds: int, steps: int, repeats: int, reference=None):
    """vmapped jitted lax.scan of GD over ``n_seeds`` initializations; seed-steps per second.

    ``n_seeds = 0`` runs the same scan on seed 0 alone, without ``vmap`` (a reference).
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    from effdyn.problem import initial_params
    from effdyn.training import loss_function, network

    value_and_grad = jax.value_and_grad(loss_function(network(problem)))

    def one_seed(params, xt, y):
        def step(params, _):
            loss, grads = value_and_grad(params, xt, y)
            return tuple(w - LR * g for w, g in zip(params, grads, strict=True)), loss

        return lax.scan(step, params, None, length=steps)

    unbatched = n_seeds == 0
    batched = jax.jit(one_seed if unbatched else jax.vmap(one_seed, in_axes=(0, None, None)))
    start = time.perf_counter()
    inits = [initial_params(problem.with_(init={"seed": s})) for s in range(max(n_seeds, 1))]
    params = tuple(jnp.asarray(np.stack(ws)) for ws in zip(*inits, strict=True))
    if unbatched:
        params = tuple(w[0] for w in params)
    init_s = time.perf_counter() - start
    xt, y = jnp.asarray(xt), jnp.asarray(y)

    def go():
        out = batched(params, xt, y)
        jax.block_until_ready(out)
        return out

    first_s, _, _ = timed(go)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu, (final, losses) = timed(go)
        walls.append(wall)
        cpus.append(cpu)
    med = statistics.median(walls)
    seed_steps = max(n_seeds, 1) * steps
    report = {
        "K": n_seeds if n_seeds else "1 (no vmap)",
        "steps": steps,
        "median_s": round(med, 4),
        "times_s": [round(t, 4) for t in walls],
        "compile_s": round(first_s - min(walls), 3),  # first call minus a compiled one
        "init_params_s": round(init_s, 3),
        "seed_steps_per_s": round(seed_steps / med, 1),
        "seed_steps_per_cpu_s": round(seed_steps / statistics.median(cpus), 1),
        "loss_recorded": "every step, (K, S) array",
        "all_finite": bool(np.all(np.isfinite(np.asarray(losses)))),
    }
    if reference is not None:  # seed 0 against effdyn.training.train over the same steps
        ref_params, ref_loss = reference
        report["seed0_vs_train_weights_max_rel"] = max(
            rel_diff(np.asarray(w)[0], r) for w, r in zip(final, ref_params, strict=True)
        )
        report["seed0_vs_train_loss_max_rel"] = rel_diff(np.asarray(losses)[0], ref_loss[:steps])
    return report


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="effdyn GD steps (timed)")
    parser.add_argument("--torch-steps", type=int, default=5_000, help="PyTorch steps (timed)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median)")
    parser.add_argument("--check-steps", type=int, default=1_000, help="agreement check steps")
    parser.add_argument("--seeds", type=int, default=64, help="vmapped seeds (CPU)")
    parser.add_argument("--seed-steps", type=int, default=2_000, help="steps per vmapped seed")
    parser.add_argument("--gpu-seeds", type=int, default=4096)
    parser.add_argument("--gpu-seed-steps", type=int, default=2_000)
    parser.add_argument("--jax-threads", choices=("1", "all"), default="1")
    args = parser.parse_args()
    if args.jax_threads == "1":  # before JAX is imported (effdyn imports it)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + ONE_THREAD_XLA).strip()
    load_at_start = [round(v, 2) for v in os.getloadavg()]

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)  # this script's own JAX arrays (many_seeds)
    from effdyn.data import load_dataset
    from effdyn.problem import initial_params, load_problem
    from effdyn.training import train

    problem = load_problem(PROBLEM_FILE).with_(train={"optimizer": "gd", "lr": LR})
    params0 = initial_params(problem)
    xt, y = problem.inputs(), problem.data.y
    x_ref, y_ref = load_dataset("zhou2022-fig2", 0)
    assert np.array_equal(xt[:, :-1], x_ref) and np.array_equal(y, y_ref.reshape(y.shape))
    assert np.all(xt[:, -1] == 1.0) and all(w.dtype == np.float64 for w in params0)

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None

    # --- compile / warm up -------------------------------------------------------------------
    def effdyn_run(steps: int):
        return train(problem, steps=steps, lr=LR, optimizer="gd", n_snapshots=2)

    chunk = 1000  # train()'s default chunk; compile with the same chunk length
    first_s, _, _ = timed(lambda: effdyn_run(chunk))
    _, chunk_times, _ = median_time(lambda: effdyn_run(chunk), args.repeats)
    chunk_s = min(chunk_times)  # the compile-time estimate subtracts the fastest compiled run
    if torch_version is not None:
        torch_run, torch_info = torch_loop(params0, xt, y)
        torch_run(50, True)  # warm-up (allocator, dispatch caches)

    # --- timed runs, interleaved (the machine's load drifts; each side sees the same) --------
    variants = {"effdyn": lambda: effdyn_run(args.steps)}
    if torch_version is not None:
        variants["with_item_per_step"] = lambda: torch_run(args.torch_steps, True)
        variants["without_item"] = lambda: torch_run(args.torch_steps, False)
    walls = {name: [] for name in variants}
    cpus = {name: [] for name in variants}
    loads = []
    for _ in range(args.repeats):
        loads.append(round(os.getloadavg()[0], 2))
        for name, fn in variants.items():
            wall, cpu, out = timed(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
            if name == "effdyn":
                eff = out

    effdyn_report = {
        "call": f"train(problem, steps={args.steps}, lr={LR}, optimizer='gd', n_snapshots=2)",
        "chunk": chunk,
        **rate_report(args.steps, walls["effdyn"], cpus["effdyn"]),
        "compile_s": round(first_s - chunk_s, 3),
        "first_chunk_run_s": round(first_s, 3),
        "compiled_chunk_run_s": round(chunk_s, 4),
        "result": eff.result.label,
        "initial_loss": float(eff.loss[0]),
        "final_loss": float(eff.loss[-1]),
        "dtype": "float64 (jax_enable_x64)",
        "per_step_extras": "records loss and max |pre-activation| every step, snapshot buffer",
    }
    effdyn_rate = effdyn_report["steps_per_s"]
    check = effdyn_run(args.check_steps)

    if torch_version is None:
        torch_report = {"skipped": "torch not installed"}
        comparison = {"skipped": "torch not installed", "target_speedup": TARGET_SPEEDUP}
        agreement = {"skipped": "torch not installed"}
    else:
        torch_report = {
            name: rate_report(args.torch_steps, walls[name], cpus[name])
            for name in ("with_item_per_step", "without_item")
        }
        torch_report.update(torch_info)
        comparison = {
            "target_speedup": TARGET_SPEEDUP,
            "note": "speedup from median wall times; speedup_cpu_time from median process CPU "
            "times (less sensitive to other processes on the cores)",
        }
        for name in ("with_item_per_step", "without_item"):
            ratio = effdyn_rate / torch_report[name]["steps_per_s"]
            ratio_cpu = effdyn_report["steps_per_cpu_s"] / torch_report[name]["steps_per_cpu_s"]
            comparison[name] = {
                "speedup": round(ratio, 2),
                "speedup_cpu_time": round(ratio_cpu, 2),
                "meets_target": bool(ratio >= TARGET_SPEEDUP),
            }
        model, curve = torch_run(args.check_steps, True)
        w1, w2 = model.hidden.weight.detach().numpy(), model.out.weight.detach().numpy()
        agreement = {
            "steps": args.check_steps,
            "W1_max_rel": rel_diff(w1, check.params[0]),
            "W2_max_rel": rel_diff(w2, check.params[1]),
            "loss_curve_max_rel": rel_diff(curve, check.loss[: args.check_steps]),
            "loss_at_check_steps_effdyn": float(check.loss[args.check_steps - 1]),
            "loss_at_check_steps_torch": float(curve[-1]),
            "tolerance": 1e-10,
        }
        agreement["within_tolerance"] = bool(
            max(agreement["W1_max_rel"], agreement["W2_max_rel"], agreement["loss_curve_max_rel"])
            <= 1e-10
        )

    # --- many seeds --------------------------------------------------------------------------
    seed_ref = effdyn_run(args.seed_steps)
    seeds_cpu = many_seeds(
        problem,
        xt,
        y,
        args.seeds,
        args.seed_steps,
        args.repeats,
        reference=(seed_ref.params, seed_ref.loss),
    )
    seeds_cpu["backend"] = jax.default_backend()
    # The same scan on one seed without vmap: what train()'s per-step extras (masking,
    # finiteness check, pre-activation, snapshot buffer) and per-chunk Python cost.
    bare = many_seeds(problem, xt, y, 0, args.seed_steps, args.repeats)
    seeds_cpu["bare_scan_one_seed_steps_per_s"] = bare["seed_steps_per_s"]
    seeds_cpu["vs_single_train_steps_per_s"] = round(seeds_cpu["seed_steps_per_s"] / effdyn_rate, 2)
    if jax.default_backend() == "gpu":
        seeds_gpu = many_seeds(problem, xt, y, args.gpu_seeds, args.gpu_seed_steps, args.repeats)
        seeds_gpu["device"] = str(jax.devices()[0])
    else:
        seeds_gpu = {
            "skipped": f"no GPU backend (jax backend {jax.default_backend()!r}); "
            f"K = {args.gpu_seeds} runs only when jax.default_backend() == 'gpu'"
        }

    report = {
        "benchmark": "train_vs_torch",
        "problem": {
            "file": "examples/fig2_tanh.toml (optimizer set to gd, lr 0.01)",
            "network": "two-layer tanh, width 50, bias column last",
            "data": "zhou2022-fig2 (d = 5, n = 80)",
            "shapes": ["x".join(map(str, w.shape)) for w in params0],
            "init": "initial_params(problem): N(0, 0.005^2), init seed 0",
            "loss": "R = (1/2n) sum_i |f(x_i) - y_i|^2 (with the 1/2; not MSELoss)",
            "optimizer": "full-batch GD, lr 0.01",
            "dtype": "float64 in both",
        },
        "effdyn": effdyn_report,
        "torch": torch_report,
        "speedup_effdyn_over_torch": comparison,
        "agreement": agreement,
        "many_seeds_cpu": seeds_cpu,
        "many_seeds_gpu": seeds_gpu,
        "threads": {
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
            "jax_threads": args.jax_threads,
            "torch_num_threads": torch_report.get("threads"),
            "torch_interop_threads": torch_report.get("interop_threads"),
            "cpus_usable": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
        },
        "versions": {
            "jax": jax.__version__,
            "jaxlib": getattr(__import__("jaxlib"), "__version__", None),
            "torch": torch_version or "torch not installed",
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "jax_backend": jax.default_backend(),
            "jax_devices": [str(dev) for dev in jax.devices()],
            "load_average_at_start": load_at_start,
            "load_average_1min_before_each_timed_round": loads,
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            "note": "loadavg = (1, 5, 15 min); other processes on the 2 cores skew timings",
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
