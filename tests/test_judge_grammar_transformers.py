"""Judge verdict grammars on the transformers backend (backends/verdict_grammar.py): the
grammar family is recognised exactly, and generation under it always ends in a readable
verdict - greedy, sampled, and when the token budget runs out - on a tiny model made in code
whose untrained output is noise."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("transformers")

from rationales.backends.base import GenerationRequest  # noqa: E402
from rationales.backends.verdict_grammar import parse_verdict_grammar  # noqa: E402
from rationales.errors import BackendError  # noqa: E402
from rationales.verify.judge import (  # noqa: E402
    JudgeConfig, PairItem, PairwiseJudge, RankingJudge, RankItem, grammar_for, parse_choice, parse_score)


def test_parse_verdict_grammar_recognises_the_judge_family_only():
    assert parse_verdict_grammar(grammar_for("pairwise")).options == ("A", "B")
    g = parse_verdict_grammar(grammar_for("absolute", low=1, high=10))
    assert g.options == tuple(str(i) for i in range(1, 11)) and not g.verdict_only
    assert parse_verdict_grammar(grammar_for("ranking", k=3)).options[0] == "A > B > C"
    assert parse_verdict_grammar(grammar_for("pairwise", verdict_only=True)).verdict_only
    for other in ('root ::= "yes" | "no"\n', 'root ::= [0-9]+\n', "",
                  grammar_for("pairwise").replace("[^\\x5B\\x00]+", "[a-z]+")):
        assert parse_verdict_grammar(other) is None


@pytest.fixture(scope="module")
def tiny_backend():
    import torch

    from rationales.backends.transformers import TransformersBackend
    from rationales.train.models import tiny_model

    torch.set_num_threads(1)
    model, tok = tiny_model(seed=3)
    return TransformersBackend(model=model, tokenizer=tok, model_id="tiny-judge", batch_size=4)


FORMAT = re.compile(r"\AFeedback:[^\[]+\[RESULT\] (?P<v>.+)\Z", re.DOTALL)


def test_generation_under_the_grammar_always_ends_in_a_verdict(tiny_backend):
    g = grammar_for("pairwise")
    reqs = [GenerationRequest(prompt=f"Which is better, {k}?", seeds=[k, k + 1], temperature=t, max_tokens=m,
                              grammar=g)
            for k, (t, m) in enumerate([(0.0, 60), (1.0, 60), (1.5, 24), (0.0, 20)])]
    out = tiny_backend.generate(reqs)
    texts = [c.text for r in out for c in r.completions]
    assert len(texts) == 8
    for text, c in zip(texts, [c for r in out for c in r.completions]):
        m = FORMAT.match(text)
        assert m and m.group("v") in ("A", "B"), text
        assert c.tokens <= 60 and parse_choice(text).value == m.group("v")
    # budget forcing: a 20-token budget still holds prefix, feedback and verdict
    assert all(c.tokens <= 20 for c in out[3].completions)


def test_scores_and_rankings_under_the_grammar(tiny_backend):
    g = grammar_for("absolute", low=1, high=10)
    (res,) = tiny_backend.generate([GenerationRequest(prompt="Score it.", seeds=[0, 1, 2], temperature=1.2,
                                                      max_tokens=40, grammar=g)])
    for c in res.completions:
        v = parse_score(c.text, 1, 10)
        assert v.how == "result" and 1 <= v.value <= 10, c.text
    (res,) = tiny_backend.generate([GenerationRequest(prompt="Rank.", seeds=[5], temperature=1.0, max_tokens=40,
                                                      grammar=grammar_for("ranking", k=3, verdict_only=True))])
    assert re.fullmatch(r" [ABC] > [ABC] > [ABC]", res.completions[0].text)


def test_other_grammars_are_refused_in_one_line(tiny_backend):
    with pytest.raises(BackendError) as e:
        tiny_backend.generate([GenerationRequest(prompt="x", seeds=[0], max_tokens=8, grammar='root ::= "yes"\n')])
    assert "\n" not in str(e.value) and "llamacpp" in str(e.value)


def test_judges_on_transformers_are_constrained_and_always_readable(tiny_backend):
    items = [PairItem(f"What is {k}+1?", f"{k + 1}", f"{k + 2}", gold="A") for k in range(3)]
    pj = PairwiseJudge(tiny_backend, "correctness", JudgeConfig(max_tokens=48, retries=0, force=False))
    js = pj.judge(items)
    assert pj.engine.constrained
    assert all(s.how == "result" and s.value in ("A", "B") for j in js for s in j.samples)
    rj = RankingJudge(tiny_backend, "correctness", JudgeConfig(max_tokens=64, retries=0, force=False))
    (r,) = rj.judge([RankItem("Best?", ["1", "2", "3"])])
    assert sorted(r.value) == [0, 1, 2]
    # without the grammar the untrained tiny model writes no verdict, and it is counted, not guessed
    free = PairwiseJudge(tiny_backend, "correctness", JudgeConfig(max_tokens=24, retries=0, force=False,
                                                                  grammar=False)).judge(items[:1])
    assert free[0].value is None and free[0].how == "unparsed"


from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rationales.verify.judge import gbnf  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6), st.booleans())
@example(["A | B", 'say "4"', "a\\b\nc"], False)
def test_any_verdict_grammar_the_judges_write_parses_back_to_its_options(options, verdict_only):
    """Options with quotes, backslashes, newlines or ' | ' in them round-trip exactly."""
    g = parse_verdict_grammar(gbnf(options, verdict_only))
    assert g is not None and g.options == tuple(options) and g.verdict_only == verdict_only


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parse_verdict_grammar_never_raises_on_arbitrary_text(text):
    g = parse_verdict_grammar(text)
    assert g is None or (g.options and all(isinstance(o, str) and o for o in g.options))
