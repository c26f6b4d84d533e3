"""Final answers: extraction from a rationale, normalisation for voting, checking against gold.

Extraction looks, in order, for the last ``\\boxed{...}`` (what small math models write most),
``#### X`` (GSM8K style), and the last "The answer is X" / "Final answer: X" / "Answer: X".
A rationale with none of these has no answer (``None``): it is recorded as ``no_answer`` and
never counted as a guess.

Checking, by ``Problem.answer_type``:
* ``reasoning_gym``: the task's own ``score_answer`` (full credit 1.0 only counts as correct);
* ``number``: numeric comparison with a relative tolerance (units, $, %, commas stripped);
* ``math``: math-verify (sympy underneath);
* ``choice``: option letter or option text;
* ``exact``: normalised string equality;
* ``auto``: number if the gold is a number, else math-verify, else exact.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction
from typing import Any

from .records import Problem

_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)?\s*[:=]?\s*(?P<ans>[^\n]+)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*(?P<ans>[^\n]+)")
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:/\d+)?|[-+]?\.\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with nested braces balanced."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    i = text.find("{", idx)
    if i < 0:
        return None
    depth, j = 0, i
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip()
        j += 1
    return None


def _clean(ans: str) -> str:
    ans = ans.strip()
    ans = re.sub(r"^\*+|\*+$", "", ans).strip()  # markdown bold
    ans = re.sub(r"^\$+|\$+$", "", ans).strip() if ans.count("$") % 2 == 0 and ans.startswith("$$") else ans
    ans = ans.rstrip(" .;")
    return ans.strip()


def extract_answer(text: str) -> str | None:
    """The final answer written in ``text``, or None when it states none."""
    boxed = last_boxed(text)
    if boxed:
        return _clean(boxed)
    m = None
    for m in _HASHES.finditer(text):
        pass
    if m:
        return _clean(m.group("ans")) or None
    for m in _ANSWER_IS.finditer(text):
        pass
    if m:
        ans = _clean(m.group("ans"))
        inner = last_boxed(ans)
        return (inner or ans) or None
    return None


def parse_number(ans: str) -> Fraction | None:
    """A number written in ``ans`` ("$1,200", "18 dollars", "3/4", "12.5%") or None.
    Only when the answer is essentially a single number (ignoring units and words)."""
    s = ans.replace("\\$", "").replace("$", "").replace("\\%", "%").replace("\\,", "")
    s = re.sub(r"\\(?:text|mathrm)\{[^}]*\}", "", s)
    s = re.sub(r"\\frac\{(-?\d+)\}\{(\d+)\}", r"\1/\2", s)
    nums = _NUMBER.findall(s)
    if len(nums) != 1:
        return None
    try:
        return Fraction(nums[0].replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def normalize(ans: str | None) -> str | None:
    """A canonical key for voting: equal numbers map to the same key ("18", "$18.00" -> "18")."""
    if ans is None:
        return None
    num = parse_number(ans)
    if num is not None:
        return str(num.numerator) if num.denominator == 1 else f"{num.numerator}/{num.denominator}"
    s = re.sub(r"\s+", " ", ans.strip().lower()).strip(" .")
    s = re.sub(r"^\\text\{(.*)\}$", r"\1", s)
    return s or None


def numbers_equal(a: Fraction, b: Fraction, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    return abs(float(a) - float(b)) <= max(abs_tol, rel_tol * max(abs(float(a)), abs(float(b))))


def math_equal(gold: str, answer: str) -> bool | None:
    """math-verify equivalence; None when math-verify cannot parse one side.
    math-verify uses signal.alarm, which fails outside the main thread: there we disable its
    timeouts (ENVIRONMENT.md)."""
    from math_verify import parse, verify

    main = threading.current_thread() is threading.main_thread()
    kw: dict[str, Any] = {} if main else {"parsing_timeout": None}
    vkw: dict[str, Any] = {} if main else {"timeout_seconds": None}

    def wrap(s: str) -> str:
        return s if "$" in s or "\\boxed" in s else f"${s}$"

    try:
        g, a = parse(wrap(gold), **kw), parse(wrap(answer), **kw)
        if not g or not a:
            return None
        return bool(verify(g, a, **vkw))
    except Exception:  # math-verify raises many kinds on odd input; treat as not parseable
        return None


def normalize_text(s: str) -> str:
    s = s.lower().strip()
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s)
    s = re.sub(r"[\s]+", " ", s)
    return s.strip(" .!\"'`")


def check_choice(problem: Problem, answer: str) -> bool:
    gold = (problem.gold or "").strip()
    letters = "ABCDEFGHIJ"
    a = answer.strip().strip("()").strip()
    if len(a) == 1 and a.upper() in letters:
        a_letter = a.upper()
    else:
        m = re.match(r"^\(?([A-J])[).:\s]", answer.strip())
        a_letter = m.group(1) if m else None
        if a_letter is None and problem.choices:
            for i, c in enumerate(problem.choices):
                if normalize_text(c) == normalize_text(answer):
                    a_letter = letters[i]
    g = gold.strip("()").upper()
    if len(g) != 1 and problem.choices:
        for i, c in enumerate(problem.choices):
            if normalize_text(c) == normalize_text(gold):
                g = letters[i]
    return a_letter is not None and a_letter == g


def check_reasoning_gym(problem: Problem, answer: str) -> bool:
    """The task's own scorer; a numeric answer in LaTeX or decimal dress ("\\(-4\\)", "$-4$",
    "-4.0") is also tried in its plain normalised form, which those scorers compare exactly."""
    from .tasks.reasoning_gym import score_entry

    if score_entry(problem, answer) >= 1.0:
        return True
    plain = normalize(answer) if parse_number(answer) is not None else None
    return plain is not None and plain != answer and score_entry(problem, plain) >= 1.0


def check_answer(problem: Problem, answer: str | None, rel_tol: float = 1e-6) -> bool | None:
    """True/False against the problem's gold; None when there is no gold to check against.
    A missing answer (None) is False when a gold exists: it is never a lucky guess."""
    if answer is None:
        return None if problem.gold is None and problem.answer_type != "reasoning_gym" else False
    kind = problem.answer_type
    if kind == "reasoning_gym":
        return check_reasoning_gym(problem, answer)
    if problem.gold is None:
        return None
    gold = problem.gold
    if kind == "choice":
        return check_choice(problem, answer)
    if kind == "exact":
        return normalize_text(gold) == normalize_text(answer)
    if kind in ("number", "auto"):
        g, a = parse_number(gold), parse_number(answer)
        if g is not None and a is not None:
            return numbers_equal(g, a, rel_tol=rel_tol)
        if kind == "number":
            return False
    if kind in ("math", "auto"):
        res = math_equal(gold, answer)
        if res is not None:
            return res
    return normalize_text(gold) == normalize_text(answer)
