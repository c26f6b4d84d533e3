import pytest

from rationales.errors import UnknownNameError
from rationales.steps import segment

TEXT = "Step 1: 5 * 6 = 30 pencils.\nStep 2: 30 - 7 = 23.\nThe answer is 23."


def test_numbered_steps_keep_spans():
    steps = segment(TEXT)
    assert [s.text for s in steps] == ["Step 1: 5 * 6 = 30 pencils.", "Step 2: 30 - 7 = 23.\nThe answer is 23."]
    for s in steps:
        assert TEXT[s.span[0]:s.span[1]] == s.text


def test_lines_and_sentences_and_delimiter():
    assert [s.text for s in segment(TEXT, "lines")] == TEXT.split("\n")
    text = "First, 2.5 plus 1 is 3.5. Then we double it! So 7 is it."
    assert [s.text for s in segment(text, "sentences")] == ["First, 2.5 plus 1 is 3.5.", "Then we double it!", "So 7 is it."]
    d = segment("a <step> b<step>c", "delimiter", delimiter="<step>")
    assert [s.text for s in d] == ["a", "b", "c"]
    assert all("a <step> b<step>c"[s.span[0]:s.span[1]] == s.text for s in d)


def test_numbered_list_markers():
    text = "We compute.\n1. 2 + 2 = 4\n2) 4 * 3 = 12\n3. Done: 12"
    steps = segment(text, "numbered")
    assert [s.text for s in steps] == ["We compute.", "1. 2 + 2 = 4", "2) 4 * 3 = 12", "3. Done: 12"]


def test_blank_text_and_unknown_mode():
    assert segment("   \n\n ") == []
    with pytest.raises(UnknownNameError, match="Did you mean 'lines'"):
        segment("x", "line")
