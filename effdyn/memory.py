"""Refusing a problem whose arrays cannot fit in memory, before anything is allocated.

A width of ``10**11`` is a valid integer and a plausible typo; left alone it ends, minutes
later, in an allocation failure deep inside NumPy or XLA. Every problem effdyn builds passes
through :func:`check_problem` (called by :func:`effdyn.problem.problem_from_dict`), and every
phase-diagram batch through :func:`check_arrays`, which compare a *lower bound* on the bytes
the run will hold with the memory available, and raise a one-line
:class:`~effdyn.errors.ProblemError` naming the size when it does not fit
(docs/precision.md#memory).

The bound (float64, 8 bytes a number) counts only what every command holds at once::

    bytes ≥ 8 · (COPIES · P + n · H)

with ``P`` the number of weights (all leaves), ``COPIES = 3`` (the weights, their gradient or
the field's value, and one more state of the same size: the initial weights, an optimizer
buffer or an ODE stage) and ``n · H`` one forward pass's hidden activations (``n`` samples,
``H`` the sum of the hidden widths). Real runs hold more, so a refused problem would certainly
have failed; one that passes may still be too large for a long run.

The memory available is, in order: ``EFFDYN_MEMORY_LIMIT`` (bytes, or a size such as
``64GiB``/``500MB``; ``off`` disables the check), else the kernel's ``MemAvailable``, else the
physical memory.

    >>> format_bytes(1.5 * 2**40)
    '1.50 TiB'
    >>> parse_size("64GiB") == 64 * 2**30
    True
"""

from __future__ import annotations

import math
import os
import re

from .errors import ProblemError

COPIES = 3
"""Arrays of the weights' size every run holds at once (weights, gradient, one state)."""

BYTES = 8
"""float64."""

ENV = "EFFDYN_MEMORY_LIMIT"

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str) -> float:
    """Bytes in ``"123"``, ``"64GiB"``, ``"500 MB"``, ``"1.5T"`` (``inf`` for ``"off"``).

    Raises:
        ProblemError: anything else (one line naming the variable).
    """
    raw = str(text).strip().lower()
    if raw in ("off", "none", "inf"):
        return math.inf
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]*)?(?:e[0-9]+)?)\s*([a-z]*)", raw)
    if match is None or match.group(2) not in _UNITS:
        raise ProblemError(
            f"{ENV} must be a number of bytes or a size such as 64GiB or 500MB (or off), "
            f"got {text!r}"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def available_bytes() -> float:
    """The memory a run may use: ``EFFDYN_MEMORY_LIMIT``, else ``MemAvailable``, else the
    physical memory, else ``inf`` (no check)."""
    override = os.environ.get(ENV)
    if override is not None and override.strip():
        return parse_size(override)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return math.inf


def format_bytes(nbytes: float) -> str:
    """``nbytes`` in binary units, three significant figures (``'1.50 TiB'``)."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_arrays(source: str, what: str, numbers: int) -> None:
    """Raise a one-line :class:`ProblemError` when ``numbers`` float64 values do not fit.

    Args:
        source: the problem file (or ``"<dict>"``), the message's first word.
        what: what must be held (the message's subject, plural), e.g. ``"4 copies of the
            weights of a width-100000 three-layer point"``.
        numbers: how many float64 values must be held at once.
    """
    needed = float(numbers) * BYTES
    limit = available_bytes()
    if needed > limit:
        raise ProblemError(
            f"{source}: {what} need at least {format_bytes(needed)} of memory, more than the "
            f"{format_bytes(limit)} available (lower the width or depth; {ENV} sets the limit)"
        )


def problem_numbers(problem) -> tuple[int, int]:
    """``(P, n·H)``: the problem's weights (all leaves) and one forward pass's hidden
    activations, computed from the shapes alone (nothing is allocated)."""
    weights = sum(math.prod(int(s) for s in shape) for shape in problem.leaf_shapes())
    hidden = sum(int(m) for m in problem.model.widths) if problem.model.kind == "fc" else 0
    return weights, problem.n * hidden


def check_problem(problem) -> None:
    """Refuse ``problem`` when ``8 · (COPIES · P + n · H)`` bytes exceed the memory available
    (module docstring)."""
    weights, activations = problem_numbers(problem)
    check_arrays(
        problem.source,
        f"the problem's {weights:.3g} weights ({COPIES} float64 copies) and "
        f"{activations:.3g} hidden activations",
        COPIES * weights + activations,
    )
