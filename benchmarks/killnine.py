"""kill -9 at random moments during `run`, `compare`, `verify` and `run --method grounded`
(fake backend with a per-sample delay), then resume; after every kill the store must pass
``PRAGMA integrity_check``, every row must read back, and the count of stored rationales (and
of checks) must never go down; the last, uninterrupted resume must reach the count of a run
that was never killed.

``--fresh`` starts each kill on a new store (kill, check, resume to the end, check), so every
kill lands mid-run; without it the kills repeat on one store (later ones find the work done).

Usage: python benchmarks/killnine.py [--kills 20] [--seed 0] [--fresh]
Last line: ``kills N / integrity failures F / lost samples L / resumes that reached the full count R of C``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = {"*": ["Step 1: 2 + 3 = 5\nStep 2: 5 * 2 = 10\nThe answer is 10."]}


def command(kind: str, tmp: Path, store: Path, base: Path | None = None) -> list[str]:
    script = tmp / "script.json"
    if not script.exists():
        script.write_text(json.dumps(SCRIPT))
    fake = ["--backend", "fake", "--model", str(script)]
    out = ["--out", str(tmp / f"out-{store.stem}")]
    if kind == "run":
        return ["run", "demo", *fake, "-o", "delay=0.01", "-n", "4", "-k", "12", "--store", str(store), *out]
    if kind == "compare":
        return ["compare", "demo", *fake, "-o", "delay=0.004", "-k", "1", "--strategies", "vote,best_of_n",
                "--store", str(store), *out]
    if kind == "grounded":
        return ["run", "demo", "--method", "grounded", *fake, "-o", "delay=0.01", "-k", "3", "--store", str(store),
                *out]
    if kind == "verify":
        return ["verify", "--checkers", "tool,mc", "--mc-samples", "4", *fake, "--store", str(store), *out]
    raise ValueError(kind)


def prepare(kind: str, tmp: Path, store: Path) -> None:
    """verify needs stored rationales first (an uninterrupted run into the same store)."""
    if kind == "verify":
        subprocess.run([sys.executable, "-m", "rationales", *command("run", tmp, store)[:-2], "-o", "delay=0",
                        "--out", str(tmp / "prep")], check=True, capture_output=True, env=_env())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "RATIONALES_THREADS": "1"})
    return env


def counts(store: Path) -> tuple[str, int, int, int]:
    """(integrity_check result, rationale rows, rows that read back, check rows)."""
    if not store.exists():
        return "ok", 0, 0, 0
    c = sqlite3.connect(store)
    try:
        integrity = c.execute("PRAGMA integrity_check").fetchone()[0]
        try:
            n = c.execute("SELECT COUNT(*) FROM rationales").fetchone()[0]
            checks = c.execute("SELECT COUNT(*) FROM checks").fetchone()[0]
        except sqlite3.OperationalError:  # killed before the schema was written
            return integrity, 0, 0, 0
    finally:
        c.close()
    from rationales.store import Store

    with Store(store, create=False) as s:
        readable = len(s.rationales())
        bad = len(s.skipped)
    return integrity, n, readable if not bad else readable - bad, checks


def _progress(store: Path) -> int:
    """Stored rationales + checks, read while the command writes (WAL: readers do not block)."""
    try:
        c = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0.05)
        try:
            return sum(c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("rationales", "checks"))
        finally:
            c.close()
    except sqlite3.Error:
        return 0


@dataclass
class Result:
    kind: str
    kills: int = 0
    integrity_failures: int = 0
    lost: int = 0
    full: int = 0
    reached_full: bool = False
    final: int = 0
    trace: list[tuple[float, int, int]] = field(default_factory=list)


def fresh_cycles(kind: str, tmp: Path, kills: int, rnd: random.Random) -> Result:
    """``kills`` cycles, each on a new store: kill mid-run, check, resume uninterrupted, check."""
    total = Result(kind)
    total.reached_full = True
    for k in range(kills):
        d = tmp / f"{kind}-cycle{k}"
        d.mkdir()
        r = scenario(kind, d, 1, rnd)
        total.kills += r.kills
        total.integrity_failures += r.integrity_failures
        total.lost += r.lost
        total.full, total.final = r.full, r.final
        total.reached_full &= r.reached_full
        total.trace += r.trace
    return total


def scenario(kind: str, tmp: Path, kills: int, rnd: random.Random) -> Result:
    """Reference run (never killed), then ``kills`` killed attempts and one uninterrupted resume."""
    res = Result(kind)
    ref = tmp / f"ref-{kind}.sqlite"
    prepare(kind, tmp, ref)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rationales", *command(kind, tmp, ref)], check=True, capture_output=True,
                   env=_env())
    took = time.perf_counter() - t0
    _, res.full, _, full_checks = counts(ref)
    store = tmp / f"killed-{kind}.sqlite"
    prepare(kind, tmp, store)
    prev_n, prev_checks = counts(store)[1], counts(store)[3]
    for k in range(kills):
        proc = subprocess.Popen([sys.executable, "-m", "rationales", *command(kind, tmp, store)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                                start_new_session=True)
        # a random moment: every third kill at a random time (start-up included), the others once
        # a random share of the remaining work is stored (so the kill lands mid-run)
        t_start = time.perf_counter()
        target = prev_n + prev_checks + rnd.randint(1, max(1, res.full + full_checks - prev_n - prev_checks - 1))
        at = rnd.uniform(0.05, 1.0) * took if k % 3 == 2 else None
        while proc.poll() is None:
            if at is not None and time.perf_counter() - t_start >= at:
                break
            if at is None and _progress(store) >= target:
                break
            time.sleep(0.01)
        at = time.perf_counter() - t_start
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the process and its scoring worker
            res.kills += 1
        proc.wait()
        integrity, n, readable, checks = counts(store)
        res.trace.append((round(at, 2), n, checks))
        if integrity != "ok":
            res.integrity_failures += 1
        if n < prev_n or readable < n or checks < prev_checks:
            res.lost += max(prev_n - n, n - readable, prev_checks - checks, 1)
        prev_n, prev_checks = max(prev_n, n), max(prev_checks, checks)
    done = subprocess.run([sys.executable, "-m", "rationales", *command(kind, tmp, store)], capture_output=True,
                          text=True, env=_env())
    integrity, res.final, readable, checks = counts(store)
    res.reached_full = done.returncode == 0 and integrity == "ok" and res.final == res.full == readable and (
        kind != "verify" or checks == full_checks)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="kills per command")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default="run,compare,verify,grounded")
    ap.add_argument("--fresh", action="store_true", help="a new store per kill (every kill mid-run)")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="rationales-kill9-") as d:
        for kind in a.kinds.split(","):
            r = (fresh_cycles if a.fresh else scenario)(kind, Path(d), a.kills, rnd)
            results.append(r)
            print(f"{kind}: {r.kills} kills, integrity failures {r.integrity_failures}, lost {r.lost}, "
                  f"count after each kill {[n for _, n, _ in r.trace]}, final {r.final} of {r.full}"
                  f"{'' if r.reached_full else ' (NOT reached)'}", flush=True)
    print(f"kills {sum(r.kills for r in results)} / integrity failures {sum(r.integrity_failures for r in results)} / "
          f"lost samples {sum(r.lost for r in results)} / resumes that reached the full count "
          f"{sum(r.reached_full for r in results)} of {len(results)}")


if __name__ == "__main__":
    main()
