"""Prompting methods on one reasoning-gym task with a real model:

1. CoT vs mistakes-in-context vs CoT+ (Alazraki et al., 2025) on the same held-out problems,
   greedy, accuracy with Wilson 95% intervals. The first ``--train-size`` problems are the
   training problems whose wrong samples (``--train-samples`` each, T=0.7) make the
   demonstrations; the next ``--limit`` problems are held out.
2. Feedback patching per rationale format (Malaviya et al., 2023): a greedy rationale in each
   format for the first ``--patch-limit`` held-out problems, answered from the rationale
   alone; for every wrong one the script writes scripted feedback (from the gold answer) to
   ``feedback.jsonl`` under ``--out``, reads that file back exactly as ``rationales patch``
   does, patches, answers again and prints the patch success rate per format.

Everything goes through the store (``--store``), so a rerun reuses every sample. Run alone, under
the model lock (two llama.cpp processes on 2 cores slow each other 10-100x):

    OMP_WAIT_POLICY=PASSIVE flock /tmp/rationales-model.lock python benchmarks/methods.py

Default: reasoning_gym:basic_arithmetic (short questions and rationales; the default model
qwen2.5-coder-0.5b gets about a quarter of them right, while on gsm_symbolic it was right on 1
sample in 12, which leaves nothing to compare), 6 training + 10 held-out problems, 4 of them for
the formats/patching part: 130 model calls, measured at 4.5 + 8.2 min on the shared 2-core
machine while other jobs ran (about 40 generated tokens/s). ``--limit`` and ``--patch-limit``
trade time for precision: with n = 10 the 95% intervals are about +-0.25 wide, so only large
differences show.
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="reasoning_gym:basic_arithmetic")
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=10, help="held-out problems")
    ap.add_argument("--train-size", type=int, default=6, help="training problems (demonstration pool)")
    ap.add_argument("--patch-limit", type=int, default=4, help="held-out problems used for formats + patching")
    ap.add_argument("--train-samples", type=int, default=4, help="CoT samples per training problem")
    ap.add_argument("--shots", type=int, default=3)
    ap.add_argument("--selection", default="random", choices=["random", "similar", "contrastive"])
    ap.add_argument("--explain", default="model", choices=["model", "gold", "auto"])
    ap.add_argument("--formats", default="all", help="comma list of rationale formats, or all")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", default="rationales-out/benchmark-methods.sqlite")
    ap.add_argument("--out", default="rationales-out/benchmark-methods")
    ap.add_argument("--skip-patch", action="store_true")
    args = ap.parse_args(argv)

    from rationales.backends import get_backend
    from rationales.generate import GenerationStats
    from rationales.jobs.methods import MethodContext
    from rationales.jobs.methods.formats import decomposed_selection, parse_formats, run_formats
    from rationales.jobs.methods.mistakes import MistakesConfig, compare
    from rationales.jobs.methods.patch import (FeedbackItem, gold_feedback, patch_rationales, read_feedback_jsonl,
                                               resolve_items, success_by_format, write_feedback_jsonl)
    from rationales.report import write_report
    from rationales.report.patch import write_report as write_patch_report
    from rationales.select.vote import strategy_row
    from rationales.store import Store
    from rationales.tasks import load_task

    out = Path(args.out)
    n = args.train_size + args.limit
    problems = load_task(args.task, size=n, seed=args.seed, limit=n)
    t_load = time.time()
    opts = {"n_threads": int(os.environ.get("RATIONALES_THREADS", "2"))} if args.backend == "llamacpp" else {}
    backend = get_backend(args.backend, model=args.model, **opts)
    print(f"task {args.task} · model {backend.model} · {args.train_size} training + {args.limit} held-out problems "
          f"· loaded in {time.time() - t_load:.1f}s", flush=True)
    results: dict = {"task": args.task, "model": backend.model, "args": vars(args)}
    with Store(args.store) as store:
        # ---- 1. mistakes in context
        t0 = time.time()
        ctx = MethodContext(problems=problems, backend=backend, store=store, out=out, task=args.task,
                            samples=args.train_samples, temperature=0.7, top_p=0.95, max_tokens=args.max_tokens,
                            seed=args.seed)
        cfg = MistakesConfig(variants=("cot", "mistakes", "cot_plus"), train_size=args.train_size, shots=args.shots,
                             selection=args.selection, explain=args.explain)
        summary = compare(ctx, cfg)
        write_report(summary, out)  # mistakes.html
        t_mistakes = time.time() - t0
        print(f"\n1. held-out accuracy (greedy), {summary['heldout_problems']} problems; demonstrations from "
              f"{summary['demo_pool']} of {summary['train_problems']} training problems with a wrong sample "
              f"(training sample accuracy {summary['train_sample_accuracy']['accuracy']:.2f}); "
              f"{args.selection} selection, {args.shots} shots, CoT+ explanations: {args.explain}")
        print(f"{'variant':<10} {'acc':>6} {'95% CI':>16} {'correct':>8} {'tokens':>8}")
        for name, row in summary["strategies"].items():
            print(f"{name:<10} {row['accuracy']:>6.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}] "
                  f"{row['correct']:>4}/{row['n']:<3} {row['tokens']:>8}")
        print(f"({summary['samples_new']} new / {summary['samples_cached']} cached calls, {t_mistakes:.0f}s)",
              flush=True)
        results["mistakes"] = {"strategies": summary["strategies"], "demo_pool": summary["demo_pool"],
                               "train_sample_accuracy": summary["train_sample_accuracy"], "time_s": round(t_mistakes, 1)}

        # ---- 2. formats and patching with a scripted feedback file
        if not args.skip_patch:
            t0 = time.time()
            heldout = problems[args.train_size:][:args.patch_limit]
            fmts = parse_formats(None if args.formats == "all" else args.formats)
            stats = GenerationStats()
            by_format = run_formats(heldout, backend, store, formats=fmts, max_tokens=args.max_tokens, stats=stats)
            by_id = {p.id: p for p in heldout}
            wrong = [r for f in fmts for r in by_format[f] if r.correct is False]
            fb_path = write_feedback_jsonl(out / "feedback.jsonl",
                                           [FeedbackItem(r.id, gold_feedback(by_id[r.problem_id], r)) for r in wrong])
            triples = resolve_items(read_feedback_jsonl(fb_path), store, fb_path)
            patched = patch_rationales(triples, backend, store, max_tokens=args.max_tokens, stats=stats)
            success = success_by_format(patched)
            t_patch = time.time() - t0
            print(f"\n2. rationale formats (decomposed, greedy) on the {len(heldout)} held-out problems, and patch "
                  f"success with scripted gold feedback ({fb_path}, {len(wrong)} rows)")
            print(f"{'format':<17} {'acc':>6} {'95% CI':>16} {'wrong':>6} {'fixed':>6} {'success':>8} {'95% CI':>16}")
            for f in fmts:
                row = strategy_row([decomposed_selection(p, r, f) for p, r in zip(heldout, by_format[f])])
                s = success.get(f, {"wrong_parents": 0, "fixed": 0, "success_rate": None, "ci_low": 0, "ci_high": 1})
                rate = "-" if s["success_rate"] is None else f"{s['success_rate']:.3f}"
                print(f"{f:<17} {row['accuracy']:>6.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}] "
                      f"{s['wrong_parents']:>6} {s['fixed']:>6} {rate:>8} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]")
                results.setdefault("formats", {})[f] = {"accuracy": row, "patch": s}
            if "all" in success:
                a = success["all"]
                print(f"{'all':<17} {'':>6} {'':>16} {a['wrong_parents']:>6} {a['fixed']:>6} "
                      f"{a['success_rate']:>8.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}]")
                results["patch_all"] = a
            report = write_patch_report(out, {"task": args.task, "model": backend.model, "feedback_source": "gold",
                                              "patches": len(patched), "patch_success": success}, patched, store)
            print(f"({stats.new} new / {stats.cached} cached calls, {t_patch:.0f}s; report {report})")
            results["patch_time_s"] = round(t_patch, 1)
    backend.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "methods_benchmark.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nresults: {out / 'methods_benchmark.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
