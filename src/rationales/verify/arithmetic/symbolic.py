"""Claims with named quantities, checked with sympy (never ``eval``, never ``sympify``).

* identities and simplifications: ``2x + 3x = 5x``, ``(a+b)^2 = a^2 + 2ab + b^2`` hold when
  ``expand(lhs - rhs) == 0``; a non-identity is called wrong only when the text says it is a
  rewrite ("simplify", "expand", "combine like terms", "factor", ...), because
  ``3x + 2 = x + 10`` is an equation to solve, not a wrong simplification;
* a solved equation, checked by substitution: ``x + 3 = 7, so x = 4`` (the equation comes
  earlier in the same step or in the step before; a trial value "if x = 5" is not a solution);
* named quantities carried from where they were defined: ``let s = 12`` ... ``2s = 24``.

Trees come from ``parser.Parser(symbolic=True)``; sympy objects are built from them node by
node (``evaluate.value``), bounded in degree, size and symbol count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .evaluate import MAX_SYMBOLS, Undefined, Unsupported, value
from .parser import Expr, Node

#: the text presents the relation as a rewrite of one side into the other
REWRITE_CUES = re.compile(r"simplif|expand|combin|factor|like terms|distribut|rewrit|collect|≡|\\equiv",
                          re.IGNORECASE)
#: the value is a trial, an assumption or a new definition, not a result
TRIAL_CUES = re.compile(r"\b(?:if|suppose|assume|assuming|try|trying|guess|test|testing|check|checking|when|"
                        r"whether|could|would|might)\b|\?", re.IGNORECASE)
#: the step sets up new unknowns: do not substitute values carried from earlier steps
SETUP_CUES = re.compile(r"\blet\b[^.=\n]{0,40}\b(?:be|denote|represent|equal the)\b|\bsuppose\b|\bassume\b|"
                        r"\bsolv|\bequation|\bunknown|\bdenote", re.IGNORECASE)


@dataclass
class Pending:
    """An equation with one unknown, waiting for the step that states its solution."""

    node: Node        # lhs - rhs
    name: str
    src: str
    expression: str
    step: int


@dataclass
class Context:
    """What a rationale has established so far: values of named quantities (``let s = 12``) and
    equations waiting for their solution. ``check_rationale`` carries one across steps."""

    values: dict[str, Fraction] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)
    step: int = 0
    letters: frozenset[str] = frozenset()  # single letters used as variables so far

    def names(self) -> frozenset[str]:
        return frozenset(self.values) | frozenset(p.name for p in self.pending)

    def next_step(self) -> None:
        """Move to the next step: equations older than the previous step are dropped."""
        self.step += 1
        self.pending = [p for p in self.pending if p.step >= self.step - 1][-8:]


def is_bare_symbol(e: Expr) -> bool:
    return e.node[0] == "s" and e.ops == 0


def sym_value(node: Node, ctx: Context, unknowns: bool) -> Any:
    """sympy value of a tree: known names substituted, other names as sympy Symbols when
    ``unknowns`` (else ``Unsupported``)."""
    import sympy

    names = _names(node)
    if len(names) > MAX_SYMBOLS:
        raise Unsupported("too many quantities")
    table: dict[str, Any] = {}
    for nm in names:
        if nm in ctx.values:
            f = ctx.values[nm]
            table[nm] = sympy.Rational(f.numerator, f.denominator)
        elif unknowns:
            table[nm] = sympy.Symbol(nm)
    return value(node, table)


def _names(node: Node) -> set[str]:
    out: set[str] = set()
    stack: list[Any] = [node]
    while stack:
        x = stack.pop()
        if x[0] == "s":
            out.add(x[1])
        else:
            stack.extend(c for c in x[1:] if isinstance(c, tuple))
    return out


def identity_holds(left: Expr, right: Expr, ctx: Context) -> bool | None:
    """True when ``left = right`` for every value of the unknowns, False when it does not, None
    when sympy cannot decide within the bounds."""
    d = difference(left, right, ctx)
    return None if d is None else bool(d == 0)


def difference(left: Expr, right: Expr, ctx: Context) -> Any:
    """``left - right`` expanded and simplified (a sympy expression), or None."""
    import sympy

    try:
        d = sympy.expand(sym_value(left.node, ctx, True) - sym_value(right.node, ctx, True))
    except (Unsupported, Undefined, ValueError, TypeError, ZeroDivisionError, RecursionError, OverflowError):
        return None
    if d == 0 or not any(p.is_Pow and p.exp.is_negative and p.base.free_symbols for p in sympy.preorder_traversal(d)):
        return d
    try:
        return sympy.cancel(sympy.together(d))
    except Exception:  # noqa: BLE001 - sympy's own failure on an odd rational expression: no verdict
        return None


def reads_as_equation(d: Any) -> bool:
    """A non-zero difference with both a constant and a variable part (``1680k - 10920``): the
    relation is an equation to solve ("simplifies to 1680k = 10920"), not a wrong rewrite."""
    const, rest = d.as_coeff_Add()
    return const != 0 and rest != 0


def linear_root(node: Node, name: str) -> Any:
    """The root of ``node == 0`` when it is linear in ``name`` (a sympy number), else None."""
    import sympy

    x = sympy.Symbol(name)
    try:
        expr = sympy.expand(value(node, {name: x}))
        if expr.free_symbols != {x} or not expr.is_polynomial(x):
            return None
        poly = sympy.Poly(expr, x)
    except Exception:  # noqa: BLE001 - bounded by value(); anything sympy cannot represent: no root
        return None
    if poly.degree() != 1:
        return None
    a, b = poly.all_coeffs()
    return -b / a


def solution_holds(p: Pending, name: str, v: Fraction, decimals: int, rel_tol: float) -> tuple[bool, Any] | None:
    """Does ``name = v`` solve the pending equation? A linear equation is solved exactly and its
    root compared with ``v`` (rounded to the ``decimals`` written); otherwise ``v`` is
    substituted and the residual must vanish within ``rel_tol``. -> (ok, root or residual), or
    None when it cannot be evaluated within the bounds."""
    import sympy

    from .evaluate import as_fraction

    x = sympy.Symbol(name)
    try:
        expr = sympy.expand(value(p.node, {name: x}))
    except (Undefined, Unsupported, ValueError, TypeError, RecursionError, OverflowError, ZeroDivisionError):
        return None
    if expr.free_symbols - {x}:
        return None
    try:
        poly = sympy.Poly(expr, x) if expr.is_polynomial(x) else None
    except Exception:  # noqa: BLE001 - not a polynomial sympy can represent: substitute instead
        poly = None
    if poly is not None and poly.degree() == 1:
        a, b = poly.all_coeffs()
        root = as_fraction(-b / a)
        half = Fraction(1, 2) / 10**decimals if decimals else Fraction(0)
        ok = abs(root - v) <= max(half, Fraction(rel_tol) * max(abs(root), abs(v)), Fraction(1, 10**12))
        return ok, -b / a
    try:
        r = expr.subs(x, sympy.Rational(v.numerator, v.denominator))
    except Exception:  # noqa: BLE001
        return None
    if not r.is_real or r.free_symbols:
        return None
    res = as_fraction(r)
    return abs(res) <= Fraction(rel_tol) * max(abs(v), Fraction(1)) + Fraction(1, 10**9), r


__all__ = ["Context", "Pending", "identity_holds", "difference", "reads_as_equation", "solution_holds", "sym_value",
           "is_bare_symbol",
           "REWRITE_CUES", "TRIAL_CUES", "SETUP_CUES"]
