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

Safety: model text is never evaluated here. Numbers are parsed by a regex into ``Fraction``s
(at most ``MAX_DIGITS`` digits, compared exactly, so no float overflow). reasoning-gym's scorers
(``eval``/``parse_expr`` of the answer on many tasks) and math-verify (``parse_expr`` of plain
expressions) run only in the locked-down worker of ``rationales.tasks.sandbox``, with a time
limit; powers too large to evaluate (``9^{9^{9^{9}}}``), numbers over ``MAX_DIGITS`` digits and
answers over ``MAX_ANSWER_CHARS`` characters are refused before any of that, with no verdict.
``grade_answer`` says why there is no verdict (``Grade.error``; the generate stage records it
as the sample's ``error`` outcome); ``check_answer`` keeps the plain True/False/None.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .records import Problem

MAX_DIGITS = 1000  # longest numeral compared; longer ones get no verdict
MAX_ANSWER_CHARS = 20_000  # longest answer sent to a scorer
MAX_POWER_DIGITS = 10_000  # a literal power a**b is refused when its value would have more digits

_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*+(?:is|:|=)?\s*+[:=]?\s*+(?P<ans>[^\n]+)", re.IGNORECASE)
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
    ans = ans.strip("*").strip()  # markdown bold
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
    Only when the answer is essentially a single number (ignoring units and words), with at most
    ``MAX_DIGITS`` digits."""
    if len(ans) > MAX_ANSWER_CHARS:
        return None
    s = ans.replace("\\$", "").replace("$", "").replace("\\%", "%").replace("\\,", "")
    s = re.sub(r"\\(?:text|mathrm)\{[^}]*\}", "", s)
    s = re.sub(r"\\frac\{(-?\d+)\}\{(\d+)\}", r"\1/\2", s)
    nums = _NUMBER.findall(s)
    if len(nums) != 1 or sum(c.isdigit() for c in nums[0]) > MAX_DIGITS:
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


def numbers_equal(a: Fraction | int | float, b: Fraction | int | float, rel_tol: float = 1e-6,
                  abs_tol: float = 1e-9) -> bool:
    """|a - b| <= max(abs_tol, rel_tol * max(|a|, |b|)), in exact rational arithmetic (no
    float overflow on long numbers; non-finite floats are never equal)."""
    try:
        fa, fb = Fraction(a), Fraction(b)
        tol = max(Fraction(abs_tol), Fraction(rel_tol) * max(abs(fa), abs(fb)))
    except (ValueError, OverflowError, TypeError):
        return False
    return abs(fa - fb) <= tol


_POWER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:\^|\*\*)\s*(?:\{\s*)?\(?\s*(\d+(?:\.\d+)?)")
_TOWER = re.compile(r"(?:\^|\*\*)\s*(?:[{(]\s*)*[-+]?\d[\d.]*\s*(?:[})]\s*)*(?:\^|\*\*)")
_FACTORIAL = re.compile(r"(?<!\d)(\d{5,})\s*!")
_DIGIT_RUN = re.compile(r"\d[\d,]*")


def too_costly(text: str) -> str | None:
    """Why ``text`` must not be handed to a symbolic scorer (it could take unbounded time or
    memory), or None. Cheap and regex-only: answer length, numerals over ``MAX_DIGITS`` digits,
    towers of numeric powers (``9^{9^{9}}``, ``2**3**4``), a literal power or factorial whose value
    would have more than ``MAX_POWER_DIGITS`` digits."""
    if len(text) > MAX_ANSWER_CHARS:
        return f"the answer has {len(text)} characters (limit {MAX_ANSWER_CHARS})"
    for m in _DIGIT_RUN.finditer(text):
        n = len(m.group()) - m.group().count(",")
        if n > MAX_DIGITS:
            return f"the answer has a {n}-digit number (limit {MAX_DIGITS} digits)"
    if _TOWER.search(text):
        return "the answer is a tower of numeric powers, too large to evaluate"
    for m in _POWER.finditer(text):
        base, exp = float(m.group(1)), float(m.group(2))
        if base > 1 and exp * math.log10(base) > MAX_POWER_DIGITS:
            return f"the answer holds the power {m.group(1)}^{m.group(2)}, too large to evaluate"
    if _FACTORIAL.search(text):
        return "the answer holds a factorial too large to evaluate"
    return None


@dataclass(frozen=True)
class Grade:
    """A checked answer: ``correct`` True/False, or None with ``error`` saying why there is no
    verdict (None without error: nothing to check against)."""

    correct: bool | None
    error: str | None = None


_Plan = Grade | tuple[list[dict], Callable[[list[Any]], Grade]]


def _sandbox_jobs(jobs: list[dict]) -> list[Any]:
    """Run scorer jobs in the sandbox worker, memoised per process (scores are deterministic)."""
    from .tasks.sandbox import run_jobs

    keys = [json.dumps(j, sort_keys=True, default=str) for j in jobs]
    with _JOB_LOCK:
        todo = [k for k in dict.fromkeys(keys) if k not in _JOB_CACHE]
    got = dict(zip(todo, run_jobs([json.loads(k) for k in todo]))) if todo else {}
    out = []
    with _JOB_LOCK:
        for k, res in got.items():
            if res.error is None or "took longer" in res.error or "CPU" in res.error:
                _JOB_CACHE[k] = res  # timeouts are remembered too: retrying costs the same again
        while len(_JOB_CACHE) > 8192:
            _JOB_CACHE.popitem(last=False)
        for k in keys:
            res = got.get(k) or _JOB_CACHE.get(k)
            if k in _JOB_CACHE:
                _JOB_CACHE.move_to_end(k)
            out.append(res)
    return out


_JOB_CACHE: OrderedDict[str, Any] = OrderedDict()
_JOB_LOCK = threading.Lock()


def math_equal(gold: str, answer: str) -> bool | None:
    """math-verify equivalence; None when math-verify cannot parse one side, when either side is
    too costly to evaluate, or when scoring failed. Runs in the sandbox worker (math-verify's
    plain-expression path calls sympy's ``parse_expr``), with a time limit of its own."""
    g = _plan_math(gold, answer)
    if isinstance(g, Grade):
        return None
    jobs, combine = g
    res = _sandbox_jobs(jobs)[0]
    return None if res.error is not None else res.value


def _plan_math(gold: str, answer: str) -> _Plan:
    why = too_costly(answer) or too_costly(gold)
    if why:
        return Grade(None, why)

    def combine(results: list[Any]) -> Grade:
        res = results[0]
        if res.error is not None:
            return Grade(None, f"math-verify failed: {res.error}")
        if res.value is None:  # not parseable as maths: compare as text
            return Grade(normalize_text(gold) == normalize_text(answer))
        return Grade(bool(res.value))

    return [{"kind": "math", "gold": gold, "answer": answer}], combine



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


def _plan_reasoning_gym(problem: Problem, answer: str) -> _Plan:
    """The task's own scorer (in the sandbox); a numeric answer in LaTeX or decimal dress
    ("\\(-4\\)", "$-4$", "-4.0") is also tried in its plain normalised form, which those scorers
    compare exactly. Only full credit (1.0) is correct."""
    rg = problem.meta.get("rg")
    if not isinstance(rg, dict) or not {"name", "size", "seed", "index"} <= set(rg):
        return Grade(None, f"problem {problem.id} has no reasoning-gym metadata; set its answer_type otherwise")
    why = too_costly(answer)
    if why:
        return Grade(None, why)
    base = {"kind": "rg", "rg": {k: rg.get(k) for k in ("name", "size", "seed", "index", "config")},
            "entry": problem.meta.get("entry")}
    answers = [answer]
    plain = normalize(answer) if parse_number(answer) is not None else None
    if plain is not None and plain != answer:
        answers.append(plain)

    def combine(results: list[Any]) -> Grade:
        if any(r.error is None and isinstance(r.value, (int, float)) and r.value >= 1.0 for r in results):
            return Grade(True)
        errors = [r.error for r in results if r.error is not None]
        if errors:
            return Grade(None, f"reasoning-gym scorer failed: {errors[0]}")
        return Grade(False)

    return [dict(base, answer=a) for a in answers], combine


def _plan(problem: Problem, answer: str | None, rel_tol: float) -> _Plan:
    if answer is None:
        return Grade(None if problem.gold is None and problem.answer_type != "reasoning_gym" else False)
    kind = problem.answer_type
    if kind == "reasoning_gym":
        return _plan_reasoning_gym(problem, answer)
    if problem.gold is None:
        return Grade(None)
    gold = problem.gold
    if kind == "choice":
        return Grade(check_choice(problem, answer))
    if kind == "exact":
        return Grade(normalize_text(gold) == normalize_text(answer))
    if kind in ("number", "auto"):
        why = too_costly(answer) if kind == "number" else None
        if why and "-digit number" in why:
            return Grade(None, why)
        g, a = parse_number(gold), parse_number(answer)
        if g is not None and a is not None:
            return Grade(numbers_equal(g, a, rel_tol=rel_tol))
        if kind == "number":
            return Grade(False)
    if kind in ("math", "auto"):
        return _plan_math(gold, answer)
    return Grade(normalize_text(gold) == normalize_text(answer))


def grade_answers(items: Sequence[tuple[Problem, str | None]], rel_tol: float = 1e-6) -> list[Grade]:
    """``grade_answer`` for many answers at once: every sandboxed scorer call goes to the worker
    in one batch. Never raises for a bad answer."""
    plans = []
    for problem, answer in items:
        try:
            plans.append(_plan(problem, answer, rel_tol))
        except Exception as e:  # a bug in a local comparison must not stop a run
            plans.append(Grade(None, f"answer check failed: {type(e).__name__}: {e}"))
    jobs = [j for p in plans if not isinstance(p, Grade) for j in p[0]]
    failure = "no result from the scoring worker"
    try:
        results = _sandbox_jobs(jobs) if jobs else []
    except Exception as e:  # the worker could not start at all
        results = [None] * len(jobs)
        failure = str(e)
    out, k = [], 0
    for p in plans:
        if isinstance(p, Grade):
            out.append(p)
            continue
        mine = results[k:k + len(p[0])]
        k += len(p[0])
        if any(r is None for r in mine):
            out.append(Grade(None, f"answer check failed: {failure}"))
        else:
            out.append(p[1](mine))
    return out


def grade_answer(problem: Problem, answer: str | None, rel_tol: float = 1e-6) -> Grade:
    """The verdict on ``answer`` and, when there is none, why (see ``Grade``)."""
    return grade_answers([(problem, answer)], rel_tol=rel_tol)[0]


def check_answer(problem: Problem, answer: str | None, rel_tol: float = 1e-6) -> bool | None:
    """True/False against the problem's gold; None when there is no gold to check against (or
    no verdict could be reached: see ``grade_answer``).
    A missing answer (None) is False when a gold exists: it is never a lucky guess."""
    return grade_answer(problem, answer, rel_tol=rel_tol).correct
