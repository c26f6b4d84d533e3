"""Judges with rationales, and the self-rationalizing judge (seeds/001), on pairs whose truth is known.

1. Rationales: the default model (Qwen2.5-Coder-0.5B, llama.cpp) samples ``--samples`` CoT
   rationales per problem on ``reasoning_gym:basic_arithmetic`` (T=0.7); every sample is
   checked against the gold answer. ``--extra-store`` adds the same model's CoT rationales
   already stored elsewhere (other reasoning-gym tasks), at no model time.
2. Items (RewardBench-style reasoning subset): for each problem with a correct and a wrong
   rationale, up to 2 pairs (correct, wrong), gold side balanced; problems split into
   disjoint train / test halves (a split recorded in the store).
3. Offline judge benchmark of the default model itself (llama.cpp, GBNF-constrained verdict
   where the backend supports it): pairwise accuracy (both orders, position bias) on the test
   pairs, and absolute 1-5 scores of the test rationales against correctness (accuracy,
   Pearson/Spearman, quadratic kappa).
4. Self-rationalization (train/judge.py): the trained judge is SmolLM2-135M-Instruct rebuilt
   from its GGUF into a trainable LlamaForCausalLM (train/models.py), judging the default
   model's rationales (DPO on a 0.5B model is too slow on 2 CPU cores). On the test pairs:
   pairwise accuracy (a pair whose two orders disagree counts 0.5) and unparsed rate of the
   untrained judge, its self-consistency (majority of 4 per order), best-of-4, and the judge
   after iterations 1 and 2, with 95% Wilson CIs and exact McNemar tests against the untrained
   judge (strict per-pair outcomes).

Everything is cached in the store (``--store``, default ``benchmarks/out/judge.sqlite``), so a
killed run resumes. The script takes ``/tmp/rationales-model.lock`` (fcntl) itself, once per
batch of 16 problems and once per phase of the judge loop (an evaluation, a round of sampled
judgments, a DPO pass), so it can run next to other work: ``nohup python benchmarks/judge.py &``.
The last line is the headline.

Steps 3 and 4 run in the order 4, 3 (the self-rationalization loop first, so it finishes within a
time box; ``--skip-default-judge`` skips step 3). Judgments are grammar-constrained on every
backend (transformers: backends/verdict_grammar.py); ``--free-eval untrained`` also evaluates the
untrained judge without the constraint. ``--threads`` (default 1) sets torch and llama.cpp threads.

Measured 2026-12-02 (one thread, shared core, 45 min): README's judges section and
benchmarks/results/judge.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LOCK = "/tmp/rationales-model.lock"


_held = {"fh": None, "depth": 0}


@contextlib.contextmanager
def model_lock() -> Iterator[None]:
    """The shared model lock (fcntl.flock), reentrant within this process (--no-lock: none)."""
    if _held.get("off"):
        yield
        return
    if _held["fh"] is None:
        fh = open(LOCK, "a+")
        fcntl.flock(fh, fcntl.LOCK_EX)
        _held["fh"] = fh
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
        if _held["depth"] == 0 and not _held.get("phase"):
            release()


def release() -> None:
    fh = _held["fh"]
    if fh is not None and _held["depth"] == 0:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
        _held["fh"] = None


def phase(msg: str) -> None:
    """A new phase of the judge loop: hand the lock back, log, and take it again for the phase
    (one lock per phase: a batch of judgments, a DPO pass, an evaluation)."""
    if msg.startswith("held-out") or "preference pairs" in msg:  # a result, not a new phase
        log(msg)
        return
    _held["phase"] = False
    release()
    log(msg)
    _held["phase"] = True
    with model_lock():
        pass


class Locked:
    """A backend whose generate/logprobs calls take the model lock, ``chunk`` requests at a time."""

    def __init__(self, backend: Any, chunk: int = 16):
        self._b, self._chunk = backend, chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._b, name)

    def generate(self, requests: Sequence[Any], on_sample: Any = None) -> list[Any]:
        out = []
        for i in range(0, len(requests), self._chunk):
            part = list(requests[i:i + self._chunk])

            def cb(r_i: int, comp: Any, off: int = i) -> None:
                if on_sample:
                    on_sample(r_i + off, comp)

            with model_lock():
                out.extend(self._b.generate(part, on_sample=cb))
        return out

    def logprobs(self, prompt: Any, continuations: Sequence[str]) -> list[Any]:
        with model_lock():
            return self._b.logprobs(prompt, continuations)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fmt(m: dict[str, Any]) -> str:
    acc = m.get("accuracy")
    return (f"{acc:.3f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}]" if acc is not None else "-")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="the model whose rationales are judged")
    ap.add_argument("--judge-model", default="smollm2-135m", help="the judge that is trained")
    ap.add_argument("--problems", type=int, default=60)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=320)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--n", type=int, default=4, help="judgments sampled per item and order while training")
    ap.add_argument("--max-items", type=int, default=30, help="at most this many train and test items each")
    ap.add_argument("--max-train-items", type=int, default=None, help="at most this many train items (default --max-items)")
    ap.add_argument("--max-test-items", type=int, default=None, help="at most this many test items (default --max-items)")
    ap.add_argument("--test-fraction", type=float, default=0.5, help="share of problems held out")
    ap.add_argument("--per-problem", type=int, default=2, help="(correct, wrong) pairs per problem (distinct rationales)")
    ap.add_argument("--per-item", type=int, default=1, help="DPO pairs per training item and order per iteration")
    ap.add_argument("--temperature", type=float, default=0.8, help="temperature of the sampled judgments")
    ap.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                    help="also evaluate every greedy judge with calibrated verdicts (P(A) vs P(B) after each "
                         "feedback, averaged over both orders)")
    ap.add_argument("--default-judge-items", type=int, default=None,
                    help="the default model as judge on at most this many of the test pairs (default all)")
    ap.add_argument("--abs-items", type=int, default=40,
                    help="the default model's absolute scores on at most this many test rationales (0: skip)")
    ap.add_argument("--judge-max-tokens", type=int, default=160)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--skip-default-judge", action="store_true", help="skip step 3")
    ap.add_argument("--extra-store", action="append", default=[],
                    help="also use the default model's CoT rationales stored in this store (copied in; no model time)")
    ap.add_argument("--threads", type=int, default=1, help="torch and llama.cpp threads (1 on shared cores)")
    ap.add_argument("--no-lock", action="store_true", help="do not take the shared model lock")
    ap.add_argument("--no-grammar", action="store_true",
                    help="leave the verdict format to the judges (the previous setting; verdicts mostly unreadable)")
    ap.add_argument("--free-eval", choices=["none", "untrained", "all"], default="untrained",
                    help="also evaluate the untrained judge (or every judge) greedily without the grammar: does it "
                         "write a readable verdict itself?")
    ap.add_argument("--max-chars", type=int, default=0,
                    help="only pairs whose two rationales have at most this many characters each (0: all); shorter "
                         "prompts make every judgment and DPO step cheaper on a shared core")
    ap.add_argument("--no-sample", action="store_true",
                    help="use only the rationales already in the store (a sampling run cut short)")
    ap.add_argument("--sample-only", action="store_true",
                    help="only sample and check the rationales (phase 1), then stop; a later run judges them")
    ap.add_argument("--epochs", type=float, default=2.0, help="DPO epochs per iteration")
    ap.add_argument("--best-of", action="store_true", help="also the best-of-N baseline (a scoring pass per sample)")
    ap.add_argument("--eval-n", type=int, default=4, help="samples per order of the self-consistency baseline")
    ap.add_argument("--results", default=None, help="write the numbers as JSON here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "judge.sqlite"))
    ap.add_argument("--out", default=None, help="trained judges and reports (default: next to the store)")
    args = ap.parse_args(argv)

    import torch

    from rationales.backends import get_backend
    from rationales.data.judge_pairs import absolute_items, reasoning_pairs, split_items
    from rationales.generate import cot_specs, generate
    from rationales.score.judge import absolute_agreement, mcnemar, pair_outcome, pairwise_agreement
    from rationales.store import Store
    from rationales.tasks import reasoning_gym
    from rationales.verify.judge import AbsoluteJudge, JudgeConfig, PairwiseJudge, supports_grammar

    torch.set_num_threads(args.threads)
    _held["off"] = args.no_lock
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.store)), "judge-out")
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    store = Store(args.store)

    # 1. the default model's rationales
    problems = reasoning_gym.load("basic_arithmetic", size=args.problems, seed=args.seed, min_terms=3, max_terms=4,
                                  min_digits=1, max_digits=2)[:args.problems]
    backend = Locked(get_backend("llamacpp", model=args.model, n_ctx=4096, n_threads=args.threads, n_parallel=16),
                     chunk=8)
    specs = cot_specs(problems, n=args.samples, temperature=0.7, max_tokens=args.max_tokens, seed=args.seed)
    log(f"sampling {args.samples} rationales x {len(problems)} problems with {args.model}")
    for i in range(0, 0 if args.no_sample else len(specs), 16):  # a batch of 16 problems per lock
        with model_lock():
            generate(specs[i:i + 16], backend._b, store)
    pids = {p.id for p in problems}
    for extra in args.extra_store:  # e.g. another run's rationales of the same model
        with Store(extra) as other:
            got = [r for r in other.rationales(model=backend.model) if r.method == "cot" and r.correct is not None]
            store.put_problems([q for q in (other.get_problem(pid) for pid in {r.problem_id for r in got}) if q])
            store.put_rationales(got)
            pids |= {r.problem_id for r in got}
            log(f"copied {len(got)} rationales from {extra}")
    rats = [r for r in store.rationales(model=backend.model) if r.method == "cot"]
    rats = [r for r in rats if r.problem_id in pids]
    right = sum(bool(r.correct) for r in rats)
    t_gen = time.time() - t0
    log(f"{len(rats)} rationales, {right} correct ({t_gen:.0f} s)")
    if args.sample_only:
        print(f"summary: {len(rats)} rationales of {args.model}, {right} correct, sampled in {t_gen:.0f} s")
        return 0

    # 2. items, disjoint by problem
    pairs = reasoning_pairs(store, model=backend.model, method="cot", problem_ids=pids, per_problem=args.per_problem,
                            seed=args.seed)
    if args.max_chars:
        pairs = [it for it in pairs if max(len(it.response_a), len(it.response_b)) <= args.max_chars]
    train, test = split_items(store, pairs, name="judge-bench", test_fraction=args.test_fraction, seed=args.seed)
    train = train[:args.max_train_items or args.max_items]
    test = test[:args.max_test_items or args.max_items]
    test_pids = {it.meta["problem_id"] for it in test}
    log(f"{len(pairs)} pairs: {len(train)} train / {len(test)} test items")
    if not train or not test:
        print("summary: not enough pairs (need problems with both a correct and a wrong rationale)")
        return 1

    backend._b.close()
    _held["phase"] = False
    release()

    # 3. self-rationalization of the small judge (item 7 of issue 12; first, so it finishes)
    from rationales.backends.transformers import TransformersBackend
    from rationales.train.judge import JudgeTrainConfig, train_judge

    def factory(model: Any, tok: Any, model_id: str) -> Any:
        return Locked(TransformersBackend(model=model, tokenizer=tok, model_id=model_id, batch_size=8), chunk=8)

    tcfg = JudgeTrainConfig(model=args.judge_model, data=args.store, output_dir=os.path.join(out, "trained-judge"),
                            iterations=args.iterations, n=args.n, eval_n=args.eval_n, temperature=args.temperature,
                            per_item=args.per_item,
                            judge_max_tokens=args.judge_max_tokens, lr=args.lr, beta=args.beta, batch_size=2,
                            grad_accum=2, epochs=args.epochs, max_length=1024, seed=args.seed, progress=False,
                            logging_steps=1, grammar=not args.no_grammar, best_of_n=args.best_of,
                            free_eval=args.free_eval == "all", calibrate=args.calibrate,
                            test_fraction=args.test_fraction)
    t4 = time.time()
    with model_lock():  # loading / rebuilding the GGUF
        from rationales.train.models import load_base_model

        model, tok, _ = load_base_model(args.judge_model)
    import rationales.train.judge as tj

    dpo = tj.dpo_train

    def locked_dpo(*a: Any, **k: Any) -> Any:
        with model_lock():
            return dpo(*a, **k)

    tj.dpo_train = locked_dpo
    free_untrained = None
    if args.free_eval == "untrained" and tcfg.grammar:  # the untrained judge left to write the format itself
        phase("held-out, untrained judge without the grammar")
        fj = PairwiseJudge(factory(model, tok, f"{args.judge_model}@untrained-free"), "correctness",
                           JudgeConfig(max_tokens=args.judge_max_tokens, retries=0, force=False, grammar=False,
                                       seed=args.seed + 1), store=store)
        fjs = fj.judge(test)
        gold = {it.id: it.gold for it in test}
        free_untrained = pairwise_agreement(fjs, test)
        free_untrained["outcomes"] = {j.item_id: pair_outcome(j, gold.get(j.item_id)) for j in fjs}
        free_untrained["constrained"] = bool(fj.engine.constrained)
        log(f"untrained judge without the grammar: {free_untrained}")
    res = train_judge(tcfg, store=store, train_items=train, test_items=test, model_and_tokenizer=(model, tok),
                      backend_factory=factory, on_progress=phase)
    if free_untrained is not None:
        res.free["untrained"] = free_untrained
    _held["phase"] = False
    release()
    t_train = time.time() - t4
    table = res.table()
    del model

    base = table["untrained"]["outcomes"]

    def previous(name: str) -> str | None:
        """The judge an iteration is compared with: the one before it, of the same variant."""
        if not name.startswith("iteration "):
            return None
        k = int(name.split()[1])
        suffix = name[len(f"iteration {k}"):]
        prev = "untrained" if k == 1 else f"iteration {k - 1}"
        return prev + suffix if prev + suffix in table else None

    rows_out: dict[str, Any] = {}
    for name, m in list(table.items()) + [(f"{k} (no grammar)", v) for k, v in res.free.items()]:
        oc = m.get("outcomes", {})
        ids = sorted(set(base) & set(oc))
        mc = mcnemar([base[i] == 1.0 for i in ids], [oc[i] == 1.0 for i in ids]) if name != "untrained" else None
        prev = previous(name)
        mp = None
        if prev is not None:
            po = table[prev]["outcomes"]
            common = sorted(set(po) & set(oc))
            mp = {"vs": prev, **mcnemar([po[i] == 1.0 for i in common], [oc[i] == 1.0 for i in common])}
        rows_out[name] = {k: v for k, v in m.items() if k != "outcomes"} | {"mcnemar_vs_untrained": mc,
                                                                            "mcnemar_vs_previous": mp}
    iters = []
    for it in res.iterations[1:]:
        iters.append({"iteration": it.iteration, "pairs": it.pairs, "train_items": it.train_judgments,
                      "pair_stats": it.pair_stats, "train_loss": it.train_loss,
                      "dpo_steps": it.metrics.get("dpo_steps"), "dpo_log": it.dpo_log, "seconds": round(it.seconds)})

    def write_results(default_rows: dict[str, Any]) -> None:
        if not args.results:
            return
        import json

        elapsed = time.time() - t0
        doc = {"benchmark": "benchmarks/judge.py", "date": time.strftime("%Y-%m-%d"), "args": vars(args),
               "task": "reasoning_gym:basic_arithmetic", "rationale_model": args.model, "judge_model": args.judge_model,
               "problems": len(problems), "rationales": len(rats), "correct": right, "pairs": len(pairs),
               "train_items": len(train), "test_items": len(test), "test_problems": len(test_pids),
               "grammar": tcfg.grammar, "judges": rows_out, "iterations": iters, "default_model_judge": default_rows,
               "seconds": {"total": round(elapsed), "sampling": round(t_gen), "judge_loop": round(t_train),
                           "default_judge": default_rows.get("seconds", 0)},
               "cpu": f"taskset -c 1, {args.threads} thread(s), core shared with other processes"}
        os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
        with open(args.results, "w") as fh:
            json.dump(doc, fh, indent=1, default=str)

    write_results({})  # the loop's numbers, before the default-model judge (which may be cut short)

    # 4. the default model as judge (offline benchmark, llama.cpp with the GBNF grammar)
    default_rows: dict[str, Any] = {}
    if not args.skip_default_judge:
        phase("the default model as judge")
        t3 = time.time()
        backend = Locked(get_backend("llamacpp", model=args.model, n_ctx=4096, n_threads=args.threads,
                                     n_parallel=16), chunk=8)
        dtest = test[:args.default_judge_items or len(test)]
        cfg = JudgeConfig(max_tokens=args.judge_max_tokens, retries=1, force=False, grammar=not args.no_grammar)
        pj = PairwiseJudge(backend, "correctness", cfg, store=store)
        pjs = pj.judge(dtest)
        default_rows["pairwise"] = pairwise_agreement(pjs, dtest)
        default_rows["constrained"] = bool(pj.engine.constrained)
        log(f"default model as judge, pairwise: {default_rows['pairwise']}")
        if args.calibrate:
            cj = PairwiseJudge(backend, "correctness", dataclasses.replace(cfg, calibrate=True), store=store)
            default_rows["pairwise_calibrated"] = pairwise_agreement(cj.judge(dtest), dtest)
            log(f"default model as judge, calibrated: {default_rows['pairwise_calibrated']}")
        write_results(default_rows | {"seconds": round(time.time() - t3)})
        if args.abs_items:
            abs_items = absolute_items(store, model=backend.model, method="cot", problem_ids=test_pids)[:args.abs_items]
            aj = AbsoluteJudge(backend, "correctness", cfg, store=store)
            ajs = aj.judge(abs_items)
            default_rows["absolute"] = absolute_agreement(ajs, abs_items)
            log(f"default model as judge, absolute: {default_rows['absolute']}")
        default_rows["seconds"] = round(time.time() - t3)
        backend._b.close()
        _held["phase"] = False
        release()
    elapsed = time.time() - t0

    print(f"task reasoning_gym:basic_arithmetic, {len(problems)} problems x {args.samples} samples of {args.model}: "
          f"{len(rats)} rationales, {right} correct; {len(pairs)} (correct, wrong) pairs -> {len(train)} train / "
          f"{len(test)} test items ({len(test_pids)} test problems) on disjoint problems")
    if default_rows:
        p = default_rows["pairwise"]
        print(f"{args.model} as judge (grammar: {default_rows['constrained']}) on {p['n']} test pairs: accuracy "
              f"{fmt(p)}, position bias {p['position_bias']}, unparsed {p['unparsed_rate']}")
        if "pairwise_calibrated" in default_rows:
            c = default_rows["pairwise_calibrated"]
            print(f"  calibrated: accuracy {fmt(c)}, mean P(first) {c.get('mean_p_first')}, mean P(gold) "
                  f"{c.get('mean_p_gold')}")
        if "absolute" in default_rows:
            a = default_rows["absolute"]
            print(f"  absolute vs correctness on {a['n']} rationales: accuracy {fmt(a)}, pearson {a['pearson']}, "
                  f"spearman {a['spearman']}, kappa {a['kappa_quadratic']}, unparsed {a['unparsed_rate']}, "
                  f"mean score by gold {a['mean_score_by_gold']}")
    print(f"\n{args.judge_model} judge on {len(test)} held-out pairs (both orders; ties 0.5; "
          f"grammar: {tcfg.grammar}):")
    print(f"{'judge':28s} {'accuracy [95% CI]':>22s} {'strict':>7s} {'unparsed':>9s} {'pos. bias':>9s} "
          f"{'P(first)':>8s} {'P(gold)':>8s} {'McNemar p vs untrained':>22s} {'vs previous':>12s}")
    for name, m in rows_out.items():
        mc, mp = m["mcnemar_vs_untrained"], m["mcnemar_vs_previous"]
        print(f"{name:28s} {fmt(m):>22s} {m['strict_accuracy']:7.3f} {m['unparsed_rate']:9.3f} "
              f"{str(m['position_bias']):>9s} {str(m.get('mean_p_first', '')):>8s} {str(m.get('mean_p_gold', '')):>8s} "
              f"{'' if mc is None else mc['p_value']:>22} {'' if mp is None else mp['p_value']:>12}")
    for it in iters:
        print(f"iteration {it['iteration']}: {it['pairs']} DPO pairs from {it['train_items']} judged items "
              f"({it['pair_stats']}), {it['dpo_steps']} DPO steps, loss {it['train_loss']}, {it['seconds']} s")
    print(f"time: {elapsed / 60:.1f} min total ({t_gen / 60:.1f} sampling rationales, "
          f"{t_train / 60:.1f} judge training + eval, {default_rows.get('seconds', 0) / 60:.1f} default-model judge)")
    print("summary: pairwise accuracy on held-out pairs, " + ", ".join(
        f"{k} {m['accuracy']:.2f} (unparsed {m['unparsed_rate']:.2f})" for k, m in table.items()))
    write_results(default_rows)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
