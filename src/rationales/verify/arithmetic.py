"""Tool checks of the arithmetic written in natural-language steps.

Every arithmetic claim in a step ("20 - 7 = 13", "3 x $4 = $12", "15% of 80 is 12",
"half of 10 is 5", "3/4 of 12 = 9", "6 days/week * 2 weeks/month = 12 days/month") is found,
evaluated exactly, and compared with the value the step claims. This is the tool check of
GroundedPRM (Zhang et al. 2025, papers.md section 5): a math engine executes the step's
computation and the step gets v = +1 when it agrees, -1 when it does not.

How a claim is found (a small tokenizer + recursive-descent grammar, no regex soup):

* numbers: ``1,234.5`` (thousands commas), ``.5``, mixed ``1 1/2``, ``½``; currency signs
  ($, £, €, ¥, ₹, ``\\$``) are skipped; ``%`` / "percent" divide by 100;
* operators: ``+ - − – * × · ∗ x X times / ÷ ^ ² ³ plus minus "multiplied by" "divided by"``,
  LaTeX ``\\times \\cdot \\div \\frac{a}{b} \\sqrt``, parentheses, implicit ``2(3+4)``;
  "of" multiplies after a number or percent ("15% of 80", "3/4 of 12", "half of 10");
* units: up to six words after a number are skipped ("12 apples - 5 apples", "9 skeins per
  pair of socks + ...", "£195/day * 12 days/month");
* relations: ``=``, ``≈`` (or "= about/approximately"), "is", "equals", "gives". A chain
  ``a = b = c`` gives one claim per link. When a link's right side is itself an expression
  whose value differs (running arithmetic such as "2 + 3 = 5 + 1 = 6") the link is read as
  "value of the left side = the leading number of the right side", so "2 + 3 = 5" and
  "5 + 1 = 6" are each checked.

What is *not* a claim (skipped, so the step gets no verdict from it): a relation whose sides
have no operation ("5 = 5", "The answer is 12"), equations with variables ("2x + 3 = 7",
"x = 5", "price + tax = ..."), dates and times ("2023-05-01", "12/25/2023", "10:30",
"2020-2023"), "Step 1:" and list numbering, inequalities, "is" whose left side is not an
operation. Anything the grammar cannot read is skipped, never guessed.

Evaluation: the claim's normalised expression (``lhs``, e.g. ``15/100 * 80``) is parsed with
Python's ``ast`` and evaluated node by node (numbers, + - * / **, unary -, ``sqrt``; nothing
else is accepted) into exact sympy numbers; model text is never ``eval``-ed.

Comparison (choices where the paper is silent): exact equality, or relative tolerance
``rel_tol`` (default 1e-6; GroundedPRM used 0.1, pass it if you want its looser check);
a claimed number written with d >= 1 decimals also passes when it is the value rounded to d
decimals ("10 / 3 = 3.33"); with ``≈`` integers pass when rounded ("1000/7 ≈ 143", "≈ 140").
Percent sloppiness is accepted both ways ("100 - 20 = 80%", "100% - 20% = 80"). Division by
zero is a wrong claim. A step's verdict is +1 when all its claims hold, -1 when any fails,
and no check at all when it has no claim.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ..records import Check, Rationale, Step

CHECK_BY = "sympy"

# ------------------------------------------------------------------ tokens

NUM, OP, LP, RP, EQ, PCT, CUR, WORD, VAR, SEP, FUNC, FRAC, HALF, OF = (
    "NUM", "OP", "LP", "RP", "EQ", "PCT", "CUR", "WORD", "VAR", "SEP", "FUNC", "FRAC", "HALF", "OF")

#: single letters that, glued to a number ("2x", "3y"), make an equation with a variable
VAR_LETTERS = set("xyzabcnkpqrtuvwXYZABCNK")
FRACTION_WORDS = {"half": Fraction(1, 2), "third": Fraction(1, 3), "quarter": Fraction(1, 4),
                  "fifth": Fraction(1, 5), "tenth": Fraction(1, 10)}
UNICODE_FRACTIONS = {"½": Fraction(1, 2), "⅓": Fraction(1, 3), "⅔": Fraction(2, 3), "¼": Fraction(1, 4),
                     "¾": Fraction(3, 4), "⅕": Fraction(1, 5), "⅛": Fraction(1, 8)}
OP_CHARS = {"+": "+", "-": "-", "−": "-", "–": "-", "*": "*", "×": "*", "·": "*", "∙": "*", "⋅": "*",
            "∗": "*", "/": "/", "÷": "/", "^": "^"}
#: words that are operators when an operand follows ("3 x 4", "3 times 4", "5 plus 2")
OP_WORDS = {"x": "*", "X": "*", "times": "*", "plus": "+", "minus": "-"}
APPROX_WORDS = r"(?:approximately|approx\.?|about|around|roughly|nearly|almost|~)"
MAX_UNITS = 6
#: claims longer than this many tokens are not read (keeps the parser linear and shallow)
MAX_EXPR_TOKENS = 64
#: words that end a run of units: "1/4 of the assignment which is ..." is not "1/4 = ..."
NOT_UNITS = {"which", "that", "and", "so", "then", "but", "or", "because", "since", "if", "when", "while",
             "thus", "therefore", "hence", "we", "he", "she", "it", "they", "there", "this", "these", "those",
             "who", "what", "where", "i", "you", "means", "gives", "makes", "leaves", "leaving"}


@dataclass
class Tok:
    kind: str
    start: int
    end: int
    text: str = ""
    value: Fraction | None = None
    op: str = ""          # OP: + - * / ^ ; EQ: "=", "≈", "is" ; FUNC: sqrt
    space_before: bool = True
    opword: str = ""      # WORD that may act as an operator


_WS = re.compile(r"[ \t\u00a0\u2009\u202f]+")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?!\d)|\d{1,2}/\d{1,2}/\d{2,4}(?![\d/])|\d{1,2}:\d{2}(?::\d{2})?(?!\d)"
                   r"|(?:1[6-9]|20)\d{2}[-–](?:1[6-9]|20)\d{2}(?!\d)")
_MIXED = re.compile(r"(\d+) (\d+)/(\d+)(?![\d/.,])")
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?![\d])(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+")
_ORDINAL = re.compile(r"(?:st|nd|rd|th)\b", re.IGNORECASE)
_LETTERS = re.compile(r"[A-Za-z]+")
_ALNUM = re.compile(r"\w+")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_LATEX = re.compile(r"\\([A-Za-z]+|.)")
_EQ = re.compile(r"(==|=|≈|≃|≅|~=)(?:\s*" + APPROX_WORDS + r"(?=[\s\d$£€.-]))?")
_EQ_WORDS = re.compile(r"(is\s+equal\s+to|equals|is|gives)(?:\s+" + APPROX_WORDS + r"(?=[\s\d$£€.-]))?\b")
_MULT_BY = re.compile(r"(multiplied|divided)\s+by\b")
_SUPERSCRIPT = {"²": 2, "³": 3}


def _number_value(s: str) -> Fraction:
    return Fraction(s.replace(",", ""))


def tokenize(text: str) -> list[Tok]:
    """Cut ``text`` into tokens with character spans (see the module docstring)."""
    toks: list[Tok] = []
    i, n = 0, len(text)
    space = True

    def add(kind: str, start: int, end: int, **kw: Any) -> None:
        nonlocal space
        toks.append(Tok(kind, start, end, text[start:end], space_before=space, **kw))
        space = False

    while i < n:
        c = text[i]
        m = _WS.match(text, i)
        if m:
            i, space = m.end(), True
            continue
        if c in "\r\n":
            add(SEP, i, i + 1)
            i, space = i + 1, True
            continue
        line_start = text.rfind("\n", 0, i) + 1
        at_line_start = not text[line_start:i].strip()
        if c in "-*•" and at_line_start and i + 1 < n and text[i + 1] in " \t":  # a bullet
            add(SEP, i, i + 1)
            i += 1
            continue
        if text.startswith("**", i) or text.startswith("__", i):  # markdown bold
            i += 2
            continue
        if c == "\\":
            m = _LATEX.match(text, i)
            cmd = m.group(1) if m else ""
            end = m.end() if m else i + 1
            if cmd in ("times", "cdot", "ast"):
                add(OP, i, end, op="*")
            elif cmd == "div":
                add(OP, i, end, op="/")
            elif cmd in ("frac", "dfrac", "tfrac"):
                add(FRAC, i, end)
            elif cmd == "sqrt":
                add(FUNC, i, end, op="sqrt")
            elif cmd == "approx":
                add(EQ, i, end, op="≈")
            elif cmd in ("%",):
                add(PCT, i, end)
            elif cmd == "$":
                add(CUR, i, end)
            elif cmd in ("text", "mathrm", "textrm", "mbox", "operatorname"):
                close = text.find("}", end)
                if text.startswith("{", end) and close > 0:
                    inner = text[end + 1:close].strip()
                    if inner in ("%", "\\%", "percent"):
                        add(PCT, i, close + 1)
                    elif inner:
                        add(WORD, i, close + 1)
                    end = close + 1
            elif cmd in ("left", "right", "boxed", "mathbf", "textbf", "displaystyle", ",", ";", "!", ":",
                         "quad", "qquad", "(", ")", "[", "]", " "):
                pass  # layout only
            else:
                add(SEP, i, end)
            i = end
            space = True if cmd in (",", ";", "quad", "qquad", " ") else space
            continue
        if c in "{(":
            add(LP, i, i + 1, op=c)
            i += 1
            continue
        if c in "})":
            add(RP, i, i + 1, op=c)
            i += 1
            continue
        m = _DATE.match(text, i) if c.isdigit() else None
        if m and not (i > 0 and (text[i - 1].isdigit() or text[i - 1] in ".,")):
            add(SEP, i, m.end())
            i = m.end()
            continue
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            if i > 0 and (text[i - 1].isalpha() or text[i - 1] == "_") and not (toks and toks[-1].kind == OP
                                                                              and toks[-1].end == i):
                j = _ALNUM.match(text, i).end()  # type: ignore[union-attr]
                add(WORD, i, j)  # "CO2", "A4": part of a name
                i = j
                continue
            m = _MIXED.match(text, i)
            if m and int(m.group(2)) < int(m.group(3)) and int(m.group(3)) > 1 and not m.group(1).startswith("0"):
                val = int(m.group(1)) + Fraction(int(m.group(2)), int(m.group(3)))
                add(NUM, i, m.end(), value=val)
                i = m.end()
            else:
                m = _NUMBER.match(text, i)
                assert m is not None
                j = m.end()
                if _ORDINAL.match(text, j):  # 1st, 22nd: a word
                    k = _ORDINAL.match(text, j).end()  # type: ignore[union-attr]
                    add(WORD, i, k)
                    i = k
                    continue
                add(NUM, i, j, value=_number_value(m.group(0)))
                i = j
            # what is glued to the number
            if i < n and text[i] in UNICODE_FRACTIONS:
                toks[-1].value = (toks[-1].value or 0) + UNICODE_FRACTIONS[text[i]]
                toks[-1].end = i + 1
                toks[-1].text = text[toks[-1].start:i + 1]
                i += 1
            if i < n and text[i] in _SUPERSCRIPT:
                add(OP, i, i, op="^")
                add(NUM, i, i + 1, value=Fraction(_SUPERSCRIPT[text[i]]))
                i += 1
            if i < n and text[i] in "xX×" and i + 1 < n and text[i + 1].isdigit():
                add(OP, i, i + 1, op="*")
                i += 1
                continue
            m = _LETTERS.match(text, i)
            if m:
                letters = m.group(0)
                if len(letters) == 1 and letters in VAR_LETTERS:
                    add(VAR, i, m.end())
                else:
                    add(WORD, i, m.end())
                i = m.end()
            continue
        if c in UNICODE_FRACTIONS:
            add(NUM, i, i + 1, value=UNICODE_FRACTIONS[c])
            i += 1
            continue
        m = _EQ.match(text, i)
        if m:
            approx = m.group(1) not in ("=", "==") or m.end() > i + len(m.group(1))
            add(EQ, i, m.end(), op="≈" if approx else "=")
            i = m.end()
            continue
        if c == "~" and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] in " $"):
            add(EQ, i, i + 1, op="≈")
            i += 1
            continue
        if c in OP_CHARS:
            if c == "–" and not (i + 1 < n and (text[i + 1].isspace() or text[i + 1].isdigit())):
                add(SEP, i, i + 1)
            else:
                add(OP, i, i + 1, op=OP_CHARS[c])
            i += 1
            continue
        if c == "%":
            add(PCT, i, i + 1)
            i += 1
            continue
        if c in "$£€¥₹":
            add(CUR, i, i + 1)
            i += 1
            continue
        if c.isalpha():
            m = _EQ_WORDS.match(text, i)
            if m and (i == 0 or not text[i - 1].isalpha()):
                add(EQ, i, m.end(), op="≈" if m.end() > i + len(m.group(1)) else ("is" if m.group(1) == "is" else "="))
                i = m.end()
                continue
            m = _MULT_BY.match(text, i)
            if m:
                add(WORD, i, m.end(), opword="*" if m.group(1) == "multiplied" else "/")
                i = m.end()
                continue
            m = _WORD.match(text, i)
            if m is None:  # a non-ASCII letter
                add(WORD, i, i + 1)
                i += 1
                continue
            w = m.group(0)
            lw = w.lower()
            if lw == "of":
                add(OF, i, m.end())
            elif lw in FRACTION_WORDS:
                add(HALF, i, m.end(), value=FRACTION_WORDS[lw])
            elif lw == "percent":
                add(PCT, i, m.end())
            elif lw == "sqrt":
                add(FUNC, i, m.end(), op="sqrt")
            elif w in OP_WORDS:
                add(WORD, i, m.end(), opword=OP_WORDS[w])
            elif len(w) == 1 and w in VAR_LETTERS and lw != "a":
                add(VAR, i, m.end())
            else:
                add(WORD, i, m.end())
            i = m.end()
            continue
        if c == "√":
            add(FUNC, i, i + 1, op="sqrt")
            i += 1
            continue
        add(SEP, i, i + 1)  # any other punctuation ends an expression
        i += 1
    return toks


# ------------------------------------------------------------------ grammar


@dataclass
class _Expr:
    src: str                  # normalised, ast-parsable
    start: int                # token index of the first token
    end: int                  # token index after the last consumed token
    ops: int = 0              # binary operations, "of", functions
    nums: int = 0
    pcts: int = 0
    lead: Fraction | None = None   # the leading number, when the expression starts with one
    num_spans: list[tuple[int, int]] = field(default_factory=list)
    decimals: int = 0         # decimals written in a bare number
    last_num: int = -1        # token index of the last number (spans without trailing units)


def _fmt(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"({v.numerator}/{v.denominator})"


class _Parser:
    def __init__(self, toks: list[Tok], text: str):
        self.t = toks
        self.n = len(toks)
        self.text = text

    def kind(self, j: int) -> str:
        return self.t[j].kind if 0 <= j < self.n else ""

    def operand_start(self, j: int) -> bool:
        k = self.kind(j)
        if k in (NUM, LP, CUR, FUNC, FRAC):
            return True
        if k == HALF:
            return self.kind(j + 1) == OF
        return False

    def op_at(self, j: int) -> tuple[str, int] | None:
        """Binary operator at j -> (op, tokens it takes), or None."""
        k = self.kind(j)
        if k == OP and self.t[j].op in "+-*/":
            return self.t[j].op, 1
        if k == OF and self.operand_start(j + 1) and self.kind(j - 1) in (NUM, PCT, RP, HALF):
            return "*", 1  # "15% of 80", "3/4 of 12"; not "48 days for a total of 4*48"
        if k == WORD and self.t[j].opword and self.operand_start(j + 1):
            return self.t[j].opword, 1
        return None

    # expression := term (('+'|'-') term)*
    def expr(self, i: int) -> _Expr | None:
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
            left = self._join(left, right, f"{left.src} {o[0]} {right.src}")

    # term := unary (('*'|'/'|of|x|implicit) unary)*
    def term(self, i: int) -> _Expr | None:
        left = self.unary(i)
        if left is None:
            return None
        while True:
            o = self.op_at(left.end)
            if o is not None and o[0] in "*/":
                right = self.unary(left.end + o[1])
                sym = o[0]
            elif self.kind(left.end) == LP and self.t[left.end].op == "(" and not self.t[left.end].space_before:
                right = self.unary(left.end)  # implicit multiplication 2(3 + 4)
                sym = "*"
            else:
                return left
            if right is None:
                return left
            left = self._join(left, right, f"{left.src} {sym} {right.src}")

    def unary(self, i: int) -> _Expr | None:
        if self.kind(i) == OP and self.t[i].op in "+-":
            inner = self.unary(i + 1)
            if inner is None:
                return None
            e = _Expr(f"(-{inner.src})" if self.t[i].op == "-" else inner.src, i, inner.end, inner.ops, inner.nums,
                      inner.pcts, None if inner.lead is None else (-inner.lead if self.t[i].op == "-" else inner.lead),
                      inner.num_spans, inner.decimals, inner.last_num)
            return e
        return self.power(i)

    def power(self, i: int) -> _Expr | None:
        base = self.primary(i)
        if base is None:
            return None
        if self.kind(base.end) == OP and self.t[base.end].op == "^":
            exp = self.unary(base.end + 1)
            if exp is not None:
                return self._join(base, exp, f"({base.src}) ** ({exp.src})")
        return base

    def primary(self, i: int) -> _Expr | None:
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
            src = lit if re.fullmatch(r"\d+(?:\.\d+)?|\.\d+", lit) else _fmt(val)
            dec = len(lit.split(".")[1]) if "." in lit and re.fullmatch(r"\d*\.\d+", lit) else 0
            if self._tight_fraction(j):  # "1/2" written without spaces after a division: one number
                den = self.t[j + 2]
                e = _Expr(f"({lit}/{den.text})", i, j + 3, ops=1, nums=2, lead=None,
                          num_spans=[(tok.start, tok.end), (den.start, den.end)], last_num=j + 2)
                e.end = self.units(e.end)
                return e
            e = _Expr(src, i, j + 1, nums=1, lead=val, num_spans=[(tok.start, tok.end)], decimals=dec, last_num=j)
            if self.kind(j + 1) == PCT:
                e.src, e.pcts, e.end = f"({src} / 100)", 1, j + 2
                e.lead = val / 100
            e.end = self.units(e.end)
            return e
        if k == HALF:
            if self.kind(j + 1) != OF:
                return None
            tok = self.t[j]
            return _Expr(_fmt(tok.value or Fraction(0)), i, j + 1, nums=1, lead=None, last_num=j)
        if k == LP:
            inner = self.expr(j + 1)
            if inner is None or self.kind(inner.end) != RP:
                return None
            e = _Expr(f"({inner.src})", i, inner.end + 1, inner.ops, inner.nums, inner.pcts,
                      inner.lead if inner.ops == 0 else None, inner.num_spans, inner.decimals, inner.last_num)
            e.end = self.units(e.end)
            return e
        if k == FUNC:
            arg = self.primary(j + 1)
            if arg is None:
                return None
            return _Expr(f"sqrt({arg.src})", i, arg.end, arg.ops + 1, arg.nums, arg.pcts, None, arg.num_spans,
                         0, arg.last_num)
        if k == FRAC:
            a = self.primary(j + 1)
            if a is None or self.t[j + 1].op != "{":
                return None
            b = self.primary(a.end)
            if b is None or self.kind(a.end) != LP:
                return None
            e = self._join(a, b, f"({a.src} / {b.src})")
            e.start = i
            e.end = self.units(e.end)
            return e
        return None

    def _tight_fraction(self, j: int) -> bool:
        """An integer fraction "a/b" with no spaces, right after a division sign ("10÷1/2")."""
        t = self.t
        if not (self.kind(j + 1) == OP and t[j + 1].op == "/" and self.kind(j + 2) == NUM):
            return False
        if t[j + 1].space_before or t[j + 2].space_before or t[j].text.isdigit() is False or not t[j + 2].text.isdigit():
            return False
        prev = j - 1 if self.kind(j - 1) != CUR else j - 2
        return (self.kind(prev) == OP and t[prev].op == "/") or (self.kind(prev) == WORD and t[prev].opword == "/")

    def units(self, j: int) -> int:
        """Skip unit words after a number: "apples", "days/week", "skeins per pair of socks"."""
        count = 0
        while count < MAX_UNITS and j < self.n:
            k = self.kind(j)
            if k == WORD and self.t[j].text.lower() in NOT_UNITS:
                break
            if k == WORD and not (self.t[j].opword and self.operand_start(j + 1)):
                j += 1
            elif k == OP and self.t[j].op == "/" and self.kind(j + 1) == WORD:
                j += 2
            elif k == OF and self.kind(j + 1) == WORD:
                j += 2
            else:
                break
            count += 1
        return j

    @staticmethod
    def _join(a: _Expr, b: _Expr, src: str) -> _Expr:
        return _Expr(src, a.start, b.end, a.ops + b.ops + 1, a.nums + b.nums, a.pcts + b.pcts, a.lead,
                     a.num_spans + b.num_spans, 0, b.last_num)

    # ---------------------------------------------------------- pieces
    def prefix(self, lo: int, hi: int) -> _Expr | None:
        """The longest expression starting at token ``lo`` of the piece [lo, hi); None when the
        piece does not start with a numeric expression or continues it with a variable."""
        cut = min(hi, lo + MAX_EXPR_TOKENS)
        sub = _Parser(self.t[lo:cut], self.text)
        e = sub.expr(0)
        if e is None or (e.end == cut - lo and cut < hi):
            return None  # empty, or longer than the parser reads
        nxt = sub.kind(e.end)
        if nxt in (VAR, LP, FUNC, FRAC) or (nxt == OP and sub.t[e.end].op in "+-*/^") or nxt == HALF:
            return None
        return _shift(e, lo)

    def suffix(self, lo: int, hi: int) -> _Expr | None:
        """The longest expression ending at the end of the piece [lo, hi), or None."""
        start = max(lo, hi - MAX_EXPR_TOKENS)
        sub = _Parser(self.t[start:hi], self.text)
        m = hi - start

        def before(k: int) -> str:  # kind of the token k places before window position s (in the piece)
            j = start + k
            return self.kind(j) if j >= lo else ""

        for s in range(m):
            if not (sub.operand_start(s) or (sub.kind(s) == OP and sub.t[s].op in "+-")):
                continue
            e = sub.expr(s)
            if e is None or e.end != m:
                continue
            prev = before(s - 1)
            if prev == OF and before(s - 2) not in (NUM, PCT, RP, HALF):
                prev = WORD  # "for a total of 4*48": a preposition, not "15% of"
            if prev in (OP, VAR, OF, HALF, FUNC, FRAC):
                return None  # part of a larger expression the grammar cannot read (a variable)
            if sub.kind(s) == OP and prev:  # leading sign: only at the piece start or glued to a number
                glued = s + 1 < m and not sub.t[s + 1].space_before
                if not (glued and prev == WORD and len(self.t[start + s - 1].text) > 1):
                    return None
            return _shift(e, start)
        return None


def _shift(e: _Expr, lo: int) -> _Expr:
    e.start += lo
    e.end += lo
    e.last_num = e.last_num + lo if e.last_num >= 0 else -1
    return e


# ------------------------------------------------------------------ evaluation


class _Undefined(Exception):
    """Division by zero and the like: the written claim cannot be right."""


class _Unsupported(Exception):
    """Something the safe evaluator does not compute (huge powers, complex roots)."""


def evaluate(src: str) -> Any:
    """Exact value (a sympy number) of a normalised arithmetic expression.

    The string is parsed with ``ast`` and only numbers, + - * / ** (small exponents), unary
    minus and ``sqrt`` are evaluated; anything else raises ``ValueError``. Never ``eval``."""
    import sympy

    tree = ast.parse(src, mode="eval")

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            seg = ast.get_source_segment(src, node) or repr(node.value)
            return sympy.Rational(seg)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if isinstance(node.op, ast.Div):
                if b == 0:
                    raise _Undefined("division by zero")
                return a / b
            if not (b.is_Rational and abs(b) <= 64 and b.q <= 4 and abs(a) < 10**12):
                raise _Unsupported("power too large")
            if a == 0 and b < 0:
                raise _Undefined("zero to a negative power")
            return a ** b
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sqrt"
                and len(node.args) == 1 and not node.keywords):
            v = ev(node.args[0])
            if v < 0:
                raise _Unsupported("square root of a negative number")
            return sympy.sqrt(v)
        raise ValueError(f"unsupported expression node {type(node).__name__}")

    value = ev(tree)
    if not value.is_real:
        raise _Unsupported("not a real number")
    return value


# ------------------------------------------------------------------ claims


@dataclass
class Claim:
    """One arithmetic claim found in a text.

    ``expression``: the claim as written; ``lhs``: the normalised expression that was
    evaluated; ``claimed``: the value the text states for it; ``value``: its exact value (None
    when undefined, e.g. division by zero); ``span``: (start, end) of ``expression`` in the
    text; ``claimed_span``: where the claimed number is written (None when the claimed side is
    an expression); ``ok``: whether the claim holds under the tolerance."""

    expression: str
    lhs: str
    claimed: float
    span: tuple[int, int]
    value: float | None = None
    ok: bool = False
    relation: str = "="
    claimed_span: tuple[int, int] | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = {"expression": self.expression, "lhs": self.lhs, "value": self.value, "claimed": self.claimed,
             "ok": self.ok, "span": list(self.span)}
        if self.note:
            d["note"] = self.note
        return d


def _close(value: Any, claimed: Any, rel_tol: float, abs_tol: float = 1e-9) -> bool:
    if value == claimed:
        return True
    v, c = float(value), float(claimed)
    return abs(v - c) <= max(abs_tol, rel_tol * max(abs(v), abs(c)))


def _rounded(value: Any, claimed: Any, half: float) -> bool:
    return abs(float(value) - float(claimed)) <= half * (1 + 1e-9) + 1e-12


def _judge(lhs: _Expr, rhs: _Expr, value: Any, claimed: Any, relation: str, rel_tol: float,
           text: str) -> tuple[bool, str]:
    """Does ``value`` (of lhs) match ``claimed`` (of rhs)? -> (ok, note)."""
    bare = rhs.ops == 0 and rhs.nums == 1
    candidates = [(claimed, 1, "")]
    if bare and rhs.pcts == 1 and lhs.pcts == 0:
        candidates.append((claimed * 100, 100, "percent points"))  # "100 - 20 = 80%"
    if bare and rhs.pcts == 0 and lhs.pcts and lhs.pcts == lhs.nums:
        candidates.append((claimed / 100, 1, "percent points"))  # "100% - 20% = 80"
    for cand, scale, note in candidates:
        if _close(value, cand, rel_tol):
            return True, note
        if bare:
            decimals = rhs.decimals
            scale_pct = (100 if rhs.pcts else 1) / scale
            if decimals > 0:
                if _rounded(value, cand, 0.5 * 10 ** -decimals / scale_pct):
                    return True, (note + " rounded").strip()
            elif relation == "≈":
                digits = re.sub(r"\D", "", text[rhs.num_spans[0][0]:rhs.num_spans[0][1]]) if rhs.num_spans else ""
                zeros = len(digits) - len(digits.rstrip("0")) if digits.strip("0") else 0
                if _rounded(value, cand, 0.5 * 10 ** zeros / scale_pct):
                    return True, (note + " rounded").strip()
    return False, ""


def _pieces(toks: list[Tok]) -> list[list[tuple[int, int, Tok | None]]]:
    """Clauses (split at separators) of pieces (split at relations): [(lo, hi, relation before)]."""
    clauses, cur, lo, rel = [], [], 0, None
    for j, t in enumerate(toks + [Tok(SEP, 0, 0)]):
        if t.kind in (SEP, EQ):
            cur.append((lo, j, rel))
            lo, rel = j + 1, t if t.kind == EQ else None
            if t.kind == SEP:
                if len(cur) > 1:
                    clauses.append(cur)
                cur = []
    return clauses


def find_claims(text: str, rel_tol: float = 1e-6) -> list[Claim]:
    """All arithmetic claims written in ``text`` (see the module docstring), each evaluated."""
    toks = tokenize(text)
    parser = _Parser(toks, text)
    claims: list[Claim] = []
    for clause in _pieces(toks):
        lefts = [parser.suffix(lo, hi) if lo < hi else None for lo, hi, _ in clause]
        rights = [parser.prefix(lo, hi) if lo < hi else None for lo, hi, _ in clause]
        for k in range(len(clause) - 1):
            left, right = lefts[k], rights[k + 1]
            rel_tok = clause[k + 1][2]
            relation = rel_tok.op if rel_tok is not None else "="
            if left is None or right is None or (left.ops == 0 and right.ops == 0):
                continue
            if relation == "is" and left.ops == 0:
                continue
            lhs, rhs = (left, right) if left.ops > 0 else (right, left)
            start = toks[left.start].start
            end_tok = right.last_num if right.ops == 0 and right.last_num >= 0 else right.end - 1
            if right.ops > 0:
                end_tok = right.end - 1
                while end_tok > right.start and toks[end_tok].kind in (WORD, OF, OP):
                    end_tok -= 1
            if end_tok + 1 < len(toks) and toks[end_tok].kind == NUM and toks[end_tok + 1].kind == PCT:
                end_tok += 1
            depth = sum(t.kind == LP for t in toks[left.start:end_tok + 1]) - sum(
                t.kind == RP for t in toks[left.start:end_tok + 1])
            while depth > 0 and end_tok + 1 < len(toks) and toks[end_tok + 1].kind == RP:
                end_tok, depth = end_tok + 1, depth - 1  # close "\boxed{12}", "(3 + 4)"
            end = toks[end_tok].end
            expression = text[start:end]
            claimed_span = rhs.num_spans[0] if rhs.ops == 0 and len(rhs.num_spans) == 1 else None
            try:
                value = evaluate(lhs.src)
            except _Undefined:
                claimed_f = _safe_float(rhs.src)
                claims.append(Claim(expression, lhs.src, claimed_f if claimed_f is not None else float("nan"),
                                    (start, end), None, False, relation, claimed_span, "undefined"))
                continue
            except (_Unsupported, ValueError, SyntaxError, OverflowError, ZeroDivisionError, TypeError):
                continue
            try:
                claimed = evaluate(rhs.src)
            except (_Undefined, _Unsupported, ValueError, SyntaxError, OverflowError, ZeroDivisionError, TypeError):
                continue
            ok, note = _judge(lhs, rhs, value, claimed, relation, rel_tol, text)
            if not ok and lhs is left and right.ops > 0 and right.lead is not None:
                # running arithmetic "2 + 3 = 5 + 1 = 6": the link claims the leading number
                lead_expr = _Expr(_fmt(right.lead), right.start, right.start + 1, nums=1,
                                  num_spans=right.num_spans[:1])
                ok, note = _judge(lhs, lead_expr, value, right.lead, relation, rel_tol, text)
                if ok or right.lead != left.lead:  # a rewrite "a x b = a x (c)" is reported as such
                    claimed, note = right.lead, ("running " + note).strip()
                    claimed_span = right.num_spans[0] if right.num_spans else None
            claims.append(Claim(expression, lhs.src, float(claimed), (start, end), float(value), ok, relation,
                                claimed_span, note))
    return claims


def _safe_float(src: str) -> float | None:
    try:
        return float(evaluate(src))
    except Exception:  # noqa: BLE001 - only used for reporting an undefined claim
        return None


# ------------------------------------------------------------------ checks on records


def check_step(step: Step, rel_tol: float = 1e-6) -> Check | None:
    """A ``Check(kind="tool")`` for the step's arithmetic claims, or None when it has none.

    verdict +1 when every claim holds, -1 when any fails; ``detail["claims"]`` lists each
    claim (expression, lhs, value, claimed, ok) and ``detail["expression"]`` is the first wrong
    claim (or the first claim when all hold)."""
    claims = find_claims(step.text, rel_tol=rel_tol)
    if not claims:
        return None
    wrong = [c for c in claims if not c.ok]
    return Check(kind="tool", by=CHECK_BY, verdict=-1 if wrong else 1,
                 score=sum(c.ok for c in claims) / len(claims),
                 detail={"claims": [c.as_dict() for c in claims],
                         "expression": (wrong or claims)[0].expression, "rel_tol": rel_tol})


def check_rationale(r: Rationale, rel_tol: float = 1e-6) -> Rationale:
    """Attach tool checks to every step of ``r`` (in place; also returned). Earlier tool checks
    by this checker are replaced, so re-checking never duplicates them."""
    for step in r.steps:
        step.checks = [c for c in step.checks if not (c.kind == "tool" and c.by == CHECK_BY)]
        check = check_step(step, rel_tol=rel_tol)
        if check is not None:
            step.checks.append(check)
    return r


__all__ = ["Claim", "find_claims", "check_step", "check_rationale", "evaluate", "tokenize"]
