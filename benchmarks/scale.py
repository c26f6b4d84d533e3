"""Scale-out costs, measured (issue: scale-out on Ray).

1. Throughput of ``generate`` through :class:`RayBackend` with 1 vs 2 actors on a backend of
   fixed latency (the fake backend sleeping ``--delay`` s per sample): scaling ratio, goal >= 1.8x.
2. Driver overhead per sample: Ray (2 actors, no latency) vs the same backend in process.
3. The store at growing sizes up to ``--rows`` rationales (default 1,000,000): insert rate
   (500 per transaction), a filtered query of the review app (wrong answers of one method, first
   page, with its count) in milliseconds, and export rows/s, so the growth with work is seen.
   The store is kept in ``--dir`` (default /tmp/rationales-scale) and reused on a rerun.

Last line: "ray scaling 1 -> 2 actors: X.XXx (goal >= 1.8)".
Run alone: ``python benchmarks/scale.py`` (the Ray part ~1 min; the 1M store ~10 min on 2 cores).
Measured numbers: README, "Scale-out on Ray".
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rationales.generate import GenerationStats, cot_specs, generate
from rationales.records import Problem, Rationale, Sampling
from rationales.steps import segment
from rationales.store import Store

TEXT = ("Step 1: Tom starts with 12 apples and gives 5 away, so 12 - 5 = 7.\n"
        "Step 2: He buys 8 more, so 7 + 8 = 15.\nThe answer is 15.")


def problems(n: int, tag: str) -> list[Problem]:
    return [Problem.make(f"{tag} {i}: what is {i} + 1?", gold=str(i + 1), source="bench") for i in range(n)]


def timed_generate(backend, specs, path: Path) -> tuple[float, int]:
    store = Store(path)
    stats = GenerationStats()
    t0 = time.perf_counter()
    generate(specs, backend, store, stats=stats)
    dt = time.perf_counter() - t0
    store.close()
    return dt, stats.new


def ray_part(args: argparse.Namespace) -> float:
    from rationales.backends.fake import FakeBackend
    from rationales.scale.ray_backend import RayBackend, ensure_ray, shutdown

    ensure_ray(num_cpus=2, object_store_mb=128)
    n = args.problems
    with tempfile.TemporaryDirectory() as d:
        times = {}
        for actors in (1, 2, 1, 2):  # interleaved, best of two each
            backend = RayBackend(inner="fake", inner_options={"delay": args.delay}, actors=actors,
                                 batch_size=1, num_cpus=0.5)
            specs = cot_specs(problems(n, f"lat{actors}-{time.time()}"), n=args.samples)
            dt, new = timed_generate(backend, specs, Path(d) / f"a{actors}-{time.time()}.sqlite")
            assert new == n * args.samples
            times[actors] = min(times.get(actors, float("inf")), dt)
            backend.close()
        total = n * args.samples
        for actors, dt in sorted(times.items()):
            print(f"fixed latency {args.delay * 1000:.0f} ms/sample, {actors} actor(s): {total / dt:.1f} samples/s "
                  f"({dt:.2f} s for {total})")
        ratio = times[1] / times[2]

        # driver overhead: no latency, in process vs 2 actors
        m = args.overhead_samples
        specs = cot_specs(problems(m // 4, f"ovh-{time.time()}"), n=4)
        local_dt, _ = timed_generate(FakeBackend(), specs, Path(d) / "local.sqlite")
        backend = RayBackend(inner="fake", actors=2, batch_size=8, num_cpus=0.5)
        ray_dt, _ = timed_generate(backend, specs, Path(d) / "ray.sqlite")
        backend.close()
        print(f"driver overhead (actor pool): {(ray_dt - local_dt) / m * 1000:.2f} ms per sample "
              f"(in process {local_dt:.2f} s, on Ray {ray_dt:.2f} s, {m} samples)")
        backend = RayBackend(inner="fake", actors=2, batch_size=8, num_cpus=0.5, executor="data")
        specs = cot_specs(problems(m // 4, f"data-{time.time()}"), n=4)
        data_dt, _ = timed_generate(backend, specs, Path(d) / "data.sqlite")
        backend.close()
        calls = -(-len(specs) // backend.min_chunk)
        print(f"driver overhead (Ray Data map_batches, one pipeline per generate call): "
              f"{(data_dt - local_dt) / m * 1000:.2f} ms per sample, {data_dt / calls:.2f} s per call ({calls} calls)")
    shutdown()
    return ratio


def store_part(args: argparse.Namespace) -> None:
    from rationales.data.export import export_rationales
    from rationales.review.queries import Filters, list_rationales

    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    store = Store(root / "scale.sqlite")
    probs = problems(1000, "store")
    store.put_problems(probs)
    sizes = [s for s in (10_000, 100_000, 1_000_000) if s <= args.rows] or [args.rows]
    steps = segment(TEXT)
    for size in sizes:
        have = store.count()
        t0 = time.perf_counter()
        batch: list[Rationale] = []
        for i in range(have, size):
            p = probs[i % len(probs)]
            batch.append(Rationale(id=f"r{i:09d}", problem_id=p.id, prompt_id="p", model="bench",
                                   method="cot" if i % 3 else "mistakes", text=TEXT, steps=steps, answer="15",
                                   correct=(i % 4 != 0), tokens=40, sampling=Sampling(seed=i), sample_index=i % 8))
            if len(batch) == 500:
                store.put_rationales(batch)
                batch = []
        if batch:
            store.put_rationales(batch)
        dt = time.perf_counter() - t0
        rate = f"{(size - have) / dt:,.0f} inserts/s" if size > have else "reused"
        t0 = time.perf_counter()
        rows, total = list_rationales(store, Filters(correct="no", method="cot"), user="bench")
        q_ms = (time.perf_counter() - t0) * 1000
        out = root / f"export-{size}.jsonl"
        t0 = time.perf_counter()
        n = export_rationales(store, out, method="mistakes")
        ex = time.perf_counter() - t0
        out.unlink()
        print(f"store at {size:,} rationales: {rate}; review query (wrong, method=cot, page 1 of {total:,}) "
              f"{q_ms:,.0f} ms; export {n:,} rows at {n / ex:,.0f} rows/s; file {os.path.getsize(root / 'scale.sqlite') / 2**20:,.0f} MiB")
        assert len(rows) == min(50, total)
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--delay", type=float, default=0.1, help="fixed latency per sample (s)")
    ap.add_argument("--overhead-samples", type=int, default=400)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/rationales-scale")
    ap.add_argument("--skip-store", action="store_true")
    args = ap.parse_args()
    if not args.skip_store:
        store_part(args)
    ratio = ray_part(args)
    print(f"ray scaling 1 -> 2 actors: {ratio:.2f}x (goal >= 1.8)")


if __name__ == "__main__":
    main()
