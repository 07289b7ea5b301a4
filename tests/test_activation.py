"""Activation analysis: σ(0), multiplicity p and c_p = σ^(p)(0)/p!
(docs/theory/multiplicity.md#drift).

Expected values come from the table in docs/theory/multiplicity.md (Zhou et al. 2022) or are
computed here
independently with mpmath's Taylor coefficients — never from effdyn's own output.
"""

import mpmath
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from effdyn.errors import ActivationError
from effdyn.symbolic import analyze_activation, derive

# docs/theory/multiplicity.md#drift: (activation, σ(0), p, c_p)
TABLE = [
    ("tanh(x)", 0, 1, 1),
    ("x*tanh(x)", 0, 2, 1),
    ("x**2*tanh(x)", 0, 3, 1),
    ("sin(x)", 0, 1, 1),
    ("x - sin(x)", 0, 3, sp.Rational(1, 6)),
    ("sigmoid", sp.Rational(1, 2), 1, sp.Rational(1, 4)),
    ("softplus", sp.log(2), 1, sp.Rational(1, 2)),
    ("silu", 0, 1, sp.Rational(1, 2)),
    ("gelu", 0, 1, sp.Rational(1, 2)),
    ("xtanh", 0, 2, 1),
    ("x2tanh", 0, 3, 1),
]


@pytest.mark.parametrize(("text", "sigma0", "p", "c"), TABLE)
def test_table_rows(text, sigma0, p, c):
    act = analyze_activation(text)
    assert act.smooth
    assert act.multiplicity == p
    assert sp.simplify(act.coefficient - c) == 0
    assert sp.simplify(act.sigma0 - sigma0) == 0


# Activations not in the table, as mpmath functions for an independent Taylor expansion.
OFF_TABLE = {
    "sin(x)**2": lambda t: mpmath.sin(t) ** 2,
    "cos(x) - 1": lambda t: mpmath.cos(t) - 1,
    "exp(x) - 1 - x": lambda t: mpmath.exp(t) - 1 - t,
    "atan(x) - x": lambda t: mpmath.atan(t) - t,
    "3*tanh(2*x)": lambda t: 3 * mpmath.tanh(2 * t),
    "x**2*sin(x)**2/5": lambda t: t**2 * mpmath.sin(t) ** 2 / 5,
    "log(1 + x**2)": lambda t: mpmath.log(1 + t**2),
    "sinh(x) - x + 2": lambda t: mpmath.sinh(t) - t + 2,
    "erf(x)": lambda t: mpmath.erf(t),
    "tanh(x) + x**2/2": lambda t: mpmath.tanh(t) + t**2 / 2,
}


def _taylor(fn, order=8):
    mpmath.mp.dps = 40
    return mpmath.taylor(fn, 0, order)


@pytest.mark.parametrize("text", sorted(OFF_TABLE))
def test_activations_off_the_table_match_mpmath(text):
    coeffs = _taylor(OFF_TABLE[text])
    p = next(k for k in range(1, len(coeffs)) if abs(coeffs[k]) > 1e-30)
    act = analyze_activation(text)
    assert act.multiplicity == p
    assert float(act.coefficient) == pytest.approx(float(coeffs[p]), rel=1e-14)
    assert float(act.sigma0) == pytest.approx(float(coeffs[0]), abs=1e-15)


@settings(max_examples=25, deadline=None)
@given(
    p=st.integers(1, 5),
    num=st.integers(-9, 9).filter(lambda v: v != 0),
    den=st.integers(1, 9),
    inner=st.sampled_from(["sin", "tanh", "atan"]),
)
def test_generated_compositions(p, num, den, inner):
    """σ(x) = (num/den)·g(x)^p for g with g'(0) = 1: multiplicity p, c_p = num/den."""
    act = analyze_activation(f"{num}/{den}*{inner}(x)**{p}")
    assert act.multiplicity == p
    assert act.coefficient == sp.Rational(num, den)


@pytest.mark.parametrize(
    ("text", "right", "left"),
    [
        ("relu", 1, 0),
        ("leaky_relu", 1, -sp.Rational(1, 100)),
        ("abs(x)", 1, 1),
        ("leaky_relu(x, 0.2)", 1, -sp.Rational(1, 5)),
        ("max(0, x)", 1, 0),
    ],
)
def test_relu_like_is_not_read_as_x(text, right, left):
    """sympy's one-sided series reads Max(0,x) as x; effdyn must not
    (docs/theory/multiplicity.md#non-smooth-activations)."""
    act = analyze_activation(text)
    assert not act.smooth
    assert act.multiplicity is None and act.coefficient is None
    assert act.degree == 1 and act.homogeneous
    assert (act.coeff_right, act.coeff_left) == (right, left)


@pytest.mark.parametrize(
    ("text", "homogeneous"),
    [
        ("x**2", True),
        ("3*relu(x)**3", True),
        ("x + exp(-1/x**2)", False),  # every Taylor term past x vanishes, σ ≠ x
        ("relu(x)*(1 + exp(-1/x**2))", False),
        ("tanh", False),
    ],
)
def test_homogeneity_is_exact_beyond_the_series(text, homogeneous):
    """σ − σ(0) = c·t^k on each half-line, decided exactly: a flat correction that no
    expansion sees still makes σ non-homogeneous (docs/theory/multiplicity.md)."""
    assert analyze_activation(text).homogeneous is homogeneous


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("exp(-1/x**2)", "flat"),
        ("exp(-1/x**4)*tanh(x)", "flat"),
        ("2", "flat"),
        ("1/x", "not defined or not finite"),
        ("log(x)", "not defined or not finite"),
        ("sqrt(x)", "not defined or not finite"),
        ("Heaviside(x)", "jumps"),
        ("sign(x)", "jumps"),
    ],
)
def test_unusable_activations_are_refused_with_the_reason(text, reason):
    with pytest.raises(ActivationError, match=reason) as info:
        analyze_activation(text)
    assert "\n" not in str(info.value)


UNSAFE = [
    "__import__('os').system('touch /tmp/effdyn_pwned')",
    "x.__class__",
    "(lambda: 1)()",
    "'x'",
    "[x for x in ()]",
    "exec('1')",
    "eval('x')",
    "y + x",
    "x if x else 1",
    "tanh(x=1)",
    "x**10**10",
    "x" + "+x" * 300,
]


@pytest.mark.parametrize("text", UNSAFE)
def test_unsafe_or_invalid_text_is_refused(text, tmp_path):
    with pytest.raises(ActivationError) as info:
        analyze_activation(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("acts", "q"),
    [
        (["tanh"], 2),
        (["x*tanh(x)"], 3),
        (["x**2*tanh(x)"], 4),
        (["tanh", "tanh"], 3),
        (["tanh"] * 3, 4),
        (["x*tanh(x)", "tanh"], 4),  # 1 + 1·(1 + 2)
        (["tanh", "x*tanh(x)"], 5),  # 1 + 2·(1 + 1)
        (["x*tanh(x)", "x*tanh(x)"], 7),  # 1 + 2·(1 + 2)
        (["relu", "relu"], 3),
    ],
)
def test_leading_degree(acts, q):
    deriv = derive(acts)
    assert deriv.degree == q
    assert deriv.field_degree == q - 1
    assert deriv.finite_time_blowup == (q - 1 >= 2)


def test_sigma0_drift_is_reported_not_dropped():
    deriv = derive("sigmoid", 3)
    assert [t.layer for t in deriv.drift] == [1, 2]
    # σ_2(0) 𝟙 feeds W3 directly: a degree-1 term; σ_1(0) passes W2 and φ_2: degree 2.
    assert [t.degree for t in deriv.drift] == [2, 1]
    assert all(t.degree < deriv.degree for t in deriv.drift)
    assert derive("tanh", 3).drift == ()
