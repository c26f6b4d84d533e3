"""SQLite store: WAL, resume after SIGKILL, shared by several runs."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rationales.records import Problem, Rationale, Sampling, Score, Step, Check
from rationales.store import Store, StoreError


def test_wal_mode_and_roundtrip(tmp_path):
    s = Store(tmp_path / "x.sqlite")
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    p = Problem.make("q?", 1)
    s.put_problems([p])
    r = Rationale(id="r1", problem_id=p.id, prompt_id="pr", model="m", text="a",
                  steps=[Step(index=0, text="a", span=(0, 1), checks=[Check(kind="tool", verdict=-1)])],
                  scores=[Score(kind="judge", value=4.0, by="j")])
    s.put_rationale(r)
    assert s.get_rationale("r1") == r and s.get_problem(p.id) == p
    assert s.conn.execute("SELECT verdict FROM checks WHERE rationale_id='r1'").fetchone()[0] == -1
    assert s.conn.execute("SELECT value FROM scores WHERE rationale_id='r1'").fetchone()[0] == 4.0
    assert s.has(["r1", "zz"]) == {"r1"}
    s.put_blob("k", "tree", {"a": [1]})
    assert s.get_blob("k") == {"a": [1]} and s.blobs("tree") == [("k", {"a": [1]})]


def test_not_a_database(tmp_path):
    f = tmp_path / "junk.sqlite"
    f.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="Cannot open store"):
        Store(f)


def test_disk_full_keeps_committed_rows(tmp_path):
    s = Store(tmp_path / "full.sqlite")
    s.conn.execute("PRAGMA max_page_count=12")  # simulate a full disk
    p = Problem.make("q", 1)
    s.put_problems([p])
    written = 0
    with pytest.raises(StoreError, match="disk full.*run the same command again"):
        for i in range(10_000):
            s.put_rationale(Rationale(id=f"r{i}", problem_id=p.id, prompt_id="x", model="m", text="x" * 500))
            written += 1
    s.close()
    assert written > 0
    with Store(tmp_path / "full.sqlite") as again:
        assert again.count() == written


CHILD = r"""
import sys
from rationales.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_cli(args, cwd, env):
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_midway_then_resume_regenerates_nothing(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"*": ["Step 1: 1 + 1 = 2\nThe answer is 2."]}))
    store = tmp_path / "s.sqlite"
    args = ["run", "demo", "--backend", "fake", "--model", str(script), "-n", "4", "-k", "5",
            "--store", str(store), "--out", str(tmp_path / "out"), "--json", "-o", "delay=0.15"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = _run_cli(args, tmp_path, env)
    deadline = time.time() + 60
    stored = 0
    while time.time() < deadline:
        time.sleep(0.2)
        if store.exists():
            with Store(store) as s:
                stored = s.count()
            if stored >= 6:
                break
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert 6 <= stored < 25, "the child should have been killed mid-way"
    with Store(store) as s:
        before = {rid: created for rid, created in s.conn.execute("SELECT id, created FROM rationales")}
    assert len(before) >= stored
    args[-1] = "delay=0"
    done = _run_cli(args, tmp_path, env)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    summary = json.loads(out)
    assert summary["samples_cached"] == len(before)
    assert summary["samples_new"] == 25 - len(before)
    with Store(store) as s:
        after = {rid: created for rid, created in s.conn.execute("SELECT id, created FROM rationales")}
    assert len(after) == 25
    assert all(after[rid] == created for rid, created in before.items())  # nothing regenerated


def _store_with_run(tmp_path):
    """A store filled by a real `rationales run` on the fake backend."""
    from rationales.cli import main

    script = tmp_path / "script.json"
    script.write_text(json.dumps({"*": ["Step 1: 2 + 2 = 4\nThe answer is 4."]}))
    path = tmp_path / "s.sqlite"
    assert main(["run", "demo", "--backend", "fake", "--model", str(script), "-n", "2", "-k", "2", "--limit", "3",
                 "--store", str(path), "--out", str(tmp_path / "out"), "--json"]) == 0
    return path


def test_unreadable_rows_are_reported_and_skipped_by_every_command(tmp_path, capsys):
    from rationales.cli import main

    path = _store_with_run(tmp_path)
    capsys.readouterr()
    with Store(path) as s:
        ids = [r[0] for r in s.conn.execute("SELECT id FROM rationales ORDER BY rowid")]
        total = len(ids)
        s.conn.execute("UPDATE rationales SET json='{garbage' WHERE id=?", (ids[0],))
        s.conn.execute("UPDATE rationales SET json=? WHERE id=?", (json.dumps({"id": ids[1], "text": 5}), ids[1]))
        s.conn.execute("UPDATE runs SET config='not json'")
        pid = s.conn.execute("SELECT id FROM problems LIMIT 1").fetchone()[0]
        s.conn.execute("UPDATE problems SET json='[]' WHERE id=?", (pid,))
    with Store(path) as s:
        assert len(s.rationales()) == total - 2
        assert {k for k in s.skipped} >= {("rationales", ids[0]), ("rationales", ids[1])}
        assert len(s.get_rationales(ids)) == total - 2 and s.get_rationale(ids[0]) is None
    out_file = tmp_path / "x.jsonl"
    assert main(["export", str(out_file), "--store", str(path)]) == 0
    _, err = capsys.readouterr()
    assert f"skipped unreadable store row rationales/{ids[0]}" in err and "Traceback" not in err
    assert main(["runs", "--store", str(path), "--json"]) == 0
    assert main(["verify", "--store", str(path), "--checkers", "tool", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "internal error" not in err


def test_missing_store_is_an_error_not_a_new_empty_store(tmp_path, capsys):
    from rationales.cli import main

    typo = tmp_path / "typo.sqlite"
    for cmd in (["export", str(tmp_path / "o.jsonl")], ["runs"], ["verify", "--checkers", "tool"]):
        assert main([*cmd, "--store", str(typo)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: No such store:") and err.count("\n") == 1, err
        assert not typo.exists()
    with pytest.raises(StoreError, match="No such store"):
        Store(typo, create=False)


def test_a_damaged_page_is_not_reported_as_a_full_disk(tmp_path, capsys):
    from rationales.cli import main

    path = _store_with_run(tmp_path)
    capsys.readouterr()
    with Store(path) as s:
        s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = s.conn.execute("PRAGMA page_size").fetchone()[0]
        root = s.conn.execute("SELECT rootpage FROM sqlite_master WHERE name='rationales'").fetchone()[0]
    with open(path, "r+b") as f:  # overwrite the rationales table's root page with garbage
        f.seek((root - 1) * page)
        f.write(b"\xde\xad\xbe\xef" * (page // 4))
    code = main(["export", str(tmp_path / "o.jsonl"), "--store", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "damaged" in err and "disk" not in err.lower().replace("disk image", ""), err
    assert ".recover" in err


def test_writes_clean_surrogates_and_refuse_rows_that_would_not_read_back(tmp_path):
    s = Store(tmp_path / "x.sqlite")
    p = Problem(id="p", question="a\ud800b", gold="\udfff")
    s.put_problems([p])
    assert s.get_problem("p").question == "a\ufffdb" and s.get_problem("p").gold == "\ufffd"
    r = Rationale(id="r", problem_id="p", prompt_id="x", model="m", text="bad \ud83d text \U0001F600",
                  steps=[Step(index=0, text="\ud800", span=(0, 1), checks=[Check(kind="tool", detail={"k": "\udc00"})])])
    s.put_rationale(r)
    back = s.get_rationale("r")
    assert back.text == "bad \ufffd text \U0001F600" and back.steps[0].text == "\ufffd"
    s.put_blob("b", "k", {"t": "\ud800", "ok": "\U0001F600"})
    assert s.get_blob("b") == {"t": "\ufffd", "ok": "\U0001F600"}
    inf = Rationale(id="r2", problem_id="p", prompt_id="x", model="m", sampling=Sampling(temperature=float("inf")))
    with pytest.raises(StoreError, match="would not read back"):
        s.put_rationale(inf)
    assert s.get_rationale("r2") is None and len(s.rationales()) == 1


def test_a_job_writing_back_a_stale_copy_keeps_labels_made_meanwhile_in_the_review_app(tmp_path):
    """verify/patch read a rationale, work on it, then write it back; a person who labelled a
    step in between (review app, another process) must not lose that label."""
    from rationales.review.labels import apply_labels
    from rationales.steps import segment
    from rationales.verify.arithmetic import check_rationale

    s = Store(tmp_path / "x.sqlite")
    p = Problem.make("What is 2 + 3, times 4?", 20)
    s.put_problems([p])
    text = "2 + 3 = 5.\n5 * 4 = 21.\nThe answer is 21."
    s.put_rationale(Rationale(id="r1", problem_id=p.id, prompt_id="pr", model="m", text=text, steps=segment(text, "lines")))
    stale = s.get_rationale("r1")  # the job's copy, read before the person labels
    apply_labels(s, "r1", "ann", {1: -1})
    apply_labels(Store(tmp_path / "x.sqlite"), "r1", "bob", {0: 1})  # a second connection, as a browser tab would be
    check_rationale(stale)  # the job's own work: tool checks on every step
    s.put_rationales([stale])
    back = s.get_rationale("r1")
    humans = {(st.index, c.by, c.verdict) for st in back.steps for c in st.checks if c.kind == "human"}
    assert humans == {(1, "ann", -1), (0, "bob", 1)}
    assert [st.verdict("tool") for st in back.steps][:2] == [1, -1]  # the job's checks landed too
    rows = s.conn.execute("SELECT step_index, by FROM checks WHERE kind='human' ORDER BY by").fetchall()
    assert rows == [(1, "ann"), (0, "bob")]
    # clearing in the review app really clears: a later stale write-back does not bring it back
    apply_labels(s, "r1", "ann", {1: None})
    s.put_rationales([stale])
    back = s.get_rationale("r1")
    assert {(st.index, c.by) for st in back.steps for c in st.checks if c.kind == "human"} == {(0, "bob")}
