"""Work claims: several drivers on one store never generate the same sample twice.

Before dispatching, a driver claims the sample ids it is about to generate (one row per id in
the store's ``claims`` table, with an owner and an expiry, in one ``BEGIN IMMEDIATE``
transaction, so two drivers cannot both win an id). Ids another live driver holds are left to
it; the driver waits for them to appear in the store, and takes over any whose claim expired
(its owner died: ``kill -9`` leaves only a claim that times out). Claims are renewed while a
driver works and deleted when it is done. Stored ids are content hashes, so even a lost race
could only rewrite a row with the same sample, never add a second one.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence

from ..store import Store

SCHEMA = "CREATE TABLE IF NOT EXISTS claims (id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL)"


class WorkClaims:
    """Claims of one driver on one store (see the module docstring)."""

    def __init__(self, store: Store, *, ttl: float = 300.0, poll: float = 0.2):
        self.store = store
        self.ttl = float(ttl)
        self.poll = float(poll)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        store.conn.execute(SCHEMA)

    def claim(self, ids: Sequence[str]) -> set[str]:
        """Claim what nobody live holds; returns the ids this driver now owns."""
        now = time.time()
        won: set[str] = set()
        with self.store.transaction() as conn:
            for chunk in _chunks(list(ids), 500):
                marks = ",".join("?" * len(chunk))
                held = {row[0] for row in conn.execute(
                    f"SELECT id FROM claims WHERE id IN ({marks}) AND owner != ? AND expires > ?",
                    (*chunk, self.owner, now))}
                mine = [i for i in chunk if i not in held]
                conn.executemany("INSERT OR REPLACE INTO claims (id, owner, expires) VALUES (?, ?, ?)",
                                 [(i, self.owner, now + self.ttl) for i in mine])
                won.update(mine)
        return won

    def renew(self) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + self.ttl, self.owner))

    def release(self, ids: Iterable[str] | None = None) -> None:
        with self.store.transaction() as conn:
            if ids is None:
                conn.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
                return
            for chunk in _chunks(list(ids), 500):
                conn.execute(f"DELETE FROM claims WHERE owner = ? AND id IN ({','.join('?' * len(chunk))})",
                             (self.owner, *chunk))

    def wait(self, ids: Sequence[str], timeout: float | None = None) -> list[str]:
        """Wait until each id is stored or its claim has lapsed; returns the ids still missing
        (now unclaimed or expired: the caller claims and generates them itself)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = list(ids)
        while pending:
            have = self.store.has(pending)
            pending = [i for i in pending if i not in have]
            if not pending:
                return []
            now = time.time()
            live = set()
            for chunk in _chunks(pending, 500):
                live.update(row[0] for row in self.store.conn.execute(
                    f"SELECT id FROM claims WHERE id IN ({','.join('?' * len(chunk))}) AND owner != ? AND expires > ?",
                    (*chunk, self.owner, now)))
            orphans = [i for i in pending if i not in live]
            if orphans or (deadline is not None and time.monotonic() > deadline):
                return pending
            time.sleep(self.poll)
        return []


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
