"""The phase diagram figure: measured slopes over the plane, the paper's boundaries, named inits.

Each group (from :func:`effdyn.phase.slopes`) is one marker at its coordinates, coloured by
its slope ``S`` with a diverging colormap centred at 0 (blue: linear, ``S < 0``; red:
condensed, ``S > 0``), its value written next to it. Two-layer
(docs/theory/phase-diagrams.md#two-layer): one panel, ``γ'`` across and ``γ`` up, the
boundaries of Luo et al. 2021, arXiv 2007.07497 (``γ = 1`` for ``γ' ≤ 0``, ``γ' = γ − 1`` for
``γ' > 0``) drawn, the named initializations marked. Three-layer
(docs/theory/phase-diagrams.md#three-layer): one panel per layer over the plane of the two
exponents that vary (:func:`effdyn.phase.three_layer.plane_name`).
"""

from __future__ import annotations

import math

import numpy as np

from ..plotting import _pyplot, _title, save_figure
from .diagrams import diagram, rd_field
from .three_layer import plane_name
from .two_layer import EXPONENTS, NAMED_INITS

_GAMMA, _GAMMA_PRIME = EXPONENTS

_LABELS = {
    "gamma": "γ",
    "gamma_prime": "γ'",
    "gamma_1": "γ₁",
    "gamma_2": "γ₂",
    "gamma_3": "γ₃",
    "gamma_out": "γ_out",
}


def plot_phase_diagram(groups: list[dict], kind: str, path, title: str) -> str:
    """Draw the measured phase diagram of ``groups`` and save it as a PNG at ``path``.

    Args:
        groups: the output of :func:`effdyn.phase.slopes` for ``kind``.
        kind: ``"two_layer"`` or ``"three_layer"``.
        path: where to write the PNG (parent folders are created).
        title: the setting (data, activation, widths, seeds…), shown under the figure's title.

    Returns:
        The path written.
    """
    all_layers = diagram(kind).layers  # ValueError for an unknown kind
    plt = _pyplot()
    if kind == "two_layer":
        fig, ax = plt.subplots(figsize=(6.0, 5.0))
        if _is_grid(groups, _GAMMA_PRIME, _GAMMA):
            _heatmap(ax, groups, "W1", _GAMMA_PRIME, _GAMMA, "slope S of RD(W1)")
        else:
            _panel(ax, groups, "W1", _GAMMA_PRIME, _GAMMA, "slope S of RD(W1)")
        _two_layer_boundaries(ax, groups)
        ax.set_title(_title("two-layer phase diagram (Luo et al. 2021)", title), fontsize=9)
        return save_figure(fig, path)
    layers = [k for k in all_layers if any(k in g.get("slopes", {}) for g in groups)]
    layers = layers or list(all_layers[:2])
    x_key, y_key, fixed = plane_name(groups)
    fig, axes = plt.subplots(1, len(layers), figsize=(4.8 * len(layers), 4.4), squeeze=False)
    for ax, layer in zip(axes.flat, layers, strict=True):
        _panel(ax, groups, layer, x_key, y_key, f"slope S of RD({layer})")
        ax.set_title(f"layer {layer}", fontsize=9)
    others = ", ".join(f"{_LABELS[k]} = {v:g}" for k, v in fixed.items())
    plane = f"plane ({_LABELS[x_key]}, {_LABELS[y_key]}) at {others}"
    fig.suptitle(_title(f"three-layer phase diagram, {plane}", title), fontsize=9)
    return save_figure(fig, path)


def _panel(ax, groups, layer, x_key, y_key, label) -> None:
    import matplotlib.colors as mcolors

    xs = np.array([float(g.get(x_key, math.nan)) for g in groups])
    ys = np.array([float(g.get(y_key, math.nan)) for g in groups])
    ss = np.array([float(g.get("slopes", {}).get(layer, math.nan)) for g in groups])
    finite = np.isfinite(ss)
    # A colour scale of at least ±0.5, so that slopes of a few hundredths (critical, or
    # noise) stay near white instead of filling the scale.
    span = max(float(np.max(np.abs(ss[finite]))) if finite.any() else 0.0, 0.5)
    norm = mcolors.TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span)
    sc = ax.scatter(
        xs[finite], ys[finite], c=ss[finite], cmap="RdBu_r", norm=norm, s=90, edgecolors="k"
    )
    if (~finite).any():
        ax.scatter(xs[~finite], ys[~finite], marker="x", color="0.4", label="no slope")
    for x, y, s in zip(xs[finite], ys[finite], ss[finite], strict=True):
        ax.annotate(f"{s:+.2f}", (x, y), textcoords="offset points", xytext=(6, 6), fontsize=7)
    ax.figure.colorbar(sc, ax=ax, label=label)
    ax.margins(0.15)  # room for the value labels
    ax.set_xlabel(_LABELS.get(x_key, x_key))
    ax.set_ylabel(_LABELS.get(y_key, y_key))
    if (~finite).any():
        ax.legend(fontsize=7, loc="lower right")


def _is_grid(groups, x_key, y_key) -> bool:
    """Whether the groups are a full grid of at least 2 × 2 distinct ``(x, y)`` values."""
    pairs = {(float(g.get(x_key, math.nan)), float(g.get(y_key, math.nan))) for g in groups}
    xs, ys = {x for x, _ in pairs}, {y for _, y in pairs}
    return len(xs) >= 2 and len(ys) >= 2 and len(pairs) == len(xs) * len(ys) == len(groups)


def _edges(values) -> np.ndarray:
    """Cell edges around sorted centres: midpoints, and half a spacing beyond the ends."""
    v = np.array(sorted(values), dtype=float)
    mids = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[v[0] - (mids[0] - v[0])], mids, [v[-1] + (v[-1] - mids[-1])]])


def _heatmap(ax, groups, layer, x_key, y_key, label) -> None:
    """The grid's slopes as coloured cells (same colour scale as :func:`_panel`), each
    labelled with its value; a cell without a slope is grey and marked ×."""
    import matplotlib.colors as mcolors

    xs = sorted({float(g[x_key]) for g in groups})
    ys = sorted({float(g[y_key]) for g in groups})
    grid = np.full((len(ys), len(xs)), np.nan)
    for g in groups:
        value = float(g.get("slopes", {}).get(layer, math.nan))
        grid[ys.index(float(g[y_key])), xs.index(float(g[x_key]))] = value
    finite = np.isfinite(grid)
    span = max(float(np.max(np.abs(grid[finite]))) if finite.any() else 0.0, 0.5)
    norm = mcolors.TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span)
    ax.set_facecolor("0.85")
    mesh = ax.pcolormesh(
        _edges(xs),
        _edges(ys),
        np.ma.masked_invalid(grid),
        cmap="RdBu_r",
        norm=norm,
        edgecolors="0.6",
        linewidth=0.5,
    )
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            text = f"{grid[i, j]:+.2f}" if finite[i, j] else "×"
            ax.text(x, y, text, ha="center", va="center", fontsize=7)
    ax.figure.colorbar(mesh, ax=ax, label=label)
    ax.set_xlabel(_LABELS.get(x_key, x_key))
    ax.set_ylabel(_LABELS.get(y_key, y_key))


def _two_layer_boundaries(ax, groups) -> None:
    gps = [float(g.get(_GAMMA_PRIME, 0.0)) for g in groups] + [v[1] for v in NAMED_INITS.values()]
    gs = [float(g.get(_GAMMA, 1.0)) for g in groups] + [v[0] for v in NAMED_INITS.values()]
    lo, hi = min(gps + [-0.5]) - 0.25, max(gps + [1.0]) + 0.25
    ax.plot([lo, 0.0], [1.0, 1.0], color="k", lw=1.5, label="critical (theory)")
    ax.plot([0.0, hi], [1.0, hi + 1.0], color="k", lw=1.5)
    ax.set_xlim(lo, hi)
    ax.set_ylim(min(gs + [0.0]) - 0.25, max(gs + [2.0]) + 0.25)
    ax.text(lo + 0.05, 0.5 * (min(gs + [0.0]) + 1.0), "linear", fontsize=8, color="0.3")
    ax.text(lo + 0.05, 1.15, "condensed", fontsize=8, color="0.3")
    # Named initializations; Xavier coincides with mean-field.
    names: dict[tuple[float, float], list[str]] = {}
    for name, (g, gp) in NAMED_INITS.items():
        names.setdefault((gp, g), []).append(name)
    for (gp, g), labels in names.items():
        ax.plot(gp, g, marker="*", color="gold", markeredgecolor="k", ms=13, ls="none")
        ax.annotate(
            " / ".join(labels), (gp, g), textcoords="offset points", xytext=(6, -12), fontsize=7
        )
    ax.legend(fontsize=7, loc="upper left")


def plot_rd_over_widths(
    results: list[tuple[dict, dict]], groups: list[dict], layers, path, title: str
) -> str:
    """``log RD`` against ``log m``, one panel per layer, one colour per group.

    The points are the runs (every seed); the line is the group's fitted slope ``S`` (the
    least-squares line through the seed-averaged ``log RD``), labelled with ``S``.

    Args:
        results: ``(point, result)`` pairs, as given to :func:`effdyn.phase.slopes`.
        groups: the output of :func:`effdyn.phase.slopes` on ``results``.
        layers: the layers to draw (``"W1"``, ``"W2"``, …).
        path: where to write the PNG.
        title: the setting, shown under the figure's title.
    """
    plt = _pyplot()
    layers = list(layers)
    fig, axes = plt.subplots(1, len(layers), figsize=(4.6 * len(layers), 4.0), squeeze=False)
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(groups), 1)))
    for ax, layer in zip(axes.flat, layers, strict=True):
        for colour, group in zip(colours, groups, strict=False):
            coords = {k: v for k, v in group.items() if k in _LABELS}
            members = [
                (p["width"], r.get(rd_field(layer), math.nan))
                for p, r in results
                if all(float(p.get(k, math.nan)) == float(v) for k, v in coords.items())
            ]
            ms = np.array([m for m, _ in members], dtype=float)
            rds = np.array([rd for _, rd in members], dtype=float)
            ok = np.isfinite(rds) & (rds > 0)
            if not ok.any():
                continue
            name = ", ".join(f"{_LABELS[k]} = {v:g}" for k, v in coords.items())
            slope = float(group.get("slopes", {}).get(layer, math.nan))
            ax.scatter(np.log(ms[ok]), np.log(rds[ok]), color=colour, s=25)
            widths = np.unique(ms[ok])
            mean = np.array([np.mean(np.log(rds[ok][ms[ok] == w])) for w in widths])
            if np.isfinite(slope) and len(widths) > 1:
                x = np.log(widths)
                intercept = float(np.mean(mean - slope * x))
                ax.plot(x, intercept + slope * x, color=colour, label=f"{name}: S = {slope:+.2f}")
            else:
                ax.plot([], [], color=colour, label=f"{name}: no slope")
        ax.set_xlabel("log m (width)")
        ax.set_ylabel(f"log RD({layer})")
        ax.set_title(f"layer {layer}: S < 0 linear, S > 0 condensed", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(_title("relative change of each layer's weights over widths", title), fontsize=9)
    return save_figure(fig, path)
