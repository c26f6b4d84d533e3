from rationales.records import Problem, Rationale
from rationales.select.vote import majority_vote, weighted_vote
from rationales.stats import accuracy, wilson_interval


def rs(*answers, tokens=10):
    return [Rationale(id=f"r{i}", problem_id="p", prompt_id="q", model="m", answer=a, tokens=tokens,
                      outcome="ok" if a else "no_answer") for i, a in enumerate(answers)]


def test_majority_vote_groups_and_shares():
    p = Problem.make("q", "18", answer_type="number")
    sel = majority_vote(p, rs("18", "$18.00", "17", None, "18 dollars"))
    assert sel.answer in ("18", "$18.00") and sel.correct is True
    assert sel.votes == {"18": 3.0, "17": 1.0}
    assert sel.confidence == 0.75  # 3 of the 4 answered samples
    assert sel.tokens == 50


def test_tie_goes_to_first_seen_and_no_answers():
    p = Problem.make("q", "2", answer_type="number")
    assert majority_vote(p, rs("1", "2", "2", "1")).answer == "1"
    none = majority_vote(p, rs(None, None))
    assert none.answer is None and none.correct is False and none.confidence == 0.0


def test_weighted_vote_can_overturn_majority():
    p = Problem.make("q", "7", answer_type="number")
    weights = {"r0": 0.1, "r1": 0.1, "r2": 0.9}
    sel = weighted_vote(p, rs("5", "5", "7"), lambda r: weights[r.id])
    assert sel.answer == "7" and sel.correct is True
    assert abs(sel.confidence - 0.9 / 1.1) < 1e-9


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert abs(lo - 0.4902) < 1e-3 and abs(hi - 0.9433) < 1e-3
    assert wilson_interval(0, 0) == (0.0, 1.0)
    acc = accuracy([True, False, None, True])
    assert acc.value == 0.5 and acc.as_dict()["n"] == 4
