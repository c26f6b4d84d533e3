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


def test_template_files_that_fail_say_what_to_fix(tmp_path):
    from rationales.prompts import TemplateError

    cases = {
        "latin1.j2": ("<|user|>\nCaf\xe9 {{ question }}".encode("latin-1"), "not UTF-8 text"),
        "runtime.j2": (b"<|user|>\n{{ 1 / 0 }} {{ question }}", "failed while rendering.*ZeroDivisionError"),
        "typeerr.j2": (b"<|user|>\n{{ question + 1 }}", "failed while rendering"),
        "escape.j2": (b"{{ ''.__class__.__mro__[1].__subclasses__() }}", "may not do"),
        "syntax.j2": (b"{% for x in %}", "syntax error on line 1"),
        "deep.j2": (b"{{ " + b"(" * 5000 + b"1" + b")" * 5000 + b" }}", "nests too deeply|cannot be compiled|syntax"),
    }
    for name, (content, match) in cases.items():
        f = tmp_path / name
        f.write_bytes(content)
        with pytest.raises(TemplateError, match=match):
            render(str(f), question="x")
    with pytest.raises(TemplateError, match="No such template file"):
        render(str(tmp_path / "missing.j2"), question="x")
    with pytest.raises(TemplateError, match="No template given"):
        render("", question="x")
    bom = tmp_path / "bom.j2"
    bom.write_bytes("\ufeff<|user|>\n{{ question }}".encode("utf-8"))
    assert render(str(bom), question="hi").messages == [{"role": "user", "content": "hi"}]
