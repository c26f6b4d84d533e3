"""Trust methods on one reasoning-gym task with a real model: reasoning utility, faithfulness
(PINTO counterfactual probes) and consistency, verbosity-aware reduction, calibration.

All four methods share one set of CoT samples (``--samples`` per problem, T=0.7, method
"cot"), so they are sampled once; every derived call (probes, re-answers) goes through the
store too, and a rerun with the same ``--store`` reuses everything. Prints one block per
method and ends with a JSON line of all the numbers. Run alone, under the model lock (two
llama.cpp processes on 2 cores slow each other 10-100x):

    OMP_WAIT_POLICY=PASSIVE flock /tmp/rationales-model.lock python benchmarks/trust.py

Default: reasoning_gym:basic_arithmetic (the default model qwen2.5-coder-0.5b is right about
half the time there, so there are right and wrong rationales to compare), 10 problems x 4
samples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def row(name: str, s: dict) -> str:
    return (f"  {name:<26} acc {s['accuracy']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}] "
            f"({s['correct']}/{s['n']}) tokens {s['tokens']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="reasoning_gym:basic_arithmetic")
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="utility,faithfulness,brevity,calibration")
    ap.add_argument("--store", default="rationales-out/benchmark-trust.sqlite")
    ap.add_argument("--out", default="rationales-out/benchmark-trust")
    args = ap.parse_args(argv)

    from rationales.backends import get_backend
    from rationales.jobs.methods import MethodContext, method_function
    from rationales.report import write_report
    from rationales.store import Store
    from rationales.tasks import load_task

    problems = load_task(args.task, size=max(50, args.limit), seed=args.seed, limit=args.limit)
    opts = {"n_threads": 2} if args.backend == "llamacpp" else {}
    backend = get_backend(args.backend, model=args.model, **opts)
    results: dict[str, dict] = {}
    with Store(args.store) as store:
        for name in args.methods.split(","):
            ctx = MethodContext(problems=list(problems), backend=backend, store=store, out=Path(args.out),
                                task=args.task, samples=args.samples, max_tokens=args.max_tokens, seed=args.seed)
            t0 = time.time()
            result = method_function(name)(ctx)
            write_report(result, args.out)
            s = result.to_json()
            s["time_s"] = round(time.time() - t0, 1)
            results[name] = s
            print(f"\n== {name} ({args.task}, {len(problems)} problems x {args.samples} samples, "
                  f"{backend.model}, {s['time_s']} s)")
            for k, v in s["strategies"].items():
                print(row(k, v))
            for k, v in s.items():
                if k not in ("strategies", "report", "method") and not isinstance(v, (list, dict)):
                    print(f"  {k}: {v}")
            if name == "utility":
                print(f"  utility gold: {s['utility']}\n  utility own:  {s['utility_own']}")
            if name == "calibration":
                for label, c in s["calibration"].items():
                    print(f"  ECE {label}: {c['ece']} (n={c['n']}, Brier {c['brier']}, "
                          f"mean conf {c['mean_confidence']}, acc {c['accuracy']})")
            sys.stdout.flush()
    backend.close()
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "report"} for k, v in results.items()},
                     default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
