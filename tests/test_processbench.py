"""ProcessBench-style step-error detection: metric on hand-checked cases, loaders, built data."""

from __future__ import annotations

import json
import random

import pytest

from rationales.errors import TaskError
from rationales.verify.prm import FunctionPRM
from rationales.verify.arithmetic import find_claims
from rationales.verify.processbench import (Item, build_from_gsm_symbolic, calibrate_threshold, corrupt_solution,
                                            evaluate_step_detector,
                                            first_error, load_processbench, processbench_scores, save_processbench)


def test_scores_hand_checked():
    labels = [-1, -1, -1, 2, 0, 1]
    predicted = [-1, 3, 1, 2, 1, 1]
    # erroneous items (labels 2, 0, 1): found 2 and 1 exactly, missed 0 -> 2/3
    # correct items: only the first is predicted -1 -> 1/3; F1 = 2 * (2/3)(1/3) / (2/3 + 1/3) = 4/9
    s = processbench_scores(predicted, labels)
    assert s["error_acc"] == pytest.approx(2 / 3) and s["correct_acc"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(4 / 9) and (s["n_error"], s["n_correct"]) == (3, 3)
    # a detector that flags a step too early on an erroneous solution is wrong there, too
    assert processbench_scores([0], [1])["error_acc"] == 0.0
    assert processbench_scores([-1, -1], [-1, 0]) == {"error_acc": 0.0, "correct_acc": 1.0, "f1": 0.0,
                                                      "n_error": 1, "n_correct": 1}
    assert processbench_scores([-1], [-1])["f1"] is None  # no erroneous items: undefined
    with pytest.raises(ValueError):
        processbench_scores([1], [1, 2])


def test_calibrate_threshold_picks_the_f1_best_cut_of_rewards_that_are_all_low():
    # a PRM whose rewards are shifted down: right steps 0.3, the wrong step 0.1 -> at 0.5 it
    # flags step 0 of everything (F1 0); a cut between 0.1 and 0.3 finds every first error
    items = [Item(problem=f"q{i}", steps=["a = 1", "b = 2", "c = 3"], label=lab, answer="3")
             for i, lab in enumerate([-1, -1, 1, 2, 0])]
    calls = []

    def fn(problems, rationales):
        calls.append(len(rationales))
        return [[0.1 if k == it.label else 0.3 for k in range(3)] for it in items]

    prm = FunctionPRM(fn)
    assert evaluate_step_detector(items, prm)["f1"] == 0.0
    th, s = calibrate_threshold(items, prm)
    assert 0.1 < th <= 0.3 and s["f1"] == 1.0 and s["error_acc"] == 1.0 and s["correct_acc"] == 1.0
    assert evaluate_step_detector(items, prm, threshold=th)["f1"] == 1.0
    assert calls[1] == 5 and len(calls) == 3  # one scoring call for the whole grid
    assert abs(calibrate_threshold(items, FunctionPRM(lambda p, r: [[0.9] * 3 for _ in r]))[0] - 0.5) < 1e-9  # ties: 0.5


def test_first_error():
    assert first_error([0.9, None, 0.4, 0.2], 0.5) == 2
    assert first_error([0.9, 0.5, 0.7], 0.5) == -1  # 0.5 is not below 0.5
    assert first_error([None, None], 0.5) == -1
    assert first_error([0.6, 0.55], 0.6) == 1


def test_load_and_save_jsonl(tmp_path):
    path = tmp_path / "pb.jsonl"
    rows = [{"id": "gsm8k-0", "generator": "Qwen", "problem": "1+1?", "steps": ["1 + 1 = 2", "The answer is 2."],
             "final_answer_correct": True, "label": -1},
            {"problem": "2*3?", "steps": ["2 * 3 = 5", "The answer is 5."], "label": 0, "answer": "6"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    items = load_processbench(path)
    assert [(it.id, it.label, it.answer) for it in items] == [("gsm8k-0", -1, None), (items[1].id, 0, "6")]
    assert items[0].meta == {"generator": "Qwen", "final_answer_correct": True}
    again = load_processbench(save_processbench(items, tmp_path / "copy.jsonl"))
    assert [(it.problem, it.steps, it.label) for it in again] == [(it.problem, it.steps, it.label) for it in items]


@pytest.mark.parametrize("line, message", [
    ('{"problem": "x", "steps": ["a"]}', "needs problem"),
    ("not json", "not valid JSON"),
    ("42", "expected a JSON object"),
    ("[" * 50000 + "]" * 50000, "nests too deeply"),
    ('{"problem": "x", "steps": ["a"], "label": "zero"}', "label must be a whole number"),
    ('{"problem": "x", "steps": ["a"], "label": 3}', "label 3"),
    ('{"problem": "x", "steps": "a", "label": -1}', "list of strings"),
])
def test_bad_files(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(TaskError, match=message):
        load_processbench(path)
    with pytest.raises(TaskError, match="not found"):
        load_processbench(tmp_path / "missing.jsonl")


def test_corrupt_solution_changes_one_result_number():
    steps = ["Robert was left with 72*0.5=36 pebbles.", "He found some, getting back to 36+17=53 pebbles.",
             "He removed coins, leaving him with 53-9=44 pebbles."]
    bad = corrupt_solution(steps, 1, random.Random(3))
    assert bad[0] == steps[0] and bad[2] == steps[2] and bad[1] != steps[1]
    assert bad[1].startswith("He found some, getting back to 36+17=") and bad[1].endswith(" pebbles.")
    [claim] = find_claims(bad[1])
    assert claim.value == 53 and claim.claimed != 53 and not claim.ok
    money = corrupt_solution(["The total is $400,000 + $88,000 = $488,000."], 0, random.Random(0))[0]
    [claim] = find_claims(money)
    assert not claim.ok and claim.claimed % 1000 == 0 and "," in money.split("= $")[1]  # stays a round amount
    with pytest.raises(ValueError, match="no correct arithmetic claim"):
        corrupt_solution(["We read the problem."], 0, random.Random(0))


def test_build_from_gsm_symbolic_and_tool_detector():
    items = build_from_gsm_symbolic(12, seed=0)
    assert len(items) == 12
    assert [it.label == -1 for it in items] == [True, False] * 6
    for it in items:
        if it.label >= 0:
            assert it.meta["original"] != it.steps[it.label]
            assert not all(c.ok for c in find_claims(it.steps[it.label]))
    again = build_from_gsm_symbolic(12, seed=0)
    assert [(it.steps, it.label) for it in again] == [(it.steps, it.label) for it in items]
    scores = evaluate_step_detector(items, "tool")
    # every corrupted step has a wrong claim that the checker reads, and nothing before it is flagged
    assert scores["error_acc"] == 1.0 and scores["n_error"] == 6 and scores["n_correct"] == 6
    assert scores["predicted"][1::2] == [it.label for it in items[1::2]]


def test_evaluate_any_step_scorer_or_function():
    items = [Item("q1", ["1 + 1 = 2", "2 * 2 = 5"], label=1), Item("q2", ["3 - 1 = 2", "ok"], label=-1),
             Item("q3", ["bad step", "2 + 2 = 4"], label=0)]
    scorer = FunctionPRM(lambda ps, rs: [[0.1 if "5" in s.text or "bad" in s.text else 0.9 for s in r.steps]
                                         for r in rs])
    s = evaluate_step_detector(items, scorer)
    assert s["predicted"] == [1, -1, 0] and s["f1"] == 1.0
    s = evaluate_step_detector(items, "tool")  # the tool cannot see "bad step": no arithmetic there
    assert s["predicted"] == [1, -1, -1] and s["error_acc"] == 0.5 and s["correct_acc"] == 1.0
    assert s["f1"] == pytest.approx(2 / 3)
    s = evaluate_step_detector(items, lambda it: 0)
    assert s["error_acc"] == 0.5 and s["correct_acc"] == 0.0
