"""The fake backend's script files: malformed ones are one-line errors that show the format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rationales.backends.base import GenerationRequest
from rationales.backends.fake import FakeBackend, parse_script, validate_script
from rationales.errors import BackendError


def _err(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "script.json"
    path.write_bytes(data)
    with pytest.raises(BackendError) as e:
        FakeBackend(model=str(path))
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "expected a JSON object mapping" in msg
    return msg


@pytest.mark.parametrize("data, says", [
    (b"{not json", "is not valid JSON"),
    (b"", "is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"42", "holds a JSON number"),
    (b"null", "holds a JSON null"),
    (b'"text"', "holds a JSON string"),
    (b"[]", "is an empty list"),
    (b"[1, 2]", "the list[0] = 1, not a string"),
    (b'{"a": 5}', '["a"] = 5, not a non-empty list of strings'),
    (b'{"a": []}', '["a"] = [], not a non-empty list of strings'),
    (b'{"a": ["ok", {"x": 1}]}', '["a"][1] = {"x": 1}, not a string'),
    (b'\xff\xfe{"a": ["x"]}', "is not UTF-8 text"),
    (b'{"a": ["caf\xe9"]}', "is not UTF-8 text"),
    (b'{"a": ["\\ud800"]}', "with a lone surrogate"),
])
def test_malformed_script_files(tmp_path: Path, data: bytes, says: str) -> None:
    assert says in _err(tmp_path, data)


def test_missing_script_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="Cannot read the fake script .*missing.json"):
        FakeBackend(model=str(tmp_path / "missing.json"))


def test_good_script_file_runs(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"apples": ["A1", "A2"], "*": "default text"}), encoding="utf-8")
    b = FakeBackend(model=str(path))
    [r1, r2] = b.generate([GenerationRequest(prompt="how many apples?", seeds=[0, 1]),
                           GenerationRequest(prompt="pears", seeds=[0])])
    assert [c.text for c in r1.completions] == ["A1", "A2"]
    assert [c.text for c in r2.completions] == ["default text"]
    # a BOM is accepted (editors on Windows write one); a list script is used in turn
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(["x", "y"]).encode())
    b = FakeBackend(model=str(path))
    out = b.generate([GenerationRequest(prompt="p", seeds=[0, 1, 2])])[0].completions
    assert [c.text for c in out] == ["x", "y", "x"]


def test_python_scripts_are_checked_too() -> None:
    with pytest.raises(BackendError, match="not a string"):
        FakeBackend(script={"a": [1]})
    with pytest.raises(BackendError, match="is an? int"):
        FakeBackend(script=5)
    assert FakeBackend(script=lambda p, s, i: f"{s}").generate(
        [GenerationRequest(prompt="p", seeds=[4])])[0].completions[0].text == "4"


def test_fake_records_and_checks_grammars() -> None:
    b = FakeBackend(script=["Score: 4"])
    g = 'root ::= "Score: " [1-5]'
    b.generate([GenerationRequest(prompt="p", seeds=[0], grammar=g), GenerationRequest(prompt="q")])
    assert b.grammars == [g, None]
    with pytest.raises(BackendError, match="GBNF grammar is not valid: .*Undefined rule identifier 'score'"):
        b.generate([GenerationRequest(prompt="p", grammar="root ::= score")])
    assert b.samples_generated == 2  # nothing generated for the refused request


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                 max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=2000)
@given(st.one_of(st.binary(max_size=200), _json.map(lambda v: json.dumps(v).encode()),
                 st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_script_parser_property(data: bytes) -> None:
    """Any bytes: a valid script or one BackendError (one line), never another exception; the
    same input gives the same result."""
    results = []
    for _ in range(2):
        try:
            script = parse_script(data, "s.json")
        except BackendError as e:
            assert "\n" not in str(e) and "expected a JSON object mapping" in str(e)
            results.append(("error", str(e)))
            continue
        assert isinstance(script, (dict, list)) and script is not None
        if isinstance(script, dict):
            assert all(isinstance(k, str) and v and all(isinstance(x, str) for x in v) for k, v in script.items())
        else:
            assert script and all(isinstance(x, str) for x in script)
        assert validate_script(script) == script
        results.append(("ok", script))
    assert results[0] == results[1]
