"""Model text, task names and paths are printed as text, never as Rich markup: a rationale
with ``[/INST]`` or ``[/]`` and a store or task path with ``[/]`` print as they are, with
no MarkupError (issue 9 item 5)."""

from __future__ import annotations

import json

import pytest

from rationales.cli import main

MARKUP = "[/INST] 3 + 4 = 7 [/] [bold]loud[/bold]. The answer is 7."


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def odd(tmp_path):
    """A task file and a store under a directory whose path contains ``[/]``."""
    root = tmp_path / "a[" / "]b"
    root.mkdir(parents=True)
    task = root / "tasks.jsonl"
    task.write_text(json.dumps({"question": "What is 3 + 4 [/]?", "answer": "7"}) + "\n")
    script = root / "script.json"
    script.write_text(json.dumps({"*": [MARKUP]}))
    return root, task, script


def test_run_and_verify_print_markup_in_model_text_and_paths_as_text(odd, capsys):
    root, task, script = odd
    store, out = root / "s.sqlite", root / "out"
    assert "[/]" in str(store)
    code, stdout, err = cli(capsys, "run", task, "--backend", "fake", "--model", script, "-n", "2",
                            "--store", store, "--out", out)
    assert code == 0, err
    assert str(store) in stdout and str(task) in err  # the header and the store line, verbatim
    code, stdout, err = cli(capsys, "verify", "--store", store, "--checkers", "tool", "--out", out)
    assert code == 0, err
    assert "[/INST]" in stdout and "[bold]loud[/bold]" in stdout  # the step text, not styled
    code, stdout, err = cli(capsys, "runs", "--store", store)
    assert code == 0 and "run" in stdout, err


def test_compare_and_method_print_paths_as_text(odd, capsys):
    root, task, script = odd
    code, stdout, err = cli(capsys, "compare", task, "--backend", "fake", "--model", script, "--strategies",
                            "greedy,vote", "--budget", "60", "--prm", "tool", "--store", root / "c.sqlite",
                            "--out", root / "o")
    assert code == 0, err
    assert str(root / "c.sqlite") in stdout and str(task) in err
    code, stdout, err = cli(capsys, "run", task, "--method", "calibration", "-O", "verbal=false", "--backend",
                            "fake", "--model", script, "-n", "2", "--store", root / "m.sqlite", "--out", root / "o")
    assert code == 0, err
    assert str(task) in err and "[/]" in stdout


def test_processbench_prints_a_source_path_as_text(odd, capsys, tmp_path):
    root, _, _ = odd
    items = root / "pb.jsonl"
    items.write_text(json.dumps({"id": "x", "problem": "1 + 1 [/]", "steps": ["1 + 1 = 3 [/INST]"], "label": 0,
                                 "answer": "2"}) + "\n")
    code, stdout, err = cli(capsys, "processbench", items)
    assert code == 0, err
    assert "[/]" in stdout
