"""Errors a user can cause.

Every mistake visible before running is an :class:`EffdynError` carrying one sentence that
names the problem; the command line prints that sentence on one line and exits with code 2.
"""


class EffdynError(ValueError):
    """Bad input to effdyn: the message is one line a user can act on."""


class ProblemError(EffdynError):
    """A problem file (or the arrays it points to) is malformed."""


class ActivationError(EffdynError):
    """An activation that cannot be parsed safely or has no usable expansion at 0."""
