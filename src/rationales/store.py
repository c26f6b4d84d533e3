"""SQLite store: content-addressed, crash-safe, shared by every run.

One file per project directory, WAL mode. Records are kept as JSON next to the columns that
queries need. Every ``put_*`` is its own transaction (or one transaction per batch), so a
``kill -9`` loses at most the sample in flight. Several runs with different settings share one
store: rows are keyed by content-hash ids, so they never clobber each other.

Tables: problems, rationales (steps and checks inside the record, plus a flat ``checks`` table
for queries), scores, runs.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import RationalesError
from .records import Problem, Rationale, content_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS problems (
    id TEXT PRIMARY KEY, source TEXT, question TEXT, gold TEXT, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rationales (
    id TEXT PRIMARY KEY, problem_id TEXT NOT NULL, prompt_id TEXT, model TEXT, method TEXT,
    temperature REAL, sample_index INTEGER, answer TEXT, correct INTEGER, outcome TEXT,
    tokens INTEGER, parent_id TEXT, created REAL, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rationales_problem ON rationales(problem_id);
CREATE INDEX IF NOT EXISTS rationales_parent ON rationales(parent_id);
CREATE TABLE IF NOT EXISTS checks (
    rationale_id TEXT NOT NULL, step_index INTEGER NOT NULL, kind TEXT NOT NULL, by TEXT,
    verdict INTEGER, score REAL, detail TEXT,
    PRIMARY KEY (rationale_id, step_index, kind, by));
CREATE TABLE IF NOT EXISTS scores (
    rationale_id TEXT NOT NULL, kind TEXT NOT NULL, by TEXT NOT NULL, value REAL, detail TEXT,
    PRIMARY KEY (rationale_id, kind, by));
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, command TEXT, config TEXT, started REAL, finished REAL, summary TEXT);
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY, kind TEXT, json TEXT NOT NULL, created REAL);
"""


class StoreError(RationalesError):
    pass


class Store:
    """The project's SQLite store. ``Store(path)`` creates it if needed."""

    def __init__(self, path: str | Path = "rationales.sqlite", *, synchronous: str = "NORMAL"):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={synchronous}")
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"Cannot open store {self.path}: {e}. Pass --store with a path to a "
                             "rationales SQLite file (or a new path to create one).") from e
        except OSError as e:
            raise StoreError(f"Cannot create store at {self.path}: {e}. Choose a writable --store path.") from e

    # ------------------------------------------------------------ plumbing
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreError(f"Store {self.path} is busy or unwritable ({e}).") from e
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if self.conn.in_transaction:  # SQLite already rolled back on SQLITE_FULL
                self.conn.execute("ROLLBACK")
            raise StoreError(self._write_error(e)) from e
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def _write_error(self, e: sqlite3.OperationalError) -> str:
        if "full" in str(e):
            return (f"Store {self.path} could not be written: disk full ({e}). Free disk space and run the "
                    "same command again: every finished sample is kept.")
        return (f"Could not write to store {self.path} ({e}); check it is writable, then run the same "
                "command again: finished samples are kept.")

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()
            self.conn = None  # type: ignore[assignment]

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ problems
    def put_problems(self, problems: Iterable[Problem]) -> None:
        rows = [(p.id, p.source, p.question, p.gold, p.model_dump_json()) for p in problems]
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO problems VALUES (?,?,?,?,?)", rows)

    def get_problem(self, pid: str) -> Problem | None:
        row = self.conn.execute("SELECT json FROM problems WHERE id=?", (pid,)).fetchone()
        return Problem.model_validate_json(row[0]) if row else None

    def problems(self, source: str | None = None) -> list[Problem]:
        q, args = "SELECT json FROM problems", ()
        if source is not None:
            q, args = q + " WHERE source=?", (source,)
        return [Problem.model_validate_json(r[0]) for r in self.conn.execute(q + " ORDER BY rowid", args)]

    # ------------------------------------------------------------ rationales
    @staticmethod
    def _rationale_row(r: Rationale) -> tuple:
        return (r.id, r.problem_id, r.prompt_id, r.model, r.method, r.sampling.temperature,
                r.sample_index, r.answer, None if r.correct is None else int(r.correct), r.outcome,
                r.tokens, r.parent_id, time.time(), r.model_dump_json())

    def _write_rationale(self, c: sqlite3.Connection, r: Rationale) -> None:
        c.execute("INSERT OR REPLACE INTO rationales VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                  self._rationale_row(r))
        c.execute("DELETE FROM checks WHERE rationale_id=?", (r.id,))
        c.executemany(
            "INSERT OR REPLACE INTO checks VALUES (?,?,?,?,?,?,?)",
            [(r.id, s.index, ch.kind, ch.by, ch.verdict, ch.score, json.dumps(ch.detail, default=str))
             for s in r.steps for ch in s.checks])
        c.execute("DELETE FROM scores WHERE rationale_id=?", (r.id,))
        c.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?)",
                      [(r.id, s.kind, s.by, s.value, json.dumps(s.detail, default=str)) for s in r.scores])

    def put_rationale(self, r: Rationale) -> None:
        """Commit one rationale (with its steps, checks and scores) in its own transaction."""
        with self.transaction() as c:
            self._write_rationale(c, r)

    def put_rationales(self, rs: Sequence[Rationale]) -> None:
        with self.transaction() as c:
            for r in rs:
                self._write_rationale(c, r)

    def get_rationale(self, rid: str) -> Rationale | None:
        row = self.conn.execute("SELECT json FROM rationales WHERE id=?", (rid,)).fetchone()
        return Rationale.model_validate_json(row[0]) if row else None

    def get_rationales(self, ids: Iterable[str]) -> dict[str, Rationale]:
        ids = list(ids)
        out: dict[str, Rationale] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = f"SELECT id, json FROM rationales WHERE id IN ({','.join('?' * len(chunk))})"
            for rid, blob in self.conn.execute(q, chunk):
                out[rid] = Rationale.model_validate_json(blob)
        return out

    def has(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = f"SELECT id FROM rationales WHERE id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self.conn.execute(q, chunk))
        return found

    def rationales(self, *, problem_id: str | None = None, method: str | None = None,
                   model: str | None = None, parent_id: str | None = None) -> list[Rationale]:
        where, args = [], []
        for col, val in (("problem_id", problem_id), ("method", method), ("model", model),
                         ("parent_id", parent_id)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        q = "SELECT json FROM rationales" + (" WHERE " + " AND ".join(where) if where else "")
        return [Rationale.model_validate_json(r[0]) for r in self.conn.execute(q + " ORDER BY rowid", args)]

    def count(self, table: str = "rationales") -> int:
        if table not in {"problems", "rationales", "checks", "scores", "runs", "blobs"}:
            raise StoreError(f"Unknown table {table}")
        return self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    # ------------------------------------------------------------ runs and blobs
    def start_run(self, command: str, config: dict[str, Any]) -> str:
        run_id = content_hash("run", command, config, time.time())
        with self.transaction() as c:
            c.execute("INSERT INTO runs VALUES (?,?,?,?,?,?)",
                      (run_id, command, json.dumps(config, default=str), time.time(), None, None))
        return run_id

    def finish_run(self, run_id: str, summary: dict[str, Any]) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET finished=?, summary=? WHERE id=?",
                      (time.time(), json.dumps(summary, default=str), run_id))

    def runs(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT id, command, config, started, finished, summary FROM runs ORDER BY started")
        return [{"id": r[0], "command": r[1], "config": json.loads(r[2] or "{}"), "started": r[3],
                 "finished": r[4], "summary": json.loads(r[5]) if r[5] else None} for r in rows]

    def put_blob(self, key: str, kind: str, value: Any) -> None:
        """Store any JSON value under a key (search trees, demonstration sets, ...)."""
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO blobs VALUES (?,?,?,?)",
                      (key, kind, json.dumps(value, default=str), time.time()))

    def get_blob(self, key: str) -> Any:
        row = self.conn.execute("SELECT json FROM blobs WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def blobs(self, kind: str) -> list[tuple[str, Any]]:
        return [(k, json.loads(v)) for k, v in
                self.conn.execute("SELECT key, json FROM blobs WHERE kind=? ORDER BY created", (kind,))]
