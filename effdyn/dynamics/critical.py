"""Critical orientations of a two-layer network's neurons
(docs/theory/effective-dynamics.md#two-layer).

With multiplicity ``p`` and leading coefficient ``c_p`` the neurons of a two-layer network
decouple at leading order:

    a_k' = c_p F(w_k),   w_k' = a_k c_p ∇F(w_k),   F(w) = (1/n) Σ_i y_i (w·x̃_i)^p,

with ``x̃_i ∈ R^D`` (``D = d + 1`` with the bias coordinate 1 last, or ``D = d`` without bias).
``F`` is homogeneous of degree ``p``, so the direction ``u = w/|w|`` moves on the unit sphere
along ``sign(a c_p) (I − uuᵀ)∇F(u)`` (times a positive factor): its fixed points are the
critical points of ``F`` on the sphere. A local maximum of ``F`` on the sphere attracts the
neurons with ``a c_p > 0``, a local minimum those with ``a c_p < 0``, a saddle nobody.

Closed forms (:func:`critical_orientations`):

- ``p = 1``, any ``D``: ``F(w) = w·z``, ``z = (1/n) Σ y_i x̃_i``; critical orientations
  ``±z/|z|`` (maximum at ``+ẑ``, minimum at ``−ẑ``).
- ``p = 2``, any ``D``: ``F(w) = wᵀMw``, ``M = (1/n) Σ y_i x̃_i x̃_iᵀ``; critical directions are
  the eigenvectors of ``M`` (both signs); top eigenvalue → maximum, bottom → minimum, the
  others saddles.
- ``D = 2``, any ``p``: ``F(w1, w2) = Σ_j c_j w1^j w2^{p−j}`` and, on the circle
  ``w = (cos φ, sin φ)``, ``dF/dφ = G(w) = w1 ∂F/∂w2 − w2 ∂F/∂w1``, a homogeneous polynomial of
  degree ``p``: at most ``p`` lines, i.e. at most ``2p`` orientations (Zhou et al. 2022).
  ``d²F/dφ² = H(w) = w1 ∂G/∂w2 − w2 ∂G/∂w1`` classifies them.
- ``D = 1``: the "sphere" is ``{−1, +1}``; both points are fixed (there is no tangent
  direction). They are reported as ``"max"``/``"min"`` by comparing ``F(+1)`` and ``F(−1)``,
  or as ``"degenerate"`` when the two values agree (``p`` even).
- ``p ≥ 3`` and ``D ≥ 3``: no closed form; :func:`critical_orientations` returns ``None``
  and the caller clusters the limit directions of an ensemble instead.

Sign convention: only the leading-order data enter ``F``; ``c_p`` is NOT part of it. The
caller combines ``sign(a c_p)`` with :attr:`CriticalOrientation.attracts` (see
:func:`stable_orientations`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from math import comb

import numpy as np

from ..errors import EffdynError

__all__ = [
    "CriticalOrientation",
    "critical_orientations",
    "neuron_potential",
    "stable_orientations",
]


@dataclass(frozen=True)
class CriticalOrientation:
    """A critical point of ``F`` on the unit sphere.

    Attributes:
        direction: unit vector ``u ∈ R^D`` with ``(I − uuᵀ)∇F(u) = 0``.
        value: ``F(u)`` (without ``c_p``).
        kind: ``"max"``, ``"min"``, ``"saddle"`` or ``"degenerate"`` (second-order test
            inconclusive).
        attracts: ``+1`` for a maximum (stable for neurons with ``a c_p > 0``), ``−1`` for a
            minimum (stable for ``a c_p < 0``), ``0`` otherwise.
    """

    direction: np.ndarray
    value: float
    kind: str
    attracts: int


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------


def _check_p(p: int) -> int:
    if isinstance(p, bool) or not isinstance(p, int | np.integer) or int(p) < 1:
        raise EffdynError(f"multiplicity p must be an integer >= 1, got {p!r}")
    return int(p)


def _check_data(xt: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``xt`` as float64 ``(n, D)`` and ``y`` as float64 ``(n,)``, or raise."""
    xt = np.asarray(xt, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if xt.ndim != 2 or xt.shape[0] < 1 or xt.shape[1] < 1:
        raise EffdynError(f"xt must have shape (n, D) with n, D >= 1, got shape {xt.shape}")
    n = xt.shape[0]
    if y.ndim == 2:
        if y.shape[1] != 1:
            raise EffdynError(
                f"y has {y.shape[1]} output columns; critical orientations need a scalar "
                "output (shape (n,) or (n, 1))"
            )
        y = y[:, 0]
    elif y.ndim != 1:
        raise EffdynError(f"y must have shape (n,) or (n, 1), got shape {y.shape}")
    if y.shape[0] != n:
        raise EffdynError(f"y has {y.shape[0]} samples but xt has {n}")
    if not (np.all(np.isfinite(xt)) and np.all(np.isfinite(y))):
        raise EffdynError("xt and y must be finite (found nan or inf)")
    return xt, y


# --------------------------------------------------------------------------------------------
# the potential
# --------------------------------------------------------------------------------------------


def neuron_potential(p: int, xt: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``F(w) = (1/n) Σ_i y_i (w·x̃_i)^p`` for ``w`` of shape ``(D,)`` or ``(..., D)``.

    Args:
        p: multiplicity (integer ``>= 1``).
        xt: inputs ``x̃_i`` as rows, shape ``(n, D)``.
        y: scalar targets, shape ``(n,)`` or ``(n, 1)``.
        w: one or many input weights, shape ``(..., D)``.

    Returns:
        ``F`` with shape ``w.shape[:-1]`` (a 0-d array for a single ``w``).
    """
    p = _check_p(p)
    xt, y = _check_data(xt, y)
    w = np.asarray(w, dtype=np.float64)
    if w.ndim < 1 or w.shape[-1] != xt.shape[1]:
        raise EffdynError(f"w must have last dimension D = {xt.shape[1]}, got shape {w.shape}")
    s = w @ xt.T  # (..., n)
    return (s**p) @ y / xt.shape[0]


def _potential_scale(p: int, xt: np.ndarray, y: np.ndarray) -> float:
    """``(1/n) Σ |y_i| |x̃_i|^p``: bounds ``|F|`` on the sphere; the reference for rounding."""
    return float(np.mean(np.abs(y) * np.linalg.norm(xt, axis=1) ** p))


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _canonical(u: np.ndarray) -> np.ndarray:
    """``u/|u|`` with its largest-magnitude entry (first one on ties) positive."""
    u = u / np.linalg.norm(u)
    i = int(np.argmax(np.abs(u)))
    return u if u[i] >= 0 else -u


def _attracts(kind: str) -> int:
    return {"max": 1, "min": -1}.get(kind, 0)


def _make(p: int, xt: np.ndarray, y: np.ndarray, u: np.ndarray, kind: str) -> CriticalOrientation:
    u = np.array(u, dtype=np.float64) + 0.0  # + 0.0 turns −0.0 into 0.0
    u.setflags(write=False)
    value = float(neuron_potential(p, xt, y, u))
    return CriticalOrientation(direction=u, value=value, kind=kind, attracts=_attracts(kind))


# what the solvers below return: (unit direction, kind) pairs, computed on scaled data
_Found = tuple[np.ndarray, str]


def _sorted(points: list[CriticalOrientation]) -> list[CriticalOrientation]:
    # stable sort: among equal values the order of construction (+u before −u) is kept
    return sorted(points, key=lambda c: -c.value)


# --------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------


def _orientations_p1(xt: np.ndarray, y: np.ndarray, tol: float) -> list[_Found]:
    """``p = 1``: ``F(w) = w·z``; maximum at ``+ẑ``, minimum at ``−ẑ``."""
    z = y @ xt / xt.shape[0]
    norm = float(np.linalg.norm(z))
    if norm <= tol * _potential_scale(1, xt, y):
        return []
    zhat = z / norm
    return [(zhat, "max"), (-zhat, "min")]


def _orientations_p2(xt: np.ndarray, y: np.ndarray, tol: float) -> list[_Found]:
    """``p = 2``: eigenvectors of ``M = (1/n) Σ y_i x̃_i x̃_iᵀ``, both signs.

    Eigenvalues within ``tol·scale`` of the top (bottom) one are maxima (minima); with all
    eigenvalues equal ``F`` is constant on the sphere and the result is empty.
    """
    M = (xt.T * y) @ xt / xt.shape[0]
    M = 0.5 * (M + M.T)
    lam, vecs = np.linalg.eigh(M)
    thr = tol * _potential_scale(2, xt, y)
    if lam[-1] - lam[0] <= thr:
        return []
    out = []
    for k in range(lam.size - 1, -1, -1):
        if lam[k] >= lam[-1] - thr:
            kind = "max"
        elif lam[k] <= lam[0] + thr:
            kind = "min"
        else:
            kind = "saddle"
        u = _canonical(vecs[:, k])
        out += [(u, kind), (-u, kind)]
    return out


def _orientations_d1(p: int, xt: np.ndarray, y: np.ndarray, tol: float) -> list[_Found]:
    """``D = 1``: the two points ``±1``, compared with each other."""
    f_plus = float(neuron_potential(p, xt, y, np.ones(1)))
    f_minus = float(neuron_potential(p, xt, y, -np.ones(1)))
    thr = tol * _potential_scale(p, xt, y)
    if abs(f_plus) <= thr and abs(f_minus) <= thr:
        return []
    if abs(f_plus - f_minus) <= thr:
        kinds = ("degenerate", "degenerate")
    elif f_plus > f_minus:
        kinds = ("max", "min")
    else:
        kinds = ("min", "max")
    return [(np.ones(1), kinds[0]), (-np.ones(1), kinds[1])]


def _binary_form_coefficients(p: int, xt: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``c_j`` with ``F(w1, w2) = Σ_{j=0}^p c_j w1^j w2^{p−j}`` (``D = 2``).

    ``c_j = C(p, j) (1/n) Σ_i y_i a_i^j b_i^{p−j}`` for ``x̃_i = (a_i, b_i)``; with a bias
    (``b_i = 1``) this is ``C(p, j) m_j``, ``m_j = (1/n) Σ y_i x_i^j``.
    """
    a, b = xt[:, 0], xt[:, 1]
    return np.array(
        [comb(p, j) * float(np.mean(y * a**j * b ** (p - j))) for j in range(p + 1)],
        dtype=np.float64,
    )


def _angular_derivative(c: np.ndarray) -> np.ndarray:
    """Coefficients of ``w1 ∂P/∂w2 − w2 ∂P/∂w1`` for ``P = Σ_k c_k w1^k w2^{p−k}``.

    On the circle ``w = (cos φ, sin φ)`` this is ``dP/dφ``; it is again homogeneous of degree
    ``p`` with coefficients ``g_k = (p − k + 1) c_{k−1} − (k + 1) c_{k+1}`` (``c`` = 0 outside
    ``0..p``).
    """
    p = c.size - 1
    g = np.zeros_like(c)
    for k in range(p + 1):
        if k >= 1:
            g[k] += (p - k + 1) * c[k - 1]
        if k + 1 <= p:
            g[k] -= (k + 1) * c[k + 1]
    return g


def _binary_form_at(c: np.ndarray, phi: float) -> float:
    """``Σ_k c_k cos(φ)^k sin(φ)^{p−k}``."""
    p = c.size - 1
    k = np.arange(p + 1)
    return float(np.sum(c * np.cos(phi) ** k * np.sin(phi) ** (p - k)))


def _root_clusters(roots: np.ndarray, tol: float) -> list[tuple[complex, list[complex]]]:
    """Group polynomial roots closer than ``tol^0.3·max(1, |r|)`` (single linkage).

    A root of multiplicity ``m`` comes out of :func:`numpy.roots` as a cluster of radius
    ``~ε^{1/m}`` (often off the real axis); the cluster's centroid is accurate to ``~ε``.
    Returns ``(centroid, members)`` per cluster.
    """
    rho = tol**0.3
    roots = [complex(r) for r in roots]
    label = list(range(len(roots)))
    for i in range(len(roots)):
        for j in range(i):
            if abs(roots[i] - roots[j]) <= rho * max(1.0, abs(roots[i]), abs(roots[j])):
                old, new = label[i], label[j]
                label = [new if lab == old else lab for lab in label]
    out = []
    for lab in dict.fromkeys(label):
        members = [r for r, lb in zip(roots, label, strict=True) if lb == lab]
        out.append((complex(np.mean(members)), members))
    return out


def _orientations_d2(p: int, xt: np.ndarray, y: np.ndarray, tol: float) -> list[_Found]:
    """``D = 2``, any ``p``: zeros of ``G = dF/dφ`` on the circle, classified by ``H``.

    ``G(w1, w2) = Σ_k g_k w1^k w2^{p−k}`` is solved in two charts with :func:`numpy.roots`:
    ``t = w1/w2`` (``w2 = 1``, roots with ``|t| <= 1``) and ``s = w2/w1`` (``w1 = 1``, roots
    with ``|s| <= 1``). The second chart contains the line ``w2 = 0`` (a root ``s = 0`` exactly
    when ``g_p = 0``, i.e. when the degree in ``t`` drops) and keeps large ``|t|`` well
    conditioned. Nearby roots are grouped (:func:`_root_clusters`) so that a multiple root is
    taken at its cluster's centroid. A root (or centroid) is real when its imaginary part is
    below ``√tol·max(1, |root|)``; it is polished by Newton steps in ``φ`` and kept only if
    ``|G| <= tol·p·scale`` there (when a centroid fails, the cluster's members are tried one
    by one); the same line found in both charts is kept once. ``G ≡ 0`` (``F`` constant on
    the circle) gives ``[]``.
    """
    c = _binary_form_coefficients(p, xt, y)
    g = _angular_derivative(c)
    h = _angular_derivative(g)
    scale = _potential_scale(p, xt, y)
    g_ref = max(p, 1) * scale  # bounds |dF/dφ| on the circle
    h_ref = max(p, 1) ** 2 * scale  # bounds |d²F/dφ²| on the circle
    if np.max(np.abs(g)) <= tol * g_ref:
        return []
    root_tol = np.sqrt(tol)

    def polish(phi: float) -> float | None:
        """Newton on ``dF/dφ = 0`` from ``φ``; ``None`` unless ``|G| <= tol·g_ref`` at the end."""
        for _ in range(3):
            gv, hv = _binary_form_at(g, phi), _binary_form_at(h, phi)
            if hv == 0.0:
                break
            step = gv / hv
            if abs(step) > root_tol or abs(_binary_form_at(g, phi - step)) >= abs(gv):
                break
            phi -= step
        return phi if abs(_binary_form_at(g, phi)) <= tol * g_ref else None

    lines: list[float] = []  # angles in [0, π): one per line

    def add(phi: float) -> None:
        phi = float(np.mod(phi, np.pi))
        if phi > np.pi - root_tol:
            phi -= np.pi
        if all(min(abs(phi - q), np.pi - abs(phi - q)) > root_tol for q in lines):
            lines.append(phi)  # else: the same line seen twice (both charts)

    # Coefficients at rounding level are zeroed for the root finder only (a subnormal leading
    # coefficient would overflow the companion matrix); the polishing uses the exact g.
    g0 = np.where(np.abs(g) <= 1e-13 * np.max(np.abs(g)), 0.0, g)
    # chart t = w1/w2 (numpy.roots wants the highest power first): G(t, 1) = Σ_k g_k t^k;
    # chart s = w2/w1: G(1, s) = Σ_k g_k s^{p−k}
    for poly, to_angle in (
        (g0[::-1], lambda t: float(np.arctan2(1.0, t))),
        (g0, lambda s: float(np.arctan2(s, 1.0))),
    ):
        for centroid, members in _root_clusters(np.roots(poly), tol):
            phi = None
            if abs(centroid.imag) <= root_tol * max(1.0, abs(centroid)):
                if abs(centroid.real) <= 1.0:
                    phi = polish(to_angle(centroid.real))
                    if phi is not None:
                        add(phi)
                        continue
            for r in members:  # the cluster was not one multiple root: its members one by one
                if abs(r.imag) <= root_tol * max(1.0, abs(r)) and abs(r.real) <= 1.0:
                    phi = polish(to_angle(r.real))
                    if phi is not None:
                        add(phi)

    out = []
    for phi in sorted(lines):
        u = _canonical(np.array([np.cos(phi), np.sin(phi)]))
        for v in (u, -u):
            second = _binary_form_at(h, float(np.arctan2(v[1], v[0])))
            if abs(second) <= root_tol * h_ref:
                kind = "degenerate"
            elif second < 0:
                kind = "max"
            else:
                kind = "min"
            out.append((v, kind))
    return out


# --------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------


def critical_orientations(
    p: int, xt: np.ndarray, y: np.ndarray, *, tol: float = 1e-10
) -> list[CriticalOrientation] | None:
    """Critical points of ``F(w) = (1/n) Σ y_i (w·x̃_i)^p`` on the unit sphere, classified.

    Args:
        p: multiplicity of the activation (integer ``>= 1``).
        xt: inputs ``x̃_i`` as rows, shape ``(n, D)`` (bias coordinate last, if any).
        y: scalar targets, shape ``(n,)`` or ``(n, 1)``.
        tol: relative tolerance. "Zero" means below ``tol`` times ``(1/n) Σ |y_i| |x̃_i|^p``
            (times ``p`` for ``dF/dφ``). The looser ``√tol`` is used where rounding is
            amplified: imaginary parts of roots, merging nearby lines, and the degenerate
            second-derivative test for ``D = 2``.

    Returns:
        The orientations sorted by ``value`` descending (both ``±u`` of every critical line;
        between equal values ``+u`` first, ``+u`` having its largest entry positive);
        ``[]`` when ``F`` is constant on the sphere (e.g. ``y = 0``); ``None`` for ``p >= 3``
        with ``D >= 3`` (no closed form). Method per case: ``D = 1`` → the two points ``±1``;
        ``p = 1`` → ``±z/|z|``; ``p = 2`` → eigenvectors of ``M``; ``D = 2`` → roots of
        ``dF/dφ`` (at most ``p`` lines, ``2p`` orientations).

    Raises:
        EffdynError (a ``ValueError``): ``p < 1``, ``y`` with more than one output column,
            or shapes that do not fit.
    """
    p = _check_p(p)
    xt, y = _check_data(xt, y)
    tol = float(tol)
    if not (np.isfinite(tol) and 0.0 < tol < 1.0):
        raise EffdynError(f"tol must be in (0, 1), got {tol!r}")
    D = xt.shape[1]
    y_max = float(np.max(np.abs(y)))
    x_max = float(np.max(np.abs(xt)))
    if y_max == 0.0 or x_max == 0.0:
        return []  # F ≡ 0
    # The orientations do not change when y or x̃ is scaled by a positive number; solving on
    # data of size ~1 avoids overflow and underflow (values are computed on the original data).
    xs, ys = xt / x_max, y / y_max
    if D == 1:
        found = _orientations_d1(p, xs, ys, tol)
    elif p == 1:
        found = _orientations_p1(xs, ys, tol)
    elif p == 2:
        found = _orientations_p2(xs, ys, tol)
    elif D == 2:
        found = _orientations_d2(p, xs, ys, tol)
    else:
        return None
    return _sorted([_make(p, xt, y, u, kind) for u, kind in found])


def stable_orientations(
    points: Iterable[CriticalOrientation] | None, sign: int
) -> list[CriticalOrientation]:
    """The orientations that attract neurons with ``sign(a·c_p) = sign``.

    ``sign = +1`` → the local maxima of ``F``, ``sign = −1`` → the local minima (saddles and
    degenerate points attract nobody). ``points`` is the output of
    :func:`critical_orientations`; ``None`` (no closed form) gives ``[]``.
    """
    if isinstance(sign, bool) or sign not in (1, -1):
        raise EffdynError(f"sign must be +1 or -1, got {sign!r}")
    if points is None:
        return []
    return [c for c in points if c.attracts == sign]
