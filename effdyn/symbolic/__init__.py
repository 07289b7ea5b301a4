"""The symbolic engine: activation analysis and the leading-order derivation (sympy only).

The JAX side is in :mod:`effdyn.symbolic.bridge`, imported on demand so that the command
line starts without loading JAX.
"""

from .activation import Activation, analyze_activation
from .derivation import Derivation, DriftTerm, derivation_summary, derive
from .parse import parse_activation

__all__ = [
    "Activation",
    "Derivation",
    "DriftTerm",
    "analyze_activation",
    "derivation_summary",
    "derive",
    "parse_activation",
]
