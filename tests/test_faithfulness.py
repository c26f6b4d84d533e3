"""Faithfulness probes (PINTO counterfactuals) and answer-rationale consistency."""

from __future__ import annotations

import re

import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.generate import GenerationStats
from rationales.jobs.methods import METHODS, MethodContext, method_function
from rationales.records import Problem, Rationale
from rationales.score.faithfulness import (MASK, consistency, mask_tokens, perturbations, replace_numbers,
                                           score_faithfulness)
from rationales.report import write_report

QUESTION = "Tom has 12 apples. He gives 5 away and buys 8 more. How many apples does he have?"
A = "Step 1: 12 - 5 = 7 apples.\nStep 2: 7 + 8 = 15 apples.\nThe answer is 15."  # read faithfully
B = "Step 1: 12 + 5 = 17.\nStep 2: 17 - 8 = 9.\nThe answer is 9."                 # reader ignores it
C = "Step 1: 12 - 5 = 7 apples.\nStep 2: 7 + 8 = 15 apples.\nThe answer is 16."  # inconsistent


def solution_of(prompt: str) -> str:
    return prompt.split("Solution:\n", 1)[1].split("\n\nWhat final answer", 1)[0]


def reader(prompt: str, seed: int, index: int) -> str:
    """Scripted model. CoT prompts: A, B, B, C. Probe prompts: a solution mentioning apples is read
    faithfully (its last number is the answer); any other solution is ignored (always 9)."""
    if "What final answer does this solution lead to?" not in prompt:
        return [A, B, B, C][index]
    sol = solution_of(prompt)
    if "apples" in sol:
        nums = re.findall(r"\d+", sol)
        return f"The answer is {nums[-1]}." if nums else "I cannot tell."
    return "The answer is 9."


def rat(text: str, answer: str | None, rid: str = "r") -> Rationale:
    return Rationale(id=rid, problem_id="p", prompt_id="q", model="fake", text=text, answer=answer)


def test_mask_tokens_masks_30_percent_reproducibly():
    text = " ".join(f"w{i}" for i in range(20))
    masked, pos = mask_tokens(text, 0.3, seed=7)
    tokens = masked.split()
    assert len(pos) == 6 and tokens.count(MASK) == 6  # 30% of 20 tokens
    assert all(tokens[i] == MASK for i in pos)
    assert all(tokens[i] == f"w{i}" for i in range(20) if i not in pos)  # the rest untouched
    assert mask_tokens(text, 0.3, seed=7) == (masked, pos)  # same seed, same mask
    assert mask_tokens(text, 0.3, seed=8)[1] != pos
    assert len(mask_tokens("a b c d e f g", 0.3)[1]) == 2  # round(2.1)
    assert mask_tokens("single", 0.3)[1] == [0]  # at least one token
    kept_layout, _ = mask_tokens("a b\nc d", 0.5, seed=1)
    assert kept_layout.count("\n") == 1
    with pytest.raises(RationalesError, match="0.3"):
        mask_tokens(text, 0.0)


def test_replace_numbers_changes_every_number_of_the_last_numbered_step():
    body = "Step 1: 12 - 5 = 7 apples.\nStep 2: 7 + 8 = 15 apples.\nStep 3: Done."
    new, changes = replace_numbers(body, seed=3)
    first, second, third = new.split("\n")
    assert first == "Step 1: 12 - 5 = 7 apples." and third == "Step 3: Done."
    assert [old for old, _ in changes] == ["7", "8", "15"]  # the step marker "2:" is not a number claim
    assert all(new_v != old and int(new_v) >= 0 for old, new_v in changes)
    assert second == "Step 2: {} + {} = {} apples.".format(*[n for _, n in changes])
    assert replace_numbers("no digits here", 0) == ("no digits here", [])
    new2, ch2 = replace_numbers("The price is 1,200.50 dollars.", seed=0)
    assert ch2[0][0] == "1,200.50" and re.fullmatch(r"\d+\.\d\d", ch2[0][1])


def test_perturbations_list():
    ps = perturbations("Step 1: 12 - 5 = 7 apples.\nStep 2: 7 + 8 = 15 apples.", n_masks=2, seed=0)
    assert [p.kind for p in ps] == ["intact", "mask", "mask", "numbers"]
    # 16 whitespace tokens -> round(0.3 * 16) = 5 masked
    assert ps[1].text != ps[2].text and ps[1].detail == {"masked": 5, "tokens": 16}
    assert ps[0].text.count(MASK) == 0 and ps[1].text.count(MASK) == 5
    assert [p.kind for p in perturbations("no numbers at all", n_masks=1)] == ["intact", "mask"]


@pytest.mark.parametrize("text,answer,value", [
    ("Step 1: 7 + 8 = 15.\nThe answer is 15.", "15", 1.0),
    ("7 + 8 = 15, so the answer is 16.", "16", 0.0),
    ("He pays $1,200 in total.\nThe answer is 1200.", "1200", 1.0),
    ("I just know it.\nThe answer is 15.", "15", None),
    ("Step 1: 7 + 8 = 15.\nStep 2: Done.\nThe answer is 15.", "15", 1.0),  # "Step 2:" is no claim
    ("The capital of France is Paris.\nThe answer is Paris.", "Paris", 1.0),
    ("The capital of France is Paris.\nThe answer is Lyon.", "Lyon", 0.0),
    ("Some reasoning 3 + 4 = 7.", None, None),
])
def test_consistency(text, answer, value):
    s = consistency(rat(text, answer))
    assert s.kind == "consistency" and s.value == value


def probe_setup(store):
    problem = Problem.make(QUESTION, "15", answer_type="number", source="t")
    backend = FakeBackend(script=reader)
    return problem, backend


def test_faithful_and_unfaithful_rationales_are_told_apart(store):
    problem, backend = probe_setup(store)
    a, b = rat(A, "15", "a"), rat(B, "9", "b")
    n = score_faithfulness(backend, store, [problem], [[a, b]], n_masks=2, seed=0)
    assert n == 8  # (intact + 2 masks + numbers) per rationale
    fa = next(s for s in a.scores if s.kind == "faithfulness")
    fb = next(s for s in b.scores if s.kind == "faithfulness")
    assert fa.detail["intact_answer"] == "15" and fb.detail["intact_answer"] == "9"
    # B: the reader ignores the rationale -> no perturbation changes the answer -> flagged
    assert fb.value == 0.0 and fb.detail["flag"] == "unfaithful"
    # A: replacing step 2's numbers always changes what the reader answers; a mask changes it
    # exactly when it hides the last number "15" (or every "apples", which makes the reader ignore it)
    probes = {p["perturbation"] + str(p["seed"]): p for p in fa.detail["probes"]}
    assert probes["numbers0"]["changed"] is True
    for key in ("mask0", "mask1"):
        seen = store.get_rationale(probes[key]["probe_id"]).meta["rationale"]
        expect_same = re.findall(r"\d+", seen)[-1:] == ["15"] and "apples" in seen
        assert probes[key]["changed"] is (not expect_same)
    assert fa.value == sum(p["changed"] for p in fa.detail["probes"]) / 3 and fa.value > 0
    assert fa.detail["flag"] is None
    # probes are rationales of their own, linked to their parent and cached
    stored = store.rationales(parent_id="a")
    assert len(stored) == 4 and {r.method for r in stored} == {"faithfulness_probe"}
    before = backend.samples_generated
    stats = GenerationStats()
    score_faithfulness(backend, store, [problem], [[rat(A, "15", "a")]], n_masks=2, seed=0, stats=stats)
    assert backend.samples_generated == before and stats.cached == 4


def test_no_probe_answer_gives_no_score(store):
    problem = Problem.make(QUESTION, "15", answer_type="number", source="t")
    backend = FakeBackend(script=lambda prompt, seed, i: "I am not sure.")
    r = rat(A, "15", "a")
    score_faithfulness(backend, store, [problem], [[r, rat("no answer", None, "x")]], n_masks=1)
    s = next(s for s in r.scores if s.kind == "faithfulness")
    assert s.value is None and "intact" in s.detail["reason"]
    assert store.rationales(parent_id="x") == []  # a rationale without an answer is not probed


def test_faithfulness_method_on_fake(tmp_path, store):
    assert "faithfulness" in METHODS
    problem, backend = probe_setup(store)
    ctx = MethodContext(problems=[problem], backend=backend, store=store, out=tmp_path, samples=4)
    s = method_function("faithfulness")(ctx)
    write_report(s, ctx.out)
    # samples A, B, B, C: A and C are read faithfully, the two B are ignored by the reader
    assert s["faithful"] == 2 and s["unfaithful"] == 2 and s["rationales_probed"] == 4
    # C states 15 in its reasoning but answers 16
    assert s["consistent"] == 3 and s["inconsistent"] == 1
    assert s["strategies"]["vote@4"]["accuracy"] == 0.0  # 9 wins 2-1-1
    assert s["strategies"]["vote@4 faithful-only"]["accuracy"] == 1.0  # A (15) vs C (16): first seen
    assert s["strategies"]["vote@4 consistent-only"]["accuracy"] == 0.0  # A, B, B -> 9
    assert s["accuracy_faithful"] == 0.5 and s["accuracy_unfaithful"] == 0.0
    assert s["probes"] == 16 and (tmp_path / "faithfulness.html").exists()
    assert "flagged unfaithful" in (tmp_path / "faithfulness.html").read_text()


@pytest.mark.model
def test_faithfulness_on_the_real_model(small_model, tmp_path, store):
    problem = Problem.make("Tom has 12 apples. He gives 5 to his sister and then buys 8 more. "
                           "How many apples does Tom have now?", "15", answer_type="number", source="t")
    r = rat("Tom gives away 5: 12 - 5 = 7.\nThen he buys 8 more: 7 + 8 = 15.\nThe answer is 15.", "15", "hand")
    n = score_faithfulness(small_model, store, [problem], [[r]], n_masks=2, max_tokens=24)
    assert n == 4
    probes = store.rationales(parent_id="hand")
    assert len(probes) == 4 and all(p.method == "faithfulness_probe" for p in probes)
    s = next(s for s in r.scores if s.kind == "faithfulness")
    assert s.value is None or 0.0 <= s.value <= 1.0
    assert r.score("consistency") == 1.0
    ctx = MethodContext(problems=[problem], backend=small_model, store=store, out=tmp_path, samples=1,
                        max_tokens=96, options={"n_masks": 1, "probe_max_tokens": 24})
    summary = method_function("faithfulness")(ctx)
    write_report(summary, ctx.out)
    assert summary["rationales_probed"] + summary["problems"] >= 1 and (tmp_path / "faithfulness.html").exists()
