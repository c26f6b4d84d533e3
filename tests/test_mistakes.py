"""Implicit learning from mistakes in context (mistakes / cot_plus methods)."""

from __future__ import annotations

import json
import sys

import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.jobs.methods import METHODS, MethodContext, method_function
from rationales.jobs.methods.mistakes import (Demo, MistakesConfig, compare, mine_mistakes, nearest, select_demos,
                                         split_problems)
from rationales.records import Problem, Rationale
from rationales.tasks import load_task
from rationales.report import write_report

SYSTEM_COT = "You are a careful problem solver"


def last_user(prompt: str) -> str:
    """The final user turn of a ChatML prompt (the question being asked)."""
    return prompt.rsplit("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]


def which(problems, prompt):
    """The problem whose question ends the prompt's last user turn."""
    tail = last_user(prompt)
    for p in problems:
        if tail.rstrip().endswith(p.question):
            return p
    raise AssertionError("no problem matches prompt")


def make_script(problems, train_right=(), heldout_right=None, marker="WRONG-TRACE"):
    """Training samples: index 0 is wrong (answer gold+100, with a marker in its text), index 1
    has no answer, index 2 is right; problems in ``train_right`` are always right. Held-out:
    cot is always wrong; mistakes / cot_plus right for the problems in ``heldout_right``."""
    heldout_right = heldout_right or {}

    def script(prompt, seed, index):
        if "You explain mistakes" in prompt:
            return "EXPLANATION: the subtraction was skipped."
        p = which(problems, prompt)
        gold = int(p.gold)
        if "Incorrect answer:" in prompt:
            variant = "cot_plus" if "Explanation:" in prompt else "mistakes"
            ok = p.id in heldout_right.get(variant, ())
            return f"Step 1: careful.\nThe answer is {gold if ok else gold + 1}."
        if p.id in train_right:
            return f"Step 1: fine.\nThe answer is {gold}."
        return [f"Step 1: {marker} {p.id}\nThe answer is {gold + 100}.", "I do not know.",
                f"Step 1: right way.\nThe answer is {gold}."][index % 3]

    return script


def ctx_for(problems, backend, store, tmp_path, **options):
    return MethodContext(problems=problems, backend=backend, store=store, out=tmp_path / "out", task="demo",
                         samples=3, options=options)


def test_registered_as_methods():
    assert METHODS.entry("mistakes").target == "rationales.jobs.methods.mistakes:run"
    assert METHODS.entry("cot_plus").target == "rationales.jobs.methods.mistakes:run_cot_plus"


def test_split_is_deterministic_first_part_trains():
    problems = load_task("demo", limit=8)
    train, held = split_problems(problems)
    assert [p.id for p in train] == [p.id for p in problems[:4]]
    assert [p.id for p in held] == [p.id for p in problems[4:]]
    train, held = split_problems(problems, 3)
    assert (len(train), len(held)) == (3, 5)
    with pytest.raises(RationalesError, match="at least one training and one held-out"):
        split_problems(problems, 8)
    with pytest.raises(RationalesError, match="at least one training"):
        split_problems(problems[:1])


def test_demonstrations_come_only_from_wrong_samples_and_hold_no_rationale_text(tmp_path, store):
    problems = load_task("demo", limit=8)
    train, held = problems[:4], problems[4:]
    be = FakeBackend(script=make_script(problems, train_right={train[1].id}))
    pool, samples = mine_mistakes(train, be, store, n=3)
    # train[1] was always right: no demonstration; the others give their first wrong sample
    assert [d.problem.id for d in pool] == [train[0].id, train[2].id, train[3].id]
    for d in pool:
        assert d.wrong.correct is False and d.wrong.answer == str(int(d.problem.gold) + 100)
        assert d.wrong.sample_index == 0 and d.correct is not None and d.correct.correct is True
    # the "I do not know." sample has no answer: never used as a wrong answer
    assert all(d.wrong.outcome == "ok" for d in pool)

    ctx = ctx_for(problems, be, store, tmp_path, shots=3)
    compare(ctx, MistakesConfig(variants=("mistakes",), shots=3))
    prompts = [pr for pr in be.prompts if "Incorrect answer:" in pr]
    assert len(prompts) == len(held)
    for pr in prompts:
        assert "WRONG-TRACE" not in pr  # no rationale text from the wrong samples
        assert "Explanation" not in pr  # and no rationale about the mistake
        for d in pool:
            assert f"Question: {d.problem.question}\nIncorrect answer: {int(d.problem.gold) + 100}\n" \
                   f"Correct answer: {d.problem.gold}" in pr
        assert train[1].question not in pr


def test_solutions_display_shows_the_wrong_sample_text(tmp_path, store):
    problems = load_task("demo", limit=4)
    be = FakeBackend(script=make_script(problems))
    compare(ctx_for(problems, be, store, tmp_path), MistakesConfig(variants=("mistakes",), show="solutions", shots=2))
    pr = [p for p in be.prompts if "Incorrect answer:" in p][0]
    assert f"Incorrect answer: Step 1: WRONG-TRACE {problems[0].id}" in pr
    assert "Correct answer: Step 1: right way." in pr


def _demo(question: str, gold: str = "1") -> Demo:
    p = Problem.make(question, gold, source="t")
    wrong = Rationale(id=f"w-{p.id}", problem_id=p.id, prompt_id="x", model="m", text="The answer is 2.",
                      answer="2", correct=False)
    return Demo(p, wrong)


POOL_QUESTIONS = [
    "A baker makes 12 loaves of bread and sells 7 of them. How many loaves are left?",
    "A train travels at 60 km per hour for 3 hours. How far does it go?",
    "Anna has 3 bags with 5 marbles each. How many marbles does she have?",
    "A pizza is cut into 8 slices and Tom eats 3. How many slices remain?",
]


def test_similar_selection_picks_the_nearest_training_question():
    pool = [_demo(q) for q in POOL_QUESTIONS]
    held = [Problem.make("A car drives at 50 km per hour for 4 hours. How far does the car travel?", "200"),
            Problem.make("A cake is cut into 10 slices and 4 are eaten. How many slices are left?", "6")]
    picks = select_demos(held, pool, shots=1, selection="similar")
    assert picks[0][0].problem.question == POOL_QUESTIONS[1]  # the train, not the bread
    assert picks[1][0].problem.question == POOL_QUESTIONS[3]  # the pizza
    two = select_demos(held, pool, shots=2, selection="similar")
    assert two[0][-1].problem.question == POOL_QUESTIONS[1]  # nearest is last, next to the question
    order = nearest([held[1].question], POOL_QUESTIONS, 4)[0]
    assert order[-1] == 3 and sorted(order) == [0, 1, 2, 3]


def test_random_selection_is_seeded_per_problem():
    pool = [_demo(q) for q in POOL_QUESTIONS]
    held = [Problem.make(f"What is {i} + {i}?", str(2 * i)) for i in range(6)]
    a = select_demos(held, pool, shots=2, selection="random", seed=0)
    b = select_demos(held, pool, shots=2, selection="random", seed=0)
    assert [[d.problem.id for d in ds] for ds in a] == [[d.problem.id for d in ds] for ds in b]
    assert all(len(ds) == 2 and len({d.problem.id for d in ds}) == 2 for ds in a)
    assert len({tuple(d.problem.id for d in ds) for ds in a}) > 1  # not one fixed set for every problem
    assert [len(ds) for ds in select_demos(held, pool, shots=9, selection="random")] == [4] * 6


def test_contrastive_shows_a_wrong_and_a_right_rationale_of_the_same_question(tmp_path, store):
    problems = load_task("demo", limit=6)
    be = FakeBackend(script=make_script(problems))
    compare(ctx_for(problems, be, store, tmp_path),
            MistakesConfig(variants=("mistakes",), selection="contrastive", shots=1))
    for pr in [p for p in be.prompts if "Incorrect answer:" in p]:
        body = last_user(pr)
        q = body.split("Question: ", 2)[1].split("\n")[0]
        demo = next(p for p in problems[:3] if p.question == q)
        assert f"Incorrect answer: Step 1: WRONG-TRACE {demo.id}\nThe answer is {int(demo.gold) + 100}." in body
        assert f"Correct answer: Step 1: right way.\nThe answer is {demo.gold}." in body


def test_contrastive_without_any_right_rationale_is_a_clear_error():
    pool = [_demo(q) for q in POOL_QUESTIONS]  # wrong samples only, no gold rationale
    with pytest.raises(RationalesError, match="both a wrong and a right rationale"):
        select_demos([Problem.make("q?", "1")], pool, 1, "contrastive")


def test_accuracy_comparison_hand_checked(tmp_path, store):
    problems = load_task("demo", limit=8)
    held = problems[4:]
    right = {"mistakes": {p.id for p in held[:3]}, "cot_plus": {held[0].id}}
    be = FakeBackend(script=make_script(problems, heldout_right=right))
    s = compare(ctx_for(problems, be, store, tmp_path),
                MistakesConfig(variants=("cot", "mistakes", "cot_plus"), shots=2))
    write_report(s, tmp_path / "out")
    st = s["strategies"]
    assert (st["cot"]["correct"], st["mistakes"]["correct"], st["cot_plus"]["correct"]) == (0, 3, 1)
    assert st["mistakes"]["n"] == 4 and st["mistakes"]["accuracy"] == 0.75
    assert (st["mistakes"]["ci_low"], st["mistakes"]["ci_high"]) == (0.3006, 0.9544)  # Wilson 3/4
    assert (st["cot"]["ci_low"], st["cot"]["ci_high"]) == (0.0, 0.4899)  # Wilson 0/4
    assert s["train_problems"] == 4 and s["heldout_problems"] == 4 and s["demo_pool"] == 4
    # 4 training problems x 3 samples: index 2 of each is right
    assert s["train_sample_accuracy"]["correct"] == 4 and s["train_sample_accuracy"]["n"] == 12
    assert (tmp_path / "out" / "mistakes.html").exists()
    # greedy held-out rationales are stored under their variant's method
    assert len(store.rationales(method="mistakes")) == 4 and len(store.rationales(method="cot_plus")) == 4


def test_cot_plus_explanations_are_written_by_the_model_and_cached(tmp_path, store):
    problems = load_task("demo", limit=6)
    be = FakeBackend(script=make_script(problems))
    ctx = ctx_for(problems, be, store, tmp_path)
    method_function("cot_plus")(ctx)
    explain_prompts = [p for p in be.prompts if "You explain mistakes" in p]
    assert explain_prompts
    for pr in explain_prompts:
        body = last_user(pr)
        p = next(p for p in problems[:3] if p.question in body)
        assert f"Incorrect answer: {int(p.gold) + 100}\nCorrect answer: {p.gold}" in body
        assert f"WRONG-TRACE {p.id}" in body  # the explainer sees the wrong solution
    expl = store.rationales(method="mistake_explanation")
    wrong_ids = {r.id for r in store.rationales(method="cot") if r.correct is False and r.answer}
    assert expl and all(r.parent_id in wrong_ids for r in expl)
    plus = [p for p in be.prompts if "Explanation:" in p]
    assert plus and all("Explanation: EXPLANATION: the subtraction was skipped." in p for p in plus)
    before = be.samples_generated
    method_function("cot_plus")(ctx)
    assert be.samples_generated == before  # everything cached


def test_cot_plus_can_use_the_tasks_gold_rationale(tmp_path, store):
    problems = load_task("reasoning_gym:gsm_symbolic", size=6, limit=6)

    def script(prompt, seed, index):
        if "Incorrect answer:" in prompt:
            return "The answer is 1."
        return "Step 1: guess.\nThe answer is -7."  # every training sample is wrong

    be = FakeBackend(script=script)
    s = compare(ctx_for(problems, be, store, tmp_path),
                MistakesConfig(variants=("cot_plus",), explain="gold", shots=1))
    assert not [p for p in be.prompts if "You explain mistakes" in p]
    pr = [p for p in be.prompts if "Explanation:" in p][0]
    shown = next(p for p in problems[:3] if p.question in pr)
    assert "Explanation: " + shown.meta["entry"]["metadata"]["answer_cot"].strip().split("\n")[0] in pr
    assert s["strategies"]["cot_plus"]["n"] == 3


def test_no_wrong_samples_is_a_clear_error(tmp_path, store):
    problems = load_task("demo", limit=4)
    be = FakeBackend(script=make_script(problems, train_right={p.id for p in problems}))
    with pytest.raises(RationalesError, match="No wrong answers"):
        method_function("mistakes")(ctx_for(problems, be, store, tmp_path))


def test_bad_options_are_clear_errors():
    with pytest.raises(RationalesError, match="Did you mean 'similar'"):
        MistakesConfig.from_options({"selection": "similiar"}, ("cot", "mistakes"))
    with pytest.raises(RationalesError, match="whole number"):
        MistakesConfig.from_options({"shots": "three"}, ("cot", "mistakes"))
    cfg = MistakesConfig.from_options({"variants": "cot,cot_plus", "shots": "2", "train_size": "5"}, ("cot",))
    assert cfg.variants == ("cot", "cot_plus") and cfg.shots == 2 and cfg.train_size == 5


def test_missing_embedding_package_says_what_to_install(monkeypatch):
    from rationales.jobs.methods import mistakes

    mistakes._embedder.cache_clear()
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    try:
        with pytest.raises(RationalesError, match=r"pip install 'rationales\[embed\]'"):
            mistakes.embed(["a question"])
    finally:
        mistakes._embedder.cache_clear()


def test_cli_run_method_mistakes_on_fake_backend(tmp_path):
    from rationales.cli import main

    problems = load_task("demo", limit=4)
    script = {p.question: [f"The answer is {int(p.gold) + 1}.", f"The answer is {p.gold}."] for p in problems}
    (tmp_path / "script.json").write_text(json.dumps(script))
    rc = main(["run", "demo", "--method", "mistakes", "--backend", "fake", "--model", str(tmp_path / "script.json"),
               "--limit", "4", "--samples", "2", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"),
               "--json"])
    assert rc == 0
    assert (tmp_path / "o" / "mistakes.html").exists()


@pytest.mark.model
def test_mistakes_end_to_end_on_the_real_model(small_model, tmp_path, store):
    problems = load_task("demo", limit=4)
    ctx = MethodContext(problems=problems, backend=small_model, store=store, out=tmp_path, task="demo", samples=3,
                        max_tokens=96, options={"shots": 2})
    s = method_function("mistakes")(ctx)
    assert s["strategies"]["cot"]["n"] == 2 and s["strategies"]["mistakes"]["n"] == 2
    assert s["demo_pool"] >= 1  # SmolLM2-135M gets some of 2 x 3 training samples wrong
    rs = store.rationales(method="mistakes")
    assert len(rs) == 2 and all(r.meta["demos"] for r in rs)
    wrong = store.get_rationales(rs[0].meta["demos"])
    assert all(r.correct is False and r.answer for r in wrong.values())
