"""The transformers backend on a tiny Llama and a tiny BPE tokenizer, both built in code."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from rationales.backends.base import GenerationRequest  # noqa: E402
from rationales.backends.transformers import TransformersBackend  # noqa: E402

CORPUS = [
    "the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "one two three four five",
    "what is two plus two? the answer is four.", "step 1: add the numbers. step 2: check the sum.",
] * 4


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def tiny_llama(tokenizer, eos_bias: float = 0.0, seed: int = 0):
    """hidden 32, 2 layers; ``eos_bias`` shifts the EOS logit (-1e4: never, +1e4: at once)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         initializer_range=0.5, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    if eos_bias:
        head = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        with torch.no_grad():
            head.weight.copy_(model.lm_head.weight)
            head.bias.zero_()
            head.bias[tokenizer.eos_token_id] = eos_bias
        model.lm_head = head
    return model


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer, eos_bias=-1e4)  # no EOS: every sample runs to max_tokens


@pytest.fixture()
def backend(model, tokenizer):
    return TransformersBackend(model, tokenizer=tokenizer, device="cpu", batch_size=16)


PROMPTS = ["the cat", "what is two plus two? the answer is", "one two three", "a dog sat on the"]


def test_results_have_the_right_shape_and_order(backend):
    calls = []
    reqs = [GenerationRequest(prompt=PROMPTS[1], seeds=[1, 2, 3], max_tokens=5, tag="a"),
            GenerationRequest(messages=[{"role": "user", "content": "the cat"}], seeds=[4], max_tokens=3, tag="b"),
            GenerationRequest(prompt=PROMPTS[0], seeds=[5, 6], max_tokens=5, tag="c")]
    results = backend.generate(reqs, on_sample=lambda r_i, c: calls.append((r_i, c.index)))
    assert [r.request.tag for r in results] == ["a", "b", "c"]
    assert [[c.index for c in r.completions] for r in results] == [[0, 1, 2], [0], [0, 1]]
    assert [[c.seed for c in r.completions] for r in results] == [[1, 2, 3], [4], [5, 6]]
    assert sorted(calls) == [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0), (2, 1)]
    assert results[0].prompt_tokens == len(backend.tokenizer(PROMPTS[1])["input_ids"])
    assert all(c.prompt_tokens == r.prompt_tokens for r in results for c in r.completions)
    for r in results:
        for c in r.completions:
            assert c.tokens == r.request.max_tokens and c.finish_reason == "length"


def test_same_seed_same_text_across_batchings(model, tokenizer):
    req = [GenerationRequest(prompt=p, seeds=[7, 8, 7], temperature=1.0, max_tokens=8) for p in PROMPTS]
    big = TransformersBackend(model, tokenizer=tokenizer, device="cpu", batch_size=16).generate(req)
    again = TransformersBackend(model, tokenizer=tokenizer, device="cpu", batch_size=16).generate(req)
    small = TransformersBackend(model, tokenizer=tokenizer, device="cpu", batch_size=1).generate(req)
    texts = [[c.text for c in r.completions] for r in big]
    assert texts == [[c.text for c in r.completions] for r in again]
    assert texts == [[c.text for c in r.completions] for r in small]
    assert all(t[0] == t[2] for t in texts)  # seed 7 twice in one request


def test_distinct_seeds_differ(backend):
    req = GenerationRequest(prompt="the cat", seeds=[1, 2, 3, 4], temperature=1.0, max_tokens=8)
    [r] = backend.generate([req])
    assert len({c.text for c in r.completions}) >= 2


def test_max_tokens_gives_length_and_eos_gives_stop(tokenizer, backend):
    [r] = backend.generate([GenerationRequest(prompt="the cat", seeds=[1, 2], max_tokens=4)])
    assert [(c.tokens, c.finish_reason) for c in r.completions] == [(4, "length"), (4, "length")]
    eager = TransformersBackend(tiny_llama(tokenizer, eos_bias=1e4), tokenizer=tokenizer, device="cpu")
    [r] = eager.generate([GenerationRequest(prompt="the cat", seeds=[1], max_tokens=4)])
    assert [(c.text, c.tokens, c.finish_reason) for c in r.completions] == [("", 0, "stop")]


def test_stop_strings_trim(backend):
    greedy = GenerationRequest(prompt="the dog", seeds=[0], temperature=0.0, max_tokens=12)
    text = backend.generate([greedy])[0].completions[0].text
    stop = text[4:6]
    assert stop and len(text) > 6
    [c] = backend.generate([GenerationRequest(prompt="the dog", seeds=[0], temperature=0.0, max_tokens=12,
                                              stop=[stop])])[0].completions
    assert c.text == text[: text.index(stop)] and c.finish_reason == "stop" and c.tokens < 12


def test_tiny_top_p_is_greedy(backend):
    greedy = backend.generate([GenerationRequest(prompt="one two", seeds=[0], temperature=0.0, max_tokens=6)])
    nucleus = backend.generate([GenerationRequest(prompt="one two", seeds=[3], temperature=1.0, top_p=1e-6,
                                                  max_tokens=6)])
    assert greedy[0].completions[0].text == nucleus[0].completions[0].text


def test_greedy_batched_equals_unbatched(model, tokenizer):
    reqs = [GenerationRequest(prompt=p, seeds=[0, 1], temperature=0.0, max_tokens=10) for p in PROMPTS]
    batched = TransformersBackend(model, tokenizer=tokenizer, device="cpu", batch_size=16).generate(reqs)
    one = TransformersBackend(model, tokenizer=tokenizer, device="cpu", batch_size=1)
    for req, res in zip(reqs, batched):
        alone = one.generate([GenerationRequest(prompt=req.prompt, seeds=[0], temperature=0.0, max_tokens=10)])
        assert [c.text for c in res.completions] == [alone[0].completions[0].text] * 2
        # and the same as the model's own greedy decoding
        ids = tokenizer(req.prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=0)
        assert res.completions[0].text == tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_model_generation_config_does_not_leak_in(tokenizer):
    reqs = [GenerationRequest(prompt=p, seeds=[2], temperature=t, max_tokens=10)
            for p in PROMPTS for t in (0.0, 0.8)]
    plain = TransformersBackend(tiny_llama(tokenizer, eos_bias=-1e4), tokenizer=tokenizer, device="cpu")
    odd = tiny_llama(tokenizer, eos_bias=-1e4)
    odd.generation_config.repetition_penalty = 50.0
    odd.generation_config.no_repeat_ngram_size = 1
    tuned = TransformersBackend(odd, tokenizer=tokenizer, device="cpu")
    assert [r.completions[0].text for r in plain.generate(reqs)] == \
        [r.completions[0].text for r in tuned.generate(reqs)]


def _manual_logprob(model, tokenizer, prompt: str, continuation: str) -> float:
    head = tokenizer(prompt)["input_ids"]
    tail = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([head + tail])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    return float(sum(logp[len(head) + k - 1, t] for k, t in enumerate(tail)))


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("batch_size", [1, 16])
def test_logprobs_match_a_manual_forward_pass(model, tokenizer, fast, batch_size):
    b = TransformersBackend(model, tokenizer=tokenizer, device="cpu", batch_size=batch_size)
    b._fast_scoring = fast and b._fast_scoring
    prompt = "what is two plus two? the answer is"
    conts = [" four.", " the cat sat on the mat", " two", ""]
    scores = b.logprobs(prompt, conts)
    assert [s.text for s in scores] == conts
    for s, c in zip(scores[:3], conts):
        assert s.tokens == len(tokenizer(c, add_special_tokens=False)["input_ids"])
        assert s.logprob == pytest.approx(_manual_logprob(model, tokenizer, prompt, c), abs=1e-4)
        assert s.logprob == pytest.approx(sum(s.token_logprobs))
    assert scores[3].logprob == 0.0 and scores[3].tokens == 0


def test_logprobs_of_messages_use_render(backend, model, tokenizer):
    messages = [{"role": "user", "content": "the cat"}]
    [s] = backend.logprobs(messages, ["the dog"])
    rendered = backend.render(messages)
    assert rendered.startswith("<|im_start|>user\n")  # no chat template: ChatML
    assert s.logprob == pytest.approx(_manual_logprob(model, tokenizer, rendered, "the dog"), abs=1e-4)


def test_chat_template_and_model_id(model, tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}" \
                        "{% if add_generation_prompt %}[assistant] {% endif %}"
    b = TransformersBackend(model, tokenizer=tok, device="cpu")
    assert b.chat is True
    assert b.render([{"role": "user", "content": "hi"}]) == "[user] hi\n[assistant] "
    same = TransformersBackend(model, tokenizer=tokenizer, device="cpu")
    assert same.chat is False
    assert b.model == same.model and b.model.startswith("LlamaForCausalLM-")
    other = TransformersBackend(tiny_llama(tokenizer, seed=1), tokenizer=tokenizer, device="cpu")
    assert other.model != b.model
    assert TransformersBackend(model, tokenizer=tokenizer, model_id="tiny").describe()["model"] == "tiny"


def test_missing_local_model_is_a_backend_error(tmp_path, monkeypatch):
    from rationales.errors import BackendError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError, match="Could not load Hugging Face model"):
        TransformersBackend(str(tmp_path / "nowhere"))


def test_load_from_a_local_directory(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_llama(tokenizer)  # a plain Llama (the fixture's biased head would not round-trip)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = TransformersBackend(str(tmp_path), device="cpu")
    assert loaded.model == str(tmp_path)
    assert next(loaded.hf_model.parameters()).dtype == torch.float32
    req = [GenerationRequest(prompt="the cat", seeds=[3], temperature=1.0, max_tokens=6)]
    in_memory = TransformersBackend(model, tokenizer=tokenizer, device="cpu")
    assert loaded.generate(req)[0].completions[0].text == in_memory.generate(req)[0].completions[0].text


def test_empty_prompt_starts_from_bos(backend, tokenizer):
    [r] = backend.generate([GenerationRequest(prompt="", seeds=[1], max_tokens=3)])
    assert r.prompt_tokens == 1 and r.completions[0].tokens == 3


@pytest.mark.parametrize("fast", [True, False])
def test_one_token_continuations_share_one_forward_pass(model, tokenizer, fast):
    b = TransformersBackend(model, tokenizer=tokenizer, device="cpu")
    b._fast_scoring = fast and b._fast_scoring
    prompt = "what is two plus two? the answer is"
    conts = [" four", " two", " the cat"]
    assert all(len(tokenizer(c, add_special_tokens=False)["input_ids"]) == 1 for c in conts[:2])
    calls = []
    hook = b.hf_model.register_forward_hook(lambda mod, args, kw_out=None: calls.append(1))
    try:
        scores = b.logprobs(prompt, conts)
    finally:
        hook.remove()
    for s, c in zip(scores, conts):
        assert s.logprob == pytest.approx(_manual_logprob(model, tokenizer, prompt, c), abs=1e-4)
        assert s.tokens == len(tokenizer(c, add_special_tokens=False)["input_ids"])
    assert len(calls) == 2  # " four" and " two" from one pass, " the cat" its own
