"""Store write throughput: rationales committed one per transaction (as `generate` commits each
finished sample) and in batches. Goal: >= 5,000 single-sample commits per second.
Last line: "store writes/s: N (goal >= 5000)"."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rationales.records import Problem, Rationale, Sampling
from rationales.steps import segment

TEXT = ("Step 1: Tom starts with 12 apples and gives 5 away, so 12 - 5 = 7.\n"
        "Step 2: He buys 8 more, so 7 + 8 = 15.\nThe answer is 15.")


def make(i: int, pid: str) -> Rationale:
    return Rationale(id=f"r{i:08d}", problem_id=pid, prompt_id="p", model="bench", text=TEXT,
                     steps=segment(TEXT), answer="15", correct=True, tokens=40,
                     sampling=Sampling(seed=i))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20000)
    args = ap.parse_args()
    from rationales.store import Store

    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "bench.sqlite")
        p = Problem.make("q", 15)
        store.put_problems([p])
        records = [make(i, p.id) for i in range(args.n)]
        t0 = time.perf_counter()
        for r in records:
            store.put_rationale(r)
        single = args.n / (time.perf_counter() - t0)
        records = [make(i + args.n, p.id) for i in range(args.n)]
        t0 = time.perf_counter()
        for k in range(0, args.n, 500):
            store.put_rationales(records[k:k + 500])
        batched = args.n / (time.perf_counter() - t0)
        assert store.count() == 2 * args.n
        store.close()
    print(f"batched (500 per transaction): {batched:,.0f} rationales/s")
    print(f"store writes/s: {single:,.0f} (goal >= 5000, one committed transaction per sample)")


if __name__ == "__main__":
    main()
