"""Stepwise PRM datasets and label sources over stored checks (data/stepwise.py, data/labels.py)."""

from __future__ import annotations

import pytest

from rationales.data.labels import LabelError, consensus_filter, step_label
from rationales.data.stepwise import read_stepwise, step_completions, stepwise_rows, write_stepwise
from rationales.records import Check, Problem, Rationale, Step
from rationales.steps import segment
from rationales.store import Store

TEXT = "First, 2 + 3 = 5.\nThen 5 * 4 = 21.\n\nSo the answer is \\boxed{21}."


def make_rationale(problem: Problem, rid: str = "r1", text: str = TEXT) -> Rationale:
    return Rationale(id=rid, problem_id=problem.id, prompt_id="p", model="m", text=text, steps=segment(text, "lines"),
                     answer="21", correct=False)


@pytest.fixture
def problem() -> Problem:
    return Problem.make("What is (2 + 3) * 4?", 20, source="hand")


def test_completions_end_at_recorded_spans_and_rejoin_to_the_text(problem):
    r = make_rationale(problem)
    comps = step_completions(r)
    assert comps == ["First, 2 + 3 = 5.\n", "Then 5 * 4 = 21.\n\n", "So the answer is \\boxed{21}."]
    assert "".join(comps) == r.text
    # a newline inside a step is part of that step, not a boundary
    r2 = Rationale(id="x", problem_id=problem.id, prompt_id="p", model="m", text="a\nb\nc",
                   steps=[Step(index=0, text="a\nb", span=(0, 3)), Step(index=1, text="c", span=(4, 5))])
    assert step_completions(r2) == ["a\nb\n", "c"]


def test_each_label_source_reads_its_own_checks(problem):
    r = make_rationale(problem)
    s0, s1, s2 = r.steps
    s0.checks = [Check(kind="tool", by="arith", verdict=1), Check(kind="mc", by="math-shepherd", verdict=1, score=0.75)]
    s1.checks = [Check(kind="tool", by="arith", verdict=-1), Check(kind="mc", by="math-shepherd", verdict=1, score=0.25),
                 Check(kind="mc", by="grounded_mcts", verdict=1, score=0.4)]
    s2.checks = [Check(kind="mc", by="grounded_mcts", verdict=-1, score=-0.5), Check(kind="human", verdict=-1)]
    assert [step_label(s, "tool").hard for s in r.steps] == [True, False, None]
    assert [(step_label(s, "mc").hard, step_label(s, "mc").soft) for s in r.steps] == [
        (True, 0.75), (True, 0.25), (None, None)]
    # grounded: Q > 0 is good, soft (Q+1)/2; a tool-wrong step is wrong whatever its Q
    assert [(step_label(s, "grounded").hard, step_label(s, "grounded").soft) for s in r.steps] == [
        (None, None), (False, 0.0), (False, 0.25)]
    assert [step_label(s, "human").hard for s in r.steps] == [None, None, False]
    # a neutral human rating (PRM800K's 0) is no label, never a wrong step
    s0.checks.append(Check(kind="human", verdict=0))
    assert (step_label(s0, "human").hard, step_label(s0, "human").why) == (None, "neutral")


def test_mc_tool_adds_the_tool_checks_negatives_to_mc_labels(problem):
    r = make_rationale(problem)
    s0, s1, s2 = r.steps
    s0.checks = [Check(kind="tool", by="arith", verdict=1)]  # no MC label: tool-right is a positive
    s1.checks = [Check(kind="tool", by="arith", verdict=-1)]  # no MC label: tool-wrong is a negative
    s2.checks = [Check(kind="mc", by="math-shepherd", verdict=-1, score=0.0)]
    assert [(step_label(s, "mc_tool").hard, step_label(s, "mc_tool").soft) for s in r.steps] == [
        (True, 1.0), (False, 0.0), (False, 0.0)]
    # a tool-wrong step is wrong even where a rollout from it reached the gold answer
    s1.checks.append(Check(kind="mc", by="math-shepherd", verdict=1, score=0.5))
    assert step_label(s1, "mc_tool").hard is False and step_label(s1, "mc").hard is True
    assert step_label(Step(index=0, text="prose", span=(0, 5)), "mc_tool").hard is None


def test_consensus_keeps_only_agreeing_steps(problem):
    rs = []
    for i, (mc, tool) in enumerate([(1, 1), (1, -1), (-1, -1), (-1, None), (None, 1)]):
        r = make_rationale(problem, rid=f"r{i}", text="only step 2 + 2 = 4")
        checks = []
        if mc is not None:
            checks.append(Check(kind="mc", by="math-shepherd", verdict=mc, score=0.5 + 0.5 * mc))
        if tool is not None:
            checks.append(Check(kind="tool", by="arith", verdict=tool))
        r.steps[0].checks = checks
        rs.append(r)
    labels, counts = consensus_filter(rs, strict=True)
    assert [row[0].hard for row in labels] == [True, None, False, None, None]
    assert counts["disagree"] == 1 and counts["missing second verdict"] == 1 and counts["labelled"] == 2
    # a judge verdict stands in for a missing tool verdict
    rs[3].steps[0].checks.append(Check(kind="judge", by="j", verdict=-1))
    assert consensus_filter(rs, strict=True)[0][3][0].hard is False
    # non-strict keeps MC where there is no second opinion
    assert consensus_filter(rs[:4], strict=False)[0][3][0].hard is False


def test_stepwise_rows_from_the_store_mark_unlabelled_steps_none(tmp_path, problem):
    store = Store(tmp_path / "s.sqlite")
    store.put_problems([problem])
    r = make_rationale(problem)
    r.steps[0].checks = [Check(kind="tool", by="arith", verdict=1)]
    r.steps[1].checks = [Check(kind="tool", by="arith", verdict=-1)]
    store.put_rationale(r)
    counts: dict = {}
    rows = stepwise_rows(store, label_source="tool", counts=counts)
    assert len(rows) == 1
    row = rows[0]
    assert row["prompt"] == problem.question
    assert row["labels"] == [True, False, None]  # None stays None: never True
    assert row["soft_labels"] == [1.0, 0.0, None]
    assert row["rationale_id"] == "r1" and row["label_source"] == "tool" and row["n_labelled"] == 2
    assert counts["labelled"] == 2 and counts["no check"] == 1
    trunc = stepwise_rows(store, label_source="tool", unlabelled="truncate")[0]
    assert trunc["labels"] == [True, False] and len(trunc["completions"]) == 2
    with pytest.raises(LabelError):  # the only row has an unlabelled step: nothing left
        stepwise_rows(store, label_source="tool", unlabelled="drop")
    split = stepwise_rows(store, label_source="tool", split={problem.id: "train"})
    assert split[0]["split"] == "train"
    with pytest.raises(LabelError, match="No labelled steps.*'mc'"):
        stepwise_rows(store, label_source="mc")


def test_drop_policy_and_file_round_trip(tmp_path, problem):
    store = Store(tmp_path / "s.sqlite")
    store.put_problems([problem])
    r = make_rationale(problem)
    for s in r.steps:
        s.checks = [Check(kind="mc", by="math-shepherd", verdict=-1, score=0.0)]
    r.steps[0].checks[0] = Check(kind="mc", by="math-shepherd", verdict=1, score=0.5)
    store.put_rationale(r)
    rows = stepwise_rows(store, label_source="mc", unlabelled="drop")
    assert rows[0]["labels"] == [True, False, False] and rows[0]["soft_labels"] == [0.5, 0.0, 0.0]
    for ext in ("jsonl", "parquet"):
        path = write_stepwise(rows, tmp_path / f"d.{ext}")
        back = read_stepwise(path)
        assert back[0]["completions"] == rows[0]["completions"] and back[0]["labels"] == rows[0]["labels"]
        import datasets

        ds = datasets.load_dataset("json" if ext == "jsonl" else "parquet", data_files=str(path), split="train")
        assert ds[0]["labels"] == [True, False, False]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "completions": ["a"]}\n')
    from rationales.errors import RationalesError

    with pytest.raises(RationalesError, match="missing column"):
        read_stepwise(bad)


def test_mc_search_labels_free_labels_and_binary_search(tmp_path):
    """Correct rationales label all steps +1 with no rollout; a wrong one's first error is found
    by binary search with rollouts that reach the gold only from prefixes before the error."""
    from rationales.backends.fake import FakeBackend
    from rationales.verify.mc import mc_search_labels

    p = Problem.make("What is 2 + 2 + 2 + 2 + 2?", 10, source="hand", answer_type="number")
    good_text = "2 + 2 = 4\n4 + 2 = 6\n6 + 2 = 8\n8 + 2 = 10\nThe answer is 10."
    bad_text = "2 + 2 = 4\n4 + 2 = 6\n6 + 2 = 9\n9 + 2 = 11\nThe answer is 11."
    good = Rationale(id="g", problem_id=p.id, prompt_id="x", model="fake", text=good_text,
                     steps=segment(good_text, "lines"), answer="10", correct=True)
    bad = Rationale(id="b", problem_id=p.id, prompt_id="x", model="fake", text=bad_text,
                    steps=segment(bad_text, "lines"), answer="11", correct=False)

    def script(prompt: str, seed: int, index: int) -> str:
        # a rollout reaches 10 unless the prefix already holds the wrong "6 + 2 = 9"
        return "The answer is 11." if "= 9" in prompt else "The answer is 10."

    backend = FakeBackend(script=script)
    store = Store(tmp_path / "s.sqlite")
    stats: dict = {}
    mc_search_labels([p, p], [good, bad], backend, store, n=4, wave=2, stats=stats)
    assert [s.verdict("mc") for s in good.steps] == [1] * 5
    assert all(s.checks[-1].detail.get("inferred") for s in good.steps)
    assert [s.verdict("mc") for s in bad.steps] == [1, 1, -1, -1, -1]  # first error: step 2
    # 4 non-final steps: probe step 2 (-, both waves), then step 1 (+, first wave); steps 0 and 3 inferred
    assert stats["probes"] == 2 and stats["rollouts"] == 2 + 4
    assert bad.steps[2].checks[-1].score == 0.0 and bad.steps[1].checks[-1].score == 1.0
    assert bad.steps[3].checks[-1].detail.get("inferred")
    # rerun: every rollout comes from the store
    calls = backend.calls
    mc_search_labels([p, p], [good, bad], backend, store, n=4, wave=2)
    assert backend.calls == calls
    assert [step_label(s, "mc").hard for s in bad.steps] == [True, True, False, False, False]


def test_mc_search_solved_only_skips_problems_no_sample_solves(tmp_path):
    """``solved_only``: a wrong rationale of a problem no given rationale solves keeps its free
    last-step label and costs no rollout; one of a solved problem is still searched."""
    from rationales.backends.fake import FakeBackend
    from rationales.verify.mc import mc_search_labels

    solved = Problem.make("What is 2 + 2 + 2?", 6, source="hand", answer_type="number")
    hard = Problem.make("What is 3 + 3 + 3?", 9, source="hand", answer_type="number")

    def rat(rid, p, text, answer, correct):
        return Rationale(id=rid, problem_id=p.id, prompt_id="x", model="fake", text=text,
                         steps=segment(text, "lines"), answer=answer, correct=correct)

    good = rat("g", solved, "2 + 2 = 4\n4 + 2 = 6\nThe answer is 6.", "6", True)
    bad = rat("b", solved, "2 + 2 = 5\n5 + 2 = 7\nThe answer is 7.", "7", False)
    lost = rat("h", hard, "3 + 3 = 7\n7 + 3 = 10\nThe answer is 10.", "10", False)
    backend = FakeBackend(script=lambda prompt, seed, index: "The answer is 1.")
    stats: dict = {}
    mc_search_labels([solved, solved, hard], [good, bad, lost], backend, Store(tmp_path / "s.sqlite"), n=2,
                     wave=2, solved_only=True, stats=stats)
    assert stats["searched"] == 1 and stats["skipped_unsolved"] == 1
    assert [s.verdict("mc") for s in lost.steps] == [None, None, -1]  # free label only
    assert [s.verdict("mc") for s in bad.steps] == [-1, -1, -1]  # searched: no rollout reaches 6
    assert stats["probes"] == 2 and stats["rollouts"] == 4  # steps 1 then 0, 2 rollouts each, ``bad`` only


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_step_pieces_rejoin_any_segmented_text(text):
    """Cutting at recorded spans never loses or duplicates a character."""
    from rationales.verify.trained_prm import step_pieces

    for mode in ("lines", "sentences", "auto"):
        steps = segment(text, mode)
        pieces = step_pieces(text, [s.span for s in steps])
        assert len(pieces) == len(steps)
        if steps:
            assert "".join(pieces) == text
            assert all(p.strip().startswith(s.text.strip()[:1]) for p, s in zip(pieces[1:], steps[1:]))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_read_stepwise_never_crashes_on_junk(tmp_path_factory, blob):
    from rationales.errors import RationalesError

    path = tmp_path_factory.mktemp("junk") / "x.jsonl"
    path.write_bytes(blob)
    try:
        rows = read_stepwise(path)
    except RationalesError:
        return
    for row in rows:
        assert len(row["completions"]) == len(row["labels"])


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_read_card_gives_one_line_errors_on_junk(tmp_path_factory, text):
    from rationales.verify.trained_prm import TrainedPRMError, read_card

    d = tmp_path_factory.mktemp("card")
    (d / "model_card.json").write_text(text, encoding="utf-8")
    try:
        read_card(d)
    except TrainedPRMError as e:
        assert "\n" not in str(e)
