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
