"""The CLI end to end on the fake backend: run, export, listings, and bad input."""

import json
import socket

import pytest

from rationales.cli import main
from rationales.store import Store

SCRIPT = {"Tom has 12": ["Step 1: 12 - 5 = 7\nStep 2: 7 + 8 = 15\nThe answer is 15.",
                         "12 - 5 = 7, 7 + 8 = 16. The answer is 16.", "The answer is 15."],
          "*": ["I do not know."]}


@pytest.fixture()
def script(tmp_path):
    f = tmp_path / "script.json"
    f.write_text(json.dumps(SCRIPT))
    return f


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_args(tmp_path, script, *extra):
    return ["run", "demo", "--backend", "fake", "--model", script, "-n", "3", "-k", "2",
            "--store", tmp_path / "s.sqlite", "--out", tmp_path / "out", *extra]


def test_run_json_summary_then_cached(tmp_path, script, capsys):
    code, out, err = cli(capsys, *run_args(tmp_path, script, "--json"))
    assert code == 0, err
    s = json.loads(out)
    assert {"strategies", "samples_new", "samples_cached", "tokens"} <= set(s)
    assert s["samples_new"] == 8 and s["samples_cached"] == 0
    # problem 1: greedy (sample 0) says 15 (right); vote over [15, 16, 15] -> 15; problem 2: no answers
    assert s["strategies"]["greedy"] == {**s["strategies"]["greedy"], "accuracy": 0.5, "correct": 1, "n": 2}
    assert s["strategies"]["vote@3"]["accuracy"] == 0.5
    assert s["strategies"]["vote@3"]["ci_low"] < 0.5 < s["strategies"]["vote@3"]["ci_high"]
    assert s["outcomes"] == {"ok": 4, "no_answer": 4}
    assert (tmp_path / "out" / "report.html").exists()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "data:image/png;base64" in html and "vote@3" in html
    code, out, _ = cli(capsys, *run_args(tmp_path, script, "--json"))
    again = json.loads(out)
    assert again["samples_new"] == 0 and again["samples_cached"] == 8
    assert again["strategies"] == s["strategies"]


def test_run_human_summary(tmp_path, script, capsys):
    code, out, err = cli(capsys, *run_args(tmp_path, script))
    assert code == 0, err
    assert "vote@3" in out and "greedy" in out and "report:" in out and "8 new, 0 cached" in out


def test_export_jsonl_and_parquet(tmp_path, script, capsys):
    cli(capsys, *run_args(tmp_path, script, "--json"))
    code, out, _ = cli(capsys, "export", tmp_path / "r.jsonl", "--store", tmp_path / "s.sqlite")
    assert code == 0 and "wrote 8 rationales" in out
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {"question", "gold", "steps", "answer", "sampling"} <= set(rows[0])
    code, out, _ = cli(capsys, "export", tmp_path / "r.parquet", "--store", tmp_path / "s.sqlite")
    import pyarrow.parquet as pq

    assert code == 0 and pq.read_table(tmp_path / "r.parquet").num_rows == 8
    code, _, err = cli(capsys, "export", tmp_path / "r.xml", "--store", tmp_path / "s.sqlite")
    assert code != 0 and "use .jsonl or .parquet" in err


def test_listings(capsys, tmp_path, script):
    assert cli(capsys, "--help")[0] == 0
    code, out, _ = cli(capsys, "backends")
    assert code == 0 and all(n in out for n in ("llamacpp", "openai", "transformers", "fake"))
    code, out, _ = cli(capsys, "methods")
    assert code == 0 and all(n in out for n in ("mistakes", "formats", "patch", "utility", "calibration"))
    code, out, _ = cli(capsys, "tasks", "basic_arith")
    assert code == 0 and "reasoning_gym:basic_arithmetic" in out
    cli(capsys, *run_args(tmp_path, script, "--json"))
    code, out, _ = cli(capsys, "runs", "--store", tmp_path / "s.sqlite", "--json")
    runs = json.loads(out)
    assert len(runs) == 1 and runs[0]["summary"]["samples_new"] == 8


def one_line_error(code, err):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err  # one error line, last
    assert "Traceback" not in err
    return errors[0]


def test_unknown_names(capsys, tmp_path, script):
    line = one_line_error(*cli(capsys, "run", "gsm8kk", "--store", tmp_path / "s.sqlite")[::2])
    assert "Unknown task 'gsm8kk'" in line
    line = one_line_error(*cli(capsys, "run", "demo", "--backend", "fak", "--store", tmp_path / "s.sqlite")[::2])
    assert "Did you mean 'fake'" in line
    line = one_line_error(*cli(capsys, "run", "demo", "--template", "nope", "--backend", "fake",
                               "--store", tmp_path / "s.sqlite")[::2])
    assert "Unknown prompt template" in line


def test_malformed_file_and_missing_column(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x", "answer": 1}\n{oops\n')
    line = one_line_error(*cli(capsys, "run", bad, "--backend", "fake", "--store", tmp_path / "s.sqlite")[::2])
    assert "bad.jsonl line 2" in line
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("prompt,answer\nx,1\n")
    line = one_line_error(*cli(capsys, "run", nocol, "--backend", "fake", "--store", tmp_path / "s.sqlite")[::2])
    assert "--question-col" in line


def test_garbage_model_output_is_recorded_not_fatal(capsys, tmp_path):
    f = tmp_path / "garbage.json"
    f.write_text(json.dumps({"*": ["\u0000\u0001 }}{{ \\boxed{", "", "ÿÿÿ"]}))
    code, out, err = cli(capsys, "run", "demo", "--backend", "fake", "--model", f, "-n", "3", "-k", "2",
                         "--store", tmp_path / "s.sqlite", "--out", tmp_path / "o", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["outcomes"] == {"no_answer": 8} and s["strategies"]["vote@3"]["accuracy"] == 0.0


def test_bad_fake_script(capsys, tmp_path):
    f = tmp_path / "s.json"
    f.write_text("{nope")
    line = one_line_error(*cli(capsys, "run", "demo", "--backend", "fake", "--model", f,
                               "--store", tmp_path / "s.sqlite")[::2])
    assert "not valid JSON" in line


def test_dead_server(capsys, tmp_path):
    pytest.importorskip("openai", reason="the openai backend is in the [server] extra")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = cli(capsys, "run", "demo", "-k", "1", "-n", "1", "--backend", "openai",
                       "--base-url", f"http://127.0.0.1:{port}/v1", "-o", "max_retries=0", "-o", "timeout=5",
                       "--store", tmp_path / "s.sqlite", "--out", tmp_path / "o")
    line = one_line_error(code, err)
    assert f"127.0.0.1:{port}" in line


def test_disk_full_loses_no_stored_sample(capsys, tmp_path, script, monkeypatch):
    import rationales.cli.common as common  # the commands open stores through cli.common

    path = tmp_path / "s.sqlite"

    def small_store(p):
        s = Store(p)
        pages = s.conn.execute("PRAGMA page_count").fetchone()[0]
        s.conn.execute(f"PRAGMA max_page_count={pages + 12}")  # a disk that fills up mid-run
        return s

    monkeypatch.setattr(common, "open_store", small_store)
    code, _, err = cli(capsys, "run", "demo", "--backend", "fake", "--model", script, "-n", "8", "-k", "20",
                       "--store", path, "--out", tmp_path / "o")
    line = one_line_error(code, err)
    assert "disk full" in line
    with Store(path) as s:
        kept = s.count()
    assert 0 < kept < 180
    monkeypatch.undo()
    code, out, err = cli(capsys, "run", "demo", "--backend", "fake", "--model", script, "-n", "8", "-k", "20",
                         "--store", path, "--out", tmp_path / "o", "--json")
    assert code == 0, err
    assert json.loads(out)["samples_cached"] == kept


def test_run_method_reads_file_tasks_with_their_column_options(capsys, tmp_path, script):
    """`run FILE --question-col q --answer-col a --method NAME` loads the file with that mapping,
    as plain `run` does (it used to ignore the column options)."""
    f = tmp_path / "mine.jsonl"
    f.write_text(json.dumps({"q": "Tom has 12 apples. He gives 5 away and buys 8. How many?", "a": "15"}) + "\n")
    args = ["run", f, "--question-col", "q", "--answer-col", "a", "--backend", "fake", "--model", script,
            "-n", "3", "--store", tmp_path / "s.sqlite", "--out", tmp_path / "out", "--json"]
    code, out, err = cli(capsys, *args, "--method", "calibration")
    assert code == 0, err
    m = json.loads(out)
    assert m["problems"] == 1 and m["samples_new"] == 4  # 3 CoT samples + 1 verbal-confidence answer
    assert m["strategies"]["vote@3"]["accuracy"] == 1.0  # [15, 16, 15] votes 15, the file's gold
    line = one_line_error(*cli(capsys, *args[:2], *args[6:], "--method", "calibration")[::2])
    assert "--question-col" in line  # without the mapping the file has no 'question' column
