"""Verbosity-aware rationale reduction (score/brevity.py)."""

from __future__ import annotations

import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.jobs.methods import METHODS, MethodContext, method_function
from rationales.prompts import render
from rationales.records import Problem, Rationale
from rationales.score.brevity import join_sentences, reduce_all, reduce_rationale, sentence_spans
from rationales.report import write_report

QUESTION = "Tom has 12 apples. He gives 5 away and buys 8 more. How many apples does he have?"
R = ("First, let me read the question again. Tom has 12 apples.\n"
     "He gives away 5, so 12 - 5 = 7.\n"
     "That is a nice number.\n"
     "Then he buys 8 more: 7 + 8 = 15.\n"
     "The answer is 15.")
W = "Tom has 12 apples.\nHe gets 5 more: 12 + 5 = 17.\nThe answer is 17."


def assistant_part(prompt: str) -> str:
    return prompt.rsplit("<|im_start|>assistant\n", 1)[-1]


def scripted_logprob(prompt: str, continuation: str) -> float:
    """log P(answer statement): -10, +2 with "12 - 5 = 7", +3 with "7 + 8 = 15", +0.05 with
    "Tom has 12 apples" (nearly useless), -0.3 with the filler "read the question again"
    (harmful); "That is a nice number." changes nothing."""
    text = assistant_part(prompt)
    if "15" in continuation:
        return (-10.0 + 2.0 * ("12 - 5 = 7" in text) + 3.0 * ("7 + 8 = 15" in text)
                + 0.05 * ("Tom has 12 apples" in text) - 0.3 * ("read the question again" in text))
    if "17" in continuation:
        return -10.0 + 2.5 * ("12 + 5 = 17" in text)
    return -20.0


def rat(text: str, answer: str, rid: str = "r") -> Rationale:
    return Rationale(id=rid, problem_id="p", prompt_id="q", model="fake", text=text, answer=answer)


def test_sentences_and_joining_keep_the_line_layout():
    body = "A. B.\nC"
    spans = sentence_spans(body)
    assert [body[a:b] for a, b in spans] == ["A.", "B.", "C"]
    assert join_sentences(body, spans, [0, 2]) == "A.\nC\n"
    assert join_sentences(body, spans, [0, 1]) == "A. B.\n"
    assert join_sentences(body, spans, [1, 2]) == "B.\nC\n"
    assert join_sentences(body, spans, []) == ""


def test_reduction_drops_exactly_the_sentences_the_log_probs_call_useless():
    backend = FakeBackend(logprob_fn=scripted_logprob)
    prompt = render("cot", question=QUESTION)
    red = reduce_rationale(backend, prompt, rat(R, "15"), threshold=0.1)
    assert red.sentences == ["First, let me read the question again.", "Tom has 12 apples.",
                             "He gives away 5, so 12 - 5 = 7.", "That is a nice number.",
                             "Then he buys 8 more: 7 + 8 = 15."]
    # full: -10 + 2 + 3 + 0.05 - 0.3 = -5.25. Front to back: without the filler -4.95 (drop);
    # without "Tom has 12 apples" too -5.0 >= -5.35 (drop); without "12 - 5 = 7" -7 (keep);
    # without "nice number" -5.0 (drop); without "7 + 8 = 15" -8 (keep).
    assert red.full_logprob == pytest.approx(-5.25)
    assert red.dropped == [0, 1, 3] and red.kept == [2, 4]
    assert red.reduced_logprob == pytest.approx(-5.0)
    assert red.reduced_body == "He gives away 5, so 12 - 5 = 7.\nThen he buys 8 more: 7 + 8 = 15.\n"
    assert [t["dropped"] for t in red.trace] == [True, True, False, True, False]


def test_threshold_bounds_the_total_loss():
    backend = FakeBackend(logprob_fn=scripted_logprob)
    prompt = render("cot", question=QUESTION)
    text = "Tom has 12 apples.\nHe gives away 5, so 12 - 5 = 7.\nThen he buys 8 more: 7 + 8 = 15.\nThe answer is 15."
    # removing "Tom has 12 apples" costs 0.05 nats: dropped at 0.1, kept at 0.01
    assert reduce_rationale(backend, prompt, rat(text, "15"), threshold=0.1).dropped == [0]
    assert reduce_rationale(backend, prompt, rat(text, "15"), threshold=0.01).dropped == []
    assert reduce_rationale(backend, prompt, rat(text, None)) is None  # nothing to keep likely
    with pytest.raises(RationalesError, match=">= 0"):
        reduce_rationale(backend, prompt, rat(text, "15"), threshold=-1)


def reanswer_script(prompt: str, seed: int, index: int) -> str:
    tail = assistant_part(prompt)
    if not tail:  # a CoT prompt: the chat ends with an empty assistant turn
        return [R, W][index]
    assert tail.endswith("\nThe answer is"), "re-answering completes the answer statement"
    if "7 + 8 = 15" in tail:
        return " 15.\nMore text after the line is cut by the stop."
    if "12 + 5 = 17" in tail:
        return " 17."
    return " 0."


def test_reduced_rationales_are_stored_with_their_parent_and_re_derived_answer(store):
    problem = Problem.make(QUESTION, "15", answer_type="number", source="t")
    backend = FakeBackend(script=reanswer_script, logprob_fn=scripted_logprob)
    prompt = render("cot", question=QUESTION)
    original = rat(R, "15", "orig")
    original.correct = True
    pairs = reduce_all(backend, store, [problem], [prompt], [[original]], threshold=0.1)
    pr = pairs[0][0]
    red = pr.reduced
    assert red.method == "reduced" and red.parent_id == "orig"
    assert red.text == "He gives away 5, so 12 - 5 = 7.\nThen he buys 8 more: 7 + 8 = 15.\nThe answer is 15."
    assert red.answer == "15" and red.correct is True
    # the fake's tokenizer counts whitespace words: body 7+4+10+5+10 = 36 -> reduced 10+10 = 20,
    # plus 4 for the re-derived answer line
    assert pr.body_tokens == 36 and pr.reduced_body_tokens == 20 and red.tokens == 24
    assert red.score("reduction") == 3.0
    assert store.get_rationale(red.id).text == red.text
    # rerun: the reduction and the reduced rationale come from the store; no model call at all
    n, lp = backend.samples_generated, backend.logprob_calls
    again = reduce_all(backend, store, [problem], [prompt], [[original]], threshold=0.1)[0][0]
    assert again.reduced.text == red.text and again.reduction.dropped == [0, 1, 3]
    assert again.body_tokens == 36 and again.reduced_body_tokens == 20
    assert backend.samples_generated == n and backend.logprob_calls == lp
    # another threshold is computed again; here it drops the same sentences (removing the filler
    # raised the log-prob by 0.3, which pays for the 0.05 of "Tom has 12 apples"), so the
    # content-addressed reduced rationale is the same record
    other = reduce_all(backend, store, [problem], [prompt], [[original]], threshold=0.01)[0][0]
    assert backend.logprob_calls > lp and other.reduction.dropped == [0, 1, 3] and other.reduced.id == red.id


def test_a_rationale_without_reasoning_is_not_reduced(store):
    problem = Problem.make(QUESTION, "15", answer_type="number", source="t")
    backend = FakeBackend(script=reanswer_script, logprob_fn=scripted_logprob)
    prompt = render("cot", question=QUESTION)
    pair = reduce_all(backend, store, [problem], [prompt], [[rat("The answer is 15.", "15", "bare")]])[0][0]
    assert pair.reduced is None and pair.reduction is None and store.rationales(parent_id="bare") == []


def test_brevity_method_on_fake(tmp_path, store):
    assert "brevity" in METHODS
    problem = Problem.make(QUESTION, "15", answer_type="number", source="t")
    backend = FakeBackend(script=reanswer_script, logprob_fn=scripted_logprob)
    ctx = MethodContext(problems=[problem], backend=backend, store=store, out=tmp_path, samples=2)
    s = method_function("brevity")(ctx)
    write_report(s, ctx.out)
    # R: 5 sentences, 3 dropped; W: "Tom has 12 apples." adds nothing to 17 -> dropped, 1 of 2
    assert s["reduced"] == 2 and s["sentences"] == 7 and s["sentences_dropped"] == 4
    # bodies: R 36 -> 20 words, W 4+9 = 13 -> 9 words
    assert s["body_tokens"] == 49 and s["body_tokens_saved"] == 20
    assert s["body_tokens_saved_pct"] == pytest.approx(100 * 20 / 49, abs=0.01)
    # whole rationales (answer line: 4 words): R 40 -> 24, W 17 -> 13 tokens
    assert s["tokens_original"] == 57 and s["tokens_reduced"] == 37
    assert s["correct_before"] == 1 and s["correct_kept"] == 1 and s["accuracy_kept"] == 1.0
    assert s["accuracy_original"] == 0.5 == s["accuracy_reduced"]
    assert s["strategies"]["reduced vote@2"]["tokens"] == 37 and s["strategies"]["vote@2"]["tokens"] == 57
    assert (tmp_path / "brevity.html").exists()


@pytest.mark.model
def test_brevity_on_the_real_model(small_model, tmp_path, store):
    problem = Problem.make("Tom has 12 apples. He gives 5 to his sister and then buys 8 more. "
                           "How many apples does Tom have now?", "15", answer_type="number", source="t")
    prompt = render("cot", question=problem.question)
    text = ("Let me think about this problem carefully. Tom starts with 12 apples.\n"
            "He gives 5 to his sister: 12 - 5 = 7.\nHe buys 8 more: 7 + 8 = 15.\nThe answer is 15.")
    red = reduce_rationale(small_model, prompt, rat(text, "15"), threshold=0.1)
    assert sorted(red.kept + red.dropped) == list(range(len(red.sentences))) == list(range(4))
    assert red.reduced_logprob >= red.full_logprob - 0.1  # the bound the method promises
    pairs = reduce_all(small_model, store, [problem], [prompt], [[rat(text, "15", "hand")]], answer_max_tokens=24)
    reduced = pairs[0][0].reduced
    assert reduced is not None and reduced.parent_id == "hand" and reduced.method == "reduced"
    assert reduced.text.startswith(red.reduced_body)
    assert pairs[0][0].reduced_body_tokens <= pairs[0][0].body_tokens
    ctx = MethodContext(problems=[problem], backend=small_model, store=store, out=tmp_path, samples=1,
                        max_tokens=96, options={"answer_max_tokens": 24})
    summary = method_function("brevity")(ctx)
    write_report(summary, ctx.out)
    assert summary["body_tokens_saved"] >= 0 and (tmp_path / "brevity.html").exists()
