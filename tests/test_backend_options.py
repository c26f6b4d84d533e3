"""Backend options are typed fields: unknown keys and bad values are one-line errors, in Python
and from the CLI's ``-o KEY=VALUE``."""

from __future__ import annotations

import inspect
import json

import pytest

from rationales.backends.base import BACKENDS, BackendOptionError, get_backend
from rationales.errors import RationalesError


@pytest.mark.parametrize("name", ["fake", "llamacpp", "openai", "transformers"])
def test_every_builtin_declares_typed_options_and_swallows_nothing(name: str) -> None:
    cls = BACKENDS.get(name)
    assert cls.Options.model_config.get("extra") == "forbid"
    params = inspect.signature(cls.__init__).parameters
    # the model (positional or keyword) and **options, all validated: nothing is silently dropped
    assert [(p.name, p.kind) for p in params.values()][1:] == [
        ("model", inspect.Parameter.POSITIONAL_OR_KEYWORD), ("options", inspect.Parameter.VAR_KEYWORD)]
    with pytest.raises(BackendOptionError) as e:
        cls(no_such_option=1)
    msg = str(e.value)
    assert f"The {name} backend has no option 'no_such_option'." in msg and "\n" not in msg
    assert "Valid options: " in msg and ", ".join(cls.option_names()) in msg


@pytest.mark.parametrize("name, opts, says", [
    ("llamacpp", {"n_ctx": "abc"}, "n_ctx=abc is invalid for the llamacpp backend: Input should be a valid integer"),
    ("llamacpp", {"n_ctx": 4.5}, "n_ctx=4.5 is invalid"),
    ("llamacpp", {"n_parallel": 0}, "greater than or equal to 1"),
    ("llamacpp", {"n_parallel": 10_000}, "less than or equal to 256"),
    ("llamacpp", {"n_ctxx": 1}, "Did you mean 'n_ctx'?"),
    ("fake", {"delay": float("nan")}, "delay=nan is invalid for the fake backend: Input should be a finite number "
                                      "(expected a number)"),
    ("fake", {"delay": "nan"}, "finite number"),
    ("fake", {"delay": -1}, "greater than or equal to 0"),
    ("fake", {"chat": "perhaps"}, "(expected true or false)"),
    ("openai", {"base_url": "http://127.0.0.1:9", "timeout": "inf"}, "timeout=inf is invalid"),
    ("openai", {"base_url": "http://127.0.0.1:9", "max_retries": 1000}, "less than or equal to 20"),
    ("openai", {"base_url": "http://127.0.0.1:9", "grammar_mode": "xml"},
     "(expected one of auto, llamacpp, vllm, vllm-guided, none)"),
    ("openai", {"base_url": "http://127.0.0.1:9", "extra_body": [1]}, "(expected a JSON object)"),
    ("transformers", {"batch_size": "many"}, "batch_size=many is invalid"),
])
def test_bad_values_say_what_is_expected(name: str, opts: dict, says: str) -> None:
    with pytest.raises(BackendOptionError) as e:
        get_backend(name, **opts)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_good_values_are_converted() -> None:
    b = get_backend("fake", delay="0.0", chat="false", fail_after="3")
    assert b.delay == 0.0 and b.chat is False and b.fail_after == 3
    assert b.options.model_dump()["fail_after"] == 3


def _cli(capsys, *args):
    from rationales.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("opt, says", [
    ("n_ctx=abc", "The fake backend has no option 'n_ctx'. Valid options: chat, delay,"),
    ("delay=nan", "delay=nan is invalid for the fake backend: Input should be a finite number"),
    ("model=x", "'model' is not a backend option (-o model=...); give it with --model."),
    ("dealy=1", "Did you mean 'delay'?"),
])
def test_cli_backend_opts_are_one_line_errors(tmp_path, capsys, opt: str, says: str) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"*": ["The answer is 1."]}))
    store = tmp_path / "s.sqlite"
    code, out, err = _cli(capsys, "run", "demo", "--backend", "fake", "--model", script, "-n", "1", "-k", "1",
                          "--store", store, "--out", tmp_path / "out", "-o", opt)
    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert says in " ".join(err.split())
    assert "internal error" not in err.lower() and "Traceback" not in err


def test_option_error_is_a_rationales_error() -> None:
    assert issubclass(BackendOptionError, RationalesError)


def test_supports_grammar_flags() -> None:
    from rationales.backends.fake import FakeBackend
    from rationales.backends.llamacpp import LlamaCppBackend
    from rationales.backends.openai import OpenAIBackend
    from rationales.backends.transformers import TransformersBackend

    assert FakeBackend.supports_grammar and LlamaCppBackend.supports_grammar
    assert TransformersBackend.supports_grammar  # the judges' verdict grammars only (backends/verdict_grammar.py)
    url = "http://127.0.0.1:9/v1"  # nothing listens: /models fails quietly
    assert OpenAIBackend(base_url=url, model="m").supports_grammar
    assert not OpenAIBackend(base_url=url, model="m", grammar_mode="none").supports_grammar


def test_option_parser_property() -> None:
    """Any -o KEY=VALUE set (as the CLI parses it): options or one BackendOptionError line."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from rationales.backends.fake import FakeBackend
    from rationales.backends.llamacpp import LlamaCppBackend
    from rationales.backends.openai import OpenAIBackend

    values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                       st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                            max_size=2))
    keys = st.sampled_from(["n_ctx", "n_parallel", "delay", "timeout", "grammar_mode", "chat", "flash_attn",
                            "max_retries", "extra_body", "nope", ""])

    @settings(max_examples=300, deadline=1000)
    @given(st.sampled_from([FakeBackend, LlamaCppBackend, OpenAIBackend]), st.dictionaries(keys, values, max_size=3))
    def check(cls, raw):
        outcomes = []
        for _ in range(2):
            try:
                outcomes.append(cls.parse_options(**raw).model_dump())
            except BackendOptionError as e:
                assert "\n" not in str(e) and cls.name in str(e)
                outcomes.append(str(e))
        assert outcomes[0] == outcomes[1]

    check()
