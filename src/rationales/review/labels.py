"""Human step labels and feedback, written through the store's transactions.

A label is ``Check(kind="human", by=<user>, verdict=+1 | 0 | -1, detail={"at": unix time})``
on one step (PRM800K's ratings: +1 right, 0 neutral/unhelpful, -1 wrong; Lightman et al. 2023).
Each person has at most one label per step (the store's checks table is keyed by
rationale, step, kind and ``by``); labelling again replaces it, clearing removes it.

Every change is one read-modify-write inside a single ``BEGIN IMMEDIATE`` transaction
(``Store.transaction``): the rationale is read inside the write lock, changed, and written
back by the store's own record writer, so two tabs (or two people) labelling the same
rationale at once never overwrite each other's labels.

"First error" mode (PRM800K's protocol: a labeller reads until the first wrong step): the
steps before it get +1, it gets -1, and the steps after it are left unlabelled (PRM800K's
convention; their earlier labels by this person are cleared) or, with ``after="-1"``, get -1
(the "everything after the first error is wrong" convention of ProcessBench-style labels).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from ..errors import RationalesError
from ..records import Check, Rationale, content_hash
from ..store import Store

HUMAN = "human"
LABELS = (1, 0, -1)
AFTER_MODES = ("unlabelled", "-1")


class LabelError(RationalesError):
    """A label request that cannot be applied (unknown rationale or step, bad value)."""


def _current(r: Rationale, user: str) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for s in r.steps:
        mine = [c for c in s.checks if c.kind == HUMAN and c.by == user]
        out[s.index] = mine[-1].verdict if mine else None
    return out


def first_error_changes(n_steps: int, first: int | None, after: str = "unlabelled") -> dict[int, int | None]:
    """The labels of "first error" mode for steps ``0..n_steps-1``: before ``first`` +1, at it
    -1, after it None (cleared) or -1. ``first`` None: no error, every step +1."""
    if after not in AFTER_MODES:
        raise LabelError(f"first-error mode after={after!r}: expected one of {', '.join(AFTER_MODES)}.")
    if first is None:
        return {i: 1 for i in range(n_steps)}
    if not 0 <= first < n_steps:
        raise LabelError(f"Step {first} does not exist (the rationale has {n_steps} steps).")
    return {i: (1 if i < first else -1 if i == first or after == "-1" else None) for i in range(n_steps)}


def apply_labels(store: Store, rid: str, user: str, changes: Mapping[int, int | None], *,
                 now: float | None = None) -> tuple[dict[int, int | None], dict[int, int | None]]:
    """Set (or, for None, clear) ``user``'s label on the given steps of rationale ``rid``, in
    one transaction. Returns (labels of the changed steps before, this user's labels after)."""
    if not user:
        raise LabelError("A label needs a labeller name (rationales review --user NAME).")
    for idx, v in changes.items():
        if v is not None and v not in LABELS:
            raise LabelError(f"Label {v!r} on step {idx}: expected +1, 0, -1 or null (clear).")
    at = time.time() if now is None else now
    with store.transaction() as c:
        row = c.execute("SELECT json FROM rationales WHERE id=?", (rid,)).fetchone()
        if row is None:
            raise LabelError(f"No rationale with id {rid!r} in store {store.path}.")
        try:
            r = Rationale.model_validate_json(row[0])
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            raise LabelError(f"Rationale {rid} is stored in a form that does not parse ({e.__class__.__name__}); "
                             "it cannot be labelled.") from None
        by_index = {s.index: s for s in r.steps}
        missing = [i for i in changes if i not in by_index]
        if missing:
            raise LabelError(f"Rationale {rid} has no step {missing[0]} (it has {len(r.steps)} steps).")
        before_all = _current(r, user)
        before = {i: before_all[i] for i in changes}
        for idx, v in changes.items():
            step = by_index[idx]
            step.checks = [ch for ch in step.checks if not (ch.kind == HUMAN and ch.by == user)]
            if v is not None:
                step.checks.append(Check(kind=HUMAN, verdict=int(v), by=user, detail={"at": at}))
        store._write_rationale(c, r, keep_human=False)  # the store's own writer, in this transaction
    return before, _current(r, user)


def add_feedback(store: Store, rid: str, user: str, text: str, *, now: float | None = None) -> dict[str, Any]:
    """Store a person's natural-language feedback on a rationale (blob kind ``feedback``, in the
    row shape of ``rationales patch FILE``: ``rationale_id``, ``feedback``), returns the row."""
    text = (text or "").strip()
    if not text:
        raise LabelError("Feedback is empty: write what is wrong with the rationale.")
    if len(text) > 20000:
        raise LabelError("Feedback is longer than 20000 characters; shorten it.")
    if store.get_rationale(rid) is None:
        raise LabelError(f"No rationale with id {rid!r} in store {store.path}.")
    at = time.time() if now is None else now
    key = "feedback:" + content_hash(rid, user, text, at)
    row = {"key": key, "rationale_id": rid, "feedback": text, "by": user, "at": at, "patch_id": None}
    store.put_blob(key, "feedback", row)
    return row


def set_feedback_patch(store: Store, key: str, patch_id: str) -> dict[str, Any]:
    """Record which patched rationale a piece of feedback produced."""
    with store.transaction() as c:
        got = c.execute("SELECT json FROM blobs WHERE key=? AND kind='feedback'", (key,)).fetchone()
        if got is None:
            raise LabelError(f"No feedback {key!r} in store {store.path}.")
        row = json.loads(got[0])
        row["patch_id"] = patch_id
        c.execute("UPDATE blobs SET json=? WHERE key=?", (json.dumps(row), key))
    return row
