"""Property tests for every parser of model or user text owned by the answers/tasks/store layer:
answer extraction and comparison, task-file loaders (JSONL, JSON, CSV), feedback files,
ProcessBench files, templates, the generative-PRM verdict parser. For any input: no exception
escapes (a user error is a ``RationalesError``), the call is bounded in time, and the same input
twice gives the same result."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rationales.answers import (check_answer, extract_answer, grade_answer, normalize, numbers_equal,
                                parse_number, too_costly)
from rationales.errors import RationalesError
from rationales.records import Problem

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# text that looks like model output: maths, LaTeX, markdown, answer phrases, odd Unicode
_pieces = st.sampled_from([
    "The answer is ", "Final answer: ", "####", "\\boxed{", "}", "{", "\\frac{", "\\text{", "$", "**", "^", "**",
    "9", "12", "-3", "0.5", "1,000", "3/4", "%", "x", "\\sqrt{2}", "=", " ", "\n", "(", ")", "[", "]", "A", "B)",
    "²", "①", "٣", "\ud800", "\x00", "\u200b", "⁵", "𝟙", "e", "!", "99999", "9^{9^{9}}", "__import__('os')",
])
model_text = st.one_of(st.text(max_size=300), st.lists(_pieces, max_size=60).map("".join))


def _bounded(fn, *args, limit: float = 10.0):
    t0 = time.perf_counter()
    out = fn(*args)
    assert time.perf_counter() - t0 < limit, (fn.__name__, args)
    return out


@FAST
@given(model_text)
def test_extraction_and_normalisation_never_raise_and_are_deterministic(text):
    a = _bounded(extract_answer, text, limit=2)
    assert a == extract_answer(text)
    assert a is None or isinstance(a, str)
    n = _bounded(normalize, text, limit=2)
    assert n == normalize(text)
    num = parse_number(text)
    assert num == parse_number(text)
    if num is not None:
        assert normalize(text) is not None
    why = too_costly(text)
    assert why is None or isinstance(why, str)


@FAST
@given(model_text, model_text, st.sampled_from(["number", "exact", "choice"]))
def test_local_checks_never_raise(gold, answer, kind):
    """(math and auto go to math-verify in the sandbox: next test)"""
    p = Problem.make("q", gold, answer_type=kind, choices=["red", "blue", "green"] if kind == "choice" else None)
    r = _bounded(check_answer, p, answer, limit=2)
    assert r in (True, False, None)
    assert r == check_answer(p, answer)


@SLOW
@given(model_text, model_text, st.sampled_from(["math", "auto"]))
def test_math_checks_are_bounded_and_deterministic(gold, answer, kind):
    p = Problem.make("q", gold, answer_type=kind)
    g = _bounded(grade_answer, p, answer, limit=30)  # the sandbox's own limit is 10 s per answer
    assert g.correct in (True, False, None)
    assert g.error is None or g.correct is None
    if g.error is None or "took longer" not in g.error:
        assert grade_answer(p, answer) == g


@FAST
@given(st.one_of(st.integers(), st.fractions(), st.floats(allow_nan=True, allow_infinity=True)),
       st.one_of(st.integers(), st.fractions(), st.floats(allow_nan=True, allow_infinity=True)))
def test_numbers_equal_is_total_and_symmetric(a, b):
    assert numbers_equal(a, b) == numbers_equal(b, a)
    if isinstance(a, int) and isinstance(b, int):
        assert numbers_equal(a, a) and (numbers_equal(a, b) == (a == b) or abs(a - b) <= 1e-6 * max(abs(a), abs(b)))


# ---------------------------------------------------------------- files
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                           max_leaves=20)
row_like = st.fixed_dictionaries({"question": st.one_of(st.text(max_size=30), json_values),
                                  "answer": st.one_of(st.text(max_size=10), json_values)},
                                 optional={"context": json_values, "id": json_values})
lines = st.one_of(
    row_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=60),
    st.sampled_from(["[" * 3000, "{" * 50 + "}" * 50, '{"question": 1' + "0" * 5000 + "}", "\ufeff{}", "null",
                     '{"question": "a\\ud800", "answer": "\\udfff"}']),
)
file_bytes = st.one_of(
    st.lists(lines, max_size=8).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
)


_TMP = tempfile.TemporaryDirectory(prefix="rationales-prop-")  # removed at exit


def _write(data: bytes, suffix: str) -> Path:
    d = Path(tempfile.mkdtemp(dir=_TMP.name))
    path = d / f"input{suffix}"
    path.write_bytes(data)
    return path


def _outcome(fn, *args):
    """('ok', summary) or ('error', message): anything else escaping fails the test."""
    try:
        return "ok", fn(*args)
    except RationalesError as e:
        msg = str(e)
        assert msg and "\n" not in msg.strip(), msg
        return "error", msg


@FAST
@given(file_bytes, st.sampled_from([".jsonl", ".json", ".csv", ".tsv"]))
def test_task_files_load_or_say_what_is_wrong(data, suffix):
    from rationales.tasks import load_task

    path = _write(data, suffix)

    def load(p):
        return [(x.id, x.question, x.gold) for x in load_task(str(p))]

    first = _bounded(_outcome, load, path, limit=5)
    assert first == _outcome(load, path)
    if first[0] == "ok":
        from rationales.store import Store

        with Store(path.parent / "s.sqlite") as s:  # whatever loads can be stored and read back
            s.put_problems(load_task(str(path)))
            assert len(s.problems()) == len({pid for pid, _, _ in first[1]})


@FAST
@given(file_bytes)
def test_feedback_files(data):
    from rationales.jobs.methods.patch import read_feedback_jsonl

    path = _write(data, ".jsonl")

    def read(p):
        return [(i.rationale_id, i.feedback, i.line) for i in read_feedback_jsonl(p)]

    first = _bounded(_outcome, read, path, limit=5)
    assert first == _outcome(read, path)


pb_rows = st.fixed_dictionaries(
    {"problem": st.text(max_size=20), "steps": st.one_of(st.lists(st.text(max_size=10), max_size=4), json_values),
     "label": st.one_of(st.integers(-3, 5), json_values)}).map(json.dumps)
pb_bytes = st.one_of(file_bytes, st.lists(pb_rows, max_size=4).map(lambda ls: "\n".join(ls).encode()))


@FAST
@given(pb_bytes)
def test_processbench_files(data):
    from rationales.verify.processbench import load_processbench

    path = _write(data, ".jsonl")

    def read(p):
        return [(i.id, i.label, tuple(i.steps)) for i in load_processbench(p)]

    first = _bounded(_outcome, read, path, limit=5)
    assert first == _outcome(read, path)
    if first[0] == "ok":
        assert all(-1 <= label < len(steps) for _, label, steps in first[1])


_template_pieces = st.sampled_from([
    "{{ question }}", "{{ context }}", "{% for e in examples %}{{ e }}{% endfor %}", "<|user|>\n", "<|assistant|>\n",
    "<|system|>\n", "{{", "}}", "{%", "%}", "{# c #}", "{{ 1/0 }}", "{{ question + 1 }}", "{{ missing }}",
    "{{ ''.__class__ }}", "{% if %}", "{% raw %}", "{{ range(10**9)|list }}", "text", "\n", "é", "\ud800",
])
template_bytes = st.one_of(st.lists(_template_pieces, max_size=12).map(lambda p: "".join(p).encode("utf-8", "surrogatepass")),
                           st.binary(max_size=100))


@FAST
@given(template_bytes, st.text(max_size=40))
def test_templates_render_or_fail_in_one_line(data, question):
    from rationales.prompts import render

    path = _write(data, ".j2")

    def go(p):
        r = render(str(p), question=question)
        return r.id, r.completion_text()

    first = _bounded(_outcome, go, path, limit=5)
    assert first == _outcome(go, path)


@FAST
@given(model_text)
def test_generative_prm_verdict_parser(text):
    from rationales.verify.genprm import parse_verdict

    v = _bounded(parse_verdict, text, limit=2)
    assert v == parse_verdict(text)
    assert v[0] in (1, -1, None) and isinstance(v[1], str)
