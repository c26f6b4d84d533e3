"""GBNF grammars: checking them (llama.cpp's parser, guarded), and constrained output on the real
small model (llamacpp in process, and llama-cpp-python's server through the openai backend)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rationales.backends.base import GenerationRequest
from rationales.backends.grammar import MAX_GRAMMAR_DEPTH, check_grammar, choice_grammar
from rationales.errors import BackendError

SCORE = 'root ::= "Score: " [1-5]'
JUDGE = [{"role": "user", "content": "Rate this answer from 1 to 5: 'The capital of France is Paris.' "
                                     "Reply with 'Score: N'."}]


def test_valid_grammars_pass() -> None:
    assert check_grammar(SCORE) == SCORE
    g = 'root ::= verdict "\\n"\nverdict ::= ("yes" | "no")  # a comment with ( parens\nws ::= [ \\t]*'
    assert check_grammar(g) == g


@pytest.mark.parametrize("text, says", [
    ("root ::= score", "Undefined rule identifier 'score'"),
    ('root ::= "abc', "unexpected end of input"),
    ('verdict ::= "x"', "does not contain a 'root' symbol"),
    ("root ::= root \"a\"", "left recursion"),
    ("", "The grammar is empty"),
    ("   \n", "The grammar is empty"),
    ('root ::= "a\x00"', "NUL character"),
    ('root ::= "\ud800"', "lone surrogate"),
    ("root ::= " + "(" * 20_000 + '"a"' + ")" * 20_000, "nested 20000 deep"),  # deep nesting overflows llama.cpp's parser
    ("root ::= " + '"a" ' * 20_000, "characters (at most"),
])
def test_bad_grammars_are_one_line_errors(text: str, says: str) -> None:
    from llama_cpp._logger import logger, set_verbose

    level = logger.level
    set_verbose(False)  # as Llama(verbose=False) leaves it: llama.cpp's warnings are dropped by default
    try:
        with pytest.raises(BackendError) as e:
            check_grammar(text)
    finally:
        logger.setLevel(level)
    msg = str(e.value)
    assert says in msg and "\n" not in msg
    with pytest.raises(BackendError) as e:
        check_grammar(text)
    msg = str(e.value)
    assert says in msg and "\n" not in msg


def test_not_text_is_refused() -> None:
    with pytest.raises(BackendError, match="must be GBNF text"):
        check_grammar(b"root ::= x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grammar must be GBNF text"):
        GenerationRequest(prompt="x", grammar=5)  # type: ignore[arg-type]


def test_choice_grammar_escapes_and_parses() -> None:
    g = choice_grammar(['A', 'B "quoted"', "back\\slash", "two\nlines"], prefix="Verdict: ")
    assert check_grammar(g) == g
    with pytest.raises(ValueError):
        choice_grammar([])


@settings(max_examples=300, deadline=3000)
@given(st.text(alphabet='root::= "ab|()[]*+?{}0-9\\\n#x^-.', max_size=120))
def test_grammar_check_property(text: str) -> None:
    """Grammar-shaped noise: text back, or one BackendError line; the same twice; no crash."""
    verdicts = []
    for _ in range(2):
        try:
            verdicts.append(("ok", check_grammar(text)))
        except BackendError as e:
            assert "\n" not in str(e)
            verdicts.append(("error", str(e)))
    assert verdicts[0] == verdicts[1]


def test_depth_limit_counts_only_real_groups() -> None:
    quoted = "root ::= " + '"' + "(" * (MAX_GRAMMAR_DEPTH + 50) + '"'
    assert check_grammar(quoted) == quoted  # parentheses inside a literal are text


# ------------------------------------------------------------ real model

_SCORE_RE = re.compile(r"Score: [1-5]")


@pytest.mark.model
def test_llamacpp_grammar_forces_a_parseable_verdict(small_model) -> None:
    reqs = [GenerationRequest(messages=JUDGE, seeds=list(range(6)), temperature=1.0, max_tokens=16, grammar=SCORE),
            GenerationRequest(messages=JUDGE, seeds=[0], temperature=0.0, max_tokens=16, grammar=SCORE),
            GenerationRequest(messages=JUDGE, seeds=[1, 2], temperature=0.8, top_p=0.9, max_tokens=16,
                              grammar=SCORE)]
    results = small_model.generate(reqs)
    texts = [c.text for r in results for c in r.completions]
    assert len(texts) == 9
    assert all(_SCORE_RE.fullmatch(t) for t in texts), texts
    assert all(c.finish_reason == "stop" for r in results for c in r.completions)  # ended at the grammar's end
    # unconstrained, the same model does not answer in that form
    free = small_model.generate([GenerationRequest(messages=JUDGE, seeds=list(range(6)), temperature=1.0,
                                                   max_tokens=16)])[0].completions
    assert not all(_SCORE_RE.fullmatch(c.text) for c in free)
    # reruns repeat, and a grammar request does not change its batch neighbours' samples
    again = small_model.generate([reqs[0], GenerationRequest(messages=JUDGE, seeds=list(range(6)), temperature=1.0,
                                                             max_tokens=16)])
    assert [c.text for c in again[0].completions] == [c.text for c in results[0].completions]
    assert [c.text for c in again[1].completions] == [c.text for c in free]


@pytest.mark.model
def test_llamacpp_grammar_with_choices_and_stop(small_model) -> None:
    g = choice_grammar(["correct", "incorrect"], prefix="Verdict: ")
    [res] = small_model.generate([GenerationRequest(prompt="Is 2 + 2 = 4? ", seeds=[0, 1, 2, 3], temperature=1.0,
                                                    max_tokens=32, grammar=g)])
    # (at temperature 1 the grammar may spell a word in several short tokens: give it room)
    assert {c.text for c in res.completions} <= {"Verdict: correct", "Verdict: incorrect"}
    assert all(c.finish_reason == "stop" for c in res.completions)
    with pytest.raises(BackendError, match="GBNF grammar is not valid"):
        small_model.generate([GenerationRequest(prompt="x", grammar="root ::= nothing")])
    # the backend still works after a refused request
    [ok] = small_model.generate([GenerationRequest(prompt="1, 2, 3,", seeds=[0], temperature=0.0, max_tokens=3)])
    assert ok.completions[0].tokens > 0
