"""The staircase of a measured loss curve (docs/theory/staircases.md#measured-staircase).

A **plateau** is a stretch of the curve where the loss is flat on the run's own scale: its
rate ``|dR/dt|`` stays below ``flat·(R₀ − R_min)/T`` (``T`` the run's length) for at least
``min_length·T``. Neighbouring plateaus whose levels (their median losses) differ by less
than ``min_drop·(R₀ − R_min)`` are one. A **stage** is the drop from one plateau to the next:
its time is the first time after the first plateau's end at which the loss crosses the
midpoint of the two levels — the rule the predicted stages follow.
"""

from __future__ import annotations

import numpy as np

from .result import Stage

FLAT = 0.5
"""A plateau's rate bound, in units of the whole drop per run length."""
MIN_LENGTH = 0.01
"""A plateau lasts at least this fraction of the run."""
MIN_DROP = 0.02
"""Consecutive plateau levels differ by at least this fraction of the whole drop."""


def plateaus(t, loss, *, flat=FLAT, min_length=MIN_LENGTH, min_drop=MIN_DROP) -> list[dict]:
    """The plateaus of ``loss(t)`` in time order: ``start``, ``end`` (times) and ``level``."""
    t = np.asarray(t, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(loss)
    t, loss = t[keep], loss[keep]
    if len(t) < 3:
        return []
    span = float(loss[0] - np.min(loss))
    length = float(t[-1] - t[0])
    if span <= 0 or length <= 0:
        return []
    rate = np.abs(np.gradient(loss, t))
    slow = rate <= flat * span / length
    found: list[dict] = []
    start = None
    for i, is_slow in enumerate([*slow, False]):
        if is_slow and start is None:
            start = i
        elif not is_slow and start is not None:
            if t[i - 1] - t[start] >= min_length * length:
                found.append(
                    {
                        "start": float(t[start]),
                        "end": float(t[i - 1]),
                        "level": float(np.median(loss[start:i])),
                        "first": start,
                        "last": i - 1,
                    }
                )
            start = None
    merged: list[dict] = []
    for p in found:
        if merged and abs(merged[-1]["level"] - p["level"]) < min_drop * span:
            q = merged[-1]
            q.update(end=p["end"], last=p["last"])
            q["level"] = float(np.median(loss[q["first"] : q["last"] + 1]))
        else:
            merged.append(dict(p))
    return [{k: p[k] for k in ("start", "end", "level")} for p in merged]


def measured_stages(t, loss, **options) -> list[Stage]:
    """The drops between consecutive :func:`plateaus` of ``loss(t)``, each at its midpoint
    crossing (module doc); ``learned`` is empty (a curve does not say what was learned)."""
    t = np.asarray(t, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    found = plateaus(t, loss, **options)
    stages = []
    for before, after in zip(found[:-1], found[1:], strict=True):
        if after["level"] >= before["level"]:
            continue
        middle = 0.5 * (before["level"] + after["level"])
        window = (t >= before["end"]) & (t <= after["start"])
        idx = np.flatnonzero(window & (loss <= middle))
        if idx.size == 0:
            continue
        i = int(idx[0])
        crossing = float(t[i])
        if i > 0 and loss[i - 1] > middle:  # linear interpolation between the two samples
            w = (loss[i - 1] - middle) / (loss[i - 1] - loss[i])
            crossing = float(t[i - 1] + w * (t[i] - t[i - 1]))
        stages.append(
            Stage(
                t=crossing,
                loss_before=before["level"],
                loss_after=after["level"],
                learned=[],
                extra={"plateau_end": before["end"], "next_plateau_start": after["start"]},
            )
        )
    return stages
