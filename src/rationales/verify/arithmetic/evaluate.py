"""Exact, bounded evaluation of the parser's expression trees into sympy objects.

Nothing is ever ``eval``-ed or ``sympify``-ed: each tree node maps to one sympy operation on
sympy numbers (or symbols, in symbolic mode). Every operation is bounded before it runs:
numbers and intermediate results have at most ``MAX_BITS`` bits in numerator and denominator,
powers are refused when their result would be larger (so ``9^9^9^9`` is refused, not
computed), factorials above ``MAX_FACTORIAL``, binomials above ``MAX_BINOMIAL_N``, polynomial
degree above ``MAX_DEGREE``. A refused computation raises ``Unsupported`` (the claim gets no
verdict); a computation that cannot have a value (division by zero) raises ``Undefined`` (the
claim is wrong).
"""

from __future__ import annotations

import ast
import math
from fractions import Fraction
from typing import Any

from .parser import Node

#: bits in the numerator and the denominator of any number computed (2**1000 ~ 1e301, fits a float)
MAX_BITS = 1000
MAX_FACTORIAL = 300
MAX_BINOMIAL_N = 5000
#: largest integer exponent on a symbolic base, and largest total degree of a symbolic expression
MAX_SYMBOLIC_EXPONENT = 10
MAX_DEGREE = 24
MAX_SYMBOLS = 8
#: terms an expanded symbolic expression may have (estimated before expanding)
MAX_TERMS = 60
#: tree nodes evaluated per expression
MAX_NODES = 400
#: longest string ``evaluate`` accepts
MAX_SRC_CHARS = 2000


class Undefined(Exception):
    """Division by zero and the like: the written claim cannot be right."""


class Unsupported(Exception):
    """Something the safe evaluator does not compute (huge powers, complex roots, symbols)."""


def _bits(v: Any) -> int:
    """Size of a sympy number: the larger bit length of numerator and denominator (0 when not rational)."""
    if getattr(v, "is_Rational", False):
        return max(int(v.p).bit_length(), int(v.q).bit_length())
    return 0


def _guard(v: Any) -> Any:
    if _bits(v) > MAX_BITS:
        raise Unsupported("number too large")
    if getattr(v, "is_Number", False) and not v.is_Rational and not v.is_finite:
        raise Undefined("not finite")
    return v


def value(node: Node, symbols: dict[str, Any] | None = None) -> Any:
    """The exact value of a tree as a sympy expression. ``symbols`` maps names to sympy values or
    sympy Symbols; a name not in it raises ``Unsupported``. Always bounded (see the module doc)."""
    import sympy

    budget = [MAX_NODES]

    def ev(x: Node) -> tuple[Any, int, int]:  # (value, polynomial degree estimate, expanded terms estimate)
        budget[0] -= 1
        if budget[0] < 0:
            raise Unsupported("expression too large")
        kind = x[0]
        if kind == "n":
            f: Fraction = x[1]
            if max(f.numerator.bit_length(), f.denominator.bit_length()) > MAX_BITS:
                raise Unsupported("number too large")
            return sympy.Rational(f.numerator, f.denominator), 0, 1
        if kind == "pi":
            return sympy.pi, 0, 1
        if kind == "s":
            if symbols is None or x[1] not in symbols:
                raise Unsupported(f"unknown quantity {x[1]}")
            v = symbols[x[1]]
            return v, (1 if isinstance(v, sympy.Symbol) else 0), 1
        if kind == "neg":
            v, d, t = ev(x[1])
            return -v, d, t
        if kind in ("sqrt", "!"):
            v, d, _ = ev(x[1])
            if d:
                raise Unsupported(f"{kind} of a symbolic expression")
            if kind == "sqrt":
                if v.is_negative:
                    raise Unsupported("square root of a negative number")
                return _guard(sympy.sqrt(v)), 0, 1
            if not (v.is_Integer and 0 <= v <= MAX_FACTORIAL):
                raise Unsupported("factorial out of range")
            return sympy.Integer(math.factorial(int(v))), 0, 1
        a, da, ta = ev(x[1])
        b, db, tb = ev(x[2])
        if kind in ("+", "-"):
            t = ta + tb if (da or db) else 1
            if t > MAX_TERMS:
                raise Unsupported("expression too large")
            return _guard(a + b if kind == "+" else a - b), max(da, db), t
        if kind == "*":
            if da + db > MAX_DEGREE or ta * tb > MAX_TERMS:
                raise Unsupported("expression too large")
            return _guard(a * b), da + db, ta * tb
        if kind == "/":
            if b == 0:
                raise Undefined("division by zero")
            if db:
                if ta * tb > MAX_TERMS:
                    raise Unsupported("expression too large")
                return a / b, da + db, ta * tb
            return _guard(a / b), da, ta
        if kind == "C":
            if da or db:
                raise Unsupported("binomial of a symbolic expression")
            if not (a.is_Integer and b.is_Integer and 0 <= a <= MAX_BINOMIAL_N):
                raise Unsupported("binomial out of range")
            k = int(b)
            return _guard(sympy.Integer(math.comb(int(a), k) if 0 <= k else 0)), 0, 1
        if kind == "^":
            v, d = _power(a, da, b, db)
            t = math.comb(ta + int(b) - 1, int(b)) if d and ta > 1 else ta
            if t > MAX_TERMS:
                raise Unsupported("expression too large")
            return v, d, t
        raise Unsupported(f"unknown node {kind!r}")

    def _power(a: Any, da: int, b: Any, db: int) -> tuple[Any, int]:
        if db or not b.is_Rational:
            raise Unsupported("non-numeric exponent")
        if da:
            if not (b.is_Integer and 0 <= b <= MAX_SYMBOLIC_EXPONENT and da * int(b) <= MAX_DEGREE):
                raise Unsupported("symbolic power out of range")
            return a ** b, da * int(b)
        if b.q > 4 or abs(b.p) > 10**6:
            raise Unsupported("exponent out of range")
        if a == 0:
            if b < 0:
                raise Undefined("zero to a negative power")
            return (sympy.Integer(0) if b > 0 else sympy.Integer(1)), 0
        if a in (1, -1) and b.is_Integer:
            return a ** b, 0
        if a.is_Rational:
            size = _bits(a) * abs(int(b.p))
        elif b.is_Integer and abs(b) <= 64:
            size = 0
        else:
            raise Unsupported("power of an irrational number")
        if size > MAX_BITS * max(1, int(b.q)):
            raise Unsupported("power too large")
        if a.is_negative and not b.is_Integer:
            raise Unsupported("root of a negative number")
        return _guard(a ** b), 0

    v, _, _ = ev(node)
    return v


def real_value(node: Node, symbols: dict[str, Any] | None = None) -> Any:
    """``value`` for a claim: a real number, or ``Unsupported``."""
    v = value(node, symbols)
    if not getattr(v, "is_real", False) or v.free_symbols:
        raise Unsupported("not a real number")
    return v


def as_fraction(v: Any) -> Fraction:
    """A sympy real number as an exact Fraction (irrationals to 40 significant digits)."""
    if getattr(v, "is_Rational", False):
        return Fraction(int(v.p), int(v.q))
    import sympy

    f = sympy.N(v, 40)
    if not f.is_finite:
        raise Unsupported("not finite")
    return Fraction(str(f))


# ------------------------------------------------------------------ the public string form

_AST_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}


def _from_ast(node: ast.AST, depth: int = 0) -> Node:
    if depth > 100:
        raise ValueError("expression nested too deeply")
    if isinstance(node, ast.Expression):
        return _from_ast(node.body, depth + 1)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if isinstance(node.value, int):
            return ("n", Fraction(node.value))
        return ("n", Fraction(repr(node.value)))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _from_ast(node.operand, depth + 1)
        return ("neg", inner) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _AST_OPS:
        return (_AST_OPS[type(node.op)], _from_ast(node.left, depth + 1), _from_ast(node.right, depth + 1))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("sqrt", "factorial",
                                                                                            "binomial")
            and not node.keywords):
        args = [_from_ast(a, depth + 1) for a in node.args]
        if node.func.id == "binomial" and len(args) == 2:
            return ("C", args[0], args[1])
        if len(args) == 1:
            return ("sqrt" if node.func.id == "sqrt" else "!", args[0])
    raise ValueError(f"unsupported expression node {type(node).__name__}")


def evaluate(src: str) -> Any:
    """Exact value (a sympy number) of a normalised arithmetic expression such as the ``lhs`` a
    claim reports (``"(15 / 100) * 80"``, ``"sqrt(16)"``, ``"binomial(6, 2)"``).

    The string is only *parsed* (Python's ``ast``, syntax tree only), converted to the tree
    above and evaluated with the bounds of ``value``; anything but numbers, + - * / ** (or ^),
    unary minus, sqrt, factorial and binomial raises ``ValueError``. Never ``eval``."""
    if not isinstance(src, str) or len(src) > MAX_SRC_CHARS:
        raise ValueError("expression too long")
    try:
        tree = ast.parse(src.replace("^", "**"), mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as e:
        raise ValueError(f"not an arithmetic expression: {e}") from None
    v = value(_from_ast(tree))
    if not v.is_real:
        raise Unsupported("not a real number")
    return v


__all__ = ["Undefined", "Unsupported", "value", "real_value", "as_fraction", "evaluate", "MAX_BITS"]
