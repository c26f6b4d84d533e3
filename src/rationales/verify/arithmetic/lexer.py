"""Tokens of a step's text, with character spans (see the package docstring for the grammar).

Only ASCII digits make numbers; any other digit-like character (superscripts not glued to an
operand, circled digits, other scripts' digits) is an ``UNK`` token, and ``UNK`` poisons the
expression next to it: a claim the lexer cannot read with confidence gets no verdict. Numbers
longer than ``MAX_DIGITS`` digits are ``UNK`` too (never converted to ``int``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

NUM, OP, LP, RP, EQ, PCT, CUR, WORD, VAR, SEP, FUNC, FRAC, HALF, OF, UNK, FACT, BINOM, CONST = (
    "NUM", "OP", "LP", "RP", "EQ", "PCT", "CUR", "WORD", "VAR", "SEP", "FUNC", "FRAC", "HALF", "OF", "UNK",
    "FACT", "BINOM", "CONST")

DIGITS = "0123456789"
#: a number written with more digits than this is not read (no verdict), never converted
MAX_DIGITS = 60
#: single letters that, glued to a number ("2x", "3y"), make an equation with a variable
VAR_LETTERS = set("xyzabcnkpqrtuvwXYZABCNK")
FRACTION_WORDS = {"half": Fraction(1, 2), "third": Fraction(1, 3), "quarter": Fraction(1, 4),
                  "fifth": Fraction(1, 5), "tenth": Fraction(1, 10)}
UNICODE_FRACTIONS = {"½": Fraction(1, 2), "⅓": Fraction(1, 3), "⅔": Fraction(2, 3), "¼": Fraction(1, 4),
                     "¾": Fraction(3, 4), "⅕": Fraction(1, 5), "⅛": Fraction(1, 8)}
SUPERSCRIPTS = {"⁰": 0, "¹": 1, "²": 2, "³": 3, "⁴": 4, "⁵": 5, "⁶": 6, "⁷": 7, "⁸": 8, "⁹": 9}
OP_CHARS = {"+": "+", "-": "-", "−": "-", "–": "-", "*": "*", "×": "*", "·": "*", "∙": "*", "⋅": "*",
            "∗": "*", "/": "/", "÷": "/", "^": "^"}
#: words that are operators when an operand follows ("3 x 4", "3 times 4", "5 plus 2", "7 choose 3")
OP_WORDS = {"x": "*", "X": "*", "times": "*", "plus": "+", "minus": "-", "choose": "C"}
APPROX_WORDS = r"(?:approximately|approx\.?|about|around|roughly|nearly|almost|~)"
#: LaTeX commands that are layout only
LATEX_LAYOUT = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "boxed", "mathbf",
                "textbf", "displaystyle", "textstyle", ",", ";", "!", ":", "quad", "qquad", "(", ")", "[", "]", " ",
                "{", "}", "limits", "mathit", "bm", "underbrace", "overbrace", "cancel", "color", "hline"}
#: LaTeX commands that end an expression without poisoning it (relations we do not check, breaks)
LATEX_SEP = {"le", "leq", "ge", "geq", "lt", "gt", "ne", "neq", "leqslant", "geqslant", "implies", "Rightarrow",
             "rightarrow", "to", "iff", "Longrightarrow", "therefore", "because", "\\", "newline", "and", "or",
             "text", "quad", "pm", "mp", "in", "notin", "subset", "cup", "cap", "forall", "exists", "mid", "ldots",
             "dots", "cdots", "vdots", "begin", "end", "label", "tag", "qed", "square", "checkmark"}
WHITESPACE = " \t\u00a0\u2009\u202f\u2002\u2003"
#: characters after a glued "!" that make it a factorial ("5! = 120", "5!/3!", "(n)!)")
_FACT_NEXT = set("=+-*/×·)}]^!≈÷−{(0123456789") | {"\\"}


@dataclass
class Tok:
    kind: str
    start: int
    end: int
    text: str = ""
    value: Fraction | None = None
    op: str = ""          # OP: + - * / ^ ; EQ: "=", "≈", "is" ; FUNC: sqrt ; CONST: pi
    space_before: bool = True
    opword: str = ""      # WORD that may act as an operator


_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?!\d)|\d{1,2}/\d{1,2}/\d{2,4}(?![\d/])|\d{1,2}:\d{2}(?::\d{2})?(?!\d)"
                   r"|(?:1[6-9]|20)\d{2}[-–](?:1[6-9]|20)\d{2}(?!\d)", re.ASCII)
_MIXED = re.compile(r"(\d{1,9}) (\d{1,9})/(\d{1,9})(?![\d/.,])", re.ASCII)
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?![\d])(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+", re.ASCII)
_DIGIT_RUN = re.compile(r"[\d.,]+", re.ASCII)
_ORDINAL = re.compile(r"(?:st|nd|rd|th)\b", re.IGNORECASE | re.ASCII)
_LETTERS = re.compile(r"[A-Za-z]+")
_ALNUM = re.compile(r"[A-Za-z0-9]+")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_LATEX = re.compile(r"\\([A-Za-z]+|.)", re.DOTALL)
_EQ = re.compile(r"(==|=|≈|≃|≅|~=)(?:\s*" + APPROX_WORDS + r"(?=[\s\d$£€.-]))?")
_EQ_WORDS = re.compile(r"(is\s+equal\s+to|equals|is|gives)(?:\s+" + APPROX_WORDS + r"(?=[\s\d$£€.-]))?\b")
_MULT_BY = re.compile(r"(multiplied|divided)\s+by\b")
_SUBSCRIPT = re.compile(r"_(?:\{[^{}\n]{0,20}\}|[A-Za-z0-9]{1,3})")


def _number_value(s: str) -> Fraction:
    return Fraction(s.replace(",", ""))


def _prev_char(text: str, i: int) -> str:
    j = i - 1
    while j >= 0 and text[j] in WHITESPACE:
        j -= 1
    return text[j] if j >= 0 else ""


def _next_char(text: str, i: int) -> str:
    j = i
    while j < len(text) and text[j] in WHITESPACE:
        j += 1
    return text[j] if j < len(text) else ""


def _math_letter(text: str, i: int, j: int) -> bool:
    """A single letter at [i, j) written as a quantity: next to an operator, relation or bracket."""
    before, after = _prev_char(text, i), _next_char(text, j)
    return (before in "+-*/^=(−×·÷" and before != "") or (after in "+-*/^=)−×·÷" and after != "")


def tokenize(text: str, variables: frozenset[str] = frozenset()) -> list[Tok]:
    """Cut ``text`` into tokens with character spans. Never raises on any string.

    A letter glued to a number ("20h") is a unit unless the same letter is used as a variable
    elsewhere in the text ("solve for h", "\\( h \\)", "h = 71") or in ``variables``."""
    toks = _tokenize(text)
    names = set(variables) | {t.text for t in toks if t.kind == VAR and len(t.text) == 1}
    if names:
        for j in range(1, len(toks)):
            t, prev = toks[j], toks[j - 1]
            if t.kind == WORD and t.text in names and prev.kind == NUM and prev.end == t.start and not t.opword:
                t.kind = VAR
    return toks


def _tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    i, n = 0, len(text)
    space = True

    def add(kind: str, start: int, end: int, **kw: Any) -> None:
        nonlocal space
        toks.append(Tok(kind, start, end, text[start:end], space_before=space, **kw))
        space = False

    glue = -1  # end of the last token, carried over glued layout commands ("f\\left(")

    def glued_operand() -> bool:
        return bool(toks) and not space and toks[-1].kind in (NUM, RP, VAR, CONST, FACT)

    while i < n:
        c = text[i]
        if c in WHITESPACE:
            while i < n and text[i] in WHITESPACE:
                i += 1
            space = True
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
        if c == "&":  # alignment in LaTeX: layout
            i += 1
            space = True
            continue
        if c == "\\":
            m = _LATEX.match(text, i)
            cmd = m.group(1) if m else ""
            end = m.end() if m else i + 1
            if cmd in ("times", "cdot", "ast"):
                add(OP, i, end, op="*")
            elif cmd == "div":
                add(OP, i, end, op="/")
            elif cmd in ("frac", "dfrac", "tfrac", "cfrac"):
                add(FRAC, i, end)
            elif cmd in ("binom", "dbinom", "tbinom", "choose"):
                add(BINOM, i, end)
            elif cmd == "sqrt":
                if text.startswith("[", end):  # \sqrt[3]{x}: a root we do not compute
                    add(UNK, i, end)
                else:
                    add(FUNC, i, end, op="sqrt")
            elif cmd in ("approx", "simeq", "cong", "thickapprox"):
                add(EQ, i, end, op="≈")
            elif cmd == "%":
                add(PCT, i, end)
            elif cmd == "$":
                add(CUR, i, end)
            elif cmd == "pi":
                add(CONST, i, end, op="pi")
            elif cmd in ("text", "mathrm", "textrm", "mbox", "operatorname", "textit", "mathrm"):
                close = text.find("}", end)
                if text.startswith("{", end) and close > 0 and close - end < 80:
                    inner = text[end + 1:close].strip()
                    if inner in ("%", "\\%", "percent"):
                        add(PCT, i, close + 1)
                    elif cmd == "operatorname":
                        add(UNK, i, close + 1)
                    elif inner:
                        add(WORD, i, close + 1)
                    end = close + 1
            elif cmd in LATEX_LAYOUT:
                if toks and (toks[-1].end == i or glue == i):
                    glue = end
            elif cmd in LATEX_SEP:
                add(SEP, i, end)
            else:  # \log, \sin, \alpha, \sum, ...: an expression we do not read
                add(UNK, i, end)
            i = end
            space = True if cmd in (",", ";", "quad", "qquad", " ", ":", "!") else space
            continue
        if c in "{(":
            if c == "(" and toks and toks[-1].kind in (WORD, VAR, UNK, CONST) \
                    and (toks[-1].end == i or glue == i):
                toks[-1].kind = UNK  # function application f(3), T(n-1), P(A): never a number
            add(LP, i, i + 1, op=c)
            i += 1
            continue
        if c in "})":
            add(RP, i, i + 1, op=c)
            i += 1
            continue
        if c == "[" or c == "]":
            add(SEP, i, i + 1)
            i += 1
            continue
        if c == "_" and toks and not space and toks[-1].end == i:  # a subscript: a_2, x_{n+1}
            m = _SUBSCRIPT.match(text, i)
            end = m.end() if m else i + 1
            prev = toks[-1]
            prev.kind = VAR if prev.kind in (VAR, WORD) and len(prev.text) <= 3 and prev.text.isalpha() else UNK
            prev.end, prev.text = end, text[prev.start:end]
            i = end
            continue
        if c in SUPERSCRIPTS or c == "⁻":
            j = i
            while j < n and (text[j] in SUPERSCRIPTS or text[j] == "⁻"):
                j += 1
            run = text[i:j]
            if glued_operand() and "⁻" not in run and len(run) <= 3:
                add(OP, i, i, op="^")
                add(NUM, i, j, value=Fraction(int("".join(str(SUPERSCRIPTS[ch]) for ch in run))))
            else:
                add(UNK, i, j)
            i = j
            continue
        if c == "!":
            if text.startswith("!=", i):
                add(SEP, i, i + 2)
                i += 2
                continue
            if glued_operand() and (_next_char(text, i + 1) in _FACT_NEXT or text.startswith("!!", i)):
                add(FACT, i, i + 1)
            elif glued_operand():
                add(UNK, i, i + 1)  # "= 5!" at a sentence end: exclamation or factorial? not read
            else:
                add(SEP, i, i + 1)
            i += 1
            continue
        m = _DATE.match(text, i) if c in DIGITS else None
        if m and not (i > 0 and (text[i - 1] in DIGITS or text[i - 1] in ".,")):
            add(SEP, i, m.end())
            i = m.end()
            continue
        if c in DIGITS or (c == "." and i + 1 < n and text[i + 1] in DIGITS):
            run = _DIGIT_RUN.match(text, i)
            if run and sum(ch in DIGITS for ch in run.group(0)) > MAX_DIGITS:
                add(UNK, i, run.end())
                i = run.end()
                continue
            if i > 0 and (text[i - 1].isalpha() or text[i - 1] == "_") and not (toks and toks[-1].kind == OP
                                                                              and toks[-1].end == i):
                am = _ALNUM.match(text, i)
                j = am.end() if am else i + 1
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
                if m is None:  # cannot happen with ASCII digits; never assert on model text
                    add(SEP, i, i + 1)
                    i += 1
                    continue
                j = m.end()
                if re.match(r",\d{3}", text[j:j + 4]) and "," not in m.group(0):
                    bad = _DIGIT_RUN.match(text, i)
                    end = bad.end() if bad else j
                    add(UNK, i, end)  # "1200,000": a malformed thousands separator, not read
                    i = end
                    continue
                om = _ORDINAL.match(text, j)
                if om:  # 1st, 22nd: a word
                    add(WORD, i, om.end())
                    i = om.end()
                    continue
                add(NUM, i, j, value=_number_value(m.group(0)))
                i = j
            # what is glued to the number
            if i < n and text[i] in UNICODE_FRACTIONS:
                toks[-1].value = (toks[-1].value or 0) + UNICODE_FRACTIONS[text[i]]
                toks[-1].end = i + 1
                toks[-1].text = text[toks[-1].start:i + 1]
                i += 1
            if i < n and text[i] in "xX×" and i + 1 < n and text[i + 1] in DIGITS:
                add(OP, i, i + 1, op="*")
                i += 1
                continue
            m = _LETTERS.match(text, i)
            if m:
                letters = m.group(0)
                if len(letters) == 1 and letters in VAR_LETTERS:
                    add(VAR, i, m.end())
                elif 1 < len(letters) <= 3 and all(ch in VAR_LETTERS for ch in letters) and letters.islower() \
                        and _math_letter(text, i, m.end()):
                    add(VAR, i, m.end())  # "2ab" in "a^2 + 2ab + b^2"
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
        if c == "~" and i + 1 < n and (text[i + 1] in DIGITS or text[i + 1] in " $"):
            add(EQ, i, i + 1, op="≈")
            i += 1
            continue
        if c in OP_CHARS:
            if c == "–" and not (i + 1 < n and (text[i + 1].isspace() or text[i + 1] in DIGITS)):
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
            if text.startswith("$$", i):  # display maths delimiter: layout
                i += 2
                space = True
                continue
            if c == "$" and not (i + 1 < n and (text[i + 1] in DIGITS or text[i + 1] in ".\\{")):
                i += 1  # inline maths delimiter "$x$": layout
                space = True
                continue
            add(CUR, i, i + 1)
            i += 1
            continue
        if c == "π":
            add(CONST, i, i + 1, op="pi")
            i += 1
            continue
        if c.isascii() and c.isalpha():
            m = _EQ_WORDS.match(text, i)
            if m and (i == 0 or not text[i - 1].isalpha()):
                rel = "≈" if m.end() > i + len(m.group(1)) else ("is" if m.group(1) == "is" else "=")
                add(EQ, i, m.end(), op=rel)
                i = m.end()
                continue
            m = _MULT_BY.match(text, i)
            if m:
                add(WORD, i, m.end(), opword="*" if m.group(1) == "multiplied" else "/")
                i = m.end()
                continue
            m = _WORD.match(text, i)
            w = m.group(0) if m else c
            end = m.end() if m else i + 1
            lw = w.lower()
            if lw == "of":
                add(OF, i, end)
            elif lw in FRACTION_WORDS:
                add(HALF, i, end, value=FRACTION_WORDS[lw])
            elif lw == "percent":
                add(PCT, i, end)
            elif lw == "sqrt":
                add(FUNC, i, end, op="sqrt")
            elif lw == "pi" and _math_letter(text, i, end):
                add(CONST, i, end, op="pi")
            elif w in OP_WORDS:
                add(WORD, i, end, opword=OP_WORDS[w])
            elif len(w) == 1 and w in VAR_LETTERS and lw != "a":
                add(VAR, i, end)
            elif len(w) == 1 and w not in "IO" and _math_letter(text, i, end):
                add(VAR, i, end)  # "a + b", "s = 12", "(a+b)^2"
            else:
                add(WORD, i, end)
            i = end
            continue
        if c == "√":
            add(FUNC, i, i + 1, op="sqrt")
            i += 1
            continue
        cat = unicodedata.category(c)
        if cat[0] == "L":  # a non-ASCII letter: part of a word
            j = i + 1
            while j < n and unicodedata.category(text[j])[0] == "L" and not text[j].isascii():
                j += 1
            add(WORD, i, j)
            i = j
            continue
        circled = c in "①②③④⑤⑥⑦⑧⑨⑩" or "\u2776" <= c <= "\u2793"  # list markers
        if cat in ("Nd", "Nl") or (cat == "No" and not circled):
            add(UNK, i, i + 1)  # other scripts' digits, fractions, numerals: not read
        else:
            add(SEP, i, i + 1)  # any other punctuation ends an expression
        i += 1
    return toks


__all__ = ["Tok", "tokenize", "MAX_DIGITS"]
