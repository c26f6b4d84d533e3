"""Judges with rationales: parsers (adversarial outputs), grammars, absolute / pairwise /
ranking judges on the fake backend, retries, forced verdicts, caching, step checks."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError, UnknownNameError
from rationales.records import Problem, Rationale, Step
from rationales.verify.judge import (
    RUBRICS, AbsoluteJudge, JudgeConfig, JudgeItem, PairItem, PairwiseJudge, RandomAbsoluteJudge,
    RandomPairwiseJudge, RandomRankJudge, RankingJudge, RankItem, StepJudge, gbnf, grammar_for, judge_checks,
    load_rubric, parse_choice, parse_ranking, parse_score, strip_echo, verdict_options)

PROMPT = ("###Score rubric:\n[Is the answer right?]\nScore 1: The answer is wrong and the reasoning is wrong.\n"
          "Score 5: The answer is right and every step of the reasoning is correct.\n"
          "3. Use exactly this format: \"Feedback: <your feedback> [RESULT] <score>\"")


# ------------------------------------------------------------------ parse_score


@pytest.mark.parametrize("text, value, how", [
    ("Feedback: The sum is right. [RESULT] 4", 4, "result"),
    ("Feedback: fine\n[RESULT]: **5**", 5, "result"),
    ("[RESULT] 2.", 2, "result"),
    ("The feedback is short.\n**Score:** 3", 3, "phrase"),
    ("I would give it a rating of 2.", 2, "phrase"),
    ("Overall this earns 4/5.", 4, "phrase"),
    ("3", 3, "bare"),
    ("Feedback: ok\n\n4", 4, "bare"),
    ("Feedback: A score of 5 needs a full derivation. [RESULT] 3", 3, "result"),
])
def test_parse_score_reads_lenient_formats(text, value, how):
    v = parse_score(text, 1, 5, PROMPT)
    assert (v.value, v.how) == (value, how)


def test_parse_score_keeps_the_rationale_before_the_verdict():
    v = parse_score("Feedback: Step 2 adds wrong. [RESULT] 2", 1, 5)
    assert v.rationale == "Step 2 adds wrong."


@pytest.mark.parametrize("text, how", [
    ("", "empty"),
    ("The response is fine but I cannot decide.", "unparsed"),
    ("Feedback: first [RESULT] 3 then on reflection [RESULT] 5", "conflict"),  # two scores
    ("Score: 2. Actually, Score: 4.", "conflict"),
    ("[RESULT] 7", "out_of_range"),
    ("[RESULT] 3.5", "out_of_range"),
    ("[RESULT] 0", "out_of_range"),
    ("[RESULT] 45", "out_of_range"),
])
def test_parse_score_never_invents_a_number(text, how):
    v = parse_score(text, 1, 5, PROMPT)
    assert v.value is None and v.how == how


def test_a_score_in_the_prompt_echo_is_not_the_verdict():
    # the model copies its rubric and format: a naive "Score (\d)" regex would read 1 or 5
    echo = ("Score 1: The answer is wrong and the reasoning is wrong.\n"
            "Score 5: The answer is right and every step of the reasoning is correct.\n"
            "3. Use exactly this format: \"Feedback: <your feedback> [RESULT] <score>\"")
    assert parse_score(echo, 1, 5, PROMPT).value is None
    assert parse_score(echo + "\nFeedback: wrong sum. [RESULT] 2", 1, 5, PROMPT).value == 2
    # the format's placeholder alone is no verdict either
    assert parse_score("Feedback: ok [RESULT] (an integer number between 1 and 5)", 1, 5).value is None


def test_parse_score_other_scales():
    assert parse_score("[RESULT] 9", 1, 10).value == 9
    assert parse_score("[RESULT] 9", 1, 5).value is None
    assert parse_score("rated 7/10", 0, 10).value is None or parse_score("score: 7/10", 0, 10).value == 7
    assert parse_score("score: 0", 0, 3).value == 0


def test_strip_echo_drops_copied_lines_only():
    out = "Score 5: The answer is right and every step of the reasoning is correct.\nmine: 4"
    assert strip_echo(out, PROMPT).strip() == "mine: 4"


# ------------------------------------------------------------------ parse_choice / parse_ranking


@pytest.mark.parametrize("text, value", [
    ("Feedback: B adds wrong. [RESULT] A", "A"),
    ("[RESULT] Response B", "B"),
    ("[RESULT] **B**", "B"),
    ("Response B is clearly better because ...", "B"),
    ("I prefer A.", "A"),
    ("Winner: B", "B"),
    ("A", "A"),
    ("I prefer A at first. [RESULT] B", "B"),  # the explicit marker wins over a phrase
])
def test_parse_choice(text, value):
    assert parse_choice(text).value == value


@pytest.mark.parametrize("text, how", [
    ("", "empty"),
    ("Both are fine.", "unparsed"),
    ("[RESULT] A or B", "unparsed"),  # the format's placeholder, copied
    ("[RESULT] A ... no wait [RESULT] B", "conflict"),
    ("Response A is better. Response B is better.", "conflict"),
    ("[RESULT] C", "out_of_range"),
])
def test_parse_choice_unreadable(text, how):
    v = parse_choice(text)
    assert v.value is None and v.how == how


def test_parse_ranking():
    assert parse_ranking("Feedback: x [RESULT] C > A > B", 3).value == [2, 0, 1]
    assert parse_ranking("[RESULT] Response B > Response A > Response C", 3).value == [1, 0, 2]
    assert parse_ranking("[RESULT] B, A, C", 3).value == [1, 0, 2]
    assert parse_ranking("[RESULT] A > B", 3).how == "out_of_range"  # one missing
    assert parse_ranking("[RESULT] A > A > B", 3).value is None
    assert parse_ranking("[RESULT] A > B > C then [RESULT] C > B > A", 3).how == "conflict"
    assert parse_ranking("no ranking", 3).how == "unparsed"


# ------------------------------------------------------------------ property tests: every parser

_alphabet = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z", "Cc"))
_judge_text = st.one_of(
    st.text(_alphabet, max_size=400),
    st.lists(st.sampled_from(["[RESULT]", " ", "Score", ":", "4", "5", "A", "B", "C", ">", "/", "5", "\n",
                              "Response", "better", "out of", "**", "Feedback:", "(", ")", "or", "-3", "1e9"]),
             max_size=60).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(_judge_text, st.integers(0, 3), st.integers(1, 7))
def test_parse_score_properties(text, low, span):
    high = low + span
    v1 = parse_score(text, low, high, PROMPT)
    v2 = parse_score(text, low, high, PROMPT)
    assert (v1.value, v1.how) == (v2.value, v2.how)  # deterministic
    assert v1.value is None or (isinstance(v1.value, int) and low <= v1.value <= high)


@settings(max_examples=300, deadline=None)
@given(_judge_text)
def test_parse_choice_properties(text):
    v = parse_choice(text)
    assert v.value in (None, "A", "B")
    assert parse_choice(text).value == v.value


@settings(max_examples=300, deadline=None)
@given(_judge_text, st.integers(2, 5))
def test_parse_ranking_properties(text, k):
    v = parse_ranking(text, k)
    assert v.value is None or sorted(v.value) == list(range(k))
    assert parse_ranking(text, k).value == v.value


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5), st.text(st.characters(exclude_characters="[\x00"), min_size=1, max_size=80))
def test_a_grammar_conforming_output_always_parses(score, feedback):
    # anything the absolute grammar allows is read back as its own verdict
    text = f"Feedback: {feedback}[RESULT] {score}"
    assert re.fullmatch(r"Feedback: [^\[\x00]+\[RESULT\] [1-5]", text, re.DOTALL)
    assert parse_score(text, 1, 5).value == score


def test_parsers_are_fast_on_long_adversarial_text():
    import time

    text = ("[RESULT] " + "A > " * 3000 + "Score: 4 " * 3000 + "(" * 5000) * 2
    t0 = time.perf_counter()
    parse_score(text, 1, 5, PROMPT), parse_choice(text), parse_ranking(text, 4)
    assert time.perf_counter() - t0 < 2.0


# ------------------------------------------------------------------ grammars


def test_grammars():
    g = grammar_for("absolute", low=1, high=5)
    assert 'root ::= "Feedback: " feedback "[RESULT] " verdict' in g
    assert 'verdict ::= "1" | "2" | "3" | "4" | "5"' in g
    assert 'verdict ::= "A" | "B"' in grammar_for("pairwise")
    assert len(verdict_options("ranking", k=3)) == 6
    assert '"C > B > A"' in grammar_for("ranking", k=3)
    assert grammar_for("absolute", low=0, high=2, verdict_only=True).startswith('root ::= " "? verdict')
    with pytest.raises(RationalesError):
        gbnf([])


def test_grammar_is_accepted_by_llama_cpp():
    llama_cpp = pytest.importorskip("llama_cpp")
    for g in (grammar_for("absolute"), grammar_for("pairwise"), grammar_for("ranking", k=4),
              grammar_for("absolute", low=1, high=10, verdict_only=True)):
        assert llama_cpp.LlamaGrammar.from_string(g, verbose=False) is not None


# ------------------------------------------------------------------ rubrics


def test_rubrics(tmp_path):
    r = load_rubric("correctness")
    assert r.low == 1 and r.high == 5 and "Score 5:" in r.text()
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"criteria": "Is it concise?", "score1_description": "rambling",
                             "score3_description": "tight"}))
    fr = load_rubric(str(f))
    assert (fr.low, fr.high, fr.criteria) == (1, 3, "Is it concise?")
    assert load_rubric({"criteria": "x y z", "scores": {"0": "bad", "10": "good"}}).high == 10
    assert load_rubric("Is the response polite and correct?").criteria.startswith("Is the")
    with pytest.raises(UnknownNameError, match="Did you mean 'correctness'"):
        load_rubric("corectness")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RationalesError, match="not valid JSON"):
        load_rubric(str(bad))
    with pytest.raises(RationalesError, match="does not exist"):
        load_rubric(str(tmp_path / "missing.json"))
    with pytest.raises(RationalesError, match="scale"):
        load_rubric({"criteria": "x", "low": 5, "high": 5})
    assert set(RUBRICS) >= {"correctness", "helpfulness", "step"}


def test_config_validation():
    with pytest.raises(RationalesError):
        JudgeConfig(n=0)
    with pytest.raises(RationalesError):
        JudgeConfig(retries=99)
    with pytest.raises(RationalesError, match="temperature"):
        JudgeConfig(n=4, temperature=0.0)
    with pytest.raises(RationalesError):
        JudgeConfig(temperature=float("nan"))


# ------------------------------------------------------------------ judges on the fake backend


def test_absolute_judge_rationale_first_and_reference_shown():
    fake = FakeBackend(script={"###Reference answer": ["Feedback: matches the reference. [RESULT] 5"],
                               "*": ["Feedback: no reference, unsure. [RESULT] 3"]})
    judge = AbsoluteJudge(fake, "correctness")
    a, b = judge.judge([JudgeItem("2+2?", "4", reference="4"), JudgeItem("2+2?", "5")])
    assert (a.value, a.rationale, a.how) == (5, "matches the reference.", "result")
    assert (b.value, b.rationale) == (3, "no reference, unsure.")
    assert "Score 5:" in fake.prompts[0] and "###Response to evaluate:\n4" in fake.prompts[0]


def test_unreadable_verdict_is_retried_a_bounded_number_of_times_then_unparsed():
    fake = FakeBackend(script=["I think it is good."])
    judge = AbsoluteJudge(fake, config=JudgeConfig(retries=2, force=False))
    (j,) = judge.judge([JudgeItem("q", "r")])
    assert j.value is None and not j.ok and j.samples[0].failure == "unparsed"
    assert fake.samples_generated == 3  # first try + 2 retries, then stop
    assert judge.stats["unparsed"] == 1


def test_a_retry_can_succeed():
    fake = FakeBackend()
    fake.queue("no verdict here", "Feedback: ok [RESULT] 4")
    (j,) = AbsoluteJudge(fake, config=JudgeConfig(retries=1, force=False)).judge([JudgeItem("q", "r")])
    assert j.value == 4 and j.samples[0].attempt == 1


def test_forced_verdict_reads_logprobs_after_result():
    def lp(prompt, cont):  # the judge "prefers" 2 after its rationale
        assert prompt.endswith("Feedback: I think so [RESULT]")
        return -1.0 if cont == " 2" else -5.0

    fake = FakeBackend(script=["I think so"], logprob_fn=lp)
    (j,) = AbsoluteJudge(fake, config=JudgeConfig(retries=0)).judge([JudgeItem("q", "r")])
    assert (j.value, j.how, j.samples[0].failure) == (2, "forced", "unparsed")
    assert j.detail["parsed"] == 0  # forced verdicts are not counted as parsed


def test_self_consistency_majority_and_mean():
    fake = FakeBackend(script=["[RESULT] 4", "[RESULT] 2", "[RESULT] 4", "nothing"])
    cfg = JudgeConfig(n=4, temperature=0.8, force=False, retries=0)
    (j,) = AbsoluteJudge(fake, config=cfg).judge([JudgeItem("q", "r")])
    assert j.value == 4 and len(j.samples) == 4 and sum(s.ok for s in j.samples) == 3
    fake2 = FakeBackend(script=["[RESULT] 4", "[RESULT] 2", "[RESULT] 4", "nothing"])
    (m,) = AbsoluteJudge(fake2, config=JudgeConfig(n=4, temperature=0.8, force=False, retries=0,
                                                   aggregate="mean")).judge([JudgeItem("q", "r")])
    assert m.value == pytest.approx(10 / 3)


def test_best_of_n_picks_the_most_likely_judgment():
    def lp(prompt, cont):
        return -1.0 if "[RESULT] 2" in cont else -9.0

    fake = FakeBackend(script=["Feedback: a [RESULT] 4", "Feedback: b [RESULT] 2", "Feedback: c [RESULT] 4"],
                       logprob_fn=lp)
    (j,) = AbsoluteJudge(fake, config=JudgeConfig(n=3, temperature=0.8, aggregate="best")).judge(
        [JudgeItem("q", "r")])
    assert j.value == 2 and j.rationale == "b"


def _pair_script(prompt: str, seed: int, index: int) -> str:
    # a judge that always prefers the response that says 'right' (position-independent)
    a = prompt.split("###Response A:")[1].split("###Response B:")[0]
    return "Feedback: A says right. [RESULT] A" if "right" in a else "Feedback: B says right. [RESULT] B"


def test_pairwise_runs_both_orders_and_maps_back():
    fake = FakeBackend(script=_pair_script)
    judge = PairwiseJudge(fake)
    a, b = judge.judge([PairItem("q", "right", "wrong"), PairItem("q", "wrong", "right")])
    assert (a.value, a.consistent, b.value, b.consistent) == ("A", True, "B", True)
    assert [s.order for s in a.samples] == ["AB", "BA"] and [s.value for s in a.samples] == ["A", "A"]
    assert fake.samples_generated == 2  # the second pair swapped is the first pair: judged once


def test_pairwise_position_bias_is_reported_and_gives_no_verdict():
    fake = FakeBackend(script=["Feedback: first is best. [RESULT] A"])  # always the first position
    (j,) = PairwiseJudge(fake).judge([PairItem("q", "x", "y")])
    assert j.consistent is False and j.value is None and j.how == "tie"
    assert j.detail["orders"] == {"AB": "A", "BA": "B"}


def test_ranking_judge_maps_positions_back_with_shuffles():
    def script(prompt, seed, index):
        # rank by the number in each response, best = largest, whatever the shown order
        shown = re.findall(r"###Response ([A-E]):\n(\d+)", prompt)
        order = sorted(shown, key=lambda t: -int(t[1]))
        return "Feedback: bigger is better. [RESULT] " + " > ".join(lbl for lbl, _ in order)

    fake = FakeBackend(script=script)
    (j,) = RankingJudge(fake, shuffles=3).judge([RankItem("q", ["1", "3", "2"])])
    assert j.value == [1, 2, 0] and len(j.samples) == 3 and all(s.value == [1, 2, 0] for s in j.samples)


def test_judge_outputs_are_cached_in_the_store(store):
    fake = FakeBackend(script=["Feedback: ok [RESULT] 4"])
    items = [JudgeItem("q", "r"), JudgeItem("q2", "r2")]
    AbsoluteJudge(fake, store=store).judge(items)
    again = FakeBackend(script=["Feedback: other [RESULT] 1"])
    js = AbsoluteJudge(again, store=store).judge(items)
    assert again.samples_generated == 0 and [j.value for j in js] == [4, 4]
    assert len(store.blobs("judge_output")) == 2


def test_grammar_reaches_the_request_when_the_backend_supports_it():
    fake = FakeBackend(script=["Feedback: ok [RESULT] 3"])  # the fake backend checks grammars with llama.cpp
    (j,) = AbsoluteJudge(fake).judge([JudgeItem("q", "r")])
    assert fake.grammars == [grammar_for("absolute")] and j.value == 3
    fake.queue("Feedback: a [RESULT] A", "Feedback: b [RESULT] B")
    PairwiseJudge(fake).judge([PairItem("q", "a", "b")])
    assert fake.grammars[1:] == [grammar_for("pairwise")] * 2
    plain = FakeBackend(script=["Feedback: ok [RESULT] 3"])
    AbsoluteJudge(plain, config=JudgeConfig(grammar=False)).judge([JudgeItem("q", "r")])
    assert plain.grammars == [None]

    class NoGrammar(FakeBackend):
        supports_grammar = False

    ng = NoGrammar(script=["Feedback: ok [RESULT] 3"])
    AbsoluteJudge(ng).judge([JudgeItem("q", "r")])
    assert ng.grammars == [None]


def test_random_judges():
    items = [JudgeItem("q", str(i)) for i in range(20)]
    vals = [j.value for j in RandomAbsoluteJudge(seed=1).judge(items)]
    assert set(vals) <= {1, 2, 3, 4, 5} and len(set(vals)) > 1
    assert vals == [j.value for j in RandomAbsoluteJudge(seed=1).judge(items)]
    assert {j.value for j in RandomPairwiseJudge().judge([PairItem("q", "a", str(i)) for i in range(20)])} == {"A", "B"}
    (r,) = RandomRankJudge().judge([RankItem("q", ["a", "b", "c"])])
    assert sorted(r.value) == [0, 1, 2]


# ------------------------------------------------------------------ step judge


def test_step_judge_writes_judge_checks():
    p = Problem.make("What is 2+3+4?", "9")
    text = "2+3 = 5\n5+4 = 10\nThe answer is 10."
    steps, pos = [], 0
    for i, line in enumerate(text.split("\n")):
        steps.append(Step(index=i, text=line, span=(pos, pos + len(line))))
        pos += len(line) + 1
    r = Rationale(id="r1", problem_id=p.id, prompt_id="", model="m", text=text, steps=steps)

    def script(prompt, seed, index):
        step = prompt.split("(judge this one):\n")[1].split("\n")[0]
        return {"2+3 = 5": "Feedback: right. [RESULT] 5", "5+4 = 10": "Feedback: 5+4 is 9. [RESULT] 1"}.get(
            step, "no idea")

    judge = StepJudge(FakeBackend(script=script), config=JudgeConfig(force=False, retries=0))
    assert judge.score([p], [r]) == [[1.0, 0.0, None]]
    judge_checks(judge, [p], [r])
    checks = [s.checks[-1] for s in r.steps]
    assert [c.kind for c in checks] == ["judge"] * 3
    assert [c.verdict for c in checks] == [1, -1, None]
    assert checks[1].detail["rationale"] == "5+4 is 9."


# ------------------------------------------------------------------ calibrated pairwise verdicts


def _shown(prompt: str) -> tuple[str, str]:
    a = prompt.split("###Response A:")[1].split("###Response B:")[0].strip()
    b = prompt.split("###Response B:")[1].split("###")[0].strip()
    return a, b


def _leaning_lp(seen=None):
    """log P(' A') / log P(' B') of a judge with a strong first-position prior (+1.5 nats for the
    first position) and a weaker lean to the response that says 'right' (+0.5 nats)."""

    def lp(prompt, cont):
        if seen is not None:
            seen.append((prompt, cont))
        a, b = _shown(prompt)
        shown = a if cont == " A" else b
        return -3.0 + (1.5 if cont == " A" else 0.0) + (0.5 if "right" in shown else 0.0)

    return lp


def test_calibrate_decides_a_pair_the_written_verdicts_leave_tied_by_position_bias():
    items = [PairItem("q", "right", "wrong", gold="A"), PairItem("q", "wrong", "right", gold="B")]
    written = PairwiseJudge(FakeBackend(script=["Feedback: first. [RESULT] A"], logprob_fn=_leaning_lp()))
    assert [(j.value, j.how, j.consistent) for j in written.judge(items)] == [(None, "tie", False)] * 2
    seen = []
    fake = FakeBackend(script=["Feedback: first. [RESULT] A"], logprob_fn=_leaning_lp(seen))
    js = PairwiseJudge(fake, config=JudgeConfig(calibrate=True)).judge(items)
    assert [(j.value, j.how) for j in js] == [("A", "calibrated"), ("B", "calibrated")]
    assert all(j.consistent is False for j in js)  # the written verdicts still disagree across orders
    # the probabilities were read after the judge's own feedback and '[RESULT]', one option each
    assert {c for _, c in seen} == {" A", " B"} and all(p.endswith("Feedback: first. [RESULT]") for p, _ in seen)
    # by hand: first shown right: P(first) = sigmoid(2.0); first shown wrong: sigmoid(1.0)
    hi, lo = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(-1.0))
    j = js[0]
    assert j.detail["p_first"]["AB"] == pytest.approx(hi, abs=1e-6)
    assert j.detail["p_first"]["BA"] == pytest.approx(lo, abs=1e-6)
    assert j.detail["p_a"] == pytest.approx((hi + (1 - lo)) / 2, abs=1e-6)
    assert [s.probs["A"] for s in j.samples] == pytest.approx([hi, 1 - lo])  # in the given labels


def test_calibrate_follows_the_probabilities_not_the_written_verdict():
    # written verdicts agree on B in both orders, but the probabilities lean to A: calibrated says A
    def script(prompt, seed, index):
        a, _ = _shown(prompt)
        return "Feedback: x [RESULT] B" if a == "one" else "Feedback: x [RESULT] A"

    def lp(prompt, cont):
        a, b = _shown(prompt)
        return -0.5 if (a if cont == " A" else b) == "one" else -2.0

    (w,) = PairwiseJudge(FakeBackend(script=script, logprob_fn=lp)).judge([PairItem("q", "one", "two")])
    assert (w.value, w.consistent) == ("B", True)
    (c,) = PairwiseJudge(FakeBackend(script=script, logprob_fn=lp), config=JudgeConfig(calibrate=True)).judge(
        [PairItem("q", "one", "two")])
    assert (c.value, c.how, c.consistent) == ("A", "calibrated", True)


def test_calibrate_equal_probabilities_is_a_tie_and_no_logprobs_keeps_the_written_verdict():
    (t,) = PairwiseJudge(FakeBackend(script=["Feedback: x [RESULT] A"], logprob_fn=lambda p, c: -1.0),
                         config=JudgeConfig(calibrate=True)).judge([PairItem("q", "a", "b")])
    assert (t.value, t.how, t.detail["p_a"]) == (None, "tie", 0.5)

    class NoLogprobs(FakeBackend):
        def logprobs(self, prompt, continuations):
            raise RationalesError("no logprobs here")

    judge = PairwiseJudge(NoLogprobs(script=_pair_script), config=JudgeConfig(calibrate=True))
    (j,) = judge.judge([PairItem("q", "wrong", "right")])
    assert (j.value, j.how) == ("B", "result") and "p_a" not in j.detail
    assert all(s.probs is None for s in j.samples) and judge.stats["probs_failed"] == 2


def test_calibrated_probabilities_are_cached_in_the_store(store):
    items = [PairItem("q", "right", "wrong", gold="A")]
    fake = FakeBackend(script=["Feedback: first. [RESULT] A"], logprob_fn=_leaning_lp())
    (j,) = PairwiseJudge(fake, config=JudgeConfig(calibrate=True), store=store).judge(items)
    assert fake.logprob_calls == 2 and len(store.blobs("judge_probs")) == 2
    again = FakeBackend(script=["Feedback: other. [RESULT] B"], logprob_fn=lambda p, c: 0.0)
    (k,) = PairwiseJudge(again, config=JudgeConfig(calibrate=True), store=store).judge(items)
    assert again.logprob_calls == 0 and again.samples_generated == 0 and k.detail == j.detail


def test_pairwise_agreement_reports_the_probabilities_of_calibrated_judges():
    from rationales.score.judge import pairwise_agreement

    items = [PairItem("q", "right", "wrong", gold="A"), PairItem("q", "wrong", "right", gold="B")]
    js = PairwiseJudge(FakeBackend(script=["Feedback: first. [RESULT] A"], logprob_fn=_leaning_lp()),
                       config=JudgeConfig(calibrate=True)).judge(items)
    m = pairwise_agreement(js, items)
    hi, lo = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(-1.0))
    assert (m["accuracy"], m["position_bias"], m["calibrated"], m["with_probs"]) == (1.0, 1.0, 2, 2)
    assert m["mean_p_first"] == pytest.approx((hi + lo) / 2, abs=1e-4)
    assert m["mean_p_gold"] == pytest.approx((hi + 1 - lo) / 2, abs=1e-4)
    plain = pairwise_agreement(PairwiseJudge(FakeBackend(script=_pair_script)).judge(items), items)
    assert "mean_p_first" not in plain and plain["accuracy"] == 1.0
