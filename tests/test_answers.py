import pytest

from rationales.records import Problem
from rationales.answers import check_answer, extract_answer, normalize


@pytest.mark.parametrize("text,expected", [
    ("so we get \\boxed{42}.", "42"),
    ("\\boxed{\\frac{1}{2}} and later \\boxed{7}", "7"),
    ("Step 1: ...\nThe answer is $1,200.", "$1,200"),
    ("Final answer: 3/4", "3/4"),
    ("blah\n#### 72", "72"),
    ("The answer is \\boxed{9}.", "9"),
    ("**Answer:** 15", "15"),
    ("I am not sure what to do.", None),
    ("", None),
])
def test_extract(text, expected):
    assert extract_answer(text) == expected


def test_normalize_groups_equal_numbers():
    assert normalize("$18.00") == normalize("18") == normalize("18 dollars") == "18"
    assert normalize("0.5") == normalize("1/2") == "1/2"
    assert normalize(None) is None
    assert normalize("Paris ") == "paris"


def test_check_number_math_exact_choice():
    num = Problem.make("q", "23", answer_type="number")
    assert check_answer(num, "$23.0") is True
    assert check_answer(num, "24") is False
    assert check_answer(num, None) is False  # no answer is wrong, never a guess
    auto = Problem.make("q", "\\frac{3}{4}")
    assert check_answer(auto, "0.75") is True
    assert check_answer(Problem.make("q", "x^2+2x+1", answer_type="math"), "(x+1)^2") is True
    assert check_answer(Problem.make("q", "x^2+2x+1", answer_type="math"), "(x+2)^2") is False
    assert check_answer(Problem.make("q", "Paris", answer_type="exact"), "paris.") is True
    mc = Problem.make("q", "B", answer_type="choice", choices=["red", "blue", "green"])
    assert check_answer(mc, "(B)") is True and check_answer(mc, "blue") is True and check_answer(mc, "A") is False
    assert check_answer(Problem.make("q", None), "5") is None


def test_reasoning_gym_uses_its_own_scorer():
    from rationales.tasks import load_task

    p = load_task("reasoning_gym:basic_arithmetic", size=3, seed=1)[0]
    assert check_answer(p, p.gold) is True
    assert check_answer(p, "not a number") is False


def test_long_numbers_compare_exactly_without_overflow():
    """A 400-digit answer raised OverflowError in numbers_equal (float()); now exact."""
    from fractions import Fraction

    from rationales.answers import MAX_DIGITS, grade_answer, numbers_equal

    big = "9" * 400
    num = Problem.make("q", "18", answer_type="number")
    assert check_answer(num, big) is False
    assert check_answer(Problem.make("q", big, answer_type="number"), big) is True
    assert check_answer(Problem.make("q", big), big + ".0") is True
    assert normalize(big) == big
    assert numbers_equal(Fraction(10) ** 400, Fraction(10) ** 400 + 1)  # within rel_tol
    assert not numbers_equal(Fraction(10) ** 400, Fraction(10) ** 399)
    assert not numbers_equal(float("inf"), float("inf"))  # non-finite never equal
    g = grade_answer(num, "1" * (MAX_DIGITS + 1))
    assert g.correct is None and "digit" in g.error


def test_no_verdict_becomes_an_error_outcome_and_the_run_goes_on(tmp_path):
    from rationales.generate import finish_rationale
    from rationales.records import Sampling

    p = Problem.make("q", "\\frac{1}{2}", answer_type="math")
    r = finish_rationale(p, "So \\boxed{9^{9^{9^{9}}}}", rid="r", prompt_id="p", model="m", sampling=Sampling(),
                         index=0)
    assert r.outcome == "error" and r.correct is None and "power" in r.meta["error"]
    rg = Problem.make("q", "1", answer_type="reasoning_gym")  # no reasoning-gym metadata
    r = finish_rationale(rg, "The answer is 1", rid="r", prompt_id="p", model="m", sampling=Sampling(), index=0)
    assert r.outcome == "error" and "metadata" in r.meta["error"]


def test_extraction_has_no_catastrophic_backtracking():
    import time

    t0 = time.perf_counter()
    for text in ("answer" + "\n" * 20000, "*" * 50000 + "x", "The answer is " + " " * 50000,
                 "\\boxed{" * 20000, "#### " * 10000, "\\text{" * 20000 + "5"):
        extract_answer(text)
        normalize(text)
        check_answer(Problem.make("q", "5"), text)
    assert time.perf_counter() - t0 < 5
