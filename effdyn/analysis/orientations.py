"""Grouping weight vectors into condensed orientations and lines
(docs/theory/measuring.md#condensation-metrics).

Vectors are compared by cosine: agglomerative clustering (SciPy's average linkage) on
the distance ``1 − cos`` counts *orientations* (``u`` and ``−u`` apart), on ``1 − |cos|``
counts *lines* (``u`` and ``−u`` together). ``threshold`` is that distance: two clusters
merge while their average distance is below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Orientations:
    """Clusters of unit vectors.

    Attributes:
        directions: ``(K, D)`` unit representative of each cluster (normalized mean, with
            lines oriented so their first large entry is positive), largest cluster first.
        labels: cluster index of every input vector (−1 for those left out as too small).
        sizes: members per cluster.
    """

    directions: np.ndarray
    labels: np.ndarray
    sizes: np.ndarray

    @property
    def count(self) -> int:
        return len(self.sizes)


def unit_rows(vectors: np.ndarray, min_relative_norm: float = 0.0):
    """Normalized rows and the mask of rows whose norm is at least ``min_relative_norm``
    times the largest (the grown neurons)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    top = norms.max() if norms.size else 0.0
    keep = (norms > 0) & (norms >= min_relative_norm * top) & np.isfinite(norms)
    units = np.zeros_like(vectors)
    units[keep] = vectors[keep] / norms[keep, None]
    return units, keep


def cluster_orientations(
    vectors: np.ndarray,
    threshold: float = 1e-3,
    *,
    lines: bool = False,
    min_relative_norm: float = 0.0,
) -> Orientations:
    """Cluster the rows of ``vectors`` by direction.

    Args:
        vectors: ``(N, D)``, e.g. the input weights of N neurons (bias included).
        threshold: merge distance in ``1 − cos`` (or ``1 − |cos|`` with ``lines=True``).
        lines: count lines (±u together) instead of orientations.
        min_relative_norm: leave out rows shorter than this fraction of the longest.
    """
    units, keep = unit_rows(vectors, min_relative_norm)
    labels = np.full(len(units), -1)
    members = units[keep]
    if len(members) == 0:
        return Orientations(np.zeros((0, units.shape[1])), labels, np.zeros(0, int))
    if len(members) == 1:
        found = np.zeros(1, int)
    else:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        cos = np.clip(members @ members.T, -1.0, 1.0)
        dist = 1.0 - (np.abs(cos) if lines else cos)
        np.fill_diagonal(dist, 0.0)
        dist = np.maximum(0.5 * (dist + dist.T), 0.0)
        # average linkage, cut where the merge distance reaches the threshold
        tree = linkage(squareform(dist, checks=False), method="average")
        raw = fcluster(tree, t=threshold * (1 - 1e-12), criterion="distance")
        _, first, found = np.unique(raw, return_index=True, return_inverse=True)
        found = np.argsort(np.argsort(first))[found]  # clusters numbered by first member
    order = np.argsort(-np.bincount(found), kind="stable")
    relabel = np.empty_like(order)
    relabel[order] = np.arange(len(order))
    found = relabel[found]
    labels[keep] = found
    reps = []
    for c in range(len(order)):
        group = members[found == c]
        if lines:  # align signs with the first member before averaging
            group = group * np.sign(group @ group[0])[:, None]
        mean = group.mean(axis=0)
        mean /= np.linalg.norm(mean)
        if lines:
            mean *= np.sign(mean[np.argmax(np.abs(mean))])
        reps.append(mean)
    return Orientations(np.array(reps), labels, np.bincount(found))


def best_alignment(units: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """For each unit row, ``max_j |cos(u, u*_j)|`` over the predicted directions."""
    if len(predicted) == 0 or len(units) == 0:
        return np.zeros(len(units))
    return np.max(np.abs(units @ np.asarray(predicted).T), axis=1)
