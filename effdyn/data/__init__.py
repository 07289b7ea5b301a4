"""Built-in data sets (paper targets and scikit-learn's digits); see :mod:`.datasets`."""

from effdyn.data.datasets import DATASETS, load_dataset

__all__ = ["DATASETS", "load_dataset"]
