"""Measuring condensation in a trained network (docs/theory/measuring.md#condensation-metrics).

A *neuron feature* is the neuron's input weight vector with its bias appended; a convolution
kernel is flattened as ``weight.reshape(channels, -1)`` (:func:`neuron_features`). From a set
of features this module measures

- which neurons have grown out of the small initialization (:func:`grown_mask`);
- the cosine-similarity matrix, ordered as in the papers' heatmaps (:func:`cosine_matrix`);
- how many lines and orientations the grown neurons form (:func:`count_condensation`);
- how well they align with predicted directions (:func:`match_directions`,
  :func:`alignment_summary`), and all of it for one set of units at once
  (:func:`stage_summary`, what ``compare`` reports per stage);
- when training escaped the plateau (:func:`escape_time`) and which neuron grew first
  (:func:`first_grown`);
- for 1-d input with bias, each neuron's (angle, norm) (:func:`neuron_angle_norm`).

Everything is NumPy (float64); clustering reuses :mod:`effdyn.analysis.orientations`.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> W = np.repeat([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], 5, axis=0)
    >>> W = W + 1e-4 * rng.standard_normal(W.shape)
    >>> [(c["lines"], c["orientations"]) for c in count_condensation(W, thresholds=(1e-2,))]
    [(2, 3)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .orientations import best_alignment, cluster_orientations, unit_rows

__all__ = [
    "COMPARE_THRESHOLDS",
    "stage_summary",
    "FirstGrown",
    "Matching",
    "alignment_summary",
    "cosine_matrix",
    "count_condensation",
    "escape_time",
    "first_grown",
    "grown_mask",
    "match_directions",
    "neuron_angle_norm",
    "neuron_features",
]

DEFAULT_THRESHOLDS = (1e-1, 1e-2, 1e-3, 1e-4)
COMPARE_THRESHOLDS = (1e-3, 1e-2, 5e-2)
"""``compare``'s clustering thresholds (``1 − |cos|`` for lines, ``1 − cos`` for
orientations)."""


def _rows(vectors, name: str = "vectors") -> np.ndarray:
    """``(N, ...)`` → ``(N, D)`` float64 (kernels flattened per neuron)."""
    arr = np.asarray(vectors, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have one row per neuron; got a scalar")
    if arr.ndim == 1:
        raise ValueError(
            f"{name} must have one row per neuron, shape (N, D); got a 1-d array of "
            f"length {arr.shape[0]} (use vectors[None, :] for a single neuron)"
        )
    return arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:])))  # -1 fails for N = 0


def neuron_features(weight, bias=None) -> np.ndarray:
    """Per-neuron feature vectors ``(w_k, b_k)`` (docs/theory/measuring.md#condensation-metrics).

    Args:
        weight: ``(N, ...)`` input weights, one neuron (or channel) per leading index; a
            convolution kernel ``(channels, in_channels, kh, kw)`` is flattened to
            ``(channels, in_channels·kh·kw)``.
        bias: optional ``(N,)`` biases, appended as the last column.

    Returns:
        ``(N, D)`` or ``(N, D + 1)`` float64 array.
    """
    rows = _rows(weight, "weight")
    if bias is None:
        return rows
    b = np.asarray(bias, dtype=np.float64).reshape(-1)
    if b.shape[0] != rows.shape[0]:
        raise ValueError(f"bias has {b.shape[0]} entries but weight has {rows.shape[0]} neurons")
    return np.concatenate([rows, b[:, None]], axis=1)


def grown_mask(W1, W1_initial=None, *, fraction: float = 0.1, factor: float = 2.0) -> np.ndarray:
    """Which neurons have grown out of the small initialization.

    Neuron ``k`` (row ``w_k``, kernels flattened) counts as grown when both

        |w_k(t)| ≥ fraction · max_j |w_j(t)|      (it matters at the end), and
        |w_k(t)| ≥ factor · |w_k(0)|              (it moved away from its initial scale);

    the second test is skipped when ``W1_initial`` is None. A neuron whose initial norm is 0
    passes the second test as soon as its norm is positive.

    Args:
        W1: ``(N, ...)`` current input weights (bias included as a column if wanted).
        W1_initial: same shape, the weights at initialization, or None.
        fraction: relative-norm floor in ``[0, 1]`` (default 0.1).
        factor: growth factor from initialization, ``≥ 1`` (default 2).

    Returns:
        ``(N,)`` boolean mask.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1]; got {fraction}")
    if factor < 1.0:
        raise ValueError(f"factor must be at least 1; got {factor}")
    rows = _rows(W1, "W1")
    norms = np.linalg.norm(rows, axis=1)
    if norms.size == 0:
        return np.zeros(0, dtype=bool)
    finite = np.isfinite(norms)
    top = np.max(norms[finite]) if finite.any() else 0.0
    mask = finite & (norms > 0) & (norms >= fraction * top)
    if W1_initial is not None:
        rows0 = _rows(W1_initial, "W1_initial")
        if rows0.shape != rows.shape:
            raise ValueError(
                f"W1_initial has shape {np.shape(W1_initial)} but W1 has {np.shape(W1)}"
            )
        mask &= norms >= factor * np.linalg.norm(rows0, axis=1)
    return mask


def _leading_eigenvector(matrix: np.ndarray) -> np.ndarray:
    """Eigenvector of the largest eigenvalue of a symmetric matrix, signed so that its
    largest-magnitude entry is positive (a deterministic choice)."""
    _, vecs = np.linalg.eigh(matrix)
    v = vecs[:, -1]
    return v * (1.0 if v[np.argmax(np.abs(v))] >= 0 else -1.0)


def cosine_matrix(vectors, order: str | None = "eigen", *, threshold: float = 1e-2):
    """Cosine-similarity matrix of the rows, ordered as in the papers' heatmaps.

    With unit rows ``u_k = v_k/|v_k|``, ``C_kl = u_k · u_l`` (``C`` symmetric, unit diagonal;
    a zero row gives a zero row and column). Orderings:

    - ``"eigen"``: sort rows by their entry in the leading eigenvector ``e`` of ``C``
      (``C e = λ_max e``). Since ``C = U Uᵀ``, ``e_k ∝ u_k · d`` with ``d`` the principal
      direction of the neurons, so the two orientations ``±d`` of the dominant line go to the
      two ends. Neurons orthogonal to ``d`` share ``e_k ≈ 0`` and are *not* separated from
      each other: use ``"cluster"`` when several orthogonal lines have formed.
    - ``"cluster"``: group by line (agglomerative clustering on ``1 − |cos|``), then within a
      line by orientation (on ``1 − cos``), both at ``threshold``, largest line first; zero
      rows go last. Every cluster is a contiguous block and ``±u`` blocks sit side by side.
    - ``None``: the given order.

    To restrict to grown neurons, pass ``vectors[grown_mask(...)]``.

    Args:
        vectors: ``(N, ...)`` neuron features (bias included, kernels flattened).
        order: ``"eigen"``, ``"cluster"`` or None.
        threshold: merge distance used by ``order="cluster"``.

    Returns:
        ``(matrix, order)``: the reordered ``(N, N)`` matrix ``C[order][:, order]`` and the
        permutation ``order`` (``(N,)`` int) applied to the rows of ``vectors``.
    """
    rows = _rows(vectors)
    units, keep = unit_rows(rows)
    cos = np.clip(units @ units.T, -1.0, 1.0)
    idx = np.flatnonzero(keep)
    cos[idx, idx] = 1.0
    n = len(rows)
    if order is None or n == 0:
        perm = np.arange(n)
    elif order == "eigen":
        perm = np.argsort(_leading_eigenvector(cos), kind="stable")
    elif order == "cluster":
        line = cluster_orientations(rows, threshold, lines=True).labels
        orient = cluster_orientations(rows, threshold, lines=False).labels
        big = n + 1  # zero rows (label −1) last
        perm = np.lexsort(
            (np.arange(n), np.where(orient < 0, big, orient), np.where(line < 0, big, line))
        )
    else:
        raise ValueError(f"order must be 'eigen', 'cluster' or None; got {order!r}")
    return cos[np.ix_(perm, perm)], perm


def count_condensation(
    vectors, thresholds=DEFAULT_THRESHOLDS, *, min_relative_norm: float = 0.0
) -> list[dict]:
    """Number of lines and of orientations among the rows, at each stated threshold.

    Agglomerative clustering (average linkage) on ``1 − |cos|`` counts lines (``u`` and
    ``−u`` together), on ``1 − cos`` counts orientations; ``threshold`` is the merge distance
    (``1 − cos θ ≈ θ²/2``: 1e-2 merges within about 8°, 1e-4 within about 0.8°). A fully
    condensed state gives the same counts over several decades of threshold; a count that
    keeps rising as the threshold shrinks means the clusters are not sharp.

    Args:
        vectors: ``(N, ...)`` neuron features (bias included, kernels flattened).
        thresholds: merge distances, each in ``(0, 2]``.
        min_relative_norm: ignore rows shorter than this fraction of the longest.

    Returns:
        One dict per threshold: ``{"threshold", "lines", "orientations"}``.
    """
    rows = _rows(vectors)
    out = []
    for thr in thresholds:
        thr = float(thr)
        if not 0.0 < thr <= 2.0:
            raise ValueError(f"thresholds are distances 1 − cos in (0, 2]; got {thr}")
        lines = cluster_orientations(rows, thr, lines=True, min_relative_norm=min_relative_norm)
        orients = cluster_orientations(rows, thr, min_relative_norm=min_relative_norm)
        out.append({"threshold": thr, "lines": lines.count, "orientations": orients.count})
    return out


@dataclass(frozen=True)
class Matching:
    """One-to-one matching of learned directions to predicted directions.

    Attributes:
        pairs: ``(M, 2)`` int, rows ``(i, j)``: learned direction ``i`` ↔ predicted ``j``,
            ``M = min(#learned, #predicted)``, sorted by ``i``.
        cosines: ``(M,)`` signed ``cos(u_i, u*_j)`` of each pair (with ``signed=False`` the
            matching maximized ``|cos|``, so read ``abs(cosines)``).
        unmatched_units: indices of learned directions left without a partner.
        unmatched_predicted: indices of predicted directions left without a partner.
        signed: whether orientation (the sign) counted in the matching.
    """

    pairs: np.ndarray
    cosines: np.ndarray
    unmatched_units: np.ndarray
    unmatched_predicted: np.ndarray
    signed: bool


def match_directions(units, predicted, *, signed: bool = False) -> Matching:
    """Optimal one-to-one matching of learned directions to predicted directions.

    Solves ``max_π Σ_i |cos(u_i, u*_π(i))|`` over injective assignments (or ``Σ cos`` with
    ``signed=True``, which tells ``u*`` from ``−u*``) with
    ``scipy.optimize.linear_sum_assignment`` on the cost ``−|cos|`` (``−cos``). Rows are
    normalized here; rectangular inputs leave the surplus of the larger set unmatched.

    Args:
        units: ``(K, D)`` learned directions, e.g. ``cluster_orientations(...).directions``.
        predicted: ``(P, D)`` predicted directions (lines or orientations).
        signed: match orientations (``−cos``) instead of lines (``−|cos|``).

    Returns:
        :class:`Matching`.
    """
    from scipy.optimize import linear_sum_assignment

    u = _rows(units, "units")
    p = _rows(predicted, "predicted")
    if u.shape[1] != p.shape[1]:
        raise ValueError(
            f"units have dimension {u.shape[1]} but predicted directions have {p.shape[1]}"
        )
    u, _ = unit_rows(u)
    p, _ = unit_rows(p)
    cos = np.clip(u @ p.T, -1.0, 1.0)
    rows, cols = linear_sum_assignment(-(cos if signed else np.abs(cos)))
    return Matching(
        pairs=np.stack([rows, cols], axis=1).astype(int).reshape(-1, 2),
        cosines=cos[rows, cols],
        unmatched_units=np.setdiff1d(np.arange(len(u)), rows),
        unmatched_predicted=np.setdiff1d(np.arange(len(p)), cols),
        signed=signed,
    )


def alignment_summary(units, predicted, *, above: float = 0.99) -> dict:
    """Alignment of each (grown) neuron with its nearest predicted direction.

    For each row, ``a_k = max_j |cos(u_k, u*_j)|`` (docs/theory/measuring.md#condensation-metrics,
    not one-to-one: many
    neurons condense on one direction). Rows are normalized here; zero rows are dropped.

    Args:
        units: ``(N, D)`` features of the neurons to assess (e.g. the grown ones).
        predicted: ``(P, D)`` predicted directions.
        above: level for ``fraction_above``.

    Returns:
        ``{"median_abs_cos", "min_abs_cos", "fraction_above", "above", "n"}``; the statistics
        are NaN when ``n = 0``.
    """
    u, keep = unit_rows(_rows(units, "units"))
    p, _ = unit_rows(_rows(predicted, "predicted"))
    if u.shape[1] != p.shape[1]:
        raise ValueError(
            f"units have dimension {u.shape[1]} but predicted directions have {p.shape[1]}"
        )
    a = best_alignment(u[keep], p)
    if a.size == 0:
        nan = float("nan")
        return {
            "median_abs_cos": nan,
            "min_abs_cos": nan,
            "fraction_above": nan,
            "above": above,
            "n": 0,
        }
    return {
        "median_abs_cos": float(np.median(a)),
        "min_abs_cos": float(np.min(a)),
        "fraction_above": float(np.mean(a >= above)),
        "above": float(above),
        "n": int(a.size),
    }


def escape_time(t, loss, fraction: float = 0.1):
    """Time at which training leaves the initial plateau: a ``fraction`` drop of the loss.

    Definition (docs/theory/measuring.md#condensation-metrics, the same rule effdyn applies to the
    leading-order model's
    loss for ``t_escape``): the first recorded ``t_k`` with

        loss_k ≤ (1 − fraction) · loss_0,

    returned as recorded — no interpolation between records. For gradient descent pass
    ``t_k = k · lr``.

    Args:
        t: ``(S,)`` times (non-decreasing).
        loss: ``(S,)`` losses; non-finite entries never count as a drop.
        fraction: the relative drop, in ``(0, 1)`` (default 0.1, a 10% drop).

    Returns:
        ``t_k`` as a float, or None if the loss never dropped that far.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1); got {fraction}")
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    loss = np.asarray(loss, dtype=np.float64).reshape(-1)
    if t.shape != loss.shape:
        raise ValueError(f"t has {t.size} entries but loss has {loss.size}")
    if loss.size == 0:
        return None
    if not np.isfinite(loss[0]):
        raise ValueError(f"the initial loss must be finite; got {loss[0]}")
    hit = np.flatnonzero(np.isfinite(loss) & (loss <= (1.0 - fraction) * loss[0]))
    return float(t[hit[0]]) if hit.size else None


class FirstGrown(NamedTuple):
    """The neuron that escaped first: its index, the step and the snapshot index."""

    neuron: int
    step: int | float
    snapshot: int


def first_grown(snapshot_steps, snapshots_W1, factor: float = 2.0) -> FirstGrown | None:
    """Which neuron escapes first: the first whose norm grows by ``factor``.

    With ``r_k(j) = |w_k(s_j)| / |w_k(s_0)|`` (rows flattened, snapshot ``s_0`` the
    reference), find the first snapshot ``j`` at which some ``r_k(j) ≥ factor``; among the
    neurons crossing there, the one with the largest ratio. A neuron with zero initial norm
    has ``r = ∞`` once it is non-zero.

    Args:
        snapshot_steps: ``(S,)`` step (or time) of each snapshot.
        snapshots_W1: ``(S, N, ...)`` input weights at each snapshot (array or list).
        factor: growth factor, ``> 1``.

    Returns:
        ``FirstGrown(neuron, step, snapshot)`` (a tuple), or None if no neuron grew that
        much.
    """
    if factor <= 1.0:
        raise ValueError(f"factor must exceed 1; got {factor}")
    steps = np.asarray(snapshot_steps).reshape(-1)
    W = np.asarray(snapshots_W1, dtype=np.float64)
    if W.ndim < 3:
        raise ValueError(f"snapshots_W1 must have shape (S, N, D...); got {W.shape}")
    if W.shape[0] != steps.size:
        raise ValueError(f"{steps.size} snapshot steps but {W.shape[0]} snapshots")
    norms = np.linalg.norm(W.reshape(W.shape[0], W.shape[1], -1), axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = norms / norms[0]
    ratio = np.where(np.isnan(ratio), 0.0, ratio)  # 0/0: a neuron that stays at 0
    crossed = ratio >= factor
    snaps = np.flatnonzero(crossed.any(axis=1))
    if snaps.size == 0:
        return None
    j = int(snaps[0])
    k = int(np.argmax(np.where(crossed[j], ratio[j], -np.inf)))
    step = steps[j].item()
    return FirstGrown(neuron=k, step=step, snapshot=j)


def neuron_angle_norm(W1):
    """Angle and norm of each neuron of a 1-d-input network with bias (the papers' scatter).

    Row ``k`` is ``(w_k, b_k)``; its angle is ``θ_k = atan2(b_k, w_k) ∈ (−π, π]`` and its norm
    ``√(w_k² + b_k²)``. Condensed orientations show as vertical stacks; by
    docs/theory/effective-dynamics.md#two-layer at
    most ``2p`` of them for multiplicity ``p``.

    Args:
        W1: ``(N, 2)`` rows ``(w, b)``.

    Returns:
        ``(angles, norms)``, two ``(N,)`` arrays.
    """
    rows = _rows(W1, "W1")
    if rows.shape[1] != 2:
        raise ValueError(
            f"neuron_angle_norm needs rows (w, b) of a 1-d input with bias, shape (N, 2); "
            f"got {np.shape(W1)}"
        )
    angles = np.arctan2(rows[:, 1], rows[:, 0])
    angles = np.where(angles <= -np.pi, angles + 2 * np.pi, angles)  # atan2(−0, −1) = −π
    return angles, np.hypot(rows[:, 0], rows[:, 1])


def stage_summary(units, units_initial, directions, thresholds=COMPARE_THRESHOLDS) -> dict:
    """What ``compare`` reports for one set of units (rows) at one time: ``n_grown``
    (:func:`grown_mask` against ``units_initial``), ``alignment`` of the grown ones with the
    predicted ``directions`` (:func:`alignment_summary`, None without directions; non-finite
    entries as None) and the condensation ``counts`` at ``thresholds``."""
    units = np.asarray(units, dtype=np.float64)
    grown = grown_mask(units, units_initial)
    rows, _ = unit_rows(units[grown])
    align = alignment_summary(rows, directions) if len(directions) else None
    if align is not None:
        align = {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in align.items()
        }
    return {
        "n_grown": int(grown.sum()),
        "alignment": align,
        "counts": count_condensation(units[grown], thresholds) if grown.sum() else [],
    }
