"""Rationale distillation: does a 135M student learn from a 0.5B teacher's rationales?

On ``reasoning_gym:basic_arithmetic`` (2-3 terms of 1-2 digits), problems are split BY PROBLEM
into train and held-out test halves (the split is recorded in the store, blob ``split:distill``):

1. teacher = the default model (Qwen2.5-Coder-0.5B, llama.cpp) samples 5 rationales per
   *training* problem at T=0.7 (QCRD's positive-set recipe);
2. student = SmolLM2-135M-Instruct, rebuilt from its GGUF as a plain ``LlamaForCausalLM``;
3. up to five students, all evaluated greedy through ``--backend transformers`` on the *held-out*
   problems only: the base model, SFT on the teacher's correct self-consistent deduplicated
   rationales (``rationales train sft``), SFT on the *verbosity-reduced* versions of exactly those
   rationales (``sft_reduced``: ``score.brevity`` scored by the student's own GGUF, then
   ``train sft --reduced``; tokens of the training data and of the outputs reported), and QCRD on
   positives/negatives
   (``rationales train qcrd``: negatives = teacher rationales failing self-consistency + the
   student's own samples at T=1.5 from the checkpoint ``lag`` iterations earlier; positives must
   hold reasoning), and ``qcrd_bare``, the same with the teacher's bare answer statements kept
   among the positives (how QCRD was built before; the ablation of that fix);
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
                    help="students to train and evaluate, comma-separated (base, sft, sft_reduced, qcrd, qcrd_bare: "
                         "QCRD with bare answer statements kept among the positives); base is always evaluated")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for llama.cpp (teacher) and torch (training, evaluation); 1 on a shared machine")
    ap.add_argument("--no-lock", action="store_true", help=f"never take {LOCK} (others' model jobs may then overlap)")
    ap.add_argument("--teacher-parallel", type=int, default=16, help="sequences decoded together by the teacher")
    ap.add_argument("--sft-per-problem", type=int, default=0,
                    help="SFT: at most K rationales per training problem (0: --samples)")
    ap.add_argument("--qcrd-positives", type=int, default=0, help="QCRD: positives per question (0: --samples)")
    ap.add_argument("--qcrd-negatives", type=int, default=3, help="QCRD: stored negatives per question")
    ap.add_argument("--student-max-tokens", type=int, default=160, help="QCRD: max tokens of a self-adversarial negative")
    ap.add_argument("--reducer", default="",
                    help="llama.cpp model that scores sentence removal for the verbosity-reduced SFT student "
                         "(default: the student's own GGUF, as in verbosity-aware reduction)")
    ap.add_argument("--reduce-threshold", type=float, default=0.1,
                    help="max drop of the answer's log-probability per removed sentence")
    ap.add_argument("--eval-chunk", type=int, default=16,
                    help="held-out problems per evaluation round: every student is evaluated on a chunk before "
                         "the next, and the results are rewritten after each, so a cut-off run still compares "
                         "all students on the same problems")
    ap.add_argument("--train-only", action="store_true",
                    help="train the students (cached, resumable) and stop before evaluating them")
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


def evaluate(name: str, model_dir: str, model_id: str, test, store, max_tokens: int) -> list[dict]:
    """Greedy outcomes of one student on held-out problems (cached in the store): one dict per
    problem with ``correct``, ``tokens`` and ``truncated``."""
    from rationales.backends import get_backend
    from rationales.generate import GenerationStats, cot_specs, generate

    stats = GenerationStats()
    t0 = time.time()
    be = get_backend("transformers", model=model_dir, model_id=model_id, batch_size=16)
    try:
        out = generate(cot_specs(test, n=1, temperature=0.0, max_tokens=max_tokens), be, store, stats=stats)
    finally:
        be.close()
    rows = [{"correct": bool(rs[0].correct), "tokens": int(rs[0].tokens or 0),
             "truncated": rs[0].finish_reason == "length"} for rs in out]
    print(f"  {name}: {sum(r['correct'] for r in rows)}/{len(rows)} correct ({stats.new} new, {stats.cached} cached "
          f"samples, {time.time() - t0:.0f} s)", flush=True)
    return rows


def _card_id(out: Path) -> str:
    from rationales.records import content_hash

    card = json.loads((out / "model_card.json").read_text(encoding="utf-8"))
    return f"{out.name}@{content_hash(card['created'], card['metrics'].get('train_loss'), length=10)}"


def _mean(xs) -> float | None:
    xs = list(xs)
    return round(sum(xs) / len(xs), 2) if xs else None


def student_tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def training_tokens(store, cfg, tok, *, reduced: bool) -> dict:
    """The SFT rows ``cfg`` selects (``reduced``: their verbosity-reduced versions), with the tokens
    of their completions counted by the *student's* tokenizer (the teacher's and the reducer's
    tokenizers differ, so the stored per-record token counts are not comparable)."""
    from rationales.data.sft import sft_rows

    def n(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    rows = sft_rows(store, cfg.data_filter("train"), reduced=reduced)
    toks = [n(row["messages"][-1]["content"]) for row in rows]
    res = {"rationales": len(rows), "tokens": sum(toks), "mean_tokens": _mean(toks)}
    if reduced:  # the originals of exactly these rows, for a like-for-like saving
        ids = {row["rationale_id"] for row in rows}
        kids = store.get_rationales(ids).values()
        parents = store.get_rationales([k.parent_id for k in kids if k.parent_id])
        orig = [n(r.text) for r in parents.values()]
        res.update(tokens_of_originals=sum(orig), mean_tokens_of_originals=_mean(orig))
    return res


def reduce_sft_rationales(args, store, cfg) -> dict:
    """Verbosity-aware reduction (score.brevity) of exactly the rationales the SFT student trains on,
    scored by ``args.reducer`` (default: the student's GGUF) on llama.cpp; stored, so cached."""
    from rationales.backends import get_backend
    from rationales.data.filters import select
    from rationales.generate import GenerationStats, cot_specs
    from rationales.score.brevity import reduce_all

    sel = select(store, cfg.data_filter("train"))
    problems = [g.problem for g in sel.groups]
    prompts = [s.prompt for s in cot_specs(problems, n=1, temperature=0.0, max_tokens=args.max_tokens)]
    t0 = time.time()
    stats = GenerationStats()
    reducer = args.reducer or args.student
    with model_lock("verbosity reduction"):
        be = get_backend("llamacpp", model=reducer, n_ctx=1024, n_threads=args.threads)
        try:
            pairs = reduce_all(be, store, problems, prompts, [g.rationales for g in sel.groups],
                               threshold=args.reduce_threshold, stats=stats)
        finally:
            be.close()
    done = [pr for row in pairs for pr in row if pr.reduced is not None]
    res = {"reducer": reducer, "threshold": args.reduce_threshold, "rationales": sum(len(r) for r in pairs),
           "reduced": len(done), "seconds": round(time.time() - t0),
           "sentences": sum(len(pr.reduction.sentences) for pr in done if pr.reduction),
           "sentences_dropped": sum(len(pr.reduction.dropped) for pr in done if pr.reduction),
           "still_correct": sum(bool(pr.reduced.correct) for pr in done)}
    print(f"reduction: {res}", flush=True)
    return res


def run_students(args, store, train, test, t_start) -> int:
    from rationales.models import resolve_model
    from rationales.train.models import gguf_to_hf_dir
    from rationales.train.qcrd import QCRDTrainConfig, train_qcrd
    from rationales.train.sft import SFTTrainConfig, train_sft

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_problem = args.sft_per_problem or args.samples
    common = dict(model=args.student, data=args.store, from_model=args.teacher, method="cot", dedupe=True,
                  agree_sc=True, max_per_problem=per_problem, split_name="distill",
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
    timings: dict = {}
    wanted = {x.strip() for x in args.students.split(",") if x.strip()} | {"base"}
    unknown = wanted - {"base", "sft", "sft_reduced", "qcrd", "qcrd_bare"}
    if unknown:
        raise SystemExit(f"error: unknown students {sorted(unknown)}: use base, sft, sft_reduced, qcrd, qcrd_bare")
    trained: dict = {}
    train_data: dict = {}
    sft_cfg = SFTTrainConfig(output_dir=str(out / "sft"), correct_only=True, **common)
    student_tok = student_tokenizer(base_dir)
    train_data["sft"] = training_tokens(store, sft_cfg, student_tok, reduced=False)
    with model_lock("training"):  # one locked batch for the trainings
        if "sft" in wanted:
            t0 = time.time()
            trained["sft"] = train_sft(sft_cfg)
            timings["sft_train_s"] = round(time.time() - t0)
            print(f"SFT: {trained['sft'].examples} rationales, {trained['sft'].steps} steps, loss "
                  f"{trained['sft'].train_loss:.3f}, {timings['sft_train_s']} s", flush=True)
    if "sft_reduced" in wanted:
        t0 = time.time()
        red = reduce_sft_rationales(args, store, sft_cfg)
        timings["reduce_s"] = round(time.time() - t0)
        with model_lock("training"):
            t0 = time.time()
            r = trained["sft_reduced"] = train_sft(SFTTrainConfig(output_dir=str(out / "sft_reduced"),
                                                                  correct_only=True, reduced=True, **common))
            timings["sft_reduced_train_s"] = round(time.time() - t0)
        card = json.loads((out / "sft_reduced" / "model_card.json").read_text(encoding="utf-8"))
        rs = card["data"].get("reduction", {})
        train_data["sft_reduced"] = {**red, **{k: rs.get(k) for k in (
            "replaced", "no_reduction", "dropped_reduction_wrong", "body_tokens_saved", "originals_correct",
            "reductions_still_correct", "accuracy_kept")},
            **training_tokens(store, sft_cfg, student_tok, reduced=True)}
        t = train_data["sft_reduced"]["tokens_of_originals"]
        train_data["sft_reduced"]["tokens_saved_share"] = round(1 - train_data["sft_reduced"]["tokens"] / t, 4) if t else None
        print(f"SFT on reduced rationales: {r.examples} rationales, {r.steps} steps, loss {r.train_loss:.3f}, "
              f"{timings['sft_reduced_train_s']} s; data {train_data['sft_reduced']}", flush=True)
    # qcrd: positives must be rationales (the default); qcrd_bare: the teacher's bare answer
    # statements kept among the positives (as built before; the min over positives picks them)
    for name, need in (("qcrd", True), ("qcrd_bare", False)):
        if name not in wanted:
            continue
        qcfg = dict(output_dir=str(out / name), correct_only=False, positives_need_reasoning=need,
                    max_positives=args.qcrd_positives or args.samples, max_negatives=args.qcrd_negatives,
                    student_samples=1, student_max_tokens=16 if args.smoke else args.student_max_tokens,
                    **{**common, "epochs": args.epochs / args.qcrd_iterations, "batch_size": 1, "grad_accum": 4})
        with model_lock("training"):
            t0 = time.time()
            q = trained[name] = train_qcrd(QCRDTrainConfig(iterations=args.qcrd_iterations, **qcfg))
            timings[f"{name}_train_s"] = round(time.time() - t0)
        card = json.loads((out / name / "model_card.json").read_text(encoding="utf-8"))
        train_data[name] = {k: card["data"].get(k) for k in ("rows", "positives", "negatives",
                                                             "positives_without_reasoning", "problems_without_positive")}
        print(f"{name}: {q.examples} questions, {q.steps} steps over {len(q.metrics['rounds'])} rounds, loss "
              f"{q.train_loss:.3f}, {timings[f'{name}_train_s']} s; data {train_data[name]}; rounds: "
              f"{q.metrics['rounds']}", flush=True)

    if args.train_only:
        print(f"trained {sorted(trained)} ({timings}); --train-only: not evaluating", flush=True)
        return 0
    students = [("base", base_dir, f"{args.student}-hf")] + [
        (name, str(out / name), _card_id(out / name)) for name in ("sft", "sft_reduced", "qcrd", "qcrd_bare")
        if name in trained]
    print(f"evaluating on {len(test)} held-out problems (greedy, --backend transformers, chunks of "
          f"{args.eval_chunk}, every student on a chunk before the next):", flush=True)
    outcomes: dict = {name: [] for name, _, _ in students}
    t_eval = time.time()
    step = max(1, args.eval_chunk)
    for c in range(0, len(test), step):
        chunk = test[c:c + step]
        with model_lock("evaluating the students"):
            for name, d, mid in students:
                outcomes[name] += evaluate(name, d, mid, chunk, store, ev_tokens)
        timings["eval_s"] = round(time.time() - t_eval)
        report(args, outcomes, trained, train_data, train, timings, t_start, ev_tokens)
    return 0


def report(args, outcomes, trained, train_data, train, timings, t_start, ev_tokens) -> None:
    from rationales.stats import accuracy, mcnemar_exact

    flags = {k: [r["correct"] for r in v] for k, v in outcomes.items()}
    n = len(flags["base"])
    total = time.time() - t_start
    print(f"\nheld-out accuracy after {n} problems (student {args.student}, teacher {args.teacher}, {len(train)} "
          f"train problems, disjoint by the recorded split):")
    print(f"{'student':12s} {'accuracy':>8s} {'95% CI':>16s} {'tokens':>7s} {'trunc':>6s} "
          f"{'vs base (McNemar: wins/losses, p)':>34s}")
    res_students = {}
    for name, f in flags.items():
        acc = accuracy(f)
        lo, hi = acc.ci
        toks = _mean(r["tokens"] for r in outcomes[name])
        trunc = sum(r["truncated"] for r in outcomes[name])
        row = {"correct": sum(f), "n": len(f), "accuracy": round(acc.value, 4),
               "ci95_wilson": [round(lo, 4), round(hi, 4)], "mean_output_tokens": toks, "truncated": trunc}
        cmp = ""
        if name != "base":
            w, l, p = mcnemar_exact(flags["base"], f)
            cmp = f"+{w} / -{l}, p={p:.3f}"
            row["mcnemar_vs_base"] = {"wins": w, "losses": l, "p_exact": round(p, 4)}
        if name == "sft_reduced" and "sft" in flags:
            w, l, p = mcnemar_exact(flags["sft"], f)
            row["mcnemar_vs_sft"] = {"wins": w, "losses": l, "p_exact": round(p, 4)}
            cmp += f" (vs SFT +{w}/-{l}, p={p:.3f})"
        res_students[name] = row
        print(f"{name:12s} {acc.value:8.3f} {'[%.3f, %.3f]' % (lo, hi):>16s} {toks or 0:7.1f} {trunc:6d} {cmp:>34s}")
    print(f"time: {total / 60:.1f} min in total ({timings})", flush=True)
    if not args.results:
        return
    res = {"task": "reasoning_gym:basic_arithmetic (2-3 terms, 1-2 digits)", "student": args.student,
           "train_problems": len(train), "test_problems": n, "split": "distill (by problem, recorded in the store)",
           "teacher_samples_per_problem": args.samples, "teacher_temperature": 0.7,
           "teacher": {"model": args.teacher, **getattr(args, "teacher_stats", {})},
           "training_data": train_data,
           "trained": {k: {"examples": v.examples, "steps": v.steps,
                           "train_loss": None if v.train_loss is None else round(v.train_loss, 4),
                           **({"rounds": v.metrics.get("rounds")} if k.startswith("qcrd") else {})}
                       for k, v in trained.items()},
           "epochs": args.epochs, "lr": args.lr, "qcrd_iterations": args.qcrd_iterations,
           "eval": f"greedy, max {ev_tokens} tokens, held-out only", "threads": args.threads,
           "timings_s": {**timings, "total": round(total)}, "students": res_students}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
