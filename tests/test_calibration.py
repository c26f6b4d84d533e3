"""Calibration (score/calibration.py): ECE, reliability bins, agreement and verbal confidence."""

from __future__ import annotations

import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.jobs.methods import METHODS, MethodContext, method_function
from rationales.records import Problem, Rationale
from rationales.score.calibration import (agreement_scores, calibration_summary, expected_calibration_error,
                                          parse_verbal_confidence, reliability_bins, strip_confidence,
                                          verbal_scores)
from rationales.report import write_report


def test_ece_on_four_predictions_in_two_bins():
    # bin [0, .5): confidences .2, .4 -> mean .3, accuracy 1/2 -> |.5 - .3| = .2, weight 2/4
    # bin [.5, 1]: confidences .6, .8 -> mean .7, accuracy 2/2 -> |1 - .7| = .3, weight 2/4
    conf, ok = [0.2, 0.4, 0.6, 0.8], [False, True, True, True]
    assert expected_calibration_error(conf, ok, n_bins=2) == pytest.approx(0.5 * 0.2 + 0.5 * 0.3)
    bins = reliability_bins(conf, ok, n_bins=2)
    assert [(b["n"], b["confidence"], b["accuracy"]) for b in bins] == [
        (2, pytest.approx(0.3), 0.5), (2, pytest.approx(0.7), 1.0)]


def test_bin_edges_and_perfect_calibration():
    # 0.3 belongs to [0.3, 0.4) although 0.3 * 10 = 2.9999...; 1.0 goes to the last bin
    bins = reliability_bins([0.3, 1.0, 0.0], [True, True, False], n_bins=10)
    assert bins[3]["n"] == 1 and bins[9]["n"] == 1 and bins[0]["n"] == 1
    assert expected_calibration_error([1.0, 1.0, 0.0], [True, True, False]) == 0.0
    # always 0.9 confident, right 3 times in 5: ECE = |0.6 - 0.9| = 0.3, Brier = (3*.01 + 2*.81)/5
    s = calibration_summary([0.9] * 5, [True, True, True, False, False])
    assert s["ece"] == pytest.approx(0.3) and s["brier"] == pytest.approx(0.33)
    assert s["accuracy"] == 0.6 and s["n"] == 5


def test_none_pairs_are_left_out_and_bad_input_is_a_clear_error():
    s = calibration_summary([0.5, None, 1.0], [True, True, None])
    assert s["n"] == 1 and s["ece"] == pytest.approx(0.5)
    assert calibration_summary([], [])["ece"] is None
    with pytest.raises(RationalesError, match="divide percentages by 100"):
        expected_calibration_error([80.0], [True])
    with pytest.raises(RationalesError, match="one correctness flag per confidence"):
        expected_calibration_error([0.5, 0.5], [True])
    with pytest.raises(RationalesError, match="at least 1"):
        reliability_bins([0.5], [True], n_bins=0)


@pytest.mark.parametrize("text,value", [
    ("The answer is 15.\nConfidence: 85%", 0.85),
    ("confidence: 0.85", 0.85),
    ("I am 90% sure of this.", 0.9),
    ("85 percent confident", 0.85),
    ("Confidence level: about 70 %", 0.7),
    ("Confidence: 8/10", 0.8),
    ("My confidence is 7 out of 10.", 0.7),
    ("Confidence: high. Step 2: 3 + 4 = 7", None),
    ("Confidence: 40%\nOn reflection, confidence: 60%", 0.6),  # the last statement wins
    ("Confidence: high", None),
    ("Confidence: 150%", None),
    ("The answer is 15.", None),
])
def test_parse_verbal_confidence(text, value):
    assert parse_verbal_confidence(text) == (pytest.approx(value) if value is not None else None)


def test_confidence_line_is_not_read_as_the_answer():
    p = Problem.make("q", "15", answer_type="number")
    text = "Step 1: 7 + 8 = 15.\nThe answer is 15.\nConfidence in my answer: 80%"
    assert strip_confidence(text) == "Step 1: 7 + 8 = 15.\nThe answer is 15."
    r = Rationale(id="r", problem_id=p.id, prompt_id="x", model="m", text=text, answer="80%", correct=False)
    verbal_scores(p, [r])
    assert r.answer == "15" and r.correct is True and r.score("verbal_confidence") == 0.8


def test_agreement_scores_are_vote_shares_of_each_answer():
    rs = [Rationale(id=f"r{i}", problem_id="p", prompt_id="q", model="m", answer=a)
          for i, a in enumerate(["15", "15.0", "9", None])]
    agreement_scores(rs)
    assert [r.score("agreement") for r in rs] == [pytest.approx(2 / 3), pytest.approx(2 / 3), pytest.approx(1 / 3),
                                                 None]


def test_calibration_method_on_fake(tmp_path, store):
    assert "calibration" in METHODS
    p1 = Problem.make("What is 7 + 8?", "15", answer_type="number", source="t")
    p2 = Problem.make("What is 2 + 2?", "4", answer_type="number", source="t")

    def script(prompt, seed, index):
        if "Confidence:" in prompt:  # the verbal-confidence template
            return ("7 + 8 = 15.\nThe answer is 15.\nConfidence: 90%" if "7 + 8" in prompt
                    else "2 + 2 = 5.\nThe answer is 5.\nConfidence: I am not sure")
        if "7 + 8" in prompt:
            return ["The answer is 15.", "The answer is 15.", "The answer is 15.", "The answer is 14."][index]
        return ["The answer is 5.", "The answer is 5.", "The answer is 4.", "The answer is 5."][index]

    ctx = MethodContext(problems=[p1, p2], backend=FakeBackend(script=script), store=store, out=tmp_path,
                        samples=4, options={"bins": 2})
    s = method_function("calibration")(ctx)
    write_report(s, ctx.out)
    # vote: p1 -> 15 (share .75, right), p2 -> 5 (share .75, wrong): one bin, mean conf .75, acc .5
    assert s["ece_vote"] == pytest.approx(0.25)
    # verbal: p1 says 90% and is right -> |1 - .9| = .1; p2 unparsed and left out
    assert s["ece_verbal"] == pytest.approx(0.1)
    assert s["verbal_parsed"] == 1 and s["verbal_unparsed"] == 1
    agree = s["calibration"]["sample agreement"]
    # per sample: p1 three at .75 (right) + one at .25 (wrong); p2 three at .75 (wrong) + one at .25 (right)
    # bin [0,.5): conf .25, acc 1/2 -> .25 * 2/8; bin [.5,1]: conf .75, acc 3/6 -> .25 * 6/8
    assert agree["n"] == 8 and agree["ece"] == pytest.approx(0.25)
    html = (tmp_path / "calibration.html").read_text()
    assert "<img" in html and "ECE" in html


def test_main_run_summary_and_report_have_vote_calibration(tmp_path, store):
    from rationales.jobs.run import RunConfig, run

    p1 = Problem.make("What is 7 + 8?", "15", answer_type="number", source="t")
    p2 = Problem.make("What is 2 + 2?", "4", answer_type="number", source="t")
    script = {"7 + 8": ["The answer is 15.", "The answer is 15.", "The answer is 14.", "The answer is 15."],
              "2 + 2": ["The answer is 4.", "The answer is 4.", "The answer is 4.", "The answer is 4."]}
    cfg = RunConfig(task="t", backend="fake", samples=4, out=str(tmp_path))
    summary = run(cfg, FakeBackend(script=script), store, [p1, p2])
    write_report(summary, cfg.out)
    cal = summary["calibration"]
    # p1: share .75 right (bin 7), p2: share 1.0 right (bin 9) -> ECE = (.25 + 0) / 2
    assert cal["n"] == 2 and cal["ece"] == pytest.approx(0.125)
    assert cal["bins"][7]["n"] == 1 and cal["bins"][9]["n"] == 1
    html = (tmp_path / "report.html").read_text()
    assert "<h2>Calibration</h2>" in html and "reliability diagram" in html


@pytest.mark.model
def test_calibration_on_the_real_model(small_model, tmp_path, store):
    problem = Problem.make("What is 7 + 8?", "15", answer_type="number", source="t")
    ctx = MethodContext(problems=[problem], backend=small_model, store=store, out=tmp_path, samples=3,
                        max_tokens=96)
    s = method_function("calibration")(ctx)
    write_report(s, ctx.out)
    vote = s["calibration"]["vote share (vote@3)"]
    assert vote["n"] == 1 and 0.0 <= vote["ece"] <= 1.0
    assert s["verbal_parsed"] + s["verbal_unparsed"] == 1
    verbal = store.rationales(problem_id=problem.id, method="cot_confidence")
    assert len(verbal) == 1 and any(sc.kind == "verbal_confidence" for sc in verbal[0].scores)
    # the vote share is exactly the share of answered samples that agree with the vote
    samples = store.rationales(problem_id=problem.id, method="cot")
    answered = [r for r in samples if r.answer is not None]
    if answered:
        assert s["strategies"]["vote@3"]["mean_confidence"] == pytest.approx(
            max(r.score("agreement") for r in answered), abs=1e-4)
    assert (tmp_path / "calibration.html").exists()


def test_cli_run_and_method_calibration_on_fake(tmp_path, capsys):
    import json

    from rationales.cli import main

    script = tmp_path / "script.json"
    script.write_text(json.dumps({"Tom has 12": ["Step 1: 12 - 5 = 7\nStep 2: 7 + 8 = 15\nThe answer is 15.",
                                                 "12 - 5 = 7, 7 + 8 = 16. The answer is 16.", "The answer is 15."],
                                  "*": ["I do not know."]}))
    common = ["demo", "--backend", "fake", "--model", str(script), "-n", "3", "-k", "2",
              "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "out"), "--json"]
    assert main(["run", *common]) == 0
    s = json.loads(capsys.readouterr().out)
    # problem 1: vote 15 with share 2/3, right (bin 6); problem 2: no answer, confidence 0, wrong (bin 0)
    assert s["calibration"]["ece"] == pytest.approx((1 - 2 / 3) / 2, abs=1e-4)
    assert "<h2>Calibration</h2>" in (tmp_path / "out" / "report.html").read_text()
    assert main(["run", *common, "--method", "calibration"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["samples_cached"] == 6  # the CoT samples of `run` are reused
    assert m["ece_vote"] == pytest.approx(s["calibration"]["ece"], abs=1e-4)
    assert m["verbal_parsed"] == 0 and m["verbal_unparsed"] == 2 and m["ece_verbal"] is None
    assert (tmp_path / "out" / "calibration.html").exists()
