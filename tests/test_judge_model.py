"""One real judge call on the small model (SmolLM2-135M, llama.cpp): a verdict comes back that
the parser reads (or, failing that, is forced from log-probabilities), with its rationale."""

from __future__ import annotations

import pytest

from rationales.verify.judge import AbsoluteJudge, JudgeConfig, JudgeItem, PairItem, PairwiseJudge

pytestmark = pytest.mark.model


def test_real_absolute_and_pairwise_judgment(small_model):
    cfg = JudgeConfig(max_tokens=64, retries=0, force=True)
    item = JudgeItem("What is 12 + 7?", "12 + 7 = 19. The answer is 19.", reference="19")
    (j,) = AbsoluteJudge(small_model, "correctness", cfg).judge([item])
    s = j.samples[0]
    assert isinstance(j.value, int) and 1 <= j.value <= 5
    assert s.text.strip() and s.tokens > 0
    assert j.how in ("result", "phrase", "bare", "forced")
    if j.how != "forced":  # read from what the model wrote
        assert str(j.value) in s.text
    (p,) = PairwiseJudge(small_model, "correctness", cfg).judge(
        [PairItem("What is 12 + 7?", "12 + 7 = 19. The answer is 19.", "12 + 7 = 21. The answer is 21.", gold="A")])
    assert [x.order for x in p.samples] == ["AB", "BA"]
    assert all(x.value in ("A", "B") for x in p.samples)  # forced where unreadable, never a guess outside A/B
    assert p.consistent in (True, False)


def test_real_judgment_on_transformers_is_grammar_constrained():
    """The trained judge runs on transformers: the verdict grammar is enforced there too, so the
    untrained SmolLM2 (which on its own writes no '[RESULT]') returns a written, readable verdict."""
    pytest.importorskip("transformers")
    import torch

    from rationales.backends.transformers import TransformersBackend
    from rationales.train.models import load_base_model

    torch.set_num_threads(1)
    model, tok, _ = load_base_model("smollm2-135m")
    be = TransformersBackend(model=model, tokenizer=tok, model_id="smollm2-135m-hf", batch_size=4)
    cfg = JudgeConfig(max_tokens=48, retries=0, force=False)
    (p,) = PairwiseJudge(be, "correctness", cfg).judge(
        [PairItem("What is 12 + 7?", "12 + 7 = 19. The answer is 19.", "12 + 7 = 21. The answer is 21.", gold="A")])
    for s in p.samples:
        assert s.text.startswith("Feedback:") and s.how == "result" and s.value in ("A", "B"), s.text
        assert s.tokens <= 48
