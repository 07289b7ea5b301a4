"""Writing and reading a training run: ``DIR/train.npz`` and ``DIR/result.json``.

``train.npz`` holds the arrays (docs/commands.md#train): ``t``, ``loss``, the final
leaves by name (``W1 … WL``, or a user model's leaf names such as ``attn/W_Q``),
``leaf_names`` (their names in leaf order), ``snapshot_steps``,
``snapshot_t = snapshot_steps · lr`` and, per leaf, ``snapshots_<name>`` of shape
``(S, *leaf.shape)``. ``result.json`` holds the summary:
``result`` (the :class:`~effdyn.results.Result`'s JSON name: ``"completed"``, ``"stopped"``
or ``"nonfinite"``; read back with ``Result.from_name``), ``message``, ``optimizer``, ``lr``,
``steps`` (run), ``steps_requested``, ``initial_loss``, ``final_loss``, ``t_final`` and any
``extra`` keys. The JSON is
deterministic — sorted keys, plain floats, NaN and ±inf written as ``null`` — so two saves
of the same run are byte-identical.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EffdynError
from ..results import Result
from .loop import RESULTS, TrainRun

ARRAYS = "train.npz"
SUMMARY = "result.json"
_CORE_KEYS = (
    "result",
    "message",
    "optimizer",
    "lr",
    "steps",
    "steps_requested",
    "initial_loss",
    "final_loss",
    "t_final",
)


def save_run(
    run: TrainRun,
    out_dir: str | Path,
    extra: Mapping[str, Any] | None = None,
    names: Sequence[str] | None = None,
) -> Path:
    """Write ``out_dir/train.npz`` and ``out_dir/result.json`` (the folder is created).

    ``extra`` adds keys to ``result.json`` (e.g. the problem's source); it may not redefine
    the summary's own keys. ``names`` are the leaves' names (default ``W1 … WL``;
    :meth:`~effdyn.problem.Problem.leaf_names`). Returns the folder.
    """
    out = Path(out_dir)
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_CORE_KEYS))
    if clash:
        raise EffdynError(f"extra keys {', '.join(clash)} would overwrite the run's own keys")
    try:
        out.mkdir(parents=True, exist_ok=True)
        np.savez(out / ARRAYS, **_arrays(run, names))
        summary = {**summary_of(run), **extra}
        text = json.dumps(_plain(summary), sort_keys=True, indent=2, allow_nan=False)
        (out / SUMMARY).write_text(text + "\n", encoding="utf-8")
    except OSError as err:
        raise EffdynError(f"cannot write the run to {str(out)!r} ({err.strerror})") from None
    return out


def summary_of(run: TrainRun) -> dict[str, Any]:
    """The summary keys of ``result.json`` (without ``extra``)."""
    return {
        "result": run.result.label,
        "message": run.message,
        "optimizer": run.optimizer,
        "lr": float(run.lr),
        "steps": int(run.steps),
        "steps_requested": int(run.steps_requested),
        "initial_loss": float(run.loss[0]),
        "final_loss": float(run.loss[-1]),
        "t_final": float(run.t[-1]),
    }


def load_run(out_dir: str | Path) -> TrainRun:
    """Read a run written by :func:`save_run` (a missing or malformed file is an EffdynError)."""
    out = Path(out_dir)
    try:
        summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
        with np.load(out / ARRAYS, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError as err:
        raise EffdynError(f"no training run in {str(out)!r}: {err.filename} not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise EffdynError(f"cannot read the training run in {str(out)!r} ({err})") from None
    if "leaf_names" in arrays:
        names = [str(n) for n in arrays["leaf_names"]]
    else:  # written before leaf names were stored: W1 … WL
        depth = sum(1 for name in arrays if name.startswith("snapshots_W"))
        names = [f"W{l}" for l in range(1, depth + 1)]
    depth = len(names)
    required = ["t", "loss", "max_preactivation", "snapshot_steps", *names]
    required += [f"snapshots_{w}" for w in names]
    missing = [name for name in required if name not in arrays]
    if depth == 0 or missing:
        raise EffdynError(f"{str(out / ARRAYS)!r} is not a training run (missing {missing})")
    if summary.get("result") not in {code.label for code in RESULTS}:
        raise EffdynError(f"{str(out / SUMMARY)!r} is not a training run summary")
    return TrainRun(
        t=arrays["t"],
        loss=arrays["loss"],
        max_preactivation=arrays["max_preactivation"],
        params=tuple(arrays[w] for w in names),
        snapshot_steps=arrays["snapshot_steps"],
        snapshots=tuple(arrays[f"snapshots_{w}"] for w in names),
        result=Result.from_name(summary["result"]),
        message=summary["message"],
        optimizer=summary["optimizer"],
        lr=float(summary["lr"]),
        steps_requested=int(summary["steps_requested"]),
    )


def _arrays(run: TrainRun, names: Sequence[str] | None) -> dict[str, np.ndarray]:
    if names is None:
        names = [f"W{l}" for l in range(1, len(run.params) + 1)]
    names = [str(n) for n in names]
    if len(names) != len(run.params):
        raise EffdynError(f"{len(run.params)} leaves but {len(names)} names")
    arrays = {
        "t": run.t,
        "loss": run.loss,
        "max_preactivation": run.max_preactivation,
        "snapshot_steps": run.snapshot_steps,
        "snapshot_t": run.snapshot_t,
        "leaf_names": np.array(names),
    }
    for name, w, snaps in zip(names, run.params, run.snapshots, strict=True):
        arrays[name] = w
        arrays[f"snapshots_{name}"] = snaps
    return arrays


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars/arrays as Python values and non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
