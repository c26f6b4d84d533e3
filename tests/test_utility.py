"""Reasoning utility (score/utility.py): log-prob gain of the gold answer, per step."""

from __future__ import annotations

import math

import pytest

from rationales.backends.fake import FakeBackend
from rationales.jobs.methods import METHODS, MethodContext, method_function
from rationales.prompts import render
from rationales.records import Problem, Rationale
from rationales.score.utility import AnswerScorer, auroc, rationale_body, reasoning_utility, score_utility
from rationales.select.vote import utility_vote
from rationales.report import write_report

GOOD = "Step 1: 12 - 5 = 7 apples are left.\nStep 2: 7 + 8 = 15 apples.\nThe answer is 15."
BAD = "Step 1: 12 + 5 = 17 apples.\nStep 2: 17 - 8 = 9 apples.\nThe answer is 9."
QUESTION = "Tom has 12 apples. He gives 5 away and buys 8 more. How many apples does he have?"


def scripted_logprob(prompt: str, continuation: str) -> float:
    """Hand-made log-probs: the answer statement gets -8 with no rationale; the step
    "12 - 5 = 7" adds 1.5 and "7 + 8 = 15" adds 4 for the answer 15; the wrong steps lower it."""
    assistant = prompt.rsplit("<|im_start|>assistant\n", 1)[-1]
    assert "The answer is" not in assistant, "the rationale's own answer line must be cut off"
    if "15" in continuation:
        lp = -8.0
        lp += 1.5 if "12 - 5 = 7" in assistant else 0.0
        lp += 4.0 if "7 + 8 = 15" in assistant else 0.0
        lp -= 2.0 if "12 + 5 = 17" in assistant else 0.0
        lp -= 0.5 if "17 - 8 = 9" in assistant else 0.0
        return lp
    if "9" in continuation:
        return -6.0 + (3.0 if "17 - 8 = 9" in assistant else 0.0)
    return -30.0


def rat(text: str, answer: str | None, correct: bool | None, rid: str) -> Rationale:
    return Rationale(id=rid, problem_id="p", prompt_id="q", model="fake", text=text, answer=answer, correct=correct)


@pytest.mark.parametrize("text,body", [
    (GOOD, "Step 1: 12 - 5 = 7 apples are left.\nStep 2: 7 + 8 = 15 apples."),
    ("8 + 7 = 15, so the answer is 15.", "8 + 7 = 15"),
    ("We add.\nThen 3 + 4 = 7. Therefore, the answer is \\boxed{7}.", "We add.\nThen 3 + 4 = 7."),
    ("Add them: 2 + 2 = 4.\n#### 4", "Add them: 2 + 2 = 4."),
    ("Final Answer: 5", ""),
    ("No statement here, 2 + 3 = 5", "No statement here, 2 + 3 = 5"),
    ("First line.\nThe answer is 3.\nThe answer is 4.", "First line."),
])
def test_rationale_body_cuts_the_answer_statement(text, body):
    assert rationale_body(text) == body


def test_utility_and_cumulative_per_step_match_hand_computed_values():
    backend = FakeBackend(logprob_fn=scripted_logprob)
    problem = Problem.make(QUESTION, "15", answer_type="number")
    prompt = render("cot", question=QUESTION)
    good = reasoning_utility(backend, problem, rat(GOOD, "15", True, "g"), prompt)
    assert good.kind == "utility"
    assert good.detail["baseline"] == -8.0
    assert good.detail["per_step"] == [1.5, 5.5]  # cumulative: +1.5 after step 1, +4 more after step 2
    assert good.value == 5.5 == good.detail["with_rationale"] - good.detail["baseline"]
    bad = reasoning_utility(backend, problem, rat(BAD, "9", False, "b"), prompt)
    assert bad.detail["per_step"] == [-2.0, -2.5] and bad.value == -2.5
    # toward its own answer the wrong rationale looks useful: -6 -> -3
    own = reasoning_utility(backend, problem, rat(BAD, "9", False, "b"), prompt, answer="9", per_step=False,
                            kind="utility_own")
    assert own.value == 3.0 and own.detail["per_step"] == []
    # the fake spreads a continuation's log-prob over its words: 4 tokens, NLL/token = 8/4 at baseline
    assert good.detail["nll_per_token"][0] == 2.0 and good.detail["answer_tokens"] == 4


def test_no_gold_and_empty_rationale():
    backend = FakeBackend(logprob_fn=scripted_logprob)
    prompt = render("cot", question=QUESTION)
    s = reasoning_utility(backend, Problem.make(QUESTION), rat(GOOD, "15", None, "g"), prompt)
    assert s.value is None and "gold" in s.detail["reason"]
    empty = reasoning_utility(backend, Problem.make(QUESTION, "15"), rat("The answer is 15.", "15", True, "e"), prompt)
    assert empty.value == 0.0 and empty.detail["steps"] == 0


def test_baseline_is_memoised_and_scores_are_reused():
    backend = FakeBackend(logprob_fn=scripted_logprob)
    problem = Problem.make(QUESTION, "15", answer_type="number")
    prompt = render("cot", question=QUESTION)
    rs = [rat(GOOD, "15", True, "g"), rat(BAD, "9", False, "b")]
    scorer = AnswerScorer(backend)
    score_utility(backend, problem, rs, prompt, scorer=scorer)
    # gold: 1 baseline + 2 steps (good) + 2 steps (bad); own: good = same continuation as gold
    # (memoised: 0 new), bad = 1 baseline for "9" + 1 full
    assert scorer.calls == 7 == backend.logprob_calls
    assert rs[0].score("utility_own") == 5.5 and rs[1].score("utility_own") == 3.0
    score_utility(backend, problem, rs, prompt)  # already scored: nothing recomputed
    assert backend.logprob_calls == 7


def test_utility_vote_uses_logistic_weights_of_own_answer_utility():
    p = Problem.make("q", "9", answer_type="number")
    rs = [rat("a", "7", False, "r0"), rat("b", "7", False, "r1"), rat("c", "9", True, "r2")]
    from rationales.records import Score

    for r, u in zip(rs, (-2.0, -2.0, 3.0)):
        r.set_score(Score(kind="utility_own", value=u))
    sel = utility_vote(p, rs)
    w7, w9 = 2 / (1 + math.exp(2.0)), 1 / (1 + math.exp(-3.0))  # 0.2384, 0.9526
    assert sel.answer == "9" and sel.correct is True
    assert sel.confidence == pytest.approx(w9 / (w9 + w7)) == pytest.approx(0.79982, abs=1e-4)


def test_auroc_counts_pairs():
    assert auroc([3.0, 1.0], [0.0, 1.0]) == pytest.approx((2 + 1.5) / 4)
    assert auroc([], [1.0]) is None


def test_utility_method_end_to_end_on_fake(tmp_path, store):
    assert "utility" in METHODS
    problem = Problem.make(QUESTION, "15", answer_type="number", source="t")
    backend = FakeBackend(script=[GOOD, BAD, BAD], logprob_fn=scripted_logprob)
    ctx = MethodContext(problems=[problem], backend=backend, store=store, out=tmp_path, samples=3)
    summary = method_function("utility")(ctx)
    write_report(summary, ctx.out)
    assert summary["utility"]["mean_correct"] == 5.5 and summary["utility"]["mean_wrong"] == -2.5
    assert summary["utility"]["n_correct"] == 1 and summary["utility"]["n_wrong"] == 2
    assert summary["utility"]["auroc"] == 1.0
    # vote: 9 wins 2-1; utility vote: 15 has weight sigmoid(5.5)=0.9959 < 2*sigmoid(3)=1.905 -> still 9
    assert summary["strategies"]["vote@3"]["accuracy"] == 0.0
    assert summary["strategies"]["utility_vote@3"]["accuracy"] == 0.0
    assert (tmp_path / "utility.html").exists()
    stored = store.rationales(problem_id=problem.id)
    assert sorted(r.score("utility") for r in stored) == [-2.5, -2.5, 5.5]
    calls = backend.logprob_calls
    again = method_function("utility")(ctx)  # rerun: samples cached, scores reused
    assert again["samples_new"] == 0 and again["logprob_calls"] == 0 and backend.logprob_calls == calls


def test_utility_vote_overturns_majority_when_the_majority_does_not_support_its_answer(tmp_path, store):
    problem = Problem.make(QUESTION, "15", answer_type="number", source="t")
    weak = "Step 1: I think so.\nThe answer is 9."  # states 9 without reasoning toward it

    def lp(prompt, cont):
        assistant = prompt.rsplit("<|im_start|>assistant\n", 1)[-1]
        if "9" in cont:
            return -6.0 - (3.0 if "I think so" in assistant else 0.0)  # utility -3 -> weight 0.047
        return scripted_logprob(prompt, cont)

    backend = FakeBackend(script=[GOOD, weak, weak], logprob_fn=lp)
    ctx = MethodContext(problems=[problem], backend=backend, store=store, out=tmp_path, samples=3)
    s = method_function("utility")(ctx)
    assert s["strategies"]["vote@3"]["accuracy"] == 0.0
    assert s["strategies"]["utility_vote@3"]["accuracy"] == 1.0


@pytest.mark.model
def test_utility_on_the_real_model(small_model, tmp_path, store):
    """A rationale that computes the gold answer raises its log-probability more than an
    irrelevant one; the method runs end to end and stores per-step scores."""
    problem = Problem.make("Tom has 12 apples. He gives 5 to his sister and then buys 8 more. "
                           "How many apples does Tom have now?", "15", answer_type="number", source="t")
    prompt = render("cot", question=problem.question)
    relevant = reasoning_utility(small_model, problem, rat(
        "Tom gives away 5: 12 - 5 = 7.\nThen he buys 8 more: 7 + 8 = 15.\nThe answer is 15.", "15", True, "a"), prompt)
    irrelevant = reasoning_utility(small_model, problem, rat(
        "The weather is nice today.\nBirds sing in the morning.\nThe answer is 15.", "15", True, "b"), prompt)
    assert relevant.detail["baseline"] == irrelevant.detail["baseline"] < 0
    assert len(relevant.detail["per_step"]) == 2
    assert relevant.value > irrelevant.value
    ctx = MethodContext(problems=[problem], backend=small_model, store=store, out=tmp_path, samples=2,
                        max_tokens=96)
    summary = method_function("utility")(ctx)
    write_report(summary, ctx.out)
    stored = store.rationales(problem_id=problem.id, method="cot")
    assert len(stored) == 2 and all(r.score("utility") is not None for r in stored)
    for r in stored:
        s = next(s for s in r.scores if s.kind == "utility")
        if s.detail["steps"]:
            assert s.value == pytest.approx(s.detail["per_step"][-1])
    assert summary["logprob_calls"] > 0 and (tmp_path / "utility.html").exists()


def test_method_options_convert_or_fail_with_one_line():
    from rationales.errors import RationalesError
    from rationales.jobs.methods import method_options

    assert method_options("brevity").from_options({"threshold": "0.5"}).threshold == 0.5
    assert method_options("faithfulness").from_options({"n_masks": "3"}).n_masks == 3
    assert method_options("calibration").from_options({"verbal": "false"}).verbal is False
    assert method_options("calibration").from_options({}).verbal is True
    with pytest.raises(RationalesError, match="-O threshold must be a number, got 'abc'"):
        method_options("brevity").from_options({"threshold": "abc"})
    with pytest.raises(RationalesError, match="-O verbal must be true or false, got 'maybe'"):
        method_options("calibration").from_options({"verbal": "maybe"})
    with pytest.raises(RationalesError, match="Unknown option -O bogus .*valid keys: template, bins, verbal"):
        method_options("calibration").from_options({"bogus": "1"})
