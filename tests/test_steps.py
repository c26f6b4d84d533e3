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


DISPLAY = ("First, the total cost:\n\\[\n3 \\times 4 = 12\n\\]\nThen subtract:\n$$\n12 - 5 = 7\n$$\n"
           "```python\nprint(12 - 5)\n```\n---\n**\nThe answer is 7.")


@pytest.mark.parametrize("mode", ["auto", "lines", "numbered", "sentences"])
def test_layout_lines_are_never_steps(mode):
    steps = segment(DISPLAY, mode)
    assert steps
    for s in steps:
        assert DISPLAY[s.span[0]:s.span[1]] == s.text
        assert s.text.strip() not in ("\\[", "\\]", "$$", "```", "```python", "---", "**")
        assert any(ch.isalnum() for ch in s.text)


def test_display_block_belongs_to_the_step_that_introduces_it():
    steps = segment(DISPLAY, "lines")
    assert [s.text for s in steps] == [
        "First, the total cost:\n\\[\n3 \\times 4 = 12\n\\]",
        "Then subtract:\n$$\n12 - 5 = 7\n$$\n```python\nprint(12 - 5)\n```",
        "The answer is 7."]
    # a block at the very start is a step of its own, without its delimiters
    assert [s.text for s in segment("\\[\n2 + 2 = 4\n\\]\nSo 4.")] == ["2 + 2 = 4", "So 4."]
    # an aligned environment, and "\\[" with nothing in it
    text = "We expand:\n\\begin{align*}\n(a+b)^2 &= a^2 + 2ab + b^2\n\\end{align*}\n\\[\n\\]\nDone."
    assert [s.text for s in segment(text)] == [text[:text.index("\\end{align*}") + 12], "Done."]
    assert segment("\\[\n\\]\n$$\n\n```\n```\n---") == []


def test_numbered_markers_inside_a_block_do_not_start_steps():
    text = "1. Write the code:\n```\n2. not a step\n3. nor this\n```\n2. Run it: 3 + 4 = 7\n"
    assert [s.text for s in segment(text)] == ["1. Write the code:\n```\n2. not a step\n3. nor this\n```",
                                              "2. Run it: 3 + 4 = 7"]


def test_unclosed_block_falls_back_to_lines():
    text = "Compute:\n\\[\n3 + 4 = 7\nThe answer is 7."
    assert [s.text for s in segment(text)] == ["Compute:", "3 + 4 = 7", "The answer is 7."]


def test_tree_proposals_drop_layout_lines():
    from rationales.records import Rationale
    from rationales.select.tree import distinct_steps

    def prop(text, i):
        return Rationale(id=f"r{i}", problem_id="p", prompt_id="x", model="m", text=text)

    samples = [prop(t, i) for i, t in enumerate(["\\[", "\\]", "$$", "```", "\\begin{align}", "3 + 4 = 7", "3 + 4 = 7"])]
    assert list(distinct_steps(samples)) == ["3 + 4 = 7"]
