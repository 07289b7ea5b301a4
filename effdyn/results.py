"""One result vocabulary for every computation effdyn runs (docs/results.md).

Solvers, the batched integrator, the training loop, the phase runs and the sweep store all
report with the same :class:`Result` codes. The codes are stable integers: they go into
stores and files as integers and come back out through :meth:`Result.from_value`. JSON
reports use the lower-case names (``"blowup"``, ``"completed"``, …), which are the names the
commands have always written.

Codes travel through ``jit`` and ``vmap`` as plain integer arrays (``jnp.where`` with a
per-row predicate works on them). Data-dependent messages — with ``E(θ₀)``, ``|z|`` or the
step at which the loss became NaN — are built outside ``jit`` from a code plus diagnostics
(:func:`describe` for the effective-dynamics solvers); :meth:`Result.message` is the static
one-line meaning of each code.

A code is either an **outcome** (the computation answered the question, e.g. "no blow-up
within the horizon") or a **failure** (it could not answer: ``max_steps`` used up, NaN, the
solver failed, a sweep point raised). Entry points take ``throw=False``; with ``throw=True``
a failure raises :class:`~effdyn.errors.EffdynError` with its message (:func:`check`), an
outcome never does.

>>> Result.BLOWUP.name.lower(), int(Result.BLOWUP), Result.from_name("completed")
('blowup', 0, <Result.COMPLETED: 6>)
>>> Result.MAX_STEPS.failed, Result.NO_BLOWUP.failed
(True, False)
"""

from __future__ import annotations

from enum import IntEnum

from .errors import EffdynError


class Result(IntEnum):
    """Result codes shared by every effdyn computation (stable integers; see the name table
    in docs/results.md)."""

    BLOWUP = 0
    """Effective dynamics with field degree ``k ≥ 2``: the norm diverged at ``t_star``."""
    ESCAPED = 1
    """Field degree ``k = 1``: exponential growth by the requested factor."""
    NO_BLOWUP = 2
    """Neither blow-up nor growth before the time horizon (an outcome, not a failure)."""
    MAX_STEPS = 3
    """The solver or loop used up ``max_steps`` before it could answer."""
    NONFINITE = 4
    """NaN or inf in the initial condition, the data or along the computation."""
    SOLVER_FAILED = 5
    """The step-size controller underflowed or the event root finder failed."""
    COMPLETED = 6
    """Training ran every requested step; a sweep point was computed and stored."""
    STOPPED = 7
    """Training stopped early on its ``stop_below`` rule; an integrator row stopped because
    its ``alive`` predicate failed (e.g. the horizon)."""
    CONVERGED = 8
    """A run reached its tolerance (the phase runs' loss target; an integrator row's stopping
    predicate)."""
    RUNNING = 9
    """Still running (the state inside a compiled loop; never a final answer)."""
    PENDING = 10
    """A sweep point not yet computed."""
    FAILED = 11
    """A sweep point whose computation raised (its message is stored beside it)."""

    @property
    def ok(self) -> bool:
        """True for the codes that mean "grew as the theory says" (blow-up or escape)."""
        return self in (Result.BLOWUP, Result.ESCAPED)

    @property
    def failed(self) -> bool:
        """True for failures (``throw=True`` raises on these), False for outcomes."""
        return self in _FAILURES

    @property
    def label(self) -> str:
        """The name written to JSON: ``"blowup"``, ``"completed"``, …"""
        return self.name.lower()

    def message(self) -> str:
        """The static one-line meaning of the code (for data-dependent messages see
        :func:`describe`)."""
        return _MESSAGES[self]

    @classmethod
    def from_value(cls, value) -> Result:
        """The code of an integer (a stored value, or a 0-d array from a compiled solve)."""
        try:
            return cls(int(value))
        except ValueError:
            raise EffdynError(f"unknown result code {int(value)}") from None

    @classmethod
    def from_name(cls, name: str) -> Result:
        """The code of a JSON name (``"blowup"``, ``"completed"``, …)."""
        try:
            return cls[str(name).upper()]
        except KeyError:
            names = ", ".join(code.label for code in cls)
            raise EffdynError(f"unknown result {name!r} (expected one of {names})") from None


_FAILURES = frozenset({Result.MAX_STEPS, Result.NONFINITE, Result.SOLVER_FAILED, Result.FAILED})

_MESSAGES = {
    Result.BLOWUP: "blow-up in finite time",
    Result.ESCAPED: "exponential growth (linear effective dynamics: no finite-time blow-up)",
    Result.NO_BLOWUP: "no blow-up or escape within the time horizon",
    Result.MAX_STEPS: "max_steps was reached before an answer (raise max_steps or loosen rtol)",
    Result.NONFINITE: (
        "non-finite values: the inputs contain NaN/inf, or the computation overflowed "
        "(check the data and the scales)"
    ),
    Result.SOLVER_FAILED: "the ODE solver failed (step size underflow or event root finding)",
    Result.COMPLETED: "completed",
    Result.STOPPED: "stopped early by its stopping rule",
    Result.CONVERGED: "converged to its tolerance",
    Result.RUNNING: "still running",
    Result.PENDING: "not computed yet",
    Result.FAILED: "the computation raised an error",
}

NAME_TABLE = {int(code): code.label for code in Result}
"""``{integer: JSON name}`` for every code: the table stores and files are read with."""


def describe(
    code: int, *, energy0: float, field_norm0: float, z_norm: float, horizon: float
) -> str:
    """A one-line explanation of an effective-dynamics solve's code, with its diagnostics.

    ``energy0 = E(θ₀)``, ``field_norm0 = |∇E(θ₀)|``, ``z_norm = |z|`` (the target
    correlation) and the time ``horizon`` name the likely cause of a ``no_blowup``.
    """
    code = Result.from_value(code)
    if code is Result.MAX_STEPS:
        return "the solver reached max_steps before blow-up (raise max_steps or loosen rtol)"
    if code is not Result.NO_BLOWUP:
        return code.message()
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


def check(code, message: str | None = None, *, throw: bool) -> None:
    """With ``throw=True``, raise :class:`~effdyn.errors.EffdynError` if ``code`` is a
    failure (the message is ``message``, or the code's own). Outcomes never raise."""
    if not throw:
        return
    code = Result.from_value(code)
    if code.failed:
        raise EffdynError(message or code.message())
