"""Read-only queries of the review app over the store's tables (SQL on columns and JSON).

The store (``rationales.store.Store``) owns the schema and every write; this module only
reads: filtered rationale lists, facets for the filter form, progress and agreement counts,
search trees and the human-label export rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..data.filters import INTERNAL_METHODS
from ..errors import RationalesError
from ..store import Store

HUMAN = "human"
# records derived from another one that a reader rarely wants in the list (shown with
# ``internal=1`` or by naming the method); patches stay visible
HIDDEN_METHODS = frozenset(INTERNAL_METHODS | {"feedback"})
PAGE_SIZE = 50


class FilterError(RationalesError):
    """A filter value in the URL that cannot be used (say which and what is expected)."""


@dataclass(frozen=True)
class Filters:
    """What the rationale list shows. Empty strings / None mean "no filter"."""

    source: str = ""
    model: str = ""
    method: str = ""
    correct: str = ""  # "" | "yes" | "no" | "unknown"
    outcome: str = ""
    disagree: bool = False  # some step has a +1 and a -1 verdict (any two checkers, humans included)
    unlabelled: bool = False  # some step has no human label by the current user
    judge_min: float | None = None
    judge_max: float | None = None
    prm_min: float | None = None  # on the rationale's lowest PRM step reward
    prm_max: float | None = None
    q: str = ""  # text search in the rationale text, the question and the answer
    internal: bool = False  # also the derived records (MC rollouts, search steps, probes, model feedback)
    problem_id: str = ""
    page: int = 0

    FLOATS = ("judge_min", "judge_max", "prm_min", "prm_max")
    CORRECT = ("", "yes", "no", "unknown")

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "Filters":
        """Parse URL query parameters; a malformed number or choice is a ``FilterError``."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            raw = params.get(f.name)
            if raw is None or raw == "":
                continue
            raw = str(raw).replace("\x00", "").strip()  # SQLite text ends at a NUL: drop it
            if not raw:
                continue
            if f.name in cls.FLOATS:
                try:
                    value = float(raw)
                except ValueError:
                    raise FilterError(f"Filter {f.name}={raw!r} is not a number; give e.g. {f.name}=0.5.") from None
                if not math.isfinite(value):
                    raise FilterError(f"Filter {f.name}={raw!r} must be a finite number.")
                kw[f.name] = value
            elif f.name in ("disagree", "unlabelled", "internal"):
                kw[f.name] = raw.lower() in ("1", "true", "on", "yes")
            elif f.name == "page":
                if not raw.isdigit():
                    raise FilterError(f"page={raw!r} must be a whole number >= 0.")
                kw["page"] = int(raw)
            elif f.name == "correct":
                if raw not in cls.CORRECT:
                    raise FilterError(f"Filter correct={raw!r}: expected one of yes, no, unknown.")
                kw["correct"] = raw
            else:
                kw[f.name] = raw[:500]
        return cls(**kw)

    def params(self, **override: Any) -> dict[str, str]:
        """Non-empty filters as URL query parameters (``override`` replaces some)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = override.get(f.name, getattr(self, f.name))
            if value in ("", None, False, 0) and not (f.name in self.FLOATS and value == 0):
                continue
            out[f.name] = "1" if value is True else (f"{value:g}" if isinstance(value, float) else str(value))
        return out

    def active(self) -> bool:
        return bool(self.params(page=0))


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# Stable under labelling: a label rewrites the rationale's row (INSERT OR REPLACE gives it a new
# rowid), so lists are ordered by problem, then method and sample, never by the row's rowid.
# Problems in task order (their rowid; the store upserts problems in place), then each problem's
# rationales through the store's (problem_id, method, sample_index, id) index: the CROSS JOIN keeps
# problems as the outer loop, so a page is an index walk, not a sort of every match (8 s for the
# first unfiltered page at 1,000,000 rationales as a LEFT JOIN with a sort; ms this way).
# Rationales whose problem row is missing cannot be reviewed and are not listed.
LIST_FROM = " FROM problems p CROSS JOIN rationales r ON r.problem_id = p.id"
ORDER_SQL = " ORDER BY p.rowid, r.method, r.sample_index, r.id"
PRM_MIN_SQL = "(SELECT MIN(c.score) FROM checks c WHERE c.rationale_id=r.id AND c.kind='prm')"
JUDGE_SQL = ("COALESCE((SELECT MAX(s.value) FROM scores s WHERE s.rationale_id=r.id AND s.kind LIKE 'judge%'), "
             "(SELECT AVG(c.score) FROM checks c WHERE c.rationale_id=r.id AND c.kind='judge'))")
N_STEPS_SQL = "COALESCE(json_array_length(r.json, '$.steps'), 0)"
N_HUMAN_SQL = ("(SELECT COUNT(DISTINCT h.step_index) FROM checks h WHERE h.rationale_id=r.id "
               "AND h.kind='human' AND h.by=:user)")
DISAGREE_SQL = ("EXISTS (SELECT 1 FROM checks a JOIN checks b ON a.rationale_id=b.rationale_id AND "
                "a.step_index=b.step_index WHERE a.rationale_id=r.id AND a.verdict>0 AND b.verdict<0)")


def _where(f: Filters, user: str) -> tuple[str, dict[str, Any]]:
    where: list[str] = []
    args: dict[str, Any] = {"user": user}
    for col, name in (("p.source", "source"), ("r.model", "model"), ("r.method", "method"),
                      ("r.outcome", "outcome"), ("r.problem_id", "problem_id")):
        value = getattr(f, name)
        if value:
            where.append(f"{col} = :{name}")
            args[name] = value
    if not f.internal and not f.method:
        hidden = sorted(HIDDEN_METHODS)
        where.append(f"COALESCE(r.method, '') NOT IN ({', '.join(f':hidden{i}' for i in range(len(hidden)))})")
        args.update({f"hidden{i}": m for i, m in enumerate(hidden)})
    if f.correct == "yes":
        where.append("r.correct = 1")
    elif f.correct == "no":
        where.append("r.correct = 0")
    elif f.correct == "unknown":
        where.append("r.correct IS NULL")
    if f.disagree:
        where.append(DISAGREE_SQL)
    if f.unlabelled:
        where.append(f"{N_STEPS_SQL} > {N_HUMAN_SQL}")
    for name, sql, op in (("judge_min", JUDGE_SQL, ">="), ("judge_max", JUDGE_SQL, "<="),
                          ("prm_min", PRM_MIN_SQL, ">="), ("prm_max", PRM_MIN_SQL, "<=")):
        value = getattr(f, name)
        if value is not None:
            where.append(f"{sql} {op} :{name}")
            args[name] = value
    if f.q:
        args["q"] = _like(f.q)
        where.append("(json_extract(r.json, '$.text') LIKE :q ESCAPE '\\' OR p.question LIKE :q ESCAPE '\\' "
                     "OR r.answer LIKE :q ESCAPE '\\' OR r.id LIKE :q ESCAPE '\\')")
    return (" WHERE " + " AND ".join(where)) if where else "", args


@dataclass
class RationaleRow:
    id: str
    problem_id: str
    model: str
    method: str
    answer: str | None
    correct: bool | None
    outcome: str
    tokens: int
    sample_index: int
    temperature: float | None
    source: str
    question: str
    gold: str | None
    n_steps: int
    n_human: int
    prm_min: float | None
    judge: float | None
    parent_id: str | None


SELECT_ROWS = (f"SELECT r.id, r.problem_id, r.model, r.method, r.answer, r.correct, r.outcome, r.tokens, "
               f"r.sample_index, r.temperature, COALESCE(p.source, ''), COALESCE(p.question, ''), p.gold, "
               f"{N_STEPS_SQL}, {N_HUMAN_SQL}, {PRM_MIN_SQL}, {JUDGE_SQL}, r.parent_id "
               f"FROM rationales r LEFT JOIN problems p ON p.id = r.problem_id")


def _row(t: tuple) -> RationaleRow:
    return RationaleRow(id=t[0], problem_id=t[1], model=t[2] or "", method=t[3] or "", answer=t[4],
                        correct=None if t[5] is None else bool(t[5]), outcome=t[6] or "", tokens=t[7] or 0,
                        sample_index=t[8] or 0, temperature=t[9], source=t[10], question=t[11], gold=t[12],
                        n_steps=t[13], n_human=t[14], prm_min=t[15], judge=t[16], parent_id=t[17])


def list_rationales(store: Store, f: Filters, user: str, *, limit: int = PAGE_SIZE) -> tuple[list[RationaleRow], int]:
    """One page of rationales matching ``f`` (by problem, method, sample) and the total count."""
    where, args = _where(f, user)
    total = store.conn.execute(
        f"SELECT COUNT(*){LIST_FROM}{where}", args).fetchone()[0]
    args = dict(args, limit=limit, offset=f.page * limit)
    # two steps: order and cut on cheap columns, then the per-row subqueries (PRM, judge, human
    # counts) for this page only; in one query SQLite computed them for every match before
    # sorting (2.6 s at 1,000,000 stored rationales, benchmarks/scale.py)
    page = [t[0] for t in store.conn.execute(
        f"SELECT r.id{LIST_FROM}{where}{ORDER_SQL} "
        "LIMIT :limit OFFSET :offset", args)]
    if not page:
        return [], total
    marks = ",".join(f":id{i}" for i in range(len(page)))
    found = {t[0]: _row(t) for t in store.conn.execute(
        f"{SELECT_ROWS} WHERE r.id IN ({marks})", dict({"user": user}, **{f"id{i}": rid for i, rid in enumerate(page)}))}
    return [found[rid] for rid in page if rid in found], total


def rationale_ids(store: Store, f: Filters, user: str) -> list[str]:
    """Every id matching ``f`` in list order (for next/previous navigation)."""
    where, args = _where(f, user)
    q = f"SELECT r.id{LIST_FROM}{where}{ORDER_SQL}"
    return [t[0] for t in store.conn.execute(q, args)]


def neighbours(store: Store, f: Filters, user: str, rid: str) -> tuple[str | None, str | None, int, int]:
    """(previous id, next id, 1-based position, total) of ``rid`` within the filtered list;
    position 0 when ``rid`` is not in it (then next is the first match)."""
    ids = rationale_ids(store, f, user)
    if rid not in ids:
        return None, (ids[0] if ids else None), 0, len(ids)
    i = ids.index(rid)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None), i + 1, len(ids)


def facets(store: Store) -> dict[str, list[str]]:
    """Distinct values for the filter form's drop-downs."""
    c = store.conn

    def distinct(sql: str) -> list[str]:
        return [t[0] for t in c.execute(sql) if t[0] not in (None, "")]

    return {"source": distinct("SELECT DISTINCT source FROM problems ORDER BY source"),
            "model": distinct("SELECT DISTINCT model FROM rationales ORDER BY model"),
            "method": distinct("SELECT DISTINCT method FROM rationales ORDER BY method"),
            "outcome": distinct("SELECT DISTINCT outcome FROM rationales ORDER BY outcome")}


@dataclass
class ProblemRow:
    id: str
    source: str
    question: str
    gold: str | None
    n: int
    n_correct: int
    n_wrong: int


def list_problems(store: Store, *, source: str = "", q: str = "", page: int = 0,
                  limit: int = PAGE_SIZE) -> tuple[list[ProblemRow], int]:
    where, args = [], {}
    if source:
        where.append("p.source = :source")
        args["source"] = source
    if q:
        where.append("(p.question LIKE :q ESCAPE '\\' OR p.id LIKE :q ESCAPE '\\')")
        args["q"] = _like(q)
    w = (" WHERE " + " AND ".join(where)) if where else ""
    total = store.conn.execute(f"SELECT COUNT(*) FROM problems p{w}", args).fetchone()[0]
    rows = store.conn.execute(
        "SELECT p.id, p.source, p.question, p.gold, COUNT(r.id), COALESCE(SUM(r.correct = 1), 0), "
        f"COALESCE(SUM(r.correct = 0), 0) FROM problems p LEFT JOIN rationales r ON r.problem_id = p.id{w} "
        "GROUP BY p.id ORDER BY p.rowid LIMIT :limit OFFSET :offset", dict(args, limit=limit, offset=page * limit))
    return [ProblemRow(*t) for t in rows], total


def human_labels(store: Store, rid: str, user: str) -> dict[int, int]:
    """step index -> this user's label (+1 / 0 / -1) on one rationale."""
    rows = store.conn.execute("SELECT step_index, verdict FROM checks WHERE rationale_id=? AND kind='human' AND by=?",
                              (rid, user))
    return {int(i): int(v) for i, v in rows if v is not None}


def progress(store: Store, user: str, *, totals: bool = True) -> dict[str, int]:
    """How much this user has labelled: steps, rationales fully and partly labelled; with
    ``totals`` also the store's step and rationale counts (reads every record's step count)."""
    c = store.conn
    steps = c.execute("SELECT COUNT(*) FROM checks WHERE kind='human' AND by=?", (user,)).fetchone()[0]
    per = c.execute(
        "SELECT r.id, COALESCE(json_array_length(r.json, '$.steps'), 0), "
        "(SELECT COUNT(DISTINCT h.step_index) FROM checks h WHERE h.rationale_id=r.id AND h.kind='human' AND h.by=?) "
        "FROM rationales r WHERE r.id IN (SELECT rationale_id FROM checks WHERE kind='human' AND by=?)",
        (user, user)).fetchall()
    full = sum(1 for _, n, h in per if n and h >= n)
    out = {"steps": steps, "rationales_full": full, "rationales_partial": len(per) - full}
    if totals:
        out["total_steps"] = c.execute(
            "SELECT COALESCE(SUM(json_array_length(json, '$.steps')), 0) FROM rationales").fetchone()[0]
        out["rationales"] = store.count("rationales")
    return out


def _sign(v: int | None) -> int | None:
    return None if v is None else (1 if v > 0 else -1 if v < 0 else 0)


def agreement(store: Store, user: str | None = None) -> dict[str, dict[str, int]]:
    """Per automatic checker kind: on steps a human labelled +1/-1 (0 = neutral is left out)
    and the checker gave a +1/-1 verdict, how often they agree. ``user`` None: all users."""
    q = ("SELECT a.kind, SUM((h.verdict > 0) = (a.verdict > 0)), COUNT(*) FROM checks h JOIN checks a "
         "ON a.rationale_id=h.rationale_id AND a.step_index=h.step_index "
         "WHERE h.kind='human' AND a.kind!='human' AND h.verdict != 0 AND a.verdict IS NOT NULL AND a.verdict != 0")
    args: tuple = ()
    if user is not None:
        q += " AND h.by=?"
        args = (user,)
    rows = store.conn.execute(q + " GROUP BY a.kind ORDER BY a.kind", args)
    return {kind: {"agree": int(agree or 0), "n": int(n)} for kind, agree, n in rows}


def tree_keys(store: Store) -> list[dict[str, Any]]:
    """Saved search trees (blobs whose kind ends in ``tree``: GroundedPRM / MCTS)."""
    rows = store.conn.execute(
        "SELECT key, kind, json_extract(json, '$.question'), json_array_length(json, '$.nodes'), "
        "json_extract(json, '$.method') FROM blobs WHERE kind LIKE '%tree' ORDER BY created")
    return [{"key": k, "kind": kind, "question": q or "", "nodes": n or 0, "method": m or ""}
            for k, kind, q, n, m in rows]


def trees_of(store: Store, rid: str) -> list[str]:
    """Keys of the saved trees a rationale belongs to (its scores name them, or the tree lists it)."""
    keys = [t[0] for t in store.conn.execute(
        "SELECT DISTINCT json_extract(detail, '$.tree') FROM scores WHERE rationale_id=? "
        "AND json_extract(detail, '$.tree') IS NOT NULL", (rid,))]
    if not keys:
        keys = [t[0] for t in store.conn.execute(
            "SELECT b.key FROM blobs b, json_each(b.json, '$.rationales') e WHERE b.kind LIKE '%tree' "
            "AND e.value = ?", (rid,))]
    return keys


def feedback_of(store: Store, rid: str) -> list[dict[str, Any]]:
    """Feedback written in the review app on one rationale, oldest first."""
    rows = store.conn.execute("SELECT json FROM blobs WHERE kind='feedback' AND json_extract(json, '$.rationale_id')=? "
                              "ORDER BY created", (rid,))
    return [json.loads(t[0]) for t in rows]


def all_feedback(store: Store) -> list[dict[str, Any]]:
    return [json.loads(t[0]) for t in store.conn.execute("SELECT json FROM blobs WHERE kind='feedback' ORDER BY created")]


def human_label_rows(store: Store) -> Iterator[dict[str, Any]]:
    """One row per (rationale, labeller): the steps and that person's label on each (None =
    not labelled), ready for stepwise/PRM datasets. Labels: +1 right, 0 neutral, -1 wrong."""
    pairs = store.conn.execute("SELECT DISTINCT rationale_id, by FROM checks WHERE kind='human' ORDER BY rationale_id, by")
    for rid, by in pairs.fetchall():
        r = store.get_rationale(rid)
        if r is None:
            continue
        p = store.get_problem(r.problem_id)
        labels, times = [], []
        for s in r.steps:
            mine = [c for c in s.checks if c.kind == HUMAN and c.by == by]
            labels.append(mine[-1].verdict if mine else None)
            times.append(mine[-1].detail.get("at") if mine else None)
        yield {"rationale_id": r.id, "problem_id": r.problem_id, "question": p.question if p else None,
               "gold": p.gold if p else None, "source": p.source if p else None, "model": r.model,
               "method": r.method, "answer": r.answer, "correct": r.correct, "by": by,
               "steps": [s.text for s in r.steps], "spans": [list(s.span) for s in r.steps],
               "labels": labels, "at": times}
