"""Built-in data sets: the paper targets (THEORY.md §6) and scikit-learn's bundled digits.

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
    which are not available offline (THEORY.md §6). ``x`` has shape ``(1797, 8, 8)``, pixel
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


DATASETS: dict[str, Loader] = {
    "zhou2022-fig2": zhou2022_fig2,
    "zhou2022-fig5": zhou2022_fig5,
    "digits": digits,
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
