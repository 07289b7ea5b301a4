"""Matplotlib figures. matplotlib is imported lazily, with the file-only Agg backend; every
function takes ``ax=None`` and returns the Axes it drew on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .symbolic.activation import Activation


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_leading_part(act: Activation, ax: Axes | None = None, half_width: float = 1.5) -> Axes:
    """``σ(s) − σ(0)`` next to its leading part ``c_p s^p`` (or ``c₊ s₊^k + c₋ s₋^k``).

    Near 0 the two curves touch to order ``p``: the picture of the multiplicity.
    """
    from .symbolic.activation import S
    from .symbolic.bridge import activation_function, sympy_to_jax

    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 2.6))
    s = np.linspace(-half_width, half_width, 401)
    sigma0 = float(act.sigma0)
    real = np.asarray(activation_function(act)(s)) - sigma0
    lead = np.asarray(sympy_to_jax(act.template(S), S)(s))
    ax.plot(s, real, color="C0", label="σ(s) − σ(0)")
    ax.plot(s, lead, color="C3", ls="--", label="leading part")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    span = max(float(np.max(np.abs(real))), 1e-12)
    ax.set_ylim(-1.2 * span, 1.2 * span)
    p = "—" if act.multiplicity is None else act.multiplicity
    ax.set_title(f"{act.source}  (p = {p})", fontsize=9)
    ax.set_xlabel("pre-activation s")
    ax.set_ylabel("σ(s) − σ(0)")
    return ax


def leading_parts_figure(acts: Sequence[Activation], path: str, columns: int = 4) -> None:
    """A grid of :func:`plot_leading_part` panels saved as a PNG."""
    plt = _pyplot()
    rows = -(-len(acts) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.7 * rows), squeeze=False)
    for ax, act in zip(axes.flat, acts, strict=False):
        plot_leading_part(act, ax=ax)
    for ax in list(axes.flat)[len(acts) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Activations against their leading part at 0 (THEORY.md §2)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
