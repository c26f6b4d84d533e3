"""Natural-language feedback patching (patch method and `rationales patch`)."""

from __future__ import annotations

import json

import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.jobs.methods import MethodContext, method_function
from rationales.jobs.methods.formats import run_formats
from rationales.jobs.methods.patch import (FeedbackItem, PatchResult, make_feedback, patch_rationales,
                                      read_feedback_jsonl, resolve_items, success_by_format, write_feedback_jsonl)
from rationales.records import Rationale
from rationales.store import Store
from rationales.tasks import load_task
from rationales.report import write_report

ANSWER_SYSTEM = "You answer a question using only the rationale"


def script(prompt, seed, index):
    """Format rationales state RESULT=gold+1 (wrong); a patch whose feedback says FIX writes
    RESULT=<the number after FIX>; the answer call reads RESULT off the rationale."""
    if ANSWER_SYSTEM in prompt:
        return "The answer is " + prompt.split("RESULT=")[-1].split()[0]
    if "You review a rationale" in prompt:
        return "MODEL-FEEDBACK: FIX 15 by adding the 8 apples bought."
    if "Old rationale:" in prompt:
        feedback = prompt.split("Feedback:\n", 1)[1]
        if "FIX " in feedback:
            return f"1. corrected\n2. RESULT={feedback.split('FIX ', 1)[1].split()[0]} done"
        return "1. unchanged\n2. RESULT=-1 done"
    tail = prompt.split("<|im_start|>user\n")[-1]
    for p in load_task("demo", limit=6):
        if tail.startswith(p.question):
            return f"1. work\n2. RESULT={int(p.gold) + 1} done"
    raise AssertionError("unexpected prompt")


def test_read_feedback_jsonl_and_line_errors(tmp_path):
    good = tmp_path / "fb.jsonl"
    good.write_text('{"rationale_id": "abc", "feedback": "step 2 is wrong"}\n\n{"rationale_id": "d", "feedback": "x"}\n')
    items = read_feedback_jsonl(good)
    assert [(i.rationale_id, i.feedback, i.line) for i in items] == [("abc", "step 2 is wrong", 1), ("d", "x", 3)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"rationale_id": "abc", "feedback": "ok"}\n{"rationale_id": "abc", feedback}\n')
    with pytest.raises(RationalesError, match=r"bad.jsonl line 2: not valid JSON"):
        read_feedback_jsonl(bad)
    bad.write_text('{"rationale_id": "abc", "feedback": "ok"}\n["x"]\n')
    with pytest.raises(RationalesError, match="line 2: expected a JSON object"):
        read_feedback_jsonl(bad)
    bad.write_text('{"rationale_id": "abc"}\n')
    with pytest.raises(RationalesError, match=r'line 1: missing "feedback"'):
        read_feedback_jsonl(bad)
    bad.write_text('{"feedback": "x"}\n')
    with pytest.raises(RationalesError, match=r'line 1: missing "rationale_id"'):
        read_feedback_jsonl(bad)
    bad.write_text("\n\n")
    with pytest.raises(RationalesError, match="no feedback rows"):
        read_feedback_jsonl(bad)
    with pytest.raises(RationalesError, match="does not exist"):
        read_feedback_jsonl(tmp_path / "missing.jsonl")


def test_unknown_rationale_id_names_the_line(tmp_path, store):
    items = [FeedbackItem("nope", "fix it", line=4)]
    with pytest.raises(RationalesError, match="line 4: no rationale with id 'nope'"):
        resolve_items(items, store, tmp_path / "fb.jsonl")


def test_patch_is_stored_with_parent_feedback_and_format(store):
    problems = load_task("demo", limit=1)  # gold 15
    be = FakeBackend(script=script)
    (parent,) = run_formats(problems, be, store, formats=["procedural"])["procedural"]
    assert parent.correct is False and parent.answer == "16"
    fb = FeedbackItem(parent.id, "Step 2 forgets the 8 apples bought; FIX 15 there.")
    (res,) = patch_rationales(resolve_items([fb], store), be, store)
    patch = store.get_rationale(res.patch.id)
    assert patch.parent_id == parent.id and patch.method == "patch"
    assert patch.meta["feedback"] == fb.feedback and patch.meta["format"] == "procedural"
    assert patch.text == "1. corrected\n2. RESULT=15 done" and patch.answer == "15" and patch.correct is True
    assert res.fixed
    assert store.rationales(parent_id=parent.id, method="patch") == [patch]
    # the patch prompt holds the question, the old rationale and the feedback
    pp = [p for p in be.prompts if "Old rationale:" in p][0]
    assert problems[0].question in pp and parent.text in pp and fb.feedback in pp
    # the re-answer is decomposed: its prompt holds only question + revised rationale
    ap = [p for p in be.prompts if ANSWER_SYSTEM in p][-1]
    assert patch.text in ap and parent.text not in ap and fb.feedback not in ap
    # other feedback on the same rationale is another patch; the same feedback is cached
    n = be.samples_generated
    patch_rationales(resolve_items([fb], store), be, store)
    assert be.samples_generated == n
    (other,) = patch_rationales(resolve_items([FeedbackItem(parent.id, "Try again.")], store), be, store)
    assert other.patch.id != res.patch.id and other.patch.correct is False


def _r(rid: str, correct: bool) -> Rationale:
    return Rationale(id=rid, problem_id="p", prompt_id="x", model="m", correct=correct, tokens=10,
                     meta={"answer_tokens": 2})


def test_success_rate_maths_hand_checked():
    results = []
    # procedural: 4 wrong parents, 3 fixed; 1 right parent kept right
    for i, fixed in enumerate([True, True, False, True]):
        results.append(PatchResult(_r(f"a{i}", False), _r(f"pa{i}", fixed), "fb", "procedural"))
    results.append(PatchResult(_r("a4", True), _r("pa4", True), "fb", "procedural"))
    # subquestions: 2 wrong parents, none fixed; 1 right parent broken by its patch
    for i in range(2):
        results.append(PatchResult(_r(f"b{i}", False), _r(f"pb{i}", False), "fb", "subquestions"))
    results.append(PatchResult(_r("b2", True), _r("pb2", False), "fb", "subquestions"))
    table = success_by_format(results)
    proc, sub, all_ = table["procedural"], table["subquestions"], table["all"]
    assert (proc["wrong_parents"], proc["fixed"], proc["success_rate"]) == (4, 3, 0.75)
    assert (proc["ci_low"], proc["ci_high"]) == (0.3006, 0.9544)  # Wilson 3/4
    assert (proc["right_parents"], proc["kept_correct"], proc["patches"]) == (1, 1, 5)
    assert proc["patch_tokens"] == 5 * 12
    assert (sub["wrong_parents"], sub["fixed"], sub["success_rate"], sub["kept_correct"]) == (2, 0, 0.0, 0)
    assert (all_["wrong_parents"], all_["fixed"], all_["success_rate"]) == (6, 3, 0.5)
    assert success_by_format([PatchResult(_r("c", True), _r("pc", True), "fb", "x")])["x"]["success_rate"] is None


def test_model_feedback_is_written_by_the_model_without_the_gold(store):
    problems = load_task("demo", limit=2)  # golds 15, 26
    be = FakeBackend(script=script)
    rs = run_formats(problems, be, store, formats=["subquestions"])["subquestions"]
    items = make_feedback(list(zip(problems, rs)), "model", be, store)
    assert [i.feedback for i in items] == ["MODEL-FEEDBACK: FIX 15 by adding the 8 apples bought."] * 2
    fb_prompts = [p for p in be.prompts if "You review a rationale" in p]
    assert "Its answer, 16, is wrong." in fb_prompts[0] and "15" not in fb_prompts[0].split("Rationale:")[1]
    fb_records = store.rationales(method="feedback")
    assert {r.parent_id for r in fb_records} == {r.id for r in rs}
    gold = make_feedback(list(zip(problems, rs)), "gold", be, store)
    assert "the correct answer is 26" in gold[1].feedback
    with pytest.raises(RationalesError, match="Unknown feedback source"):
        make_feedback([], "human", be, store)


def test_patch_method_reports_success_per_format(tmp_path, store):
    problems = load_task("demo", limit=4)  # golds 15, 26, 16, 3
    be = FakeBackend(script=script)
    ctx = MethodContext(problems=problems, backend=be, store=store, out=tmp_path, task="demo",
                        options={"format": "procedural,decision_tree", "feedback": "model"})
    s = method_function("patch")(ctx)
    write_report(s, ctx.out)
    # every parent is wrong; model feedback says FIX 15, which is right only for the first problem
    for fmt in ("procedural", "decision_tree"):
        row = s["patch_success"][fmt]
        assert (row["wrong_parents"], row["fixed"], row["success_rate"]) == (4, 1, 0.25)
        assert s["strategies"][fmt]["correct"] == 0 and s["strategies"][f"{fmt}+patch"]["correct"] == 1
    assert s["patch_success"]["all"]["success_rate"] == 0.25 and s["patches"] == 8
    assert (tmp_path / "patch.html").exists()
    vague = method_function("patch")(MethodContext(problems=problems, backend=be, store=store, out=tmp_path,
                                                   task="demo", options={"format": "procedural",
                                                                         "feedback": "wrong"}))
    assert vague["patch_success"]["procedural"]["fixed"] == 0  # "wrong" feedback names no number to use


def test_cli_patch_reads_feedback_file_and_prints_success(tmp_path):
    from rationales.cli import main

    store_path = tmp_path / "s.sqlite"
    problems = load_task("demo", limit=2)
    with Store(store_path) as st:
        rs = run_formats(problems, FakeBackend(script=script), st, formats=["procedural"])["procedural"]
    fb = write_feedback_jsonl(tmp_path / "fb.jsonl", [FeedbackItem(rs[0].id, "FIX 15 in step 2"),
                                                      FeedbackItem(rs[1].id, "FIX 99 in step 2")])
    script_file = tmp_path / "script.json"
    script_file.write_text(json.dumps({"Old rationale": ["1. patched\n2. RESULT=15 done"],
                                       ANSWER_SYSTEM: ["The answer is 15."]}))
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["patch", str(fb), "--store", str(store_path), "--backend", "fake", "--model", str(script_file),
                   "--out", str(tmp_path / "o"), "--json"])
    assert rc == 0
    summary = json.loads(buf.getvalue())
    row = summary["patch_success"]["procedural"]
    assert (row["wrong_parents"], row["fixed"]) == (2, 1)  # 15 fixes problem 1 (gold 15), not problem 2 (gold 26)
    assert (tmp_path / "o" / "patch.html").exists()


def test_cli_patch_bad_input_is_one_line(tmp_path, capsys):
    from rationales.cli import main

    store_path = tmp_path / "s.sqlite"
    Store(store_path).close()
    fb = tmp_path / "fb.jsonl"
    fb.write_text('{"rationale_id": "missing-id", "feedback": "fix"}\n')
    rc = main(["patch", str(fb), "--store", str(store_path), "--backend", "fake"])
    err = capsys.readouterr().err
    assert rc == 2 and "line 1: no rationale with id 'missing-id'" in err and len(err.strip().splitlines()) == 1
    fb.write_text('{"rationale_id": "a", "feedback": "fix"}\nnot json\n')
    rc = main(["patch", str(fb), "--store", str(store_path), "--backend", "fake"])
    err = capsys.readouterr().err
    assert rc == 2 and "line 2: not valid JSON" in err and len(err.strip().splitlines()) == 1


@pytest.mark.model
def test_patch_end_to_end_on_the_real_model(small_model, tmp_path, store):
    problems = load_task("demo", limit=1)
    (parent,) = run_formats(problems, small_model, store, formats=["procedural"], max_tokens=96)["procedural"]
    fb = write_feedback_jsonl(tmp_path / "fb.jsonl", [FeedbackItem(parent.id, f"The answer should be "
                                                                              f"{problems[0].gold}; fix the last step.")])
    (res,) = patch_rationales(resolve_items(read_feedback_jsonl(fb), store), small_model, store, max_tokens=96)
    patch = store.get_rationale(res.patch.id)
    assert patch.parent_id == parent.id and patch.meta["format"] == "procedural"
    assert patch.meta["feedback"].startswith("The answer should be 15")
    assert patch.text.strip() and store.get_rationale(patch.meta["answer_id"]).parent_id == patch.id
    assert success_by_format([res])["procedural"]["patches"] == 1
