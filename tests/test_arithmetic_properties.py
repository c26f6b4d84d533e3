"""Property tests of the step checker and the segmenter on random and adversarial text: no
exception escapes, bounded time and memory, the same input gives the same result, and nothing
is ever executed (an audit hook watches)."""

from __future__ import annotations

import sys
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rationales.records import Rationale, Step
from rationales.steps import is_layout, segment
from rationales.verify.arithmetic import check_rationale, check_step, find_claims

FRAGMENTS = ["0", "1", "2", "7", "9", "12", "1,000", "3.5", ".5", "1 1/2", "½", "²", "³", "⁵", "①", "٣", "+", "-",
             "−", "*", "×", "·", "/", "÷", "^", "=", "≈", "(", ")", "{", "}", "[", "]", "%", "$", "!", " ", "\n",
             "x", "y", "a", "b", "s", "k", "n", "f(", "g(2)", "T(n-1)", "a_2", "_{n+1}", "\\frac", "\\dfrac",
             "\\binom", "\\sqrt", "\\times", "\\cdot", "\\left(", "\\right)", "\\le", "\\approx", "\\pi", "\\[",
             "\\]", "$$", "```", "choose", " of ", " is ", " about ", "let ", "so ", "if ", "Step 1:", "1.", "9^9^9",
             "10^{100}", "!", "⁻", "π", "√", "~", "&", "\\\\", "\\text{cm}", "simplify", "\ud800", "\u202e", "\x00"]

fragment_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
any_text = st.one_of(fragment_text, st.text(max_size=200))

SLOW = 2.0  # seconds; a step is checked in milliseconds, this only catches blow-ups
# sympy's first use of pi, roots and polynomials costs seconds once: pay it before timing anything
find_claims("π ≈ 3.14, \\sqrt{2} ≈ 1.41, 2x + 3x = 5x, x + 3 = 7, so x = 4, \\frac{x^2-1}{x-1} = x + 1")


def checked(text: str):
    start = time.perf_counter()
    claims = find_claims(text)
    step = check_step(Step(index=0, text=text, span=(0, len(text))))
    assert time.perf_counter() - start < SLOW, text
    return claims, step


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_checker_never_raises_is_fast_and_deterministic(text):
    claims, step = checked(text)
    again, step2 = checked(text)
    assert [c.as_dict() for c in claims] == [c.as_dict() for c in again]
    assert (step is None) == (not claims)
    if step is not None:
        assert step.verdict in (1, -1) and step2 is not None and step.detail == step2.detail
        for c in claims:  # spans point into the text, and every verdict says what it evaluated
            assert 0 <= c.span[0] <= c.span[1] <= len(text) and text[c.span[0]:c.span[1]] == c.expression
            assert c.lhs and c.tolerance


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_text, min_size=1, max_size=6))
def test_check_rationale_never_raises(step_texts):
    text = "\n".join(step_texts)
    r = Rationale(id="r", problem_id="p", prompt_id="x", model="m", text=text, steps=segment(text, "lines"))
    check_rationale(r)
    assert all(s.verdict("tool") in (None, 1, -1) for s in r.steps)


@settings(max_examples=150, deadline=None)
@given(any_text, st.sampled_from(["auto", "lines", "numbered", "sentences"]))
def test_segmentation_spans_and_layout(text, mode):
    steps = segment(text, mode)
    assert segment(text, mode) == steps
    end = -1
    for s in steps:
        a, b = s.span
        assert text[a:b] == s.text and s.text == s.text.strip() and a >= end
        assert not is_layout(s.text)
        end = b


BIG = "9" * 100_000


@pytest.mark.parametrize("text", [
    "(" * 5000 + "1" + ")" * 5000 + " = 1",
    "9^9^9^9 = 5", "9^{9^{9^{9}}} = 5", "2^(2^(2^(2^10))) = 4", "10^10^10 = 7", "(10^100)^(10^100) = 1",
    BIG + " + 1 = 2", "1 + 1 = " + BIG, BIG + "." + BIG + " = 1", "2^" + BIG + " = 1",
    "1000! = 5", "100000! = 1", "(10^50)! = 1", "9!!!!!!!!!! = 1", "\\binom{1000000000}{500000000} = 3",
    "1000000 choose 500000 = 2", "\\sqrt{" * 3000 + "4" + "}" * 3000 + " = 2",
    "x^" * 2000 + "2 = 4", "(a+b+c+d+e+f+g+h)^12 = 1", "((x+1)^12)^12 = 0", "Expanding, (x+y+z)^12 = 1",
    "1/" * 3000 + "1 = 1", "- " * 10000 + "1 = 1", "3 + 4 = 7. " * 2000, "= " * 20000, "a_" * 10000,
    "\\frac{" * 2000 + "1" + "}{2}" * 2000 + " = 1", "x + 3 = 7, so x = " + "9" * 5000,
    "let s = " + "9" * 59 + ". Then s^64 = 1",
])
def test_adversarial_inputs_are_bounded(text):
    find_claims("3 + 4 = 7")  # sympy imported outside the measurement
    start = time.perf_counter()
    claims = find_claims(text)
    check_step(Step(index=0, text=text, span=(0, len(text))))
    segment(text)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, elapsed
    tracemalloc.start()  # a second run, for memory (tracing slows it down several times)
    try:
        find_claims(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20, peak  # no unbounded allocation (a 10^100-digit power would need far more)
    assert all(c.value is None or abs(c.value) < 1e302 for c in claims)


def test_huge_computations_get_no_verdict():
    for text in ("9^9^9^9 = 5", "1000! = 5", "2^100000 = 1", "\\binom{100000}{50000} = 1", "1" * 100 + " + 1 = 2"):
        assert find_claims(text) == [], text
    assert find_claims("20! = 2432902008176640000")[0].ok  # within the bounds: computed exactly
    assert find_claims("2^64 = 18446744073709551616")[0].ok


PAYLOADS = ["__import__('os').system('touch /tmp/pwned') = 0", "(lambda: 1)() + 1 = 2", "open('x').read() + 1 = 2",
            "().__class__.__bases__[0].__subclasses__() = 1", "eval('1+1') = 2", "exec('import os') + 1 = 1",
            "os.system('ls') = 0", "\\input{/etc/passwd} + 1 = 2", "x = __import__('os'); x + 1 = 2",
            "compile('1','','eval') + 1 = 2", "1 + 1 = 2 ; import os", "let os = 5. Then os + 1 = 6"]


def test_checking_model_text_executes_nothing(tmp_path):
    find_claims("2x + 3x = 5x. x + 3 = 7, so x = 4")  # warm up imports before watching
    seen: list[tuple[str, tuple]] = []
    watching = [True]

    def hook(event, args):
        if watching[0] and event in ("exec", "compile", "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn",
                                     "open", "builtins.input", "import"):
            seen.append((event, args))

    sys.addaudithook(hook)  # audit hooks cannot be removed: it stops recording at the end
    try:
        for p in PAYLOADS:
            find_claims(p)
            r = Rationale(id="r", problem_id="p", prompt_id="x", model="m", text=p, steps=segment(p))
            check_rationale(r)
    finally:
        watching[0] = False
    assert seen == []
    assert not (tmp_path / "pwned").exists()
