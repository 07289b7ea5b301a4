"""Result codes of an effective-dynamics solve: failure is a value that survives ``vmap``.

Each trajectory carries an integer code; :func:`describe` turns it, with the trajectory's
diagnostics, into a sentence naming the likely cause and what to do.
"""

from __future__ import annotations

from enum import IntEnum


class Result(IntEnum):
    BLOWUP = 0
    """``k ≥ 2``: the norm diverged; ``t_star`` holds the blow-up time."""
    ESCAPED = 1
    """``k = 1``: exponential growth, the norm grew by the requested factor."""
    NO_BLOWUP = 2
    """Neither blow-up nor growth before the time horizon."""
    MAX_STEPS = 3
    """The solver used up ``max_steps``."""
    NONFINITE = 4
    """NaN or inf in the initial condition or along the solve."""
    SOLVER_FAILED = 5
    """The step-size controller or the event root finder failed."""

    @property
    def ok(self) -> bool:
        return self in (Result.BLOWUP, Result.ESCAPED)


def describe(
    code: int, *, energy0: float, field_norm0: float, z_norm: float, horizon: float
) -> str:
    """A one-line explanation of a result code for one trajectory."""
    code = Result(int(code))
    if code is Result.BLOWUP:
        return "blow-up in finite time"
    if code is Result.ESCAPED:
        return "exponential growth (linear effective dynamics: no finite-time blow-up)"
    if code is Result.NONFINITE:
        return (
            "non-finite values: the initialization contains NaN/inf, or the solve "
            "overflowed (check the data and the scales)"
        )
    if code is Result.MAX_STEPS:
        return "the solver reached max_steps before blow-up (raise max_steps or loosen rtol)"
    if code is Result.SOLVER_FAILED:
        return "the ODE solver failed (step size underflow or event root finding)"
    causes = []
    if z_norm == 0.0 or field_norm0 == 0.0:
        causes.append(
            "the effective field vanishes at θ₀ (zero target correlation z = 0, "
            "or a zero initialization)"
        )
    elif energy0 <= 0.0:
        causes.append(f"E(θ₀) = {energy0:.3g} ≤ 0 and the flow did not turn it positive")
    else:
        causes.append("growth too slow for the horizon")
    return f"no blow-up by t = {horizon:.3g}: " + "; ".join(causes)
