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
