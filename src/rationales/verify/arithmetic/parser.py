"""Recursive-descent grammar over the lexer's tokens, building expression trees.

An expression tree is made of tuples, never of strings to be evaluated:
``("n", Fraction)`` a number, ``("s", name)`` a quantity named by a letter (symbolic mode only),
``("pi",)``, ``(op, a, b)`` for ``op`` in ``+ - * / ^ C`` (``C``: binomial coefficient),
``("neg", a)``, ``("sqrt", a)``, ``("!", a)``.

    expr    := term (('+'|'-') term)*
    term    := unary (('*'|'/'|of|x|times|choose|implicit) unary)*
    unary   := ('+'|'-') unary | power
    power   := postfix ('^' unary)?
    postfix := primary '!'*
    primary := [currency] number [%] [units] | '(' expr ')' [units] | sqrt primary
             | \\frac{a}{b} | \\binom{n}{k} | half/third of | pi | variable (symbolic mode)

Each parse reads at most ``MAX_EXPR_TOKENS`` tokens, so recursion stays shallow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .lexer import (BINOM, CONST, CUR, EQ, FACT, FRAC, FUNC, HALF, LP, NUM, OF, OP, PCT, RP, UNK, VAR, WORD,
                    Tok)

MAX_UNITS = 6
#: claims longer than this many tokens are not read (keeps the parser linear and shallow)
MAX_EXPR_TOKENS = 64
#: words that end a run of units: "1/4 of the assignment which is ..." is not "1/4 = ..."
NOT_UNITS = {"which", "that", "and", "so", "then", "but", "or", "because", "since", "if", "when", "while",
             "thus", "therefore", "hence", "we", "he", "she", "it", "they", "there", "this", "these", "those",
             "who", "what", "where", "i", "you", "means", "gives", "makes", "leaves", "leaving"}

Node = tuple


@dataclass
class Expr:
    src: str                  # normalised, readable form of what was parsed (shown in Check.detail)
    node: Node                # the expression tree
    start: int                # token index of the first token
    end: int                  # token index after the last consumed token
    ops: int = 0              # binary operations, "of", functions
    nums: int = 0
    pcts: int = 0
    lead: Fraction | None = None   # the leading number, when the expression starts with one
    num_spans: list[tuple[int, int]] = field(default_factory=list)
    decimals: int = 0         # decimals written in a bare number
    last_num: int = -1        # token index of the last number (spans without trailing units)
    syms: frozenset[str] = frozenset()  # variable names used (symbolic mode)


def fmt(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"({v.numerator}/{v.denominator})"


def num_node(v: Fraction) -> Node:
    return ("n", v)


class Parser:
    """``symbolic=False``: numbers only, a variable makes the expression unreadable.
    ``symbolic=True``: single letters are quantities (``("s", name)``), glued products ``2x``."""

    def __init__(self, toks: list[Tok], text: str, symbolic: bool = False, names: frozenset[str] = frozenset()):
        self.t = toks
        self.n = len(toks)
        self.text = text
        self.symbolic = symbolic
        self.names = names  # words known as quantities (defined earlier), symbolic mode

    def kind(self, j: int) -> str:
        return self.t[j].kind if 0 <= j < self.n else ""

    def is_var(self, j: int) -> bool:
        """A token naming a quantity: a variable letter (symbolic mode) or a name defined earlier."""
        if not 0 <= j < self.n:
            return False
        t = self.t[j]
        if t.kind == WORD and t.text in self.names:
            return True
        if not self.symbolic:
            return False
        if t.kind == VAR:
            return True
        return t.kind == WORD and t.opword == "*" and t.text in ("x", "X") and not self.operand_start(j + 1)

    def operand_start(self, j: int) -> bool:
        k = self.kind(j)
        if k in (NUM, LP, CUR, FUNC, FRAC, BINOM, CONST):
            return True
        if k == HALF:
            return self.kind(j + 1) == OF
        if self.symbolic and k == VAR:
            return True
        return False

    def op_at(self, j: int) -> tuple[str, int] | None:
        """Binary operator at j -> (op, tokens it takes), or None."""
        k = self.kind(j)
        if k == OP and self.t[j].op in "+-*/":
            return self.t[j].op, 1
        if k == OF and self.operand_start(j + 1) and self.kind(j - 1) in (NUM, PCT, RP, HALF):
            return "*", 1  # "15% of 80", "3/4 of 12"; not "48 days for a total of 4*48"
        if k == WORD and self.t[j].opword and self.operand_start(j + 1):
            if self.is_var(j):
                return None
            return self.t[j].opword, 1
        return None

    # expression := term (('+'|'-') term)*
    def expr(self, i: int) -> Expr | None:
        left = self.term(i)
        if left is None:
            return None
        while True:
            o = self.op_at(left.end)
            if o is None or o[0] not in "+-":
                return left
            right = self.term(left.end + o[1])
            if right is None:
                return left
            left = self.join(left, right, o[0], f"{left.src} {o[0]} {right.src}")

    def _implicit(self, j: int) -> bool:
        """Implicit multiplication at token j: "2(3 + 4)", "(a+b)(a-b)", "9\\pi", "2x" (symbolic)."""
        k = self.kind(j)
        if k == LP and self.t[j].op == "(" and not self.t[j].space_before:
            return True
        if k == CONST and not self.t[j].space_before:
            return True
        if k == NUM and self.kind(j - 1) == FACT and not self.t[j].space_before:
            return True  # "2!3!"
        if self.symbolic and (k == VAR or self.is_var(j)) and not self.t[j].space_before:
            return True
        return False

    # term := unary (('*'|'/'|of|x|choose|implicit) unary)*
    def term(self, i: int) -> Expr | None:
        left = self.unary(i)
        if left is None:
            return None
        while True:
            o = self.op_at(left.end)
            if o is not None and o[0] in "*/C":
                right = self.unary(left.end + o[1])
                sym = o[0]
            elif self._implicit(left.end):
                right = self.unary(left.end)
                sym = "*"
            else:
                return left
            if right is None:
                return left
            label = f"binomial({left.src}, {right.src})" if sym == "C" else f"{left.src} {sym} {right.src}"
            left = self.join(left, right, sym, label)

    def unary(self, i: int) -> Expr | None:
        if self.kind(i) == OP and self.t[i].op in "+-":
            inner = self.unary(i + 1)
            if inner is None:
                return None
            neg = self.t[i].op == "-"
            return Expr(f"(-{inner.src})" if neg else inner.src, ("neg", inner.node) if neg else inner.node, i,
                        inner.end, inner.ops, inner.nums, inner.pcts,
                        None if inner.lead is None else (-inner.lead if neg else inner.lead),
                        inner.num_spans, inner.decimals, inner.last_num, inner.syms)
        return self.power(i)

    def power(self, i: int) -> Expr | None:
        base = self.postfix(i)
        if base is None:
            return None
        if self.kind(base.end) == OP and self.t[base.end].op == "^":
            exp = self.unary(base.end + 1)
            if exp is None:
                return None  # "2^" followed by something unreadable: the whole power is unreadable
            e = self.join(base, exp, "^", f"({base.src})^({exp.src})")
            if self.kind(e.end) == OP and self.t[e.end].op == "^":
                return None  # "2^3^2" with "^" after a parenthesised exponent: ambiguous, not read
            return e
        return base

    def postfix(self, i: int) -> Expr | None:
        e = self.primary(i)
        while e is not None and self.kind(e.end) == FACT:
            e = Expr(f"({e.src})!", ("!", e.node), e.start, e.end + 1, e.ops + 1, e.nums, e.pcts, None, e.num_spans,
                     0, e.last_num, e.syms)
            e.end = self.units(e.end)
        return e

    def primary(self, i: int) -> Expr | None:
        j = i
        if self.kind(j) == CUR:
            j += 1
            if self.kind(j) == OP and self.t[j].op == "-":  # "$-5" is rare; leave it
                return None
        k = self.kind(j)
        if k == NUM:
            tok = self.t[j]
            val = tok.value if tok.value is not None else Fraction(0)
            lit = tok.text.replace(",", "")
            src = lit if re.fullmatch(r"\d+(?:\.\d+)?|\.\d+", lit, re.ASCII) else fmt(val)
            dec = len(lit.split(".")[1]) if "." in lit and re.fullmatch(r"\d*\.\d+", lit, re.ASCII) else 0
            if self._tight_fraction(j):  # "1/2" written without spaces after a division: one number
                den = self.t[j + 2]
                dv = den.value if den.value is not None else Fraction(1)
                e = Expr(f"({lit}/{den.text})", ("/", num_node(val), num_node(dv)), i, j + 3, ops=1, nums=2,
                         lead=None, num_spans=[(tok.start, tok.end), (den.start, den.end)], last_num=j + 2)
                e.end = self.units(e.end)
                return e
            e = Expr(src, num_node(val), i, j + 1, nums=1, lead=val, num_spans=[(tok.start, tok.end)], decimals=dec,
                     last_num=j)
            if self.kind(j + 1) == PCT:
                e.src, e.node, e.pcts, e.end = f"({src} / 100)", ("/", e.node, num_node(Fraction(100))), 1, j + 2
                e.lead = val / 100
            e.end = self.units(e.end)
            return e
        if k == HALF:
            if self.kind(j + 1) != OF:
                return None
            tok = self.t[j]
            v = tok.value or Fraction(0)
            return Expr(fmt(v), num_node(v), i, j + 1, nums=1, lead=None, last_num=j)
        if k == LP:
            inner = self.expr(j + 1)
            if inner is None or self.kind(inner.end) != RP:
                return None
            e = Expr(f"({inner.src})", inner.node, i, inner.end + 1, inner.ops, inner.nums, inner.pcts,
                     inner.lead if inner.ops == 0 else None, inner.num_spans, inner.decimals, inner.last_num,
                     inner.syms)
            e.end = self.units(e.end)
            return e
        if k == FUNC:
            arg = self.postfix(j + 1)
            if arg is None:
                return None
            return Expr(f"sqrt({arg.src})", ("sqrt", arg.node), i, arg.end, arg.ops + 1, arg.nums, arg.pcts, None,
                        arg.num_spans, 0, arg.last_num, arg.syms)
        if k in (FRAC, BINOM):
            if self.kind(j + 1) != LP or self.t[j + 1].op != "{":
                return None
            a = self.primary(j + 1)
            if a is None or self.kind(a.end) != LP or self.t[a.end].op != "{":
                return None
            b = self.primary(a.end)
            if b is None:
                return None
            if k == FRAC:
                e = self.join(a, b, "/", f"({a.src} / {b.src})")
            else:
                e = self.join(a, b, "C", f"binomial({a.src}, {b.src})")
            e.start = i
            e.lead = None
            e.end = self.units(e.end)
            return e
        if k == CONST:
            return Expr("pi", ("pi",), i, j + 1, ops=1, nums=0, last_num=j)
        if self.symbolic and self.is_var(j):
            tok = self.t[j]
            names = [tok.text] if (tok.kind == WORD or "_" in tok.text) else list(tok.text)
            node: Node = ("s", names[0])
            for nm in names[1:]:
                node = ("*", node, ("s", nm))
            e = Expr("*".join(names), node, i, j + 1, ops=len(names) - 1, nums=0, last_num=j,
                     syms=frozenset(names))
            return e
        return None

    def _tight_fraction(self, j: int) -> bool:
        """An integer fraction "a/b" with no spaces, right after a division sign ("10÷1/2")."""
        t = self.t
        if not (self.kind(j + 1) == OP and t[j + 1].op == "/" and self.kind(j + 2) == NUM):
            return False
        if t[j + 1].space_before or t[j + 2].space_before or not t[j].text.isdigit() or not t[j + 2].text.isdigit():
            return False
        prev = j - 1 if self.kind(j - 1) != CUR else j - 2
        return (self.kind(prev) == OP and t[prev].op == "/") or (self.kind(prev) == WORD and t[prev].opword == "/")

    def units(self, j: int) -> int:
        """Skip unit words after a number: "apples", "days/week", "skeins per pair of socks"."""
        count = 0
        while count < MAX_UNITS and j < self.n:
            k = self.kind(j)
            if k == WORD and (self.t[j].text.lower() in NOT_UNITS or self.is_var(j)):
                break
            if k == WORD and not (self.t[j].opword and self.operand_start(j + 1)):
                j += 1
            elif k == OP and self.t[j].op == "/" and self.kind(j + 1) == WORD and not self.is_var(j + 1):
                j += 2
            elif k == OF and self.kind(j + 1) == WORD and not self.is_var(j + 1):
                j += 2
            else:
                break
            count += 1
        return j

    @staticmethod
    def join(a: Expr, b: Expr, op: str, src: str) -> Expr:
        return Expr(src, (op, a.node, b.node), a.start, b.end, a.ops + b.ops + 1, a.nums + b.nums, a.pcts + b.pcts,
                    a.lead, a.num_spans + b.num_spans, 0, b.last_num, a.syms | b.syms)

    # ---------------------------------------------------------- pieces
    def _blocked_after(self, sub: "Parser", j: int) -> bool:
        nxt = sub.kind(j)
        if nxt in (VAR, LP, FUNC, FRAC, BINOM, UNK, FACT, CONST, HALF) or sub.is_var(j):
            return True
        return nxt == OP and sub.t[j].op in "+-*/^"

    def prefix(self, lo: int, hi: int) -> Expr | None:
        """The longest expression starting at token ``lo`` of the piece [lo, hi); None when the
        piece does not start with an expression or continues it with something unreadable."""
        cut = min(hi, lo + MAX_EXPR_TOKENS)
        sub = Parser(self.t[lo:cut], self.text, self.symbolic, self.names)
        e = sub.expr(0)
        if e is None or (e.end == cut - lo and cut < hi):
            return None  # empty, or longer than the parser reads
        if self._blocked_after(sub, e.end):
            return None
        return shift(e, lo)

    def suffix(self, lo: int, hi: int) -> Expr | None:
        """The longest expression ending at the end of the piece [lo, hi), or None."""
        start = max(lo, hi - MAX_EXPR_TOKENS)
        sub = Parser(self.t[start:hi], self.text, self.symbolic, self.names)
        m = hi - start

        def before(k: int) -> str:  # kind of the token k places before window position s (in the piece)
            j = start + k
            return self.kind(j) if j >= lo else ""

        if start > lo and self.kind(start - 1) not in (WORD, EQ):
            return None  # the window cuts an expression that is longer than the parser reads
        for s in range(m):
            sign = sub.kind(s) == OP and sub.t[s].op in "+-"
            if not (sub.operand_start(s) or (sub.symbolic and sub.is_var(s)) or sign):
                continue
            e = sub.expr(s)
            if e is None or e.end != m:
                continue
            prev = before(s - 1)
            if prev == OF and before(s - 2) not in (NUM, PCT, RP, HALF):
                prev = WORD  # "for a total of 4*48": a preposition, not "15% of"
            if prev in (OP, VAR, OF, HALF, FUNC, FRAC, BINOM, UNK, CONST) or (
                    prev == WORD and self.is_var(start + s - 1)):
                return None  # part of a larger expression the grammar cannot read
            if prev == NUM and not sub.t[s].space_before:
                return None  # "2\\frac{3}{4}": a mixed number written in LaTeX, not read
            if prev == RP and s >= 1 and not sub.t[s].space_before:
                return None  # "f(2)3": glued to a bracket we did not read
            if sub.kind(s) == OP and prev:  # leading sign: only at the piece start or glued to a number
                glued = s + 1 < m and not sub.t[s + 1].space_before
                if not (glued and prev == WORD and len(self.t[start + s - 1].text) > 1):
                    return None
            return shift(e, start)
        return None


def shift(e: Expr, lo: int) -> Expr:
    e.start += lo
    e.end += lo
    e.last_num = e.last_num + lo if e.last_num >= 0 else -1
    return e


def has_kind(node: Node, kinds: set[str]) -> bool:
    """Does the tree use any of these node kinds?"""
    stack: list[Any] = [node]
    while stack:
        x = stack.pop()
        if x[0] in kinds:
            return True
        stack.extend(c for c in x[1:] if isinstance(c, tuple))
    return False


__all__ = ["Expr", "Parser", "Node", "MAX_EXPR_TOKENS", "fmt", "has_kind"]
