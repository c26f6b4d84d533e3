"""SQLite store: content-addressed, crash-safe, shared by every run.

One file per project directory, WAL mode. Records are kept as JSON next to the columns that
queries need. Every ``put_*`` is its own transaction (or one transaction per batch), so a
``kill -9`` loses at most the sample in flight. Several runs with different settings share one
store: rows are keyed by content-hash ids, so they never clobber each other.

Tables: problems, rationales (steps and checks inside the record, plus a flat ``checks`` table
for queries), scores, runs.

Robustness: a record is validated before it is written (it must read back), lone surrogates in
text become U+FFFD, and a stored row that does not parse (garbage JSON, an older or foreign
schema) is skipped by every reader and reported once by table and id (``Store.skipped``, and the
``on_skip`` callback the CLI prints with), so one bad row never stops a command.
``Store(path, create=False)`` opens only an existing store (read-only commands use it, so a
mistyped ``--store`` is an error instead of a new empty store).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import RationalesError
from .records import Check, Problem, Rationale, content_hash

M = TypeVar("M", bound=BaseModel)

SCHEMA = """
CREATE TABLE IF NOT EXISTS problems (
    id TEXT PRIMARY KEY, source TEXT, question TEXT, gold TEXT, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rationales (
    id TEXT PRIMARY KEY, problem_id TEXT NOT NULL, prompt_id TEXT, model TEXT, method TEXT,
    temperature REAL, sample_index INTEGER, answer TEXT, correct INTEGER, outcome TEXT,
    tokens INTEGER, parent_id TEXT, created REAL, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rationales_problem ON rationales(problem_id);
CREATE INDEX IF NOT EXISTS rationales_parent ON rationales(parent_id);
-- the review app's and the exports' common filters (method, correctness) in list order, without a table scan
CREATE INDEX IF NOT EXISTS rationales_filter ON rationales(method, correct, problem_id, sample_index, id);
CREATE INDEX IF NOT EXISTS rationales_order ON rationales(problem_id, method, sample_index, id);
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


_LONE_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
                             r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _json_text(value: Any) -> str:
    """JSON text whose strings hold no lone surrogates (they become U+FFFD; pairs stay)."""
    return _LONE_SURROGATE.sub(r"\\ufffd", json.dumps(value, default=str))


def describe_sqlite_error(path: str | Path | None, e: BaseException) -> str:
    """One line for a SQLite failure that says what happened and what to do: a corrupted file
    is not a full disk."""
    msg = str(e)
    low = msg.lower()
    where = f"store {path}" if path else "the store"
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return (f"{where} is damaged ({msg}). Recover what it holds with `sqlite3 OLD.sqlite .recover | sqlite3 "
                "NEW.sqlite` and pass --store NEW.sqlite, or start a new store.")
    if "full" in low:
        return (f"{where} could not be written: disk full ({msg}). Free disk space and run the same command again: "
                "every finished sample is kept.")
    if "locked" in low or "busy" in low:
        return (f"{where} is locked by another process ({msg}); wait for it to finish, or use another --store.")
    if "readonly" in low or "read-only" in low:
        return f"{where} is read-only ({msg}); make it writable or choose another --store."
    if "unable to open" in low:
        return f"Cannot open {where} ({msg}); check the path and that its folder exists and is writable."
    return (f"{where} failed ({msg}); check that it is a rationales store on a writable disk, then run the same "
            "command again: finished samples are kept.")


class Store:
    """The project's SQLite store. ``Store(path)`` creates it if needed."""

    def __init__(self, path: str | Path = "rationales.sqlite", *, synchronous: str = "NORMAL",
                 create: bool = True, on_skip: Callable[[str, str, str], None] | None = None):
        self.path = Path(path)
        self.skipped: dict[tuple[str, str], str] = {}
        self.on_skip = on_skip
        self.conn = None  # type: ignore[assignment]
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"Unknown synchronous mode '{synchronous}': use OFF, NORMAL, FULL or EXTRA.")
        try:
            exists = self.path.exists()
            is_dir = self.path.is_dir()
        except (OSError, ValueError) as e:
            raise StoreError(f"Cannot use {path!s} as a store path ({e}).") from e
        if is_dir:
            raise StoreError(f"The store path {self.path} is a directory; pass --store with a .sqlite file path.")
        if not create and not exists:
            raise StoreError(f"No such store: {self.path}. Pass --store with the file an earlier run wrote "
                             "(commands that sample, such as `rationales run`, create it).")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={synchronous}")
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            if self.conn is not None:
                self.conn.close()
                self.conn = None  # type: ignore[assignment]
            raise StoreError(f"Cannot open store {self.path}: {describe_sqlite_error(None, e)} Pass --store with "
                             "a path to a rationales SQLite file (or a new path to create one).") from e
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
        return describe_sqlite_error(self.path, e)

    # ------------------------------------------------------------ reading rows safely
    def _skip(self, table: str, rid: str, why: str) -> None:
        key = (table, str(rid))
        if key not in self.skipped:
            self.skipped[key] = why
            if self.on_skip is not None:
                self.on_skip(table, str(rid), why)

    def _parse(self, model: type[M], table: str, rid: str, blob: Any) -> M | None:
        """A row's record, or None (skipped and reported) when it does not parse."""
        try:
            if not isinstance(blob, (str, bytes)):
                raise ValueError(f"stored value is {type(blob).__name__}, not JSON text")
            return model.model_validate_json(blob)
        except (ValidationError, ValueError, RecursionError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            if isinstance(e, ValidationError) and e.errors():
                err = e.errors()[0]
                first = f"{'.'.join(str(x) for x in err.get('loc', ()))}: {err.get('msg', '')}".strip(": ")
            self._skip(table, rid, first[:200])
            return None

    def _json(self, table: str, rid: str, blob: Any, default: Any = None) -> Any:
        if blob is None:
            return default
        try:
            return json.loads(blob)
        except (ValueError, TypeError, RecursionError) as e:
            self._skip(table, rid, f"not valid JSON ({str(e)[:120]})")
            return default

    @staticmethod
    def _dump(record: M) -> tuple[str, M]:
        """JSON of a record that is sure to read back, and the record as it will read back
        (lone surrogates become U+FFFD)."""
        try:
            blob = record.model_dump_json()
        except Exception:  # pydantic refuses lone surrogates
            blob = _json_text(record.model_dump(mode="python"))
        try:
            back = type(record).model_validate_json(blob)
        except ValidationError as e:
            err = e.errors()[0]
            raise StoreError(f"Refusing to store {type(record).__name__.lower()} {getattr(record, 'id', '?')}: it "
                             f"would not read back ({'.'.join(str(x) for x in err.get('loc', ()))}: "
                             f"{err.get('msg')}); a non-finite number in its settings?") from e
        return blob, back

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
        rows = []
        for p in problems:
            blob, q = self._dump(p)
            rows.append((q.id, q.source, q.question, q.gold, blob))
        with self.transaction() as c:
            # an upsert keeps the row (and its rowid: the task's order, which listings follow) in place
            c.executemany("INSERT INTO problems VALUES (?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                          "source=excluded.source, question=excluded.question, gold=excluded.gold, "
                          "json=excluded.json", rows)

    def get_problem(self, pid: str) -> Problem | None:
        row = self.conn.execute("SELECT json FROM problems WHERE id=?", (pid,)).fetchone()
        return self._parse(Problem, "problems", pid, row[0]) if row else None

    def problems(self, source: str | None = None) -> list[Problem]:
        q, args = "SELECT id, json FROM problems", ()
        if source is not None:
            q, args = q + " WHERE source=?", (source,)
        out = (self._parse(Problem, "problems", r[0], r[1]) for r in self.conn.execute(q + " ORDER BY rowid", args))
        return [p for p in out if p is not None]

    # ------------------------------------------------------------ rationales
    @classmethod
    def _rationale_row(cls, r: Rationale) -> tuple:
        blob, clean = cls._dump(r)
        return (clean.id, clean.problem_id, clean.prompt_id, clean.model, clean.method, clean.sampling.temperature,
                clean.sample_index, clean.answer, None if clean.correct is None else int(clean.correct),
                clean.outcome, clean.tokens, clean.parent_id, time.time(), blob), clean

    def _write_rationale(self, c: sqlite3.Connection, r: Rationale, *, keep_human: bool = True) -> None:
        """Write one rationale inside the caller's transaction. ``keep_human``: human step
        labels already stored for it (``Check(kind="human")``) that the record does not carry
        are kept, so a job that read the rationale before someone labelled it in the review
        app (``verify``, ``patch`` ...) never erases that label when it writes back. The review
        app itself, which reads inside the same transaction, passes ``keep_human=False``."""
        row, r = self._rationale_row(r)
        if keep_human:
            r = self._with_stored_human_labels(c, r)
            row = self._rationale_row(r)[0]
        c.execute("INSERT OR REPLACE INTO rationales VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
        c.execute("DELETE FROM checks WHERE rationale_id=?", (r.id,))
        c.executemany(
            "INSERT OR REPLACE INTO checks VALUES (?,?,?,?,?,?,?)",
            [(r.id, s.index, ch.kind, ch.by, ch.verdict, ch.score, _json_text(ch.detail))
             for s in r.steps for ch in s.checks])
        c.execute("DELETE FROM scores WHERE rationale_id=?", (r.id,))
        c.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?)",
                      [(r.id, s.kind, s.by, s.value, _json_text(s.detail)) for s in r.scores])

    @staticmethod
    def _with_stored_human_labels(c: sqlite3.Connection, r: Rationale) -> Rationale:
        stored = c.execute("SELECT step_index, by, verdict, score, detail FROM checks "
                           "WHERE rationale_id=? AND kind='human'", (r.id,)).fetchall()
        if not stored:
            return r
        have = {(s.index, ch.by) for s in r.steps for ch in s.checks if ch.kind == "human"}
        by_index = {s.index: s for s in r.steps}
        extra = [x for x in stored if (x[0], x[1]) not in have and x[0] in by_index]
        if not extra:
            return r
        r = r.model_copy(deep=True)
        by_index = {s.index: s for s in r.steps}
        for idx, by, verdict, score, detail in extra:
            try:
                d = json.loads(detail) if detail else {}
            except ValueError:
                d = {}
            by_index[idx].checks.append(Check(kind="human", by=by, verdict=verdict, score=score,
                                              detail=d if isinstance(d, dict) else {}))
        return r

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
        return self._parse(Rationale, "rationales", rid, row[0]) if row else None

    def get_rationales(self, ids: Iterable[str]) -> dict[str, Rationale]:
        ids = list(ids)
        out: dict[str, Rationale] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = f"SELECT id, json FROM rationales WHERE id IN ({','.join('?' * len(chunk))})"
            for rid, blob in self.conn.execute(q, chunk):
                r = self._parse(Rationale, "rationales", rid, blob)
                if r is not None:
                    out[rid] = r
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
        q = "SELECT id, json FROM rationales" + (" WHERE " + " AND ".join(where) if where else "")
        out = (self._parse(Rationale, "rationales", r[0], r[1]) for r in self.conn.execute(q + " ORDER BY rowid", args))
        return [r for r in out if r is not None]

    def count(self, table: str = "rationales") -> int:
        if table not in {"problems", "rationales", "checks", "scores", "runs", "blobs"}:
            raise StoreError(f"Unknown table {table}")
        return self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    # ------------------------------------------------------------ runs and blobs
    def start_run(self, command: str, config: dict[str, Any]) -> str:
        run_id = content_hash("run", command, config, time.time())
        with self.transaction() as c:
            c.execute("INSERT INTO runs VALUES (?,?,?,?,?,?)",
                      (run_id, command, _json_text(config), time.time(), None, None))
        return run_id

    def finish_run(self, run_id: str, summary: dict[str, Any]) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET finished=?, summary=? WHERE id=?",
                      (time.time(), _json_text(summary), run_id))

    def runs(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT id, command, config, started, finished, summary FROM runs ORDER BY started")
        out = []
        for r in rows:
            config = self._json("runs", r[0], r[2] or "{}", default=None)
            summary = self._json("runs", r[0], r[5], default=None) if r[5] else None
            if config is None or not isinstance(r[3], (int, float)) or (r[4] is not None and not isinstance(r[4], (int, float))):
                self._skip("runs", r[0], "unreadable run record")
                continue
            out.append({"id": r[0], "command": r[1], "config": config, "started": r[3], "finished": r[4],
                        "summary": summary})
        return out

    def put_blob(self, key: str, kind: str, value: Any) -> None:
        """Store any JSON value under a key (search trees, demonstration sets, ...)."""
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO blobs VALUES (?,?,?,?)",
                      (key, kind, _json_text(value), time.time()))

    def get_blob(self, key: str) -> Any:
        row = self.conn.execute("SELECT json FROM blobs WHERE key=?", (key,)).fetchone()
        return self._json("blobs", key, row[0]) if row else None

    def blobs(self, kind: str) -> list[tuple[str, Any]]:
        out = []
        for k, v in self.conn.execute("SELECT key, json FROM blobs WHERE kind=? ORDER BY created", (kind,)):
            value = self._json("blobs", k, v, default=_BAD)
            if value is not _BAD:
                out.append((k, value))
        return out


_BAD = object()
