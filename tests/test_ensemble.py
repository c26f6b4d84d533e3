"""Rationale-augmented ensembles (ensemble method)."""

from __future__ import annotations

import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.generate import cot_specs, sample_seed
from rationales.jobs.methods import MethodContext, method_function
from rationales.jobs.methods.ensemble import parse_members, split_samples
from rationales.jobs.methods.formats import format_specs
from rationales.tasks import load_task
from rationales.report import write_report

# answers by sample index, per problem gold and prompt kind
ANSWERS = {"15": {"cot": [14, 15, 14, 16], "procedural": [15, 15]},
           "26": {"cot": [26, 26, 27, 27], "procedural": [27, 27]}}


def script_for(problems):
    """Answers by *sample* index, recovered from the sample's seed (a request may hold only the
    missing samples, so the position in the request is not the sample index)."""

    def script(prompt, seed, _position):
        tail = prompt.split("<|im_start|>user\n")[-1]
        p = next(p for p in problems if tail.startswith(p.question))
        kind = "procedural" if "Procedural format" in prompt else "cot"
        spec = (format_specs([p], "procedural", decomposed=False) if kind == "procedural" else cot_specs([p]))[0]
        index = [sample_seed(0, p.id, spec.prompt_id, i) for i in range(4)].index(seed)
        return f"Step 1: think.\nThe answer is {ANSWERS[p.gold][kind][index]}."
    return script


def test_samples_are_split_evenly_over_prompts():
    assert split_samples(8, 3) == [3, 3, 2]
    assert split_samples(4, 4) == [1, 1, 1, 1]
    assert split_samples(5, 1) == [5]
    with pytest.raises(RationalesError, match="2 samples cannot cover 3 ensemble prompts"):
        split_samples(2, 3)


def test_members_are_parsed_and_checked():
    assert parse_members(None) == ["cot", "cot_fewshot", "format:procedural", "format:subquestions"]
    assert parse_members("cot, format:decision_tree") == ["cot", "format:decision_tree"]
    with pytest.raises(RationalesError, match="must differ"):
        parse_members("cot,cot")
    with pytest.raises(RationalesError, match="demos:<number>"):
        parse_members("demos:first")


def test_ensemble_vote_maths_hand_checked(tmp_path, store):
    problems = load_task("demo", limit=2)  # golds 15, 26
    be = FakeBackend(script=script_for(problems))
    ctx = MethodContext(problems=problems, backend=be, store=store, out=tmp_path, task="demo", samples=4,
                        options={"ensemble": "cot,format:procedural"})
    s = method_function("ensemble")(ctx)
    write_report(s, ctx.out)
    st = s["strategies"]
    assert s["samples_per_member"] == {"cot": 2, "format:procedural": 2}
    # problem 15: single cot vote@4 over 14,15,14,16 -> 14 (wrong, share 0.5);
    #             ensemble over cot 14,15 + procedural 15,15 -> 15 (right, share 0.75)
    # problem 26: single over 26,26,27,27 -> tie, first seen 26 (right, 0.5);
    #             ensemble over 26,26 + 27,27 -> tie, first seen 26 (right, 0.5)
    single, ens = st["single cot vote@4"], st["ensemble vote@4 (2 prompts)"]
    assert (single["correct"], single["n"], single["mean_confidence"]) == (1, 2, 0.5)
    assert (ens["correct"], ens["n"], ens["mean_confidence"]) == (2, 2, 0.625)
    # members alone: cot vote@2 -> 14 (tie, first seen) and 26; procedural vote@2 -> 15 and 27
    assert st["cot vote@2"]["correct"] == 1 and st["format:procedural vote@2"]["correct"] == 1
    # the single-prompt baseline reuses the ensemble's 2 cot samples: 2 + 2 + 2 new per problem
    assert be.samples_generated == 12 and s["samples_new"] == 12 and s["samples_cached"] == 4
    # equal budget: both count 4 samples per problem of 7 words ("Step 1: think. The answer is N.")
    assert single["tokens"] == ens["tokens"] == 2 * 4 * 7
    assert (tmp_path / "ensemble.html").exists()


def test_demonstration_set_members_draw_from_training_problems(tmp_path, store):
    problems = load_task("reasoning_gym:gsm_symbolic", size=6, limit=6)
    be = FakeBackend(script=lambda prompt, seed, i: "The answer is 1.")
    ctx = MethodContext(problems=problems, backend=be, store=store, out=tmp_path, task="gsm", samples=3,
                        options={"ensemble": "cot,demos:0,demos:1", "shots": "2", "train_size": "3"})
    s = method_function("ensemble")(ctx)
    assert s["problems"] == 3 and s["train_problems"] == 3
    demo_prompts = [p for p in be.prompts if p.count("<|im_start|>assistant") == 3]  # 2 demos + the answer turn
    assert len(demo_prompts) == 6  # 2 members x 3 held-out problems
    train, held = problems[:3], problems[3:]
    for pr in demo_prompts:
        shown = [p for p in train if p.question in pr]
        assert len(shown) == 2
        assert all(p.meta["entry"]["metadata"]["answer_cot"].strip() in pr for p in shown)
        demos_part = pr.rsplit("<|im_start|>user\n", 1)[0]
        assert not any(p.question in demos_part for p in held)
    stored = store.rationales(method="ensemble_demos")
    assert {frozenset(r.meta["demos"]) for r in stored} == {frozenset(p.id for p in train if p.question in pr)
                                                            for pr in demo_prompts}


@pytest.mark.model
def test_ensemble_end_to_end_on_the_real_model(small_model, tmp_path, store):
    problems = load_task("demo", limit=1)
    ctx = MethodContext(problems=problems, backend=small_model, store=store, out=tmp_path, task="demo", samples=2,
                        max_tokens=96, options={"ensemble": "cot,format:procedural"})
    s = method_function("ensemble")(ctx)
    assert s["samples_per_member"] == {"cot": 1, "format:procedural": 1}
    assert s["strategies"]["ensemble vote@2 (2 prompts)"]["n"] == 1
    assert len(store.rationales(method="format:procedural")) == 1
    assert len(store.rationales(method="cot", problem_id=problems[0].id)) == 2  # 1 shared + 1 for the baseline
