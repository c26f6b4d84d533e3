"""What GroundedPRM step labels cost on this machine (issue 11, item 4): time and tokens per
labelled step for a few hundred training problems.

``reasoning_gym:gsm_symbolic`` training pool (seed 0, problems 0..199 of 400, the pool of
``benchmarks/trained_prm.py``), the default model, the GroundedPRM settings of
``select/grounded.py`` (8 MCTS iterations, 3 children, depth 7, gamma 0.9, T=0.7) with its
savings, each switchable to measure it: ``--line-expansions`` (the paper's one-line proposals
instead of whole continuations), ``--eager-children`` (an expansion samples its children at
once instead of one at a time when UCT visits them), ``--settle 0`` (never stop a tree early),
``--no-reuse`` (do not take iterations from stored samples), ``--all-children`` (with
``--eager-children``: propose 3 children even when fewer iterations are left to visit them). All trees advance in lockstep, so every iteration is
one batched call for all expansions and one for all rollouts.

``--no-reuse`` aside, the samples a store already holds for these problems (``rationales run``,
method ``cot``, the same prompt and model) are reused: pass a store that has them, e.g. a copy of
``benchmarks/out/trained_prm.sqlite`` (4 samples per training problem, 8 per test problem), or
``--samples K`` to draw K per problem first (T=0.7, top_p=0.95, what ``trained_prm.py`` and
``rationales compare`` draw), timed on their own: the result then has both the trees' marginal
cost (``seconds``) and the cost from nothing (``seconds_from_scratch``).

Every proposal and rollout is cached in the store, so a killed run resumes; the seconds of a
resumed run are not a cost (cached samples replay), and the result says so (``resumed``).
The last line is the projected time for 300 problems.

    OMP_NUM_THREADS=2 python benchmarks/grounded_cost.py --problems 200 --threads 2 \\
        --store benchmarks/out/grounded_cost.sqlite --results benchmarks/results/grounded_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=200, help="training problems (first K of the pool)")
    ap.add_argument("--skip", type=int, default=0, help="start at this pool index")
    ap.add_argument("--pool", choices=("train", "test"), default="train",
                    help="gsm_symbolic problems 0..199 (train) or 200..399 (test) of trained_prm.py's pool")
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=384, help="max tokens of a rollout")
    ap.add_argument("--settle", type=int, default=4)
    ap.add_argument("--no-reuse", action="store_true")
    ap.add_argument("--line-expansions", action="store_true")
    ap.add_argument("--all-children", action="store_true",
                    help="every expansion proposes all 3 children, even past the iterations left")
    ap.add_argument("--eager-children", action="store_true",
                    help="every expansion samples its children at once (not one at a time, when UCT visits them)")
    ap.add_argument("--samples", type=int, default=0,
                    help="first draw this many cot samples per problem into the store (timed separately)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=32, help="llama.cpp sequences decoded together")
    ap.add_argument("--model", default=None)
    ap.add_argument("--store", default="benchmarks/out/grounded_cost.sqlite")
    ap.add_argument("--results", default=None, help="write the result JSON here")
    args = ap.parse_args(argv)

    from rationales.backends import get_backend
    from rationales.generate import GenerationStats
    from rationales.models import DEFAULT_MODEL
    from rationales.select.grounded import grounded_trees, stored_samples
    from rationales.store import Store
    from rationales.tasks import reasoning_gym

    everything = reasoning_gym.load("gsm_symbolic", size=400, seed=0)
    pool = everything[:200] if args.pool == "train" else everything[200:]
    probs = pool[args.skip:args.skip + args.problems]
    Path(args.store).parent.mkdir(parents=True, exist_ok=True)
    backend = get_backend("llamacpp", model=args.model or DEFAULT_MODEL, n_threads=args.threads,
                          n_parallel=args.parallel)
    stats = GenerationStats()
    with Store(args.store) as store:
        store.put_problems(probs)
        sample_stats, t_samples = GenerationStats(), 0.0
        if args.samples:
            from rationales.generate import cot_specs, generate

            t0 = time.time()
            generate(cot_specs(probs, n=args.samples, temperature=0.7, top_p=0.95, max_tokens=args.max_tokens),
                     backend, store, stats=sample_stats)
            t_samples = time.time() - t0
        stored = sum(len(v) for v in stored_samples(store, probs, backend.model).values())
        # a rerun replays the trees' cached proposals; lazy children also re-read their own earlier
        # proposals from the cache every expansion, so "cached > 0" alone does not mean resumed
        resumed = any(store.rationales(problem_id=p.id, method=m)
                      for p in probs for m in ("grounded_mcts_step", "grounded_mcts_rollout"))
        t0 = time.time()
        trees = grounded_trees(probs, backend, store, rollouts=args.rollouts, rollout_tokens=args.max_tokens,
                               settle=args.settle, reuse=not args.no_reuse,
                               whole_expansions=not args.line_expansions,
                               budget_children=not args.all_children, lazy_children=not args.eager_children,
                               stats=stats)
        dt = time.time() - t0
    steps = sum(len(r.steps) for t in trees for r in t.rationales)
    n = len(trees)
    res = {
        "task": "gsm_symbolic", "pool": args.pool, "skip": args.skip, "problems": n, "model": backend.model, "threads": args.threads,
        "parallel": args.parallel, "rollouts": args.rollouts, "max_tokens": args.max_tokens,
        "settle": args.settle, "reuse": not args.no_reuse, "whole_expansions": not args.line_expansions,
        "budget_children": not args.all_children, "lazy_children": not args.eager_children,
        "seconds": round(dt, 1), "resumed": resumed,
        "samples_new": stats.new, "samples_cached": stats.cached, "tokens_new": stats.tokens_new,
        "tokens": sum(t.tokens for t in trees), "tokens_reused": sum(t.reused_tokens for t in trees),
        "stored_samples_per_problem": round(stored / max(n, 1), 2),
        "iterations": sum(t.iterations for t in trees), "iterations_reused": sum(t.reused for t in trees),
        "trees_settled": sum(1 for t in trees if t.stopped == "settled"),
        "paths": sum(len(t.rationales) for t in trees), "paths_right": sum(1 for t in trees for r in t.rationales
                                                                           if r.correct),
        "labelled_steps": steps,
        "steps_tool_checked": sum(1 for t in trees for r in t.rationales for s in r.steps
                                  if s.verdict("tool") is not None),
        "steps_mc_positive": sum(1 for t in trees for r in t.rationales for s in r.steps if s.verdict("mc") == 1),
    }
    if args.samples:
        res.update(samples_drawn=args.samples, samples_seconds=round(t_samples, 1),
                   samples_resumed=sample_stats.cached > 0, samples_tokens_new=sample_stats.tokens_new,
                   seconds_from_scratch=round(dt + t_samples, 1),
                   projected_minutes_300_problems_from_scratch=round(300 * (dt + t_samples) / max(n, 1) / 60, 1),
                   projected_minutes_200_problems_from_scratch=round(200 * (dt + t_samples) / max(n, 1) / 60, 1),
                   tokens_per_second_samples=round(sample_stats.tokens_new / max(t_samples, 1e-9), 1))
    # the machine's speed, so that runs on different machines can be compared by their tokens
    res["tokens_per_second_trees"] = round(stats.tokens_new / max(dt, 1e-9), 1)
    res["seconds_per_problem"] = round(dt / max(n, 1), 2)
    res["seconds_per_labelled_step"] = round(dt / max(steps, 1), 3)
    res["tokens_per_labelled_step"] = round(res["tokens"] / max(steps, 1), 1)
    res["projected_minutes_300_problems"] = round(300 * dt / max(n, 1) / 60, 1)
    res["projected_minutes_200_problems"] = round(200 * dt / max(n, 1) / 60, 1)
    print(json.dumps(res, indent=1))
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(res, indent=1) + "\n")
    note = " (resumed: cached samples replayed, the time is not a cost)" if res["resumed"] else ""
    print(f"GroundedPRM labels: {steps} labelled steps of {n} problems in {dt / 60:.1f} min on "
          f"{args.threads} thread(s): {res['seconds_per_labelled_step']} s and {res['tokens_per_labelled_step']} "
          f"tokens per labelled step; 300 problems: {res['projected_minutes_300_problems']} min{note}"
          + (f" ({res['projected_minutes_300_problems_from_scratch']} min with the {args.samples} samples per "
             "problem drawn first)" if args.samples else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
