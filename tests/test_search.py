"""Inference strategies on scripted outputs: best-of-N aggregation, tool-filtered vote,
adaptive consistency, PRM-guided greedy step search, step beam search and MCTS at inference.
The stand-in scorers are the real ``FunctionPRM`` wrapping a plain lookup table."""

import math

import numpy as np
import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.generate import cot_specs, generate, sample_seed
from rationales.records import Problem, Rationale
from rationales.verify.prm import FunctionPRM
from rationales.select.adaptive import adaptive_consistency, beta_confidence, stop_confidence
from rationales.select.best_of_n import best_of_n, rationale_score
from rationales.select.mcts import mcts_search
from rationales.select.step_search import beam_step_search, greedy_step_search
from rationales.select.vote import has_wrong_step, majority_vote, tool_filtered_vote
from rationales.verify.arithmetic import check_rationale
from rationales.generate import finish_rationale
from rationales.records import Sampling

ASSISTANT = "<|im_start|>assistant\n"


def table_prm(table, default=0.5):
    """A step scorer from a lookup table: reward of each step by its text."""
    return FunctionPRM(lambda problems, rationales: [[table.get(s.text, default) for s in r.steps]
                                                     for r in rationales], name="table")


def rat(rid, answer, tokens=10, text=""):
    return Rationale(id=rid, problem_id="p", prompt_id="q", model="m", answer=answer, tokens=tokens, text=text,
                     outcome="ok" if answer else "no_answer")


# ---------------------------------------------------------------- best-of-N


def test_best_of_n_aggregation_changes_the_pick():
    p = Problem.make("q", "7", answer_type="number")
    rs = [rat("a", "5"), rat("b", "7"), rat("c", None, tokens=3)]
    rewards = [[0.9, 0.8], [0.99, 0.6, 0.99], [1.0]]
    # min: .8 vs .6 -> a; last: .8 vs .99 -> b; product: .72 vs .588 -> a; mean: .85 vs .86 -> b
    picks = {how: best_of_n(p, rs, rewards, how) for how in ("min", "last", "product", "mean")}
    assert {h: s.answer for h, s in picks.items()} == {"min": "5", "last": "7", "product": "5", "mean": "7"}
    assert picks["min"].confidence == pytest.approx(0.8) and picks["min"].correct is False
    assert picks["product"].confidence == pytest.approx(0.72)
    assert picks["mean"].confidence == pytest.approx(0.86) and picks["mean"].correct is True
    # c has the best reward but no answer: never picked; tokens count every sample
    assert all(s.chosen != "c" for s in picks.values()) and picks["min"].tokens == 23
    assert picks["min"].votes == {"5": pytest.approx(0.8), "7": pytest.approx(0.6)}


def test_rationale_score_skips_undecided_rewards():
    assert rationale_score([0.9, None, 0.4], "min") == pytest.approx(0.4)
    assert rationale_score([None, None], "min") == 0.5 and rationale_score([], "product") == 0.5
    with pytest.raises(RationalesError):
        rationale_score([0.5], "median")
    with pytest.raises(RationalesError):
        best_of_n(Problem.make("q", "1"), [rat("a", "1")], [[0.5], [0.5]])


# ---------------------------------------------------------------- tool-filtered vote


def checked(rid, text, problem):
    r = finish_rationale(problem, text, rid=rid, prompt_id="q", model="m", sampling=Sampling(), index=0,
                         tokens=len(text.split()))
    return check_rationale(r)


def test_tool_filtered_vote_drops_samples_with_wrong_arithmetic():
    p = Problem.make("What is 2 + 3 * 4?", 14, answer_type="number")
    wrong = "3 * 4 = 13\n2 + 13 = 15\nThe answer is 15."
    right = "3 * 4 = 12\n2 + 12 = 14\nThe answer is 14."
    rs = [checked("w1", wrong, p), checked("w2", wrong, p), checked("w3", wrong, p), checked("r1", right, p),
          checked("r2", right, p)]
    assert [has_wrong_step(r) for r in rs] == [True, True, True, False, False]
    assert majority_vote(p, rs).answer == "15"  # the plain vote follows the wrong majority
    sel = tool_filtered_vote(p, rs)
    assert sel.answer == "14" and sel.correct is True and sel.confidence == 1.0
    assert sel.meta == {"kept": 2, "samples": 5, "fallback": False}
    assert sel.tokens == sum(r.tokens for r in rs)
    # everyone has a wrong step: all vote (never unanswered)
    fb = tool_filtered_vote(p, rs[:3])
    assert fb.answer == "15" and fb.meta["fallback"] is True


# ---------------------------------------------------------------- adaptive consistency


def test_beta_confidence_hand_checked_and_against_the_integral():
    assert beta_confidence(2, 0) == pytest.approx(7 / 8)
    assert beta_confidence(3, 0) == pytest.approx(15 / 16)
    assert beta_confidence(4, 0) == pytest.approx(31 / 32)
    assert beta_confidence(3, 1) == pytest.approx(26 / 32)
    assert beta_confidence(1, 1) == pytest.approx(0.5)
    assert beta_confidence(8, 2) == pytest.approx(1 - 67 / 2048)
    # P(p > 1/2) for p ~ Beta(v1 + 1, v2 + 1), integrated numerically
    x = np.linspace(0.5, 1.0, 200001)
    for v1, v2 in [(2, 0), (3, 1), (5, 3), (8, 2)]:
        a, b = v1 + 1, v2 + 1
        pdf = x ** (a - 1) * (1 - x) ** (b - 1) * math.gamma(a + b) / (math.gamma(a) * math.gamma(b))
        assert beta_confidence(v1, v2) == pytest.approx(np.trapezoid(pdf, x), abs=1e-6)


def test_stop_confidence_share_and_no_answers():
    rs = [rat("a", "5"), rat("b", "5"), rat("c", "7"), rat("d", None)]
    assert stop_confidence(rs, "share") == pytest.approx(2 / 3)
    assert stop_confidence(rs, "beta") == pytest.approx(beta_confidence(2, 1))
    assert stop_confidence([rat("x", None)], "beta") == 0.0


def seed_script(problem, outputs):
    """A fake script answering by sample index (recovered from the explicit per-sample seed)."""
    pid = cot_specs([problem], n=1)[0].prompt_id
    index = {sample_seed(0, problem.id, pid, i): i for i in range(64)}
    return lambda prompt, seed, _: outputs(index[seed])


@pytest.fixture()
def p5():
    return Problem.make("What is 2 + 3?", 5, answer_type="number")


def test_adaptive_stops_early_on_unanimous_votes(p5, store):
    fake = FakeBackend(script=seed_script(p5, lambda i: "The answer is 5."))
    sel, = adaptive_consistency([p5], fake, store, batch=2, max_samples=16, threshold=0.95)
    # 2-0 -> 0.875 (go on), 4-0 -> 0.969 (stop)
    assert sel.meta["samples"] == 4 and sel.meta["confidence_at_stop"] == pytest.approx(31 / 32)
    assert fake.samples_generated == 4 and sel.tokens == 16 and sel.answer == "5" and sel.correct
    share, = adaptive_consistency([p5], fake, store, batch=2, criterion="share", threshold=0.95)
    assert share.meta["samples"] == 2  # 2 of 2 agree at once; cached, nothing generated
    assert fake.samples_generated == 4


def test_adaptive_continues_on_split_votes(p5, store):
    split = FakeBackend(script=seed_script(p5, lambda i: f"The answer is {5 if i % 2 == 0 else 7}."))
    sel, = adaptive_consistency([p5], split, store, batch=2, max_samples=8)
    assert sel.meta["samples"] == 8 and sel.meta["confidence_at_stop"] == pytest.approx(0.5)


def test_adaptive_stop_point_hand_checked(p5, tmp_path):
    """Every 4th sample says 7: 2-0 .875, 3-1 .8125, 5-1 .9375, 6-2 .910, 8-2 .967 -> stop at 10."""
    from rationales.store import Store

    with Store(tmp_path / "a.sqlite") as store:
        fake = FakeBackend(script=seed_script(p5, lambda i: f"The answer is {7 if i % 4 == 3 else 5}."))
        sel, = adaptive_consistency([p5], fake, store, batch=2, max_samples=40)
        assert sel.meta["samples"] == 10 and sel.votes == {"5": 8.0, "7": 2.0}
        assert sel.meta["confidence_at_stop"] == pytest.approx(1 - 67 / 2048)
        # adaptive drew the same cached samples vote@12 uses: only 2 more are generated
        before = fake.samples_generated
        generate(cot_specs([p5], n=12, top_p=0.95, method="cot"), fake, store)
        assert fake.samples_generated - before == 2
    with pytest.raises(RationalesError):
        adaptive_consistency([p5], fake, store, criterion="vibes")


# ---------------------------------------------------------------- step search


STEP_TABLE = {"3 * 4 = 12": 0.9, "3 * 4 = 13": 0.2, "2 + 3 = 5": 0.4, "2 + 12 = 14": 0.8, "2 + 12 = 15": 0.1,
              "The answer is 14.": 0.7, "The answer is 15.": 0.3}


def step_script(prompt, seed, index):
    tail = prompt.split(ASSISTANT)[-1]
    if tail == "":
        return ["3 * 4 = 13", "3 * 4 = 12", "2 + 3 = 5"][index % 3]
    if tail.endswith("3 * 4 = 12\n"):
        return ["2 + 12 = 15\nThe answer is 15.", "2 + 12 = 14", "2 + 12 = 15"][index % 3]
    if tail.endswith("2 + 12 = 14\n"):
        return ["The answer is 15.", "The answer is 14.", "The answer is 14."][index % 3]
    return "The answer is 0."


@pytest.fixture()
def p14():
    return Problem.make("What is 2 + 3 * 4?", 14, answer_type="number")


def test_greedy_step_search_keeps_what_the_scorer_prefers(p14, store):
    fake = FakeBackend(script=step_script)
    sel, = greedy_step_search([p14], fake, store, table_prm(STEP_TABLE), n=3)
    r = store.get_rationale(sel.chosen)
    # never the first sample: the scorer's favourite each time
    assert [s.text for s in r.steps] == ["3 * 4 = 12", "2 + 12 = 14", "The answer is 14."]
    assert sel.answer == "14" and sel.correct is True and sel.confidence == pytest.approx(0.7)
    # tokens: 3 candidates x 5 + 3 x 5 (two identical, merged, still paid) + 3 x 4
    assert sel.tokens == 42 and r.meta["tokens_spent"] == 42 and r.tokens == 14
    assert [s.verdict("prm") for s in r.steps] == [1, 1, 1] and r.method == "step_search"
    assert [c.score for s in r.steps for c in s.checks if c.kind == "prm"] == pytest.approx([0.9, 0.8, 0.7])
    assert sel.meta["finished_by_continuation"] is False


def test_greedy_step_search_finishes_a_cut_chain_by_continuation(p14, store):
    fake = FakeBackend(script=step_script)
    sel, = greedy_step_search([p14], fake, store, table_prm(STEP_TABLE), n=3, max_steps=1)
    r = store.get_rationale(sel.chosen)
    # one searched step, then the plain continuation (sample 0: "2 + 12 = 15 / The answer is 15.")
    assert r.text == "3 * 4 = 12\n2 + 12 = 15\nThe answer is 15." and sel.answer == "15" and not sel.correct
    assert sel.tokens == 15 + 9 and sel.meta["finished_by_continuation"] is True
    with pytest.raises(RationalesError):
        greedy_step_search([p14], fake, store, table_prm(STEP_TABLE), temperature=0.0)


def test_layout_only_lines_are_not_steps(p14, store):
    """'\\[' / '\\]' lines (display maths) are dropped like empty ones; when nothing else is
    proposed the chain is finished by a continuation."""
    def script(prompt, seed, index):
        tail = prompt.split(ASSISTANT)[-1]
        if tail == "":
            return ["\\[", "3 * 4 = 12", "\\["][index % 3]
        if tail.endswith("3 * 4 = 12\n"):
            return "\\]\nThe answer is 14."
        return "The answer is 0."

    sel, = greedy_step_search([p14], FakeBackend(script=script), store, table_prm({"3 * 4 = 12": 0.1}), n=3)
    r = store.get_rationale(sel.chosen)
    # step 1: only '3 * 4 = 12' is a step (low reward, still the only choice); step 2: all three
    # proposals are '\\]' -> the chain ends and the continuation writes the rest; the stored
    # rationale's '\\]' line is layout, not a step (steps.segment drops it)
    assert [s.text for s in r.steps] == ["3 * 4 = 12", "The answer is 14."]
    assert sel.answer == "14" and sel.meta["steps"] == 1 and sel.meta["finished_by_continuation"] is True
    assert sel.tokens == (1 + 5 + 1) + 3 * 1 + 5  # '\\[' counts 1 token, the continuation 5


BEAM_TABLE = {"Let x be the cost.": 0.9, "Let y be the price.": 0.8, "Guess wildly.": 0.3,
              "The answer is 5.": 0.9, "The answer is 6.": 0.4, "The answer is 9.": 0.1,
              "The answer is 7.": 0.95, "The answer is 8.": 0.2, "The answer is 3.": 0.1}


def beam_script(prompt, seed, index):
    tail = prompt.split(ASSISTANT)[-1]
    if tail == "":
        return ["Let x be the cost.", "Let y be the price.", "Guess wildly."][index % 3]
    if tail.endswith("Let x be the cost.\n"):
        return ["The answer is 5.", "The answer is 6.", "The answer is 9."][index % 3]
    if tail.endswith("Let y be the price.\n"):
        return ["The answer is 7.", "The answer is 8.", "The answer is 3."][index % 3]
    return "The answer is 0."


def test_beam_keeps_top_k_by_cumulative_score(store):
    """Step 1 keeps x (.9) and y (.8), drops 'Guess wildly.' (.3). Step 2: products x5 .81,
    x6 .36, x9 .09, y7 .76, y8 .16, y3 .08 -> keep x5, y7 (both finished) -> x5 wins on the
    product; on the last step's score y7 (.95) beats x5 (.9)."""
    p = Problem.make("Find the price.", 7, answer_type="number")
    fake = FakeBackend(script=beam_script)
    sel, = beam_step_search([p], fake, store, table_prm(BEAM_TABLE), beams=2, expand=3, how="product")
    assert sel.answer == "5" and sel.correct is False and sel.confidence == pytest.approx(0.81)
    assert not any(q.endswith("Guess wildly.\n") for q in fake.prompts)  # the dropped beam never grew
    assert sel.tokens == (5 + 5 + 2) + 2 * 3 * 4 and sel.meta["beams"] == 2
    assert store.get_rationale(sel.chosen).method == "beam"
    last, = beam_step_search([p], FakeBackend(script=beam_script), store, table_prm(BEAM_TABLE), beams=2, expand=3,
                             how="last")
    assert last.answer == "7" and last.correct is True and last.confidence == pytest.approx(0.95)
    narrow, = beam_step_search([p], FakeBackend(script=beam_script), store, table_prm(BEAM_TABLE), beams=1, expand=3)
    assert narrow.answer == "5"  # width 1: y is gone after step 1
    with pytest.raises(RationalesError):
        beam_step_search([p], fake, store, table_prm(BEAM_TABLE), how="median")


# ---------------------------------------------------------------- MCTS at inference


def mcts_script(prompt, seed, index):
    tail = prompt.split(ASSISTANT)[-1]
    if tail == "":
        return ["3 * 4 = 12\n2 + 12 = 14\nThe answer is 14.", "3 * 4 = 13\n2 + 13 = 15\nThe answer is 15."][index % 2]
    if tail.endswith("3 * 4 = 12\n"):
        return "2 + 12 = 14\nThe answer is 14."
    if tail.endswith("3 * 4 = 13\n"):
        return "2 + 13 = 15\nThe answer is 15."
    return "The answer is 0."


def test_mcts_inference_values_paths_by_prm_and_tool(p14, store):
    """rollouts=2, children=2: it1 rolls out from A '3 * 4 = 12', it2 from B '3 * 4 = 13'.
    A's path rewards (.9, .8, .7) -> min .7 -> value .4; B's path (.2, .6, .5) -> -.6."""
    honest = table_prm({**STEP_TABLE, "2 + 13 = 15": 0.6, "The answer is 15.": 0.5})
    sel, = mcts_search([p14], FakeBackend(script=mcts_script), store, honest, rollouts=2, children=2)
    assert sel.answer == "14" and sel.correct is True and sel.confidence == pytest.approx(0.7)
    assert sel.votes == {"14": pytest.approx(0.4), "15": pytest.approx(-0.6)}
    assert sel.tokens == 10 + 9 + 9 and sel.meta["paths"] == 2
    assert store.blobs("mcts_tree")[0][0] == sel.meta["tree"]
    # a scorer fooled by the wrong branch (min .9 -> .8) picks 15; the tool check overrules it
    fooled = table_prm({**STEP_TABLE, "3 * 4 = 13": 0.95, "2 + 13 = 15": 0.9, "The answer is 15.": 0.9})
    prm_only, = mcts_search([p14], FakeBackend(script=mcts_script), store, fooled, rollouts=2, children=2)
    assert prm_only.answer == "15" and prm_only.confidence == pytest.approx(0.9)
    grounded, = mcts_search([p14], FakeBackend(script=mcts_script), store, fooled, rollouts=2, children=2,
                            value="prm+tool")
    assert grounded.answer == "14" and grounded.votes["15"] == -1.0
    # tool only (no scorer): A's path [+1, +1, 0] -> 1/3 + 2/9 = 5/9; B's [-1, +1, 0] -> -1/9
    tool, = mcts_search([p14], FakeBackend(script=mcts_script), store, None, rollouts=2, children=2, value="tool")
    assert tool.votes == {"14": pytest.approx(5 / 9), "15": pytest.approx(-1 / 9)}
    with pytest.raises(RationalesError):
        mcts_search([p14], FakeBackend(), store, None, value="prm")


# ---------------------------------------------------------------- real model, one per strategy


@pytest.mark.model
def test_adaptive_on_real_model(small_model, store):
    p = Problem.make("What is 6 + 7?", 13, answer_type="number")
    sel, = adaptive_consistency([p], small_model, store, batch=2, max_samples=4, max_tokens=64)
    assert 2 <= sel.meta["samples"] <= 4 and sel.tokens > 0
    assert len(store.rationales(method="cot")) == sel.meta["samples"]
