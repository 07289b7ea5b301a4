"""Safe parsing of an activation written as an expression in ``x``.

The string is parsed by Python's :mod:`ast` into a syntax tree and that tree is walked
node by node, building the sympy expression directly. Nothing is ever passed to ``eval``
(``sympy.sympify``/``parse_expr`` do call it, which is why they are not used): only
numbers, the variable ``x``, the constants ``pi`` and ``E``, the arithmetic operators and
the whitelisted functions below are accepted. Attribute access, subscripts, lambdas,
strings, keywords, comprehensions and every other name are refused with a one-line
:class:`~effdyn.errors.ActivationError`.

Size limits keep a hostile string from making sympy work forever: at most
``MAX_LENGTH`` characters, ``MAX_NODES`` syntax nodes, and numeric exponents of magnitude
at most ``MAX_EXPONENT``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import sympy as sp

from ..errors import ActivationError

X = sp.Symbol("x", real=True)
"""The variable every activation is written in."""

MAX_LENGTH = 400
MAX_NODES = 200
MAX_EXPONENT = 64

LEAKY_SLOPE = sp.Rational(1, 100)


def _leaky_relu(s: sp.Expr, slope: sp.Expr = LEAKY_SLOPE) -> sp.Expr:
    return sp.Max(s, slope * s)


# Named activations: usable as a whole string ("gelu") or as a function ("gelu(2*x)").
NAMED: dict[str, Callable[..., sp.Expr]] = {
    "relu": lambda s: sp.Max(0, s),
    "leaky_relu": _leaky_relu,
    "sigmoid": lambda s: 1 / (1 + sp.exp(-s)),
    "softplus": lambda s: sp.log(1 + sp.exp(s)),
    "silu": lambda s: s / (1 + sp.exp(-s)),
    "gelu": lambda s: s * (1 + sp.erf(s / sp.sqrt(2))) / 2,
    "xtanh": lambda s: s * sp.tanh(s),
    "x2tanh": lambda s: s**2 * sp.tanh(s),
}

FUNCTIONS: dict[str, Callable[..., sp.Expr]] = {
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "asinh": sp.asinh,
    "atan": sp.atan,
    "arctan": sp.atan,
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "erf": sp.erf,
    "erfc": sp.erfc,
    "abs": sp.Abs,
    "Abs": sp.Abs,
    "max": sp.Max,
    "Max": sp.Max,
    "min": sp.Min,
    "Min": sp.Min,
    "Heaviside": sp.Heaviside,
    "sign": sp.sign,
    **NAMED,
}

CONSTANTS: dict[str, sp.Expr] = {"x": X, "pi": sp.pi, "E": sp.E}

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
    ast.BitXor: lambda a, b: a**b,  # "x^2" means a power, as in sympy's convert_xor
}


def parse_activation(text: str) -> sp.Expr:
    """Parse ``text`` into a sympy expression in :data:`X` without running any code.

    A bare known name (``"relu"``, ``"tanh"``, ``"gelu"``, ...) means that function of ``x``.

    >>> parse_activation("x*tanh(x)")
    x*tanh(x)
    >>> parse_activation("relu")
    Max(0, x)
    """
    if not isinstance(text, str):
        raise ActivationError(f"activation must be a string, got {type(text).__name__}")
    source = text.strip()
    if not source:
        raise ActivationError("activation is empty")
    if len(source) > MAX_LENGTH:
        raise ActivationError(f"activation is longer than {MAX_LENGTH} characters")
    if source in FUNCTIONS:
        return FUNCTIONS[source](X)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        msg = f"activation {source!r} is not a valid expression ({err.msg})"
        raise ActivationError(msg) from None
    n_nodes = sum(1 for _ in ast.walk(tree))
    if n_nodes > MAX_NODES:
        raise ActivationError(f"activation {source!r} has more than {MAX_NODES} syntax nodes")
    expr = _build(tree.body, source)
    if not isinstance(expr, sp.Expr):
        raise ActivationError(f"activation {source!r} is not a scalar expression")
    if expr.free_symbols - {X}:
        raise ActivationError(f"activation {source!r} uses variables other than x")
    return expr


def _build(node: ast.AST, source: str) -> sp.Expr:
    """Turn one whitelisted syntax node into sympy; refuse everything else."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ActivationError(f"activation {source!r}: only numbers are allowed as literals")
        # Exact rationals: 0.01 becomes 1/100, so coefficients stay exact.
        return sp.Integer(value) if isinstance(value, int) else sp.Rational(repr(value))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise ActivationError(f"activation {source!r}: unknown name {node.id!r} (write it in x)")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _build(node.operand, source)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _build(node.left, source), _build(node.right, source)
        if isinstance(node.op, ast.Pow | ast.BitXor):
            _check_exponent(right, source)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Call):
        return _build_call(node, source)
    raise ActivationError(
        f"activation {source!r}: {type(node).__name__} is not allowed "
        "(only numbers, x, pi, E, + - * / ** and whitelisted functions)"
    )


def _build_call(node: ast.Call, source: str) -> sp.Expr:
    if not isinstance(node.func, ast.Name):
        raise ActivationError(
            f"activation {source!r}: only whitelisted functions may be called, "
            f"not a {type(node.func).__name__}"
        )
    if node.func.id not in FUNCTIONS:
        what = node.func.id
        allowed = ", ".join(sorted(FUNCTIONS))
        raise ActivationError(
            f"activation {source!r}: function {what!r} is not allowed (allowed: {allowed})"
        )
    if node.keywords:
        raise ActivationError(f"activation {source!r}: keyword arguments are not allowed")
    args = [_build(arg, source) for arg in node.args]
    try:
        return FUNCTIONS[node.func.id](*args)
    except TypeError:
        raise ActivationError(
            f"activation {source!r}: wrong number of arguments to {node.func.id}()"
        ) from None


def _check_exponent(exponent: sp.Expr, source: str) -> None:
    if exponent.is_number and bool(sp.Abs(exponent) > MAX_EXPONENT):
        raise ActivationError(
            f"activation {source!r}: exponent {exponent} exceeds the limit {MAX_EXPONENT}"
        )
