"""Math-Shepherd Monte-Carlo step labels on the fake backend, with hand-counted rollouts."""

from __future__ import annotations

from rationales.backends.fake import FakeBackend
from rationales.generate import cot_specs, generate
from rationales.records import Problem
from rationales.verify.mc import ROLLOUT_METHOD, mc_labels, mc_summary, rollout_template

QUESTION = "Jane has 5 boxes with 6 pencils each. She gives away 7 pencils. How many pencils are left?"
WRONG = "Step 1: 5 * 6 = 30 pencils.\nStep 2: 30 - 8 = 22 pencils.\nStep 3: The answer is 22."


def rollout_script(prompt: str, seed: int, index: int) -> str:
    """Rollouts depend on the prefix the model continues from (the tail of the raw prompt)."""
    tail = prompt[-200:]
    if "30 - 8 = 22" in tail:  # after the wrong step: every rollout keeps the wrong number
        return "The answer is 22."
    if tail.endswith("Step 1: 5 * 6 = 30 pencils.\n"):
        return ["Step 2: 30 - 7 = 23.\nThe answer is 23.", "The answer is 22.",
                "Step 2: 30 - 7 = 23.\nThe answer is 23.", "I am not sure."][index % 4]
    return WRONG  # the rationale itself


def setup(store, method_template="cot"):
    backend = FakeBackend(script=rollout_script)
    problem = Problem.make(QUESTION, 23, answer_type="number")
    r = generate(cot_specs([problem], template=method_template, n=1, temperature=0.0), backend, store)[0][0]
    assert [s.text for s in r.steps] == ["Step 1: 5 * 6 = 30 pencils.", "Step 2: 30 - 8 = 22 pencils.",
                                         "Step 3: The answer is 22."]
    return backend, problem, r


def test_hard_and_soft_labels(store):
    backend, problem, r = setup(store)
    mc_labels([problem], [r], backend, store, n=4)
    labels = [(s.verdict("mc"), [c.score for c in s.checks if c.kind == "mc"][0]) for s in r.steps]
    # step 1: rollouts 0 and 2 reach 23, rollout 1 says 22, rollout 3 has no answer -> 2/4
    # step 2: all 4 rollouts say 22 -> 0/4; step 3 (the end): the rationale's own answer, 22 -> wrong
    assert labels == [(1, 0.5), (-1, 0.0), (-1, 0.0)]
    step1 = [c for c in r.steps[0].checks if c.kind == "mc"][0]
    assert step1.detail["n"] == 4 and step1.detail["correct"] == 2
    assert step1.detail["answers"] == ["23", "22", "23", None]
    assert r.steps[2].checks[-1].detail["final"] is True
    assert mc_summary([r]) == {"steps": 3, "positive": 1, "negative": 2, "mean_soft": 0.5 / 3}


def test_rollouts_are_stored_cached_and_linked(store):
    backend, problem, r = setup(store)
    before = backend.samples_generated
    mc_labels([problem], [r], backend, store, n=4)
    assert backend.samples_generated - before == 8  # 2 non-final steps x 4 rollouts
    rollouts = store.rationales(method=ROLLOUT_METHOD)
    assert len(rollouts) == 8 and {x.parent_id for x in rollouts} == {r.id}
    assert sorted(x.meta["step"] for x in rollouts) == [0] * 4 + [1] * 4
    # a rerun (e.g. a fresh process) generates nothing and gives the same labels
    mc_labels([problem], [r], backend, store, n=4)
    assert backend.samples_generated - before == 8
    assert [len([c for c in s.checks if c.kind == "mc"]) for s in r.steps] == [1, 1, 1]  # replaced, not added
    assert [s.verdict("mc") for s in r.steps] == [1, -1, -1]


def test_rollout_prompt_continues_the_prefix_under_the_rationale_template(store):
    backend, problem, r = setup(store, method_template="cot_fewshot")
    assert r.method == "cot_fewshot" and rollout_template(r) == "cot_fewshot"
    backend.prompts.clear()
    mc_labels([problem], [r], backend, store, n=1, temperature=0.0)
    assert len(backend.prompts) == 2
    first, second = backend.prompts
    assert "Jane has 5 boxes with 6 pencils each. She gives away 7 pencils." in first  # few-shot demo kept
    assert first.endswith("<|im_start|>assistant\nStep 1: 5 * 6 = 30 pencils.\n")
    assert second.endswith("Step 1: 5 * 6 = 30 pencils.\nStep 2: 30 - 8 = 22 pencils.\n")
    r.method = "something_else"
    assert rollout_template(r) == "cot"


def test_answer_is_read_from_prefix_plus_completion(store):
    backend = FakeBackend(script=lambda prompt, seed, i: "Done." if prompt.endswith("23.\n") else
                          "Step 1: 5 * 6 = 30.\nStep 2: 30 - 7 = 23, so the answer is 23.\nStep 3: Done.")
    problem = Problem.make(QUESTION, 23, answer_type="number")
    r = generate(cot_specs([problem], n=1, temperature=0.0), backend, store)[0][0]
    mc_labels([problem], [r], backend, store, n=2)
    # step 2's prefix already states 23; its rollouts ("Done.") add nothing but count as correct
    assert [c.score for c in r.steps[1].checks if c.kind == "mc"] == [1.0]


def test_problems_without_gold_get_no_label(store):
    backend = FakeBackend(script=lambda prompt, seed, i: "Step 1: think.\nStep 2: The answer is 3.")
    problem = Problem.make("Pick a number.", None)
    r = generate(cot_specs([problem], n=1, temperature=0.0), backend, store)[0][0]
    before = backend.samples_generated
    mc_labels([problem], [r], backend, store, n=4)
    assert backend.samples_generated == before
    assert all(s.verdict("mc") is None and not s.checks for s in r.steps)
