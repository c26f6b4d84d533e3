"""Rationale distillation: does a 135M student learn from a 0.5B teacher's rationales?

On ``reasoning_gym:basic_arithmetic`` (2-3 terms of 1-2 digits), problems are split BY PROBLEM
into train and held-out test halves (the split is recorded in the store, blob ``split:distill``):

1. teacher = the default model (Qwen2.5-Coder-0.5B, llama.cpp) samples 5 rationales per
   *training* problem at T=0.7 (QCRD's positive-set recipe);
2. student = SmolLM2-135M-Instruct, rebuilt from its GGUF as a plain ``LlamaForCausalLM``;
3. three students, all evaluated greedy through ``--backend transformers`` on the *held-out*
   problems only: the base model, SFT on the teacher's correct self-consistent deduplicated
   rationales (``rationales train sft``), and QCRD on positives/negatives
   (``rationales train qcrd``: negatives = teacher rationales failing self-consistency + the
   student's own samples at T=1.5 from the checkpoint ``lag`` iterations earlier);
4. accuracy with Wilson 95% intervals, and exact McNemar tests of each distilled student vs base.

Everything is cached in the store (``--store``, default ``benchmarks/out/distill.sqlite``): a
killed run resumes (trainers resume from their last checkpoint, samples are never redrawn). The
llama.cpp/torch model lock ``/tmp/rationales-model.lock`` is taken per model batch, not for the
whole run, so other model jobs can interleave:

    nohup python benchmarks/distill.py > /tmp/distill.log 2>&1 &

Measured time: see the last run's log (printed at the end).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LOCK = "/tmp/rationales-model.lock"


@contextmanager
def model_lock(what: str):
    if os.environ.get("DISTILL_NO_LOCK"):  # --no-lock sets it  # smoke runs on a tiny model made in code
        yield
        return
    t = time.time()
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        waited = time.time() - t
        if waited > 5:
            print(f"  (waited {waited:.0f} s for the model lock before {what})", flush=True)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def mcnemar_exact(a: list[bool], b: list[bool]) -> tuple[int, int, float]:
    """(b-only wins, a-only wins, two-sided exact p) for paired outcomes."""
    n01 = sum(1 for x, y in zip(a, b) if not x and y)
    n10 = sum(1 for x, y in zip(a, b) if x and not y)
    n = n01 + n10
    if n == 0:
        return n01, n10, 1.0
    k = min(n01, n10)
    p = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return n01, n10, min(1.0, 2 * p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="benchmarks/out/distill.sqlite")
    ap.add_argument("--out", default="benchmarks/out/distill")
    ap.add_argument("--teacher", default="qwen2.5-coder-0.5b")
    ap.add_argument("--student", default="smollm2-135m")
    ap.add_argument("--problems", type=int, default=120)
    ap.add_argument("--test-fraction", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--samples", type=int, default=5, help="teacher samples per training problem (QCRD: 5)")
    ap.add_argument("--max-tokens", type=int, default=320)
    ap.add_argument("--eval-max-tokens", type=int, default=0, help="students' greedy output cap (0: --max-tokens)")
    ap.add_argument("--chunk", type=int, default=8, help="problems per locked teacher batch")
    ap.add_argument("--teacher-only", action="store_true", help="only draw the teacher's samples")
    ap.add_argument("--stored-teacher", action="store_true",
                    help="draw no new teacher samples: train on the training problems the store already covers")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--qcrd-iterations", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="a seconds-long check of the student pipeline (2 steps, "
                    "4 test problems, short outputs); use with --student tiny --out elsewhere")
    ap.add_argument("--train-problems", type=int, default=0,
                    help="teacher samples only the first K training problems (0: all); sizes the run's cost")
    ap.add_argument("--results", default="", help="write the final numbers as JSON here")
    ap.add_argument("--students", default="base,sft,qcrd",
                    help="students to train and evaluate, comma-separated (base, sft, qcrd); base is always evaluated")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for llama.cpp (teacher) and torch (training, evaluation); 1 on a shared machine")
    ap.add_argument("--no-lock", action="store_true", help=f"never take {LOCK} (others' model jobs may then overlap)")
    ap.add_argument("--teacher-parallel", type=int, default=16, help="sequences decoded together by the teacher")
    ap.add_argument("--done-file", default="",
                    help="touch this file, containing the store's path, when the teacher phase is complete")
    args = ap.parse_args(argv)
    t_start = time.time()
    if args.no_lock:
        os.environ["DISTILL_NO_LOCK"] = "1"
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)

    from rationales.backends import get_backend
    from rationales.data.splits import record_split
    from rationales.generate import GenerationStats, cot_specs, generate
    from rationales.store import Store
    from rationales.tasks import reasoning_gym

    store = Store(args.store)
    problems = reasoning_gym.load("basic_arithmetic", size=args.problems, seed=args.seed, min_terms=2, max_terms=3,
                                  min_digits=1, max_digits=2)
    store.put_problems(problems)
    split = record_split(store, [p.id for p in problems], name="distill", test_fraction=args.test_fraction, seed=0)
    train_set, test_set = set(split.train), set(split.test)
    train = [p for p in problems if p.id in train_set]
    if args.train_problems:
        train = train[:args.train_problems]
    test = [p for p in problems if p.id in test_set]
    assert not train_set & test_set
    print(f"task reasoning_gym:basic_arithmetic (2-3 terms, 1-2 digits): {len(train)} train / {len(test)} "
          f"held-out problems (split 'distill' recorded in {args.store})", flush=True)

    # ---------------------------------------------------------------- 1. teacher samples
    stats = GenerationStats()
    specs = cot_specs(train, n=args.samples, temperature=0.7, max_tokens=args.max_tokens, seed=0)
    t0 = time.time()
    backend = None
    for i in range(0, 0 if args.smoke or args.stored_teacher else len(specs), args.chunk):
        chunk = specs[i:i + args.chunk]
        ids_needed = len(chunk) * args.samples
        with model_lock("teacher sampling"):
            if backend is None:
                backend = get_backend("llamacpp", model=args.teacher, n_ctx=1024, n_threads=args.threads,
                                      n_parallel=args.teacher_parallel)
            generate(chunk, backend, store, stats=stats)
        el = time.time() - t0
        print(f"  teacher: {min(i + args.chunk, len(specs))}/{len(specs)} problems "
              f"({stats.new} new, {stats.cached} cached samples of {ids_needed} per chunk; {stats.tokens_new} new "
              f"tokens in {el:.0f} s = {stats.tokens_new / max(el, 1e-9):.1f} tok/s)", flush=True)
    if backend is not None:
        backend.close()
    teacher_rs = [r for r in store.rationales(model=args.teacher, method="cot") if r.problem_id in train_set]
    args.teacher_stats = {"rationales": len(teacher_rs), "new_tokens": stats.tokens_new,
                          "seconds": round(time.time() - t0)}
    covered = {r.problem_id for r in teacher_rs}
    train = [p for p in train if p.id in covered]  # --stored-teacher: only the problems the teacher covered
    t_acc = sum(bool(r.correct) for r in teacher_rs) / max(1, len(teacher_rs))
    args.teacher_stats.update(problems=len(covered), sample_accuracy=round(t_acc, 4))
    print(f"teacher: {len(teacher_rs)} rationales on {len(train)} training problems, sample accuracy {t_acc:.3f}, "
          f"{stats.tokens_new} new tokens in {time.time() - t0:.0f} s", flush=True)
    if args.done_file and not args.smoke:
        Path(args.done_file).write_text(str(Path(args.store).resolve()) + "\n", encoding="utf-8")
    if args.teacher_only:
        return 0
    return run_students(args, store, train, test, t_start)


def evaluate(name: str, model_dir: str, model_id: str, test, store, max_tokens: int) -> list[bool]:
    """Greedy accuracy flags of one student on the held-out problems (cached in the store)."""
    from rationales.backends import get_backend
    from rationales.generate import GenerationStats, cot_specs, generate

    stats = GenerationStats()
    t0 = time.time()
    be = get_backend("transformers", model=model_dir, model_id=model_id, batch_size=16)
    try:
        out = generate(cot_specs(test, n=1, temperature=0.0, max_tokens=max_tokens), be, store, stats=stats)
    finally:
        be.close()
    flags = [bool(rs[0].correct) for rs in out]
    print(f"  {name}: {sum(flags)}/{len(flags)} correct ({stats.new} new, {stats.cached} cached samples, "
          f"{time.time() - t0:.0f} s)", flush=True)
    return flags


def _card_id(out: Path) -> str:
    from rationales.records import content_hash

    card = json.loads((out / "model_card.json").read_text(encoding="utf-8"))
    return f"{out.name}@{content_hash(card['created'], card['metrics'].get('train_loss'), length=10)}"


def run_students(args, store, train, test, t_start) -> int:
    from rationales.stats import accuracy
    from rationales.train.models import gguf_to_hf_dir
    from rationales.models import resolve_model
    from rationales.train.qcrd import QCRDTrainConfig, train_qcrd
    from rationales.train.sft import SFTTrainConfig, train_sft

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(model=args.student, data=args.store, from_model=args.teacher, method="cot", dedupe=True,
                  agree_sc=True, max_per_problem=args.samples, split_name="distill",
                  test_fraction=args.test_fraction, split_seed=0, epochs=args.epochs, lr=args.lr, batch_size=4,
                  save_steps=10, max_length=512, eval_max=0, seed=0, progress=False, logging_steps=5)
    if args.student == "tiny":  # a tiny model made in code (smoke runs)
        from rationales.train.models import save_trained, tiny_model

        base_dir = str(save_trained(*tiny_model(), out / "tiny-base"))
    else:
        base_dir = str(gguf_to_hf_dir(resolve_model(args.student), alias=args.student))
    if args.smoke:
        common.update(max_steps=2)
        test = test[:4]
        args.max_tokens = 24
    ev_tokens = 24 if args.smoke else (args.eval_max_tokens or args.max_tokens)
    timings = {}
    t0 = time.time()
    wanted = {x.strip() for x in args.students.split(",") if x.strip()} | {"base"}
    sft = q = None
    lock = model_lock("training (SFT, then QCRD)")  # one locked batch for both trainings
    lock.__enter__()
    if "sft" in wanted:
        sft = train_sft(SFTTrainConfig(output_dir=str(out / "sft"), correct_only=True, **common))
        timings["sft_train_s"] = round(time.time() - t0)
        print(f"SFT: {sft.examples} rationales, {sft.steps} steps, loss {sft.train_loss:.3f}, "
              f"{timings['sft_train_s']} s (resumed from {sft.resumed_from})", flush=True)
    t0 = time.time()
    qcfg = dict(output_dir=str(out / "qcrd"), correct_only=False, max_positives=args.samples, max_negatives=3,
                student_samples=1, student_max_tokens=16 if args.smoke else 160, **{**common, "epochs": args.epochs / args.qcrd_iterations,
                                                              "batch_size": 1, "grad_accum": 4})
    try:
        if "qcrd" in wanted:
            q = train_qcrd(QCRDTrainConfig(iterations=args.qcrd_iterations, **qcfg))
    finally:
        lock.__exit__(None, None, None)
    if q is not None:
        timings["qcrd_train_s"] = round(time.time() - t0)
        print(f"QCRD: {q.examples} questions, {q.steps} steps over {len(q.metrics['rounds'])} rounds, loss "
              f"{q.train_loss:.3f}, {timings['qcrd_train_s']} s; rounds: {q.metrics['rounds']}", flush=True)

    print(f"evaluating on {len(test)} held-out problems (greedy, --backend transformers):", flush=True)
    with model_lock("evaluating the three students"):  # one locked batch
        t_eval = time.time()
        flags = {"base": evaluate("base", base_dir, f"{args.student}-hf", test, store, ev_tokens)}
        if sft is not None:
            flags["sft"] = evaluate("SFT-distilled", str(out / "sft"), _card_id(out / "sft"), test, store, ev_tokens)
        if q is not None:
            flags["qcrd"] = evaluate("QCRD-distilled", str(out / "qcrd"), _card_id(out / "qcrd"), test, store,
                                     ev_tokens)
        timings["eval_s"] = round(time.time() - t_eval)
    total = time.time() - t_start
    print(f"\nheld-out accuracy (student {args.student}, teacher {args.teacher}, {len(train)} train / "
          f"{len(test)} test problems, disjoint by the recorded split):")
    print(f"{'student':16s} {'accuracy':>8s} {'95% CI':>16s} {'vs base (McNemar: wins/losses, p)':>36s}")
    for name, f in flags.items():
        acc = accuracy(f)
        lo, hi = acc.ci
        cmp = ""
        if name != "base":
            w, l, p = mcnemar_exact(flags["base"], f)
            cmp = f"+{w} / -{l}, p={p:.3f}"
        print(f"{name:16s} {acc.value:8.3f} {'[%.3f, %.3f]' % (lo, hi):>16s} {cmp:>36s}")
    print(f"time: {total / 60:.1f} min in total ({timings})")
    a = {k: accuracy(flags[k]).value if k in flags else float("nan") for k in ("base", "sft", "qcrd")}
    if args.results:
        res = {"task": "reasoning_gym:basic_arithmetic (2-3 terms, 1-2 digits)", "teacher": args.teacher,
               "student": args.student, "train_problems": len(train), "test_problems": len(test),
               "split": "distill (by problem, recorded in the store)", "teacher_samples_per_problem": args.samples,
               "teacher_temperature": 0.7, "teacher": {"model": args.teacher, **getattr(args, "teacher_stats", {})},
               "sft": sft and {"examples": sft.examples, "steps": sft.steps,
                               "train_loss": round(sft.train_loss, 4)},
               "qcrd": q and {"questions": q.examples, "steps": q.steps, "iterations": args.qcrd_iterations,
                              "train_loss": round(q.train_loss, 4)},
               "epochs": args.epochs, "lr": args.lr, "eval": f"greedy, max {ev_tokens} tokens, held-out only",
               "threads": args.threads, "timings_s": {**timings, "total": round(total)}, "students": {}}
        for name, f in flags.items():
            acc = accuracy(f)
            row = {"correct": sum(f), "n": len(f), "accuracy": round(acc.value, 4),
                   "ci95_wilson": [round(acc.ci[0], 4), round(acc.ci[1], 4)]}
            if name != "base":
                w, l, p = mcnemar_exact(flags["base"], f)
                row["mcnemar_vs_base"] = {"wins": w, "losses": l, "p_exact": round(p, 4)}
            res["students"][name] = row
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(f"summary: held-out accuracy base {a['base']:.3f}, SFT {a['sft']:.3f}, QCRD {a['qcrd']:.3f} "
          f"on {len(test)} basic_arithmetic problems ({args.student} student, {args.teacher} teacher)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
