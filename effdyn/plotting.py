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
    fig.suptitle("Activations against their leading part at 0 (docs/theory/multiplicity.md)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- Condensation in a trained network (docs/theory/measuring.md#condensation-metrics)
# -------------------------------------


def _title(what: str, setting: str) -> str:
    """``what`` over ``setting`` (the setting names the experiment: activation, ε, lr, …);
    two lines so that long settings are not cut at the figure's edge."""
    import textwrap

    return "\n".join([what, *textwrap.wrap(setting, 58)]) if setting else what


def _new_axes(ax, figsize):
    if ax is None:
        _, ax = _pyplot().subplots(figsize=figsize)
    return ax


def plot_cosine_heatmap(matrix, ax: Axes | None = None, title: str = "") -> Axes:
    """The papers' heatmap of ``cos(u_k, u_l)`` between neuron features.

    Pass the ordered matrix from :func:`effdyn.analysis.condensation.cosine_matrix`:
    condensed lines show as square blocks of +1 (one orientation) flanked by blocks of −1
    (the opposite orientation). Colours run from −1 (blue) to +1 (red), white at 0.

    Args:
        matrix: ``(N, N)`` cosine matrix (already ordered).
        ax: Axes to draw on (a new figure if None).
        title: the setting, appended to the title.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square (N, N); got shape {matrix.shape}")
    ax = _new_axes(ax, (4.4, 3.7))
    n = matrix.shape[0]
    im = ax.imshow(
        matrix,
        vmin=-1.0,
        vmax=1.0,
        cmap="RdBu_r",
        interpolation="nearest",
        extent=(-0.5, n - 0.5, n - 0.5, -0.5),
    )
    ax.figure.colorbar(im, ax=ax, label="cosine similarity", fraction=0.046, pad=0.04)
    ax.set_xlabel("neuron index (ordered)")
    ax.set_ylabel("neuron index (ordered)")
    ax.set_title(_title("cosine similarity of neurons", title), fontsize=9)
    return ax


def _pi_ticks(ax) -> None:
    ticks = np.pi * np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    ax.set_xticks(ticks, ["−π", "−π/2", "0", "π/2", "π"])
    ax.set_xlim(-np.pi - 0.1, np.pi + 0.1)


def plot_angle_norm(
    W1,
    predicted_directions=None,
    ax: Axes | None = None,
    title: str = "",
    *,
    lines: bool = False,
    logy: bool | None = None,
) -> Axes:
    """Each neuron of a 1-d-input network as (angle of ``(w, b)``, norm) — the papers' scatter.

    Condensed orientations are vertical stacks of points; grey dotted vertical lines mark the
    angles ``atan2(b*, w*)`` of the predicted orientations
    (docs/theory/effective-dynamics.md#two-layer: at most ``2p``).

    Args:
        W1: ``(N, 2)`` rows ``(w, b)``.
        predicted_directions: ``(P, 2)`` predicted directions, or None.
        ax: Axes to draw on (a new figure if None).
        title: the setting, appended to the title.
        lines: the predicted directions are lines: mark both ``u*`` and ``−u*``.
        logy: log-scale norms; by default when the norms span more than two decades.
    """
    from .analysis.condensation import neuron_angle_norm

    angles, norms = neuron_angle_norm(W1)
    ax = _new_axes(ax, (4.6, 3.2))
    if predicted_directions is not None and len(predicted_directions):
        pred = np.asarray(predicted_directions, dtype=float)
        if lines:
            pred = np.concatenate([pred, -pred])
        pangles, _ = neuron_angle_norm(pred)
        for i, a in enumerate(np.unique(np.round(pangles, 12))):
            ax.axvline(a, color="0.45", ls=":", lw=1.3, label="predicted" if i == 0 else None)
    ax.scatter(angles, norms, s=12, color="C0", alpha=0.75, lw=0, label="neurons")
    positive = norms[norms > 0]
    if logy is None:
        logy = positive.size > 0 and positive.max() > 100 * positive.min()
    if logy:
        ax.set_yscale("log")
    _pi_ticks(ax)
    ax.set_xlabel("angle of (w, b)   atan2(b, w)")
    ax.set_ylabel("norm |(w, b)|")
    ax.set_title(_title("neuron orientations", title), fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return ax


def plot_staircase(
    t,
    loss,
    drop_times,
    levels,
    ax: Axes | None = None,
    title: str = "",
) -> Axes:
    """Training loss against time with the predicted staircase: a dashed vertical line at
    each predicted drop time and a dotted horizontal line at each predicted plateau level
    (docs/theory/staircases.md). A drop time left as None is not drawn.

    Args:
        t: ``(S,)`` times (``step · lr``).
        loss: ``(S,)`` training losses.
        drop_times: the predicted drop times (same clock as ``t``).
        levels: the predicted plateau levels, first plateau first.
        ax: Axes to draw on (a new figure if None).
        title: the setting, appended to the title.
    """
    t = np.asarray(t, dtype=float).reshape(-1)
    loss = np.asarray(loss, dtype=float).reshape(-1)
    if t.shape != loss.shape:
        raise ValueError(f"t has {t.size} entries but loss has {loss.size}")
    ax = _new_axes(ax, (4.8, 3.2))
    ax.plot(t, loss, color="C0", lw=1.4, label="training loss")
    shown = False
    for value in drop_times:
        if value is not None and np.isfinite(value):
            ax.axvline(
                float(value),
                color="C3",
                ls="--",
                lw=1.1,
                label=None if shown else "predicted drops",
            )
            shown = True
    finite = loss[np.isfinite(loss)]
    logarithmic = bool(finite.size and np.all(finite > 0))
    if logarithmic:
        ax.set_yscale("log")
    drawn = [float(v) for v in levels if not logarithmic or v > 0]
    if logarithmic and drawn:  # the plateaus, not the final descent, fill the axes
        ax.set_ylim(0.3 * min(drawn), 2.0 * max(float(np.max(finite)), max(drawn)))
    for k, level in enumerate(drawn):
        ax.axhline(
            level, color="0.5", ls=":", lw=1.0, label="predicted plateaus" if k == 0 else None
        )
    ax.set_xlabel("t  (= step · lr)")
    ax.set_ylabel("training loss")
    ax.set_title(_title("loss staircase", title), fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return ax


def plot_loss(
    t,
    loss,
    t_escape_measured: float | None = None,
    t_escape_predicted: float | None = None,
    t_star: float | None = None,
    ax: Axes | None = None,
    title: str = "",
) -> Axes:
    """Training loss against time with the measured and predicted plateau exits.

    Vertical markers: the measured escape (:func:`~effdyn.analysis.condensation.escape_time`,
    solid), the leading-order ``t_escape`` (dashed) and the predicted blow-up time ``T*``
    (dash-dotted); a marker left as None is not drawn. The y axis is logarithmic when every
    finite loss is positive.

    Args:
        t: ``(S,)`` times (``step · lr`` for gradient descent).
        loss: ``(S,)`` training losses.
        ax: Axes to draw on (a new figure if None).
        title: the setting, appended to the title.
    """
    t = np.asarray(t, dtype=float).reshape(-1)
    loss = np.asarray(loss, dtype=float).reshape(-1)
    if t.shape != loss.shape:
        raise ValueError(f"t has {t.size} entries but loss has {loss.size}")
    ax = _new_axes(ax, (4.8, 3.2))
    ax.plot(t, loss, color="C0", lw=1.4, label="training loss")
    finite = loss[np.isfinite(loss)]
    if finite.size and np.all(finite > 0):
        ax.set_yscale("log")
    marks = [
        (t_escape_measured, "measured escape", "C3", "-"),
        (t_escape_predicted, "predicted t_escape", "C2", "--"),
        (t_star, "predicted T*", "C1", "-."),
    ]
    for value, label, color, ls in marks:
        if value is not None and np.isfinite(value):
            ax.axvline(float(value), color=color, ls=ls, lw=1.3, label=f"{label} = {value:.3g}")
    ax.set_xlabel("t  (= step · lr)")
    ax.set_ylabel("training loss")
    ax.set_title(_title("training loss", title), fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return ax


def plot_direction_alignment(
    units, predicted, ax: Axes | None = None, title: str = "", *, above: float = 0.99
) -> Axes:
    """Misalignment of each neuron with its nearest predicted direction, sorted.

    For neuron ``k`` (unit feature ``u_k``, pass the grown ones) the plot shows
    ``1 − a_k`` with ``a_k = max_j |cos(u_k, u*_j)|`` on a log scale, neurons sorted from
    best to worst aligned and coloured by their nearest ``u*_j``; the dashed line is
    ``a = above`` (0.99).

    Why ``1 − |cos|`` on a log axis rather than ``|cos|`` itself: on a linear axis every
    condensed neuron sits on the line 1.0 and 0.999 cannot be told from 0.99999, while the
    theory predicts how small the residual is (e.g. ``~ ε^{1 − s₂/s₁}`` for the two-layer
    CNN, docs/theory/cnn.md#misalignment); the log of the misalignment shows that scale directly. A
    per-neuron plot is also preferred to a learned-cluster × predicted heatmap because it
    does not depend on a clustering threshold.

    Args:
        units: ``(N, D)`` neuron features (normalized here; zero rows dropped).
        predicted: ``(P, D)`` predicted directions.
        ax: Axes to draw on (a new figure if None).
        title: the setting, appended to the title.
        above: alignment level drawn as the dashed line.
    """
    from .analysis.condensation import _rows, alignment_summary
    from .analysis.orientations import unit_rows

    u, keep = unit_rows(_rows(units, "units"))
    p, _ = unit_rows(_rows(predicted, "predicted"))
    u = u[keep]
    ax = _new_axes(ax, (4.8, 3.2))
    if len(u) and len(p):
        s = alignment_summary(u, p, above=above)  # also checks the dimensions agree
        cos = np.abs(u @ p.T)
        nearest = np.argmax(cos, axis=1)
        mis = np.clip(1.0 - cos.max(axis=1), 1e-16, None)  # exact alignment → floor
        order = np.argsort(mis, kind="stable")
        rank = np.arange(1, len(u) + 1)
        for j in np.unique(nearest):
            sel = nearest[order] == j
            ax.scatter(
                rank[sel], mis[order][sel], s=14, color=f"C{j % 10}", label=f"nearest u*_{j}"
            )
        # Head-room above the dashed line for the summary text (log scale).
        lo, hi = mis.min(), max(1.0 - above, mis.max())
        span = max(np.log10(hi / lo), 1.0)
        ax.set_ylim(lo / 10 ** (0.08 * span), hi * 10 ** (0.4 * span))
        ax.text(
            0.02,
            0.97,
            f"n = {s['n']}, median |cos| = {s['median_abs_cos']:.6f}\n"
            f"min |cos| = {s['min_abs_cos']:.6f}, {100 * s['fraction_above']:.0f}% ≥ {above}",
            transform=ax.transAxes,
            va="top",
            fontsize=7,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
        )
    ax.axhline(1.0 - above, color="k", ls="--", lw=1.0, label=f"|cos| = {above}")
    ax.set_yscale("log")
    ax.set_xlabel("neuron (sorted by alignment)")
    ax.set_ylabel("1 − max_j |cos(u_k, u*_j)|")
    ax.set_title(_title("alignment with predicted directions", title), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def plot_kernels(
    W1,
    u1,
    kernel_shape: tuple[int, int, int],
    ax: Axes | None = None,
    title: str = "",
    *,
    columns: int = 8,
) -> Axes:
    """Learned CNN kernels drawn as images beside the predicted direction ``u₁``
    (docs/theory/cnn.md#effective-dynamics).

    Tile 0 (left, framed) is ``u₁``; the grid to its right holds every kernel ``W_β`` (row β of
    ``W1``), in channel order. The bias entry (if any: the last column beyond
    ``C_in·k·k``) is not drawn. A kernel is multiplied by ``sign(W_β·u₁)`` — ``+u₁`` and
    ``−u₁`` are one line, so a condensed kernel then looks exactly like ``u₁`` — and each
    tile is scaled to max ``|entry| = 1`` (shape, not size); the number under a tile is
    ``|cos(W_β, u₁)|`` over the full vector (bias included). A kernel with several input
    channels shows them side by side.

    Args:
        W1: ``(channels, C_in·k·k [+1])`` flattened kernels (``(C_in, kh, kw)`` row-major).
        u1: ``(C_in·k·k [+1],)`` the predicted kernel direction.
        kernel_shape: ``(C_in, kh, kw)``.
        ax: Axes to draw on (a new figure if None).
        title: the setting, appended to the title.
        columns: kernels per row of the grid.
    """
    c_in, kh, kw = (int(v) for v in kernel_shape)
    size = c_in * kh * kw
    W1 = np.asarray(W1, dtype=float)
    u1 = np.asarray(u1, dtype=float).reshape(-1)
    if W1.ndim != 2 or W1.shape[1] not in (size, size + 1) or u1.shape[0] != W1.shape[1]:
        raise ValueError(
            f"W1 {W1.shape} and u1 {u1.shape} must have C_in·k·k = {size} columns (+1 with bias)"
        )
    norms = np.linalg.norm(W1, axis=1) * np.linalg.norm(u1)
    dots = W1 @ u1
    cos = np.abs(dots) / np.where(norms > 0, norms, 1.0)
    signs = np.where(dots < 0, -1.0, 1.0)

    def tile(vector):
        planes = vector[:size].reshape(c_in, kh, kw)
        top = np.max(np.abs(planes))
        planes = planes / top if top > 0 else planes
        gap = np.full((kh, 1), np.nan)
        parts = [planes[0]]
        for plane in planes[1:]:
            parts += [gap, plane]
        return np.concatenate(parts, axis=1)

    th, tw = kh, c_in * kw + (c_in - 1)
    n = len(W1)
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    pad = 1  # blank pixels between tiles; room for the |cos| labels below each
    cell_h, cell_w = th + pad + 1, tw + pad
    left = tw + 2 * pad + 1  # u₁ column and a wider gap after it
    canvas = np.full((rows * cell_h, left + cols * cell_w), np.nan)
    canvas[:th, :tw] = tile(u1)
    spots = []
    for b in range(n):
        r, c = divmod(b, cols)
        y0, x0 = r * cell_h, left + c * cell_w
        canvas[y0 : y0 + th, x0 : x0 + tw] = tile(signs[b] * W1[b])
        spots.append((x0, y0))
    ax = _new_axes(ax, (1.2 + 0.55 * (left + cols * cell_w) / 2, 1.0 + 0.55 * rows * cell_h / 2))
    cmap = _pyplot().get_cmap("RdBu_r").with_extremes(bad="white")
    im = ax.imshow(canvas, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
    ax.add_patch(_pyplot().Rectangle((-0.5, -0.5), tw, th, fill=False, lw=1.5, edgecolor="k"))
    ax.text(tw / 2 - 0.5, th + 0.1, "u₁", ha="center", va="top", fontsize=8)
    for b, (x0, y0) in enumerate(spots):
        ax.text(
            x0 + tw / 2 - 0.5, y0 + th - 0.4, f"{cos[b]:.3f}", ha="center", va="top", fontsize=5
        )
    ax.figure.colorbar(im, ax=ax, label="entry / max |entry|", fraction=0.03, pad=0.02)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    what = "predicted u₁ (framed) and learned kernels, sign-aligned; |cos| with u₁ below"
    ax.set_title(_title(what, title), fontsize=9)
    return ax


def save_figure(ax_or_fig, path) -> str:
    """Save the figure holding ``ax_or_fig`` (an Axes, an array of Axes or a Figure) as a PNG
    at dpi 110, creating parent folders, and close it. Returns the path."""
    from pathlib import Path

    plt = _pyplot()
    obj = ax_or_fig
    if isinstance(obj, np.ndarray):
        obj = obj.flat[0]
    fig = obj if hasattr(obj, "savefig") else obj.figure
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return str(path)
