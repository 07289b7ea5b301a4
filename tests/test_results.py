"""The one result vocabulary (effdyn.results, docs/results.md).

The integers are a storage format (sweep stores, files, arrays out of compiled solves), so
they are pinned here against the documented table; every other test compares codes by name.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from effdyn.errors import EffdynError
from effdyn.results import NAME_TABLE, Result, check, describe

DOCUMENTED = {
    "blowup": 0,
    "escaped": 1,
    "no_blowup": 2,
    "max_steps": 3,
    "nonfinite": 4,
    "solver_failed": 5,
    "completed": 6,
    "stopped": 7,
    "converged": 8,
    "running": 9,
    "pending": 10,
    "failed": 11,
}
"""The name table of docs/results.md: stored integers must never change."""


def test_integers_are_the_documented_table():
    assert {code.label: int(code) for code in Result} == DOCUMENTED
    assert NAME_TABLE == {value: name for name, value in DOCUMENTED.items()}
    assert len(set(NAME_TABLE.values())) == len(NAME_TABLE)  # one name per integer


@pytest.mark.parametrize("code", list(Result))
def test_names_and_values_round_trip(code):
    assert Result.from_name(code.label) is code
    assert Result.from_name(code.label.upper()) is code
    assert Result.from_value(int(code)) is code
    assert Result.from_value(np.int32(code)) is code  # an element of a stored int array
    assert Result.from_value(jnp.asarray(int(code))) is code  # a 0-d array from a solve
    assert NAME_TABLE[int(code)] == code.label == code.name.lower()
    assert "\n" not in code.message() and code.message()


def test_unknown_codes_and_names_are_one_line_errors():
    with pytest.raises(EffdynError, match="unknown result code 99"):
        Result.from_value(99)
    with pytest.raises(EffdynError, match="unknown result 'exploded'") as err:
        Result.from_name("exploded")
    assert "completed" in str(err.value) and "\n" not in str(err.value)


def test_failures_and_outcomes_split():
    failures = {Result.MAX_STEPS, Result.NONFINITE, Result.SOLVER_FAILED, Result.FAILED}
    assert {code for code in Result if code.failed} == failures
    outcomes = {Result.BLOWUP, Result.ESCAPED, Result.NO_BLOWUP, Result.COMPLETED}
    outcomes |= {Result.STOPPED, Result.CONVERGED}
    assert not any(code.failed for code in outcomes)
    assert {code for code in Result if code.ok} == {Result.BLOWUP, Result.ESCAPED}


@pytest.mark.parametrize("code", list(Result))
def test_check_raises_exactly_on_failures_when_throw(code):
    check(code, "never raised", throw=False)  # throw=False never raises
    check(int(code), None, throw=False)
    if code.failed:
        with pytest.raises(EffdynError, match="^the given message$"):
            check(code, "the given message", throw=True)
        with pytest.raises(EffdynError) as err:
            check(int(code), throw=True)
        assert str(err.value) == code.message()  # the code's own message by default
    else:
        check(code, "not raised", throw=True)
        check(jnp.asarray(int(code)), throw=True)


def test_codes_travel_through_jit_and_vmap():
    """Codes are plain integers inside compiled code: a per-row jnp.where picks them."""

    @jax.jit
    def classify(x):
        return jnp.where(jnp.isfinite(x), int(Result.BLOWUP), int(Result.NONFINITE))

    codes = jax.vmap(classify)(jnp.asarray([1.0, np.nan, 2.0]))
    assert [Result.from_value(c) for c in codes] == [
        Result.BLOWUP,
        Result.NONFINITE,
        Result.BLOWUP,
    ]


def test_describe_names_the_cause_of_no_blowup():
    kw = dict(energy0=1.0, field_norm0=1.0, z_norm=1.0, horizon=5.0)
    assert describe(Result.BLOWUP, **kw) == Result.BLOWUP.message()
    assert "max_steps" in describe(Result.MAX_STEPS, **kw)
    assert describe(Result.NO_BLOWUP, **kw).startswith("no blow-up by t = 5")
    assert "too slow" in describe(Result.NO_BLOWUP, **kw)
    assert "z = 0" in describe(Result.NO_BLOWUP, **{**kw, "z_norm": 0.0})
    assert "E(θ₀) = -2 ≤ 0" in describe(Result.NO_BLOWUP, **{**kw, "energy0": -2.0})
