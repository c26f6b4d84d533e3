"""Rationale formats with decomposed answering (formats method)."""

from __future__ import annotations

import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.jobs.methods import METHODS, MethodContext, method_function
from rationales.jobs.methods.formats import FORMATS, format_specs, parse_formats, run_formats
from rationales.prompts import render
from rationales.records import Problem
from rationales.tasks import load_task
from rationales.report import write_report

ANSWER_SYSTEM = "You answer a question using only the rationale"
MARKERS = {"markup_and_mask": "Markup-and-Mask format", "annotated_report": "Annotated Report format",
           "procedural": "Procedural format", "subquestions": "Subquestions format",
           "decision_tree": "Decision Tree format"}


def fmt_of(prompt: str) -> str:
    return next(name for name, marker in MARKERS.items() if marker in prompt)


def test_five_formats_with_two_demonstrations_each():
    assert list(FORMATS) == ["markup_and_mask", "annotated_report", "procedural", "subquestions", "decision_tree"]
    for name in FORMATS:
        p = render(f"format_{name}", question="How many?", decomposed=True)
        roles = [m["role"] for m in p.messages]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
        assert MARKERS[name] in p.messages[0]["content"]
        assert p.messages[-1]["content"] == "How many?"
        assert not any("The answer is" in m["content"] for m in p.messages[2::2])  # rationale only
        full = render(f"format_{name}", question="How many?", decomposed=False)
        assert [m["content"].splitlines()[-1] for m in full.messages[2:5:2]] == ["The answer is 1987.",
                                                                               "The answer is 8."]
    with_ctx = render("format_procedural", question="Who?", context="Some passage.")
    assert with_ctx.messages[-1]["content"] == "Context: Some passage.\n\nQuestion: Who?"


def test_unknown_format_suggests_the_closest_name():
    with pytest.raises(RationalesError, match="Did you mean 'procedural'"):
        parse_formats("procedual")
    assert parse_formats("subquestions, decision_tree") == ["subquestions", "decision_tree"]
    assert parse_formats(None) == list(FORMATS)


def test_decomposed_answer_call_sees_only_question_and_rationale(store):
    p = Problem.make("How many apples does Tom have now?", "15", source="t",
                     context="CONTEXT-MARK Tom had 12 apples, gave away 5 and bought 8.")

    def script(prompt, seed, index):
        if ANSWER_SYSTEM in prompt:
            return "The answer is 15." if "RATIONALE-MARK" in prompt else "The answer is 0."
        return "1. RATIONALE-MARK 12 - 5 = 7\n2. 7 + 8 = 15 apples"

    be = FakeBackend(script=script)
    out = run_formats([p], be, store, formats=["procedural"])
    r = out["procedural"][0]
    answer_prompts = [pr for pr in be.prompts if ANSWER_SYSTEM in pr]
    assert len(answer_prompts) == 1
    ap = answer_prompts[0]
    assert "How many apples does Tom have now?" in ap and "1. RATIONALE-MARK 12 - 5 = 7\n2. 7 + 8 = 15 apples" in ap
    assert "CONTEXT-MARK" not in ap  # no context
    assert "Smiths" not in ap and "Procedural" not in ap  # no demonstrations, no format instructions
    rationale_prompt = [pr for pr in be.prompts if ANSWER_SYSTEM not in pr][0]
    assert "CONTEXT-MARK" in rationale_prompt  # the rationale stage does see the context
    # the rationale record carries the decomposed answer and links to the answer record
    assert r.answer == "15" and r.correct is True and r.outcome == "ok"
    assert r.meta["rationale_answer"] is None and r.meta["format"] == "procedural"
    ans = store.get_rationale(r.meta["answer_id"])
    assert ans.parent_id == r.id and ans.method == "answer_from_rationale" and ans.text == "The answer is 15."
    assert store.get_rationale(r.id).answer == "15"


def test_accuracy_per_format_hand_checked(tmp_path, store):
    problems = load_task("demo", limit=4)
    right = {"procedural": 3, "subquestions": 1, "decision_tree": 0}  # first k problems right

    def script(prompt, seed, index):
        if ANSWER_SYSTEM in prompt:  # read the result off the rationale
            return "The answer is " + prompt.split("RESULT=")[1].split()[0]
        fmt = fmt_of(prompt)
        i = next(i for i, p in enumerate(problems) if prompt.rstrip().split("<|im_start|>user\n")[-1]
                 .startswith(p.question))
        value = int(problems[i].gold) + (0 if i < right[fmt] else 1)
        return f"1. work\n2. RESULT={value} done"

    be = FakeBackend(script=script)
    ctx = MethodContext(problems=problems, backend=be, store=store, out=tmp_path, task="demo",
                        options={"format": "procedural,subquestions,decision_tree"})
    s = method_function("formats")(ctx)
    write_report(s, ctx.out)
    acc = {k: (v["correct"], v["n"], v["accuracy"]) for k, v in s["strategies"].items()}
    assert acc == {"procedural": (3, 4, 0.75), "subquestions": (1, 4, 0.25), "decision_tree": (0, 4, 0.0)}
    # every call counted: 3 formats x 4 problems x (rationale + answer)
    assert s["samples_new"] == 24 and be.samples_generated == 24
    # tokens count the rationale ("1. work 2. RESULT=v done": 5 words) and the answer call
    # ("The answer is v": 4 words): 9 per problem
    assert s["strategies"]["procedural"]["tokens"] == 4 * 9
    assert (tmp_path / "formats.html").exists()
    again = method_function("formats")(ctx)
    assert be.samples_generated == 24 and again["samples_cached"] == 24
    assert again["strategies"] == s["strategies"]


def test_non_decomposed_mode_answers_in_the_same_call(store):
    problems = load_task("demo", limit=2)
    be = FakeBackend(script=lambda prompt, seed, i: "1. step\nThe answer is 15.")
    out = run_formats(problems, be, store, formats=["subquestions"], decomposed=False)
    assert not [p for p in be.prompts if ANSWER_SYSTEM in p]
    assert [r.correct for r in out["subquestions"]] == [True, False]  # golds 15 and 26


def test_format_specs_are_greedy_and_tagged():
    problems = load_task("demo", limit=2)
    specs = format_specs(problems, "decision_tree")
    assert all(s.temperature == 0.0 and s.method == "format:decision_tree" for s in specs)
    assert specs[0].meta == {"format": "decision_tree", "decomposed": True}
    assert "formats" in METHODS


@pytest.mark.model
def test_formats_end_to_end_on_the_real_model(small_model, tmp_path, store):
    problems = load_task("demo", limit=1)
    ctx = MethodContext(problems=problems, backend=small_model, store=store, out=tmp_path, task="demo",
                        max_tokens=96, options={"format": "procedural,subquestions"})
    s = method_function("formats")(ctx)
    assert set(s["strategies"]) == {"procedural", "subquestions"}
    for fmt in ("procedural", "subquestions"):
        (r,) = store.rationales(method=f"format:{fmt}")
        assert r.text.strip() and r.meta["decomposed"] is True
        ans = store.get_rationale(r.meta["answer_id"])
        assert ans.parent_id == r.id and ans.method == "answer_from_rationale"
        assert r.answer == ans.answer


def test_cli_run_method_formats_takes_method_options(tmp_path, capsys):
    import json

    from rationales.cli import main

    script = tmp_path / "script.json"
    script.write_text(json.dumps({ANSWER_SYSTEM: ["The answer is 15."], "*": ["1. 12 - 5 = 7\n2. 7 + 8 = 15"]}))
    args = ["run", "demo", "--method", "formats", "--backend", "fake", "--model", str(script), "--limit", "2",
            "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"), "--json"]
    assert main([*args, "-O", "format=procedural,subquestions", "-O", "decomposed=true"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["formats"] == ["procedural", "subquestions"] and summary["decomposed"] is True
    assert {k: v["correct"] for k, v in summary["strategies"].items()} == {"procedural": 1, "subquestions": 1}
    assert main([*args, "-O", "format"]) == 2
    err = capsys.readouterr().err
    assert "--method-opt expects KEY=VALUE, got 'format'" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "-O", "format=tree"]) == 2
    assert "Unknown rationale format 'tree'" in capsys.readouterr().err
