"""Process reward models on the fake backend: hand-computed P(+)/(P(+)+P(-)), parsing, caching."""

from __future__ import annotations

import math

import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.records import Problem
from rationales.verify.genprm import GenerativePRM, parse_verdict
from rationales.verify.prm import (FunctionPRM, LLMPRM, StepScorer, aggregate, prm_checks, rationale_from_steps,
                                  score_prefix)

PROBLEM = Problem.make("Jane has 5 boxes with 6 pencils each. She gives away 7. How many are left?", 23)
STEPS = ["5 * 6 = 30 pencils.", "30 - 7 = 24 pencils.", "The answer is 24."]


def judged_step(prompt: str) -> str:
    return prompt.split("(check this one):", 1)[1].split("\n", 1)[0].strip()


def logprob_fn(prompt: str, cont: str) -> float:
    """The judge dislikes steps that say 24: log P(+) = -3, log P(-) = -1; else -0.5 / -2."""
    bad = "24" in judged_step(prompt)
    if cont == "+":
        return -3.0 if bad else -0.5
    return -1.0 if bad else -2.0


GOOD = 1 / (1 + math.exp(-1.5))  # e^-0.5 / (e^-0.5 + e^-2) = 0.8175744761936437
BAD = 1 / (1 + math.exp(2.0))    # e^-3 / (e^-3 + e^-1)   = 0.11920292202211755


def test_llm_prm_reward_is_p_plus_over_p_plus_plus_p_minus():
    backend = FakeBackend(logprob_fn=logprob_fn)
    prm = LLMPRM(backend)
    assert isinstance(prm, StepScorer)
    r = rationale_from_steps(PROBLEM, STEPS)
    rewards = prm.score([PROBLEM], [r])
    assert rewards == [[pytest.approx(GOOD), pytest.approx(BAD), pytest.approx(BAD)]]
    assert GOOD == pytest.approx(0.8175744762) and BAD == pytest.approx(0.1192029220)
    assert backend.logprob_calls == 3


def test_llm_prm_prompt_shows_question_and_earlier_steps():
    seen = []
    backend = FakeBackend(logprob_fn=lambda p, c: seen.append(p) or 0.0)
    LLMPRM(backend).score([PROBLEM], [rationale_from_steps(PROBLEM, STEPS)])
    third = seen[4]  # two continuations per step
    assert PROBLEM.question in third
    assert "1. 5 * 6 = 30 pencils.\n2. 30 - 7 = 24 pencils." in third
    assert "Step 3 (check this one): The answer is 24." in third
    assert third.endswith("<|im_start|>assistant\n")  # the verdict is the assistant's first token
    assert math.isclose(LLMPRM(FakeBackend(logprob_fn=lambda p, c: 0.0)).score_steps([(PROBLEM, [], "x")])[0], 0.5)


def test_llm_prm_caches_prefixes_for_step_search():
    backend = FakeBackend(logprob_fn=logprob_fn)
    prm = LLMPRM(backend)
    prm.score([PROBLEM], [rationale_from_steps(PROBLEM, STEPS)])
    calls = backend.logprob_calls
    assert score_prefix(prm, PROBLEM, STEPS[:1], STEPS[1]) == pytest.approx(BAD)  # cached
    assert backend.logprob_calls == calls
    assert score_prefix(prm, PROBLEM, STEPS[:1], "30 - 7 = 23 pencils.") == pytest.approx(GOOD)
    assert backend.logprob_calls == calls + 1


def test_prm_checks_verdicts_threshold_and_score():
    backend = FakeBackend(logprob_fn=logprob_fn)
    prm = LLMPRM(backend)
    r = rationale_from_steps(PROBLEM, STEPS)
    prm_checks(prm, [PROBLEM], [r], threshold=0.5)
    prm_checks(prm, [PROBLEM], [r], threshold=0.5)  # re-scoring replaces, never duplicates
    assert [s.verdict("prm") for s in r.steps] == [1, -1, -1]
    assert [len(s.checks) for s in r.steps] == [1, 1, 1]
    assert r.steps[0].checks[0].by == "llm-prm:fake" and r.steps[0].checks[0].score == pytest.approx(GOOD)
    assert r.score("prm") == pytest.approx(BAD)  # min over steps
    prm_checks(prm, [PROBLEM], [r], threshold=0.1)
    assert [s.verdict("prm") for s in r.steps] == [1, 1, 1]


def test_aggregate():
    rewards = [0.9, 0.5, None, 0.8]
    assert aggregate(rewards, "min") == 0.5
    assert aggregate(rewards, "last") == 0.8
    assert aggregate(rewards, "product") == pytest.approx(0.36)
    assert aggregate(rewards, "mean") == pytest.approx(2.2 / 3)
    assert aggregate([None], "min") is None and aggregate([], "mean") is None
    with pytest.raises(RationalesError, match="Did you mean 'min'"):
        aggregate(rewards, "mni")


@pytest.mark.parametrize("text, verdict, how", [
    ("<verify>30 - 7 = 23</verify><judge>Wrong subtraction.</judge><output>\\boxed{-}</output>", -1, "boxed"),
    ("<verify>5*6=30</verify><judge>Right.</judge><output>\\boxed{+}</output>", 1, "boxed"),
    ("<output>\\boxed{ + }", 1, "boxed"),                     # spaces, closing tag cut by the stop
    ("verify: fine. judge: fine. \\boxed{−}", -1, "boxed"),   # no tags, unicode minus
    ("<output> \\boxed{\\text{correct}} </output>", 1, "boxed"),
    ("<output>-</output>", -1, "output"),
    ("<judge>The step is not correct.</judge>", -1, "words"),
    ("<judge>The calculation is correct.</judge><output>", 1, "words"),
    ("The step is incorrect", -1, "words"),
    ("I cannot tell.", None, "unparsed"),
    ("", None, "unparsed"),
])
def test_parse_verdict(text, verdict, how):
    assert parse_verdict(text) == (verdict, how)


def test_generative_prm_rewards_and_counted_failures(store):
    outputs = {"5 * 6 = 30": "<verify>5*6=30</verify><judge>ok</judge><output>\\boxed{+}",
               "30 - 7 = 24": "<verify>30-7=23</verify><judge>The step is wrong.</judge><output>\\boxed{-}",
               "The answer is 24": "hmm, let me think about it"}
    backend = FakeBackend(script={f"(check this one): {k}": [v] for k, v in outputs.items()})
    gen = GenerativePRM(backend, store=store)
    r = rationale_from_steps(PROBLEM, STEPS)
    assert gen.score([PROBLEM], [r]) == [[1.0, 0.0, None]]
    assert gen.stats == {"parsed": 2, "failed": 1}
    prm_checks(gen, [PROBLEM], [r])
    assert [s.verdict("prm") for s in r.steps] == [1, -1, None]
    failed = r.steps[2].checks[-1]
    assert failed.score is None and failed.detail["failure"] == "unparsed verdict"
    assert failed.detail["output"] == "hmm, let me think about it"
    assert r.score("prm") == 0.0 and r.scores[-1].detail["failed"] == 1
    # judgements are stored (method genprm, linked to the rationale) and reused by a new scorer
    stored = store.rationales(method="genprm")
    assert len(stored) == 3 and {x.parent_id for x in stored} == {r.id}
    n = backend.samples_generated
    assert GenerativePRM(backend, store=store).score([PROBLEM], [r]) == [[1.0, 0.0, None]]
    assert backend.samples_generated == n


def test_generative_prm_soft_reward_reads_the_boxed_token():
    backend = FakeBackend(script=["<verify>ok</verify><judge>ok</judge><output>\\boxed{+}"],
                          logprob_fn=lambda p, c: (-0.2 if c == "+" else -1.8) if p.endswith("boxed{") else -50.0)
    gen = GenerativePRM(backend, soft=True)
    reward = gen.score_steps([(PROBLEM, [], STEPS[0])])[0]
    assert reward == pytest.approx(1 / (1 + math.exp(-1.6)))  # 0.8320183851


def test_function_prm_plugs_in_a_batch_function():
    def fn(problems, rationales):
        return [[0.2 if "24" in s.text else 0.9 for s in r.steps] for r in rationales]

    prm = FunctionPRM(fn, name="trained")
    r = rationale_from_steps(PROBLEM, STEPS)
    prm_checks(prm, [PROBLEM], [r])
    assert [s.verdict("prm") for s in r.steps] == [1, -1, -1] and r.steps[0].checks[0].by == "trained"
    assert score_prefix(prm, PROBLEM, STEPS[:1], "30 - 7 = 23.") == 0.9
    with pytest.raises(RationalesError, match="one reward per step"):
        FunctionPRM(lambda p, rs: [[0.5]]).score([PROBLEM], [r])
    with pytest.raises(RationalesError, match=r"in \[0, 1\]"):
        FunctionPRM(lambda p, rs: [[3.0, 0.5, 0.5]]).score([PROBLEM], [r])


def test_problems_are_aligned_or_looked_up_by_id():
    other = Problem.make("Another question?", 1)
    r1, r2 = rationale_from_steps(PROBLEM, STEPS[:1]), rationale_from_steps(other, ["1 + 0 = 1"])
    seen = []
    prm = FunctionPRM(lambda ps, rs: seen.extend(p.id for p in ps) or [[0.5] * len(r.steps) for r in rs])
    prm.score([other, PROBLEM], [r1, r2])  # not aligned: looked up by id
    assert seen == [PROBLEM.id, other.id]
    with pytest.raises(RationalesError, match="was not given"):
        prm.score([other], [r1])
