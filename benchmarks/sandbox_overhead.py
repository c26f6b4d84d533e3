"""What the scoring sandbox costs per answer: reasoning-gym scoring and math-verify in the
worker process (batched and one call per answer) against the same scorers called directly in
this process on the same fixed, benchmark-written answers (never model text).

Usage: python benchmarks/sandbox_overhead.py [--n 400]
Last line: ``sandbox overhead per answer: batched X ms, one call per answer Y ms (worker start Z s)``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rationales.tasks.sandbox import Sandbox


def _timed(fn, reps: int = 3) -> float:
    best = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t0)
    return statistics.median(best)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    a = ap.parse_args()
    import reasoning_gym
    from math_verify import parse, verify

    from rationales.tasks import load_task

    probs = load_task("reasoning_gym:basic_arithmetic", size=50, seed=0)
    answers = [str(int(p.gold) + d) if p.gold.lstrip("-").isdigit() else p.gold for p in probs for d in (0, 1)]
    rg_jobs = [{"kind": "rg", "rg": {k: p.meta["rg"].get(k) for k in ("name", "size", "seed", "index", "config")},
                "entry": p.meta["entry"], "answer": ans}
               for i, p in enumerate(probs) for ans in answers[2 * i:2 * i + 2]][: a.n]
    pairs = [(f"\\frac{{{i}}}{{{i + 1}}}", f"{i / (i + 1):.6f}") for i in range(a.n)]
    math_jobs = [{"kind": "math", "gold": g, "answer": x} for g, x in pairs]

    box = Sandbox(max_workers=1)
    t0 = time.perf_counter()
    box.run([{"kind": "ping"}])
    start = time.perf_counter() - t0
    t0 = time.perf_counter()
    box.run(rg_jobs[:2] + math_jobs[:2])  # warm: imports and the dataset in the worker
    warm = time.perf_counter() - t0

    ds = reasoning_gym.create_dataset("basic_arithmetic", size=50, seed=0)
    entries = [ds[int(j["rg"]["index"])] for j in rg_jobs]
    direct_rg = _timed(lambda: [ds.score_answer(j["answer"], e) for j, e in zip(rg_jobs, entries)])
    batch_rg = _timed(lambda: box.run(rg_jobs))
    single_rg = _timed(lambda: [box.run([j]) for j in rg_jobs], reps=1)

    def direct_math() -> None:
        for g, x in pairs:
            verify(parse(f"${g}$"), parse(f"${x}$"))

    direct_m = _timed(direct_math, reps=1)
    batch_m = _timed(lambda: box.run(math_jobs), reps=1)
    box.close()
    n_rg, n_m = len(rg_jobs), len(math_jobs)
    print(f"reasoning-gym basic_arithmetic, {n_rg} answers: direct {1e3 * direct_rg / n_rg:.3f} ms/answer, "
          f"sandbox batched {1e3 * batch_rg / n_rg:.3f}, one call each {1e3 * single_rg / n_rg:.3f}")
    print(f"math-verify, {n_m} answers: direct {1e3 * direct_m / n_m:.3f} ms/answer, sandbox batched "
          f"{1e3 * batch_m / n_m:.3f} (math-verify caches parses in both)")
    print(f"sandbox overhead per answer: batched {1e3 * (batch_rg - direct_rg) / n_rg:.3f} ms, one call per answer "
          f"{1e3 * (single_rg - direct_rg) / n_rg:.3f} ms (worker start {start:.2f} s, then {warm:.1f} s to import "
          "reasoning-gym and math-verify once)")


if __name__ == "__main__":
    main()
