import pytest

from rationales.errors import RationalesError, UnknownNameError
from rationales.prompts import render, template_names


def test_cot_renders_chat_messages_and_completion_text():
    p = render("cot_fewshot", question="What is 3+4?")
    roles = [m["role"] for m in p.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert p.messages[-1]["content"] == "What is 3+4?"
    assert "The answer is 23." in p.messages[2]["content"]
    text = p.completion_text()
    assert text.rstrip().endswith("Question: What is 3+4?\nAnswer:")
    assert text.count("Question:") == 3


def test_examples_and_context_and_stable_ids():
    ex = [{"question": "1+1?", "rationale": "1 + 1 = 2.\nThe answer is 2."}]
    a = render("cot", question="Q", context="Some passage", examples=ex)
    assert a.messages[1] == {"role": "user", "content": "1+1?"}
    assert a.messages[-1]["content"].startswith("Some passage")
    assert a.id == render("cot", question="Q", context="Some passage", examples=ex).id
    assert a.id != render("cot", question="Q2").id


def test_user_template_file_overrides(tmp_path):
    f = tmp_path / "mine.j2"
    f.write_text("<|system|>\nBe brief.\n<|user|>\nQ: {{ question }}\n")
    p = render(str(f), question="x?")
    assert p.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q: x?"}]
    f.write_text("{% if %}")
    with pytest.raises(RationalesError, match="syntax error"):
        render(str(f), question="x")


def test_unknown_template():
    assert "cot" in template_names()
    with pytest.raises(UnknownNameError, match="Did you mean 'cot'"):
        render("cott", question="x")
