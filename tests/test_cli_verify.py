"""`rationales verify` and `rationales processbench` end to end on the fake backend."""

from __future__ import annotations

import json

import pytest

from rationales.backends.fake import FakeBackend
from rationales.cli import main
from rationales.generate import cot_specs, generate
from rationales.records import Problem
from rationales.store import Store

QUESTION = "Tom has 3 bags with 4 apples each. He eats 2. How many apples are left?"
WRONG = "Step 1: 3 * 4 = 12 apples.\nStep 2: 12 - 2 = 9 apples.\nThe answer is 9."
RIGHT = "Step 1: 3 * 4 = 12 apples.\nStep 2: 12 - 2 = 10 apples.\nThe answer is 10."
# dict scripts match the first key found in the prompt: judgements, then rollouts, then rationales
SCRIPT = {"check this one": ["<verify>ok</verify><judge>fine</judge><output>\\boxed{+}"],
          "Step 1: 3 * 4 = 12 apples.": ["The answer is 10.", "The answer is 9."],
          "How many apples are left?": [WRONG, RIGHT]}


@pytest.fixture()
def setup(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        problem = Problem.make(QUESTION, 10, answer_type="number")
        rs = generate(cot_specs([problem], n=2, temperature=0.7), FakeBackend(script=SCRIPT, model=str(script)), st)[0]
        assert [r.answer for r in rs] == ["9", "10"]
    return path, script, [r.id for r in rs]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_tool_and_mc_saves_checks_and_writes_report(tmp_path, setup, capsys):
    path, script, (wrong_id, right_id) = setup
    code, out, err = cli(capsys, "verify", "--store", path, "--backend", "fake", "--model", script, "--checkers",
                         "tool,mc", "--mc-samples", "2", "--out", tmp_path / "out", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rationales"] == 2 and summary["steps"] == 4 and summary["checkers"] == ["tool", "mc"]
    # wrong rationale: step 1 right (tool +, mc 1/2), step 2 "12 - 2 = 9" (tool -, ends wrong: mc -)
    # right rationale: every verdict +1 -> all four steps agree
    assert summary["verdicts"]["tool"] == {"+1": 3, "-1": 1, "undecided": 0, "unchecked": 0}
    assert summary["verdicts"]["mc"] == {"+1": 3, "-1": 1, "undecided": 0, "unchecked": 0}
    assert {k: summary["consensus"][k] for k in ("agree", "disagree", "single", "none")} == {
        "agree": 4, "disagree": 0, "single": 0, "none": 0}
    with Store(path) as st:
        wrong = st.get_rationale(wrong_id)
        assert [s.verdict("tool") for s in wrong.steps] == [1, -1]
        assert [s.verdict("mc") for s in wrong.steps] == [1, -1]
        assert [c.score for c in wrong.steps[0].checks if c.kind == "mc"] == [0.5]
        assert [s.verdict("consensus") for s in wrong.steps] == [1, -1]
        assert len(st.rationales(method="mc_rollout")) == 4  # 1 non-final step x 2 rollouts x 2 rationales
        assert st.conn.execute("SELECT COUNT(*) FROM checks WHERE kind='tool'").fetchone()[0] == 4
    html = (tmp_path / "out" / "verify.html").read_text()
    assert "every verdict +1" in html and "Agreement" in html
    assert "class='step bad'" in html and "class='step good'" in html
    assert "12 - 2 = 9" in html and "tool/mc: agree / disagree" in html
    # a second run re-scores the same rationales (not the stored rollouts) and generates nothing new
    code, out, _ = cli(capsys, "verify", "--store", path, "--backend", "fake", "--model", script, "--checkers",
                       "tool,mc", "--mc-samples", "2", "--out", tmp_path / "out", "--json")
    assert code == 0 and json.loads(out)["rationales"] == 2
    with Store(path) as st:
        assert len(st.rationales(method="mc_rollout")) == 4


def test_verify_mc_binary_search_labels_with_fewer_rollouts(tmp_path, setup, capsys):
    """``--mc-search binary``: the right rationale's steps are +1 and the wrong one's last step
    -1 for free; its first error is searched from the one non-final step (2 rollouts)."""
    path, script, (wrong_id, right_id) = setup
    code, out, err = cli(capsys, "verify", "--store", path, "--backend", "fake", "--model", script, "--checkers",
                         "mc", "--mc-search", "binary", "--mc-samples", "2", "--out", tmp_path / "out", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["mc_search"]["searched"] == 1 and summary["mc_search"]["free_positive"] == 2
    assert summary["mc_search"]["rollouts"] <= 2  # a probe stops at its first success
    with Store(path) as st:
        assert [s.verdict("mc") for s in st.get_rationale(right_id).steps] == [1, 1]
        assert [s.verdict("mc") for s in st.get_rationale(wrong_id).steps] == [1, -1]
        assert len(st.rationales(method="mc_rollout")) == summary["mc_search"]["rollouts"]
    code, out, err = cli(capsys, "verify", "--store", path, "--checkers", "mc", "--mc-search", "nope")
    assert code != 0 and "MC search" in (out + err) and "Traceback" not in (out + err)


def test_verify_prm_and_genprm_table(tmp_path, setup, capsys):
    path, script, (wrong_id, _) = setup
    code, out, err = cli(capsys, "verify", "--store", path, "--backend", "fake", "--model", script, "--checkers",
                         "tool,prm,genprm", "--out", tmp_path / "out", "--limit", "1")
    assert code == 0, err
    assert "per-step verdicts" in out and "agreement between checkers" in out
    header = [line.split() for line in out.splitlines() if "rationale" in line and "consensus" in line][0]
    assert header == ["rationale", "step", "text", "tool", "mc", "prm", "genprm", "consensus"]
    assert wrong_id[:8] in out and "genprm verdicts parsed: 2, unparsed: 0" in out
    with Store(path) as st:
        r = [x for x in st.rationales(method="cot") if x.answer == "9"][0]
        prm = [c for c in r.steps[0].checks if c.kind == "prm"]
        assert {c.by for c in prm} == {"llm-prm:" + str(script), "genprm:" + str(script)}
        for c in prm:
            assert 0.0 <= c.score <= 1.0 and c.verdict == (1 if c.score >= 0.5 else -1)
        assert len(st.rationales(method="genprm")) == 2


def test_tool_checker_needs_no_backend(tmp_path, setup, capsys):
    path, _, _ = setup
    code, out, err = cli(capsys, "verify", "--store", path, "--backend", "no-such-backend", "--checkers", "tool",
                         "--out", tmp_path / "out", "--json")
    assert code == 0, err
    assert json.loads(out)["verdicts"]["tool"]["-1"] == 1


def test_verify_bad_input(tmp_path, setup, capsys):
    path, script, _ = setup
    code, out, err = cli(capsys, "verify", "--store", tmp_path / "missing.sqlite", "--checkers", "tool")
    assert code == 2 and err.startswith("error: No such store") and err.count("\n") == 1
    Store(tmp_path / "empty.sqlite").close()
    code, out, err = cli(capsys, "verify", "--store", tmp_path / "empty.sqlite", "--checkers", "tool")
    assert code == 2 and err.startswith("error: No stored rationales in") and err.count("\n") == 1
    code, _, err = cli(capsys, "verify", "--store", path, "--method", "mistakes", "--checkers", "tool")
    assert code == 2 and "with method 'mistakes'" in err
    code, _, err = cli(capsys, "verify", "--store", path, "--checkers", "tool,pmr")
    assert code == 2 and "Unknown checker 'pmr'. Did you mean 'prm'?" in err
    code, _, err = cli(capsys, "verify", "--store", path, "--rule", "unanimous")
    assert code == 2 and "Unknown consensus rule" in err


def test_processbench_build_save_and_file(tmp_path, capsys):
    saved = tmp_path / "pb.jsonl"
    code, out, err = cli(capsys, "processbench", "--build", "8", "--save", saved, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert (s["n_error"], s["n_correct"]) == (4, 4) and s["error_acc"] == 1.0 and s["detector"] == "tool"
    assert len(saved.read_text().splitlines()) == 8
    code, out, err = cli(capsys, "processbench", saved)
    assert code == 0, err
    assert "ProcessBench-style scores" in out and "100.0" in out
    code, _, err = cli(capsys, "processbench")
    assert code == 2 and "Give either a ProcessBench JSONL FILE or --build N" in err
    code, _, err = cli(capsys, "processbench", tmp_path / "missing.jsonl")
    assert code == 2 and "not found" in err
    code, _, err = cli(capsys, "processbench", saved, "--calibrate", saved)
    assert code == 2 and "the tool detector has none" in err


def test_processbench_with_a_prm_detector(tmp_path, capsys):
    saved = tmp_path / "pb.jsonl"
    saved.write_text(json.dumps({"problem": "2 * 3?", "steps": ["2 * 3 = 6", "The answer is 6."], "label": -1}) + "\n")
    code, out, err = cli(capsys, "processbench", saved, "--detector", "prm", "--backend", "fake", "--json")
    assert code == 0, err
    s = json.loads(out)
    # "prm" is the old name of the llm step scorer; the result names the scorer canonically
    assert s["n_correct"] == 1 and s["correct_acc"] in (0.0, 1.0) and s["detector"] == "llm"
