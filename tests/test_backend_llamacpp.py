"""The llamacpp backend on the real SmolLM2-135M model (shared session fixture ``small_model``)."""

from __future__ import annotations

import math

import pytest

from rationales.backends.base import GenerationRequest
from rationales.errors import BackendError

pytestmark = pytest.mark.model

MATH = [{"role": "user", "content": "What is 12*7? Think step by step."}]
HAIKU = [{"role": "user", "content": "Write a haiku about rain."}]
JAPANESE = [{"role": "user", "content": "Write the Japanese word for 'thank you' in Japanese script."}]


def _greedy(backend, messages, max_tokens=24, **kw):
    req = GenerationRequest(messages=messages, seeds=[0], temperature=0.0, max_tokens=max_tokens, **kw)
    return backend.generate([req])[0].completions[0]


def test_render_uses_the_gguf_chat_template(small_model):
    text = small_model.render(MATH)
    assert small_model.chat
    # SmolLM2's own template adds its default system prompt; plain ChatML would not
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nWhat is 12*7? Think step by step.<|im_end|>\n<|im_start|>assistant\n")
    assert not small_model.render(MATH, add_generation_prompt=False).endswith("assistant\n")


@pytest.mark.parametrize("messages", [MATH, JAPANESE], ids=["ascii", "multibyte"])
def test_greedy_matches_create_completion(small_model, messages):
    prompt = small_model.render(messages)
    small_model.llm.reset()
    ref = small_model.llm.create_completion(prompt, max_tokens=24, temperature=0.0)
    # create_completion runs past max_tokens to finish a multi-byte character; our backend stops
    # at max_tokens exactly (and drops the incomplete bytes), so ask for the tokens it produced
    ours = _greedy(small_model, messages, max_tokens=ref["usage"]["completion_tokens"])
    assert ours.text == ref["choices"][0]["text"]
    assert ours.tokens == ref["usage"]["completion_tokens"]
    assert ours.finish_reason == ref["choices"][0]["finish_reason"]
    assert ours.prompt_tokens == ref["usage"]["prompt_tokens"]
    assert "\ufffd" not in ours.text


def test_greedy_samples_of_one_prompt_are_identical(small_model):
    """Followers get the leader's KV copy and re-decode only the last prompt token."""
    req = GenerationRequest(messages=MATH, seeds=[0, 1, 2, 3], temperature=0.0, max_tokens=16)
    texts = [c.text for c in small_model.generate([req])[0].completions]
    assert len(set(texts)) == 1 and texts[0] == _greedy(small_model, MATH, max_tokens=16).text


def test_seeds_reproduce_and_differ(small_model):
    req = GenerationRequest(messages=HAIKU, seeds=[11, 12, 13], temperature=1.0, max_tokens=20)
    first = [c.text for c in small_model.generate([req])[0].completions]
    second = [c.text for c in small_model.generate([req])[0].completions]
    assert first == second
    assert len(set(first)) == 3


def test_many_requests_order_indices_callbacks_and_schedule(small_model):
    reqs = [GenerationRequest(messages=MATH, seeds=[1, 2, 3], temperature=0.8, max_tokens=12),
            GenerationRequest(messages=HAIKU, seeds=[4], temperature=0.8, max_tokens=12),
            GenerationRequest(messages=JAPANESE, seeds=[5, 6], temperature=0.8, max_tokens=12)]
    calls: list[tuple[int, int, int]] = []
    res = small_model.generate(reqs, on_sample=lambda r, c: calls.append((r, c.index, c.seed)))
    assert [r.request for r in res] == reqs
    for req, r in zip(reqs, res):
        assert [c.index for c in r.completions] == list(range(req.n))
        assert [c.seed for c in r.completions] == req.seeds
        assert r.prompt_tokens == len(small_model.tokenize(small_model.render(req.messages)))
        assert all(1 <= c.tokens <= 12 for c in r.completions)
    assert sorted(calls) == [(r, i, s) for r, req in enumerate(reqs) for i, s in enumerate(req.seeds)]
    # two slots for six samples: refills, KV copies and compaction give the same samples
    old = small_model.n_parallel
    small_model.n_parallel = 2
    try:
        again = small_model.generate(reqs)
    finally:
        small_model.n_parallel = old
    assert [[c.text for c in r.completions] for r in again] == [[c.text for c in r.completions] for r in res]


def test_on_sample_may_score_but_not_generate(small_model):
    """logprobs() inside on_sample works (MC / PRM scoring as samples land); a nested generate()
    would clobber the running batch's KV cells, so it is refused with a clear error."""
    scores, errors = [], []

    def on_sample(r, comp):
        scores.append(small_model.logprobs("1, 2, 3,", [" 4"])[0].logprob)
        try:
            small_model.generate([GenerationRequest(prompt="a", seeds=[0], max_tokens=2)])
        except BackendError as e:
            errors.append(str(e))

    res = small_model.generate([GenerationRequest(prompt="Count: 1, 2,", seeds=[0, 1], temperature=0.7,
                                                  max_tokens=6)], on_sample=on_sample)
    assert len(res[0].completions) == 2 and all(c.tokens == 6 for c in res[0].completions)
    assert len(scores) == 2 and scores[0] == pytest.approx(scores[1]) and scores[0] < 0
    assert len(errors) == 2 and "inside its own on_sample callback" in errors[0]
    # the backend is usable afterwards
    assert len(small_model.generate([GenerationRequest(prompt="a", seeds=[0], max_tokens=2)])[0].completions) == 1


def test_stop_strings_trim_the_text(small_model):
    full = _greedy(small_model, MATH, max_tokens=24).text
    stop = "multi-step"
    assert stop in full
    cut = _greedy(small_model, MATH, max_tokens=24, stop=["never-there", stop])
    assert cut.text == full[:full.index(stop)]
    assert cut.finish_reason == "stop"


def test_max_tokens_gives_length(small_model):
    c = _greedy(small_model, MATH, max_tokens=5)
    assert c.tokens == 5 and c.finish_reason == "length"
    assert _greedy(small_model, MATH, max_tokens=24).text.startswith(c.text) and c.text


def test_oversized_prompt_raises(small_model):
    big = "hello " * 5000
    with pytest.raises(BackendError, match="n_ctx"):
        small_model.generate([GenerationRequest(prompt=big, seeds=[0], max_tokens=4)])
    with pytest.raises(BackendError, match="n_ctx"):
        small_model.logprobs(big, [" world"])
    assert _greedy(small_model, MATH, max_tokens=3).tokens == 3  # still usable


def test_logprobs_rank_likely_continuations_higher(small_model):
    prompt = "The capital of France is"
    good, bad, empty = small_model.logprobs(prompt, [" Paris", " banana smoothie", ""])
    assert good.logprob > bad.logprob
    assert good.tokens >= 1 and bad.tokens >= 2
    assert math.isclose(good.logprob, sum(good.token_logprobs))
    assert all(lp <= 0 for lp in good.token_logprobs + bad.token_logprobs)
    assert empty.tokens == 0 and empty.logprob == 0.0
    msgs = small_model.logprobs(MATH, ["12*7 = 84", "the moon is cheese"])
    assert msgs[0].logprob > msgs[1].logprob


def test_logprobs_match_a_plain_llama_run(small_model):
    """Independent reference: Llama(logits_all=True) evaluates prompt + continuation in one go."""
    import numpy as np
    from llama_cpp import Llama

    prompt = "Question: What is 3 + 4?\nAnswer:"
    conts = [" 3 + 4 = 7, so the answer is 7.", " The answer is 12."]
    ours = small_model.logprobs(prompt, conts)
    ref = Llama(model_path=str(small_model.model_path), n_ctx=256, logits_all=True, n_threads=2, verbose=False,
                flash_attn=False)  # the scoring context runs without flash attention (f32 accumulation)
    try:
        base = small_model.tokenize(prompt)
        for cont, score in zip(conts, ours):
            full = small_model.tokenize(prompt + cont)
            start = next(i for i, (a, b) in enumerate(zip(base + [-1], full)) if a != b)
            ref.reset()
            ref.eval(full)
            logits = np.asarray(ref.scores[: len(full)], dtype=np.float64)
            lse = logits.max(axis=1) + np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1))
            expected = [logits[p - 1, full[p]] - lse[p - 1] for p in range(start, len(full))]
            assert score.tokens == len(expected)
            assert np.allclose(score.token_logprobs, expected, atol=2e-3)
    finally:
        ref.close()


def test_close_is_idempotent():
    from rationales.backends import get_backend

    backend = get_backend("llamacpp", model="smollm2-135m", n_ctx=512)
    assert backend.generate([GenerationRequest(prompt="Hi", seeds=[0], max_tokens=2)])[0].completions
    backend.close()
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.generate([GenerationRequest(prompt="Hi", seeds=[0], max_tokens=2)])
