"""effdyn — leading-order effective dynamics of neural networks at small initialization.

Derive the effective dynamics symbolically (:func:`derive`), evaluate them in JAX
(:func:`leading_order`, :func:`jax_field`), and load problem files (:func:`load_problem`).

Importing ``effdyn`` does not import JAX: the JAX-side names load on first use.
"""

from .errors import ActivationError, EffdynError, ProblemError
from .symbolic import (
    Activation,
    Derivation,
    analyze_activation,
    derivation_summary,
    derive,
    parse_activation,
)

__version__ = "0.1.0"

_LAZY = {
    "leading_order": "effdyn.symbolic.bridge",
    "jax_field": "effdyn.symbolic.bridge",
    "LeadingOrder": "effdyn.symbolic.bridge",
    "load_problem": "effdyn.problem",
    "problem_from_dict": "effdyn.problem",
    "initial_params": "effdyn.problem",
    "Problem": "effdyn.problem",
    "derive_problem": "effdyn.api",
    "predict": "effdyn.dynamics.predict",
    "Prediction": "effdyn.dynamics.predict",
    "kind_of": "effdyn.kinds",
    "ModelKind": "effdyn.kinds",
    "effective_model": "effdyn.dynamics.model",
    "solve_blowup": "effdyn.dynamics.blowup",
    "threshold_blowup_time": "effdyn.dynamics.blowup",
    "SolverOptions": "effdyn.dynamics.blowup",
    "solve_ensemble": "effdyn.dynamics.ensemble",
    "critical_orientations": "effdyn.dynamics.critical",
    "cluster_orientations": "effdyn.analysis.orientations",
    "train": "effdyn.training",
    "Capture": "effdyn.training",
    "TrainRun": "effdyn.training",
    "compare": "effdyn.compare",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'effdyn' has no attribute {name!r}")


__all__ = [
    "Activation",
    "ActivationError",
    "Derivation",
    "EffdynError",
    "ProblemError",
    "analyze_activation",
    "derivation_summary",
    "derive",
    "parse_activation",
    *_LAZY,
]
