"""Built-in data sets: the paper targets (docs/theory/experiments.md#settings-from-the-papers),
scikit-learn's bundled digits (a
scalar label target, and one digit against the rest), and synthetic images for the CNN.

Every loader takes a ``seed`` and returns ``(x, y)`` as fresh float64 arrays with ``y`` of
shape ``(n, 1)``; the same seed always gives the same arrays. Loaders that are not random
ignore the seed. Only numpy is imported at module level (scikit-learn is imported lazily by
the one loader that needs it), so the command line starts fast.

Example::

    >>> x, y = load_dataset("zhou2022-fig2", seed=0)
    >>> x.shape, y.shape
    ((80, 5), (80, 1))
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from effdyn.errors import ProblemError

Loader = Callable[[int], tuple[np.ndarray, np.ndarray]]


def zhou2022_fig2(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Zhou et al. 2022, Fig. 2: ``d = 5``, ``n = 80``.

    ``x ~ U[-4, 2]^5`` drawn with ``np.random.default_rng(seed).uniform`` (one call, shape
    ``(80, 5)``) and ``y = Σ_k 3.5 sin(5 x_k + 1)``; shapes ``(80, 5)`` and ``(80, 1)``.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-4.0, 2.0, size=(80, 5))
    y = np.sum(3.5 * np.sin(5.0 * x + 1.0), axis=1, keepdims=True)
    return x, y


def zhou2022_fig5(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Zhou et al. 2022, Fig. 5/6: ``d = 1``, 40 evenly spaced points on ``[-1, 1.5]``.

    ``x = np.linspace(-1, 1.5, 40)`` and ``y = sin(3x) + sin(6x)/2``; shapes ``(40, 1)`` and
    ``(40, 1)``. Deterministic: the seed is unused.
    """
    del seed  # evenly spaced points: nothing random
    x = np.linspace(-1.0, 1.5, 40)[:, None]
    y = np.sin(3.0 * x) + np.sin(6.0 * x) / 2.0
    return x, y


def digits(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits (``sklearn.datasets.load_digits``), all 1797 images.

    The real image data set standing in for the CIFAR-10 subsets of Zhou et al. 2023 (CNN),
    which are not available offline (docs/theory/experiments.md#settings-from-the-papers). ``x`` has
    shape ``(1797, 8, 8)``, pixel
    values divided by 16 so they lie in ``[0, 1]``; ``y`` is the digit label standardized to
    a scalar target, ``(label - mean(label)) / std(label)``, shape ``(1797, 1)``.
    Deterministic: the seed is unused.
    """
    del seed  # the full bundled set, in its stored order
    from sklearn.datasets import load_digits  # lazy: scikit-learn is slow to import

    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.float64) / 16.0
    labels = np.asarray(bunch.target, dtype=np.float64)
    y = ((labels - labels.mean()) / labels.std())[:, None]
    return x, y


def digits_one_vs_rest(digit: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits with a binary target: one digit against the rest.

    ``x`` as in :func:`digits` (``(1797, 8, 8)``, pixels in ``[0, 1]``); ``y = +1`` for the
    images of ``digit`` and ``−1`` for the others, NOT centred (``mean(y) ≈ −0.8``), shape
    ``(1797, 1)``. Registered as ``"digits-0"`` … ``"digits-9"``. Deterministic.

    Why this target for the CNN (docs/theory/cnn.md#effective-dynamics): kernels condense on the top
    left singular
    vector ``u₁`` of ``Z = ⟨y P(x̃)ᵀ⟩`` sharply only with a spectral gap, since the residual
    misalignment at escape is ``~ ε^{1 − s₂/s₁}``. The standardized labels of :func:`digits`
    give ``s₂/s₁ ≈ 0.89`` for 3×3 kernels (exponent 0.11: hardly any condensation at
    reachable ε); one digit against the rest gives ``s₂/s₁ ≈ 0.3`` — its uncentred mean
    makes ``u₁`` close to the averaging kernel (with the bias), and the rank-one fit along
    ``u₁`` explains about 65% of ``⟨y²⟩``, so the 10% loss drop that defines escape is
    reached by the leading-order model itself.
    """
    if not (isinstance(digit, int) and 0 <= digit <= 9):
        raise ProblemError(f"digit must be an integer 0..9, got {digit!r}")
    x, _ = digits(seed)
    from sklearn.datasets import load_digits

    labels = np.asarray(load_digits().target)
    y = np.where(labels == digit, 1.0, -1.0)[:, None]
    return x, y


def digits_classes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits as a 10-class problem (for ``loss = "cross_entropy"``).

    ``x`` is every image flattened to 64 features, pixels divided by 16 (in ``[0, 1]``),
    shape ``(1797, 64)``; ``y`` is the integer class label ``0 … 9`` as a float column,
    shape ``(1797, 1)``. Deterministic: the seed is unused.
    """
    x, _ = digits(seed)
    from sklearn.datasets import load_digits

    labels = np.asarray(load_digits().target, dtype=np.float64)
    return x.reshape(len(x), -1), labels[:, None]


STRIPES_N = 200
STRIPES_SIZE = 8
STRIPES_AMPLITUDE = 0.15


def synthetic_stripes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic images: vertical stripes buried in noise, with the stripes' sign as target.

    With ``rng = np.random.default_rng(seed)``: ``y = rng.choice([-1, 1], size=n)`` then
    ``ξ = rng.standard_normal((n, 8, 8))``, and

        x_i(r, c) = 0.15 · y_i · (−1)^c + ξ_i(r, c),      n = 200,

    shapes ``(200, 8, 8)`` and ``(200, 1)``. Every k×k patch of the stripe pattern is ``±``
    one motif, so ``Z = ⟨y P(x̃)ᵀ⟩`` is that motif times a ±1 pattern over positions plus
    sampling noise of size ``~ √(k²·positions/n)``: a planted top singular vector with a gap
    ``s₂/s₁ ≈ 0.25`` for 3×3 kernels (docs/theory/cnn.md#misalignment) — small, fast, and the answer
    is known.
    """
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array([-1.0, 1.0]), size=STRIPES_N)
    noise = rng.standard_normal((STRIPES_N, STRIPES_SIZE, STRIPES_SIZE))
    stripes = np.ones((STRIPES_SIZE, 1)) * (-1.0) ** np.arange(STRIPES_SIZE)[None, :]
    x = STRIPES_AMPLITUDE * y[:, None, None] * stripes[None] + noise
    return x, y[:, None]


def _one_vs_rest(digit: int) -> Loader:
    def loader(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        return digits_one_vs_rest(digit, seed)

    loader.__doc__ = f"Digit {digit} against the rest (:func:`digits_one_vs_rest`)."
    return loader


DATASETS: dict[str, Loader] = {
    "zhou2022-fig2": zhou2022_fig2,
    "zhou2022-fig5": zhou2022_fig5,
    "digits": digits,
    **{f"digits-{d}": _one_vs_rest(d) for d in range(10)},
    "digits-classes": digits_classes,
    "synthetic-stripes": synthetic_stripes,
}
"""Built-in data sets by name: each value maps ``seed`` to ``(x, y)``."""


def load_dataset(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Load the built-in data set ``name`` as float64 ``(x, y)`` with ``y`` of shape ``(n, 1)``.

    Raises :class:`~effdyn.errors.ProblemError` naming the known data sets when ``name`` is
    not one of :data:`DATASETS`.
    """
    loader = DATASETS.get(name)
    if loader is None:
        known = ", ".join(sorted(DATASETS))
        raise ProblemError(f"unknown dataset {name!r} (known: {known})")
    return loader(seed)
