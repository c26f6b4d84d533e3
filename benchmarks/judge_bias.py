"""Where a small pairwise judge's position bias comes from: verdict probabilities in both orders.

On (correct, wrong) pairs of the default model's stored rationales (``benchmarks/judge.py``'s
store), for each judge model (llama.cpp) and each condition, P(A) and P(B) right after
``... [RESULT]`` are read off the log-probabilities in both orders (no sampling in the
verdict, so greedy decoding plays no part except where the judge writes its own feedback):

* ``empty``: the prompt, then ``Feedback: [RESULT]`` (the verdict prior of prompt + template);
* ``oracle``: a feedback that states the truth (``Response X's final answer is correct and
  Response Y's final answer is wrong.``, X the position of the correct one in that order):
  does the verdict follow a feedback at all?
* ``anti-oracle``: the same feedback with the positions swapped (the verdict should flip);
* ``own+grammar`` / ``own, no grammar``: the judge's own greedy feedback (GBNF-constrained
  or free), then the verdict probabilities (the calibrated judge's inputs);
* prompt variants of ``empty`` and ``oracle``: ``neutral format`` (the format line asks for
  "<the letter of the better response>" instead of "<A or B>"), ``no chat template`` (the
  plain completion transcript).

Per condition: mean P(position shown first), the share of (pair, order) where the first
position wins the argmax, the share of pairs where the same position wins in both orders (the
position bias greedy decoding shows), mean P(gold) over both orders and the calibrated accuracy
(mean P(gold) > 0.5). Runs on one thread; ``--pairs`` bounds the work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def oracle_feedback(first_is_right: bool, anti: bool = False) -> str:
    right, wrong = ("A", "B") if first_is_right != anti else ("B", "A")
    return f"Feedback: Response {right}'s final answer is correct and Response {wrong}'s final answer is wrong."


def neutral(prompt: Any) -> Any:
    from rationales.prompts import RenderedPrompt

    msgs = [dict(m, content=m["content"].replace("[RESULT] <A or B>", "[RESULT] <the letter of the better response>")
                 .replace("name the better response: A or B.", "name the better response by its letter."))
            for m in prompt.messages]
    assert msgs != prompt.messages, "the relative judge template changed; update the neutral variant"
    return RenderedPrompt(msgs, prompt.template + ":neutral")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """rows: one per (pair, order) with p_first, first_is_gold; pairs identified by 'pair'."""
    if not rows:
        return {}
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_pair.setdefault(r["pair"], []).append(r)
    p_gold = [r["p_first"] if r["first_is_gold"] else 1 - r["p_first"] for r in rows]
    same = [len(v) == 2 and (v[0]["p_first"] > 0.5) == (v[1]["p_first"] > 0.5) for v in by_pair.values()]
    cal = []
    for v in by_pair.values():
        g = sum(r["p_first"] if r["first_is_gold"] else 1 - r["p_first"] for r in v) / len(v)
        cal.append(1.0 if g > 0.5 else 0.5 if g == 0.5 else 0.0)
    return {"pairs": len(by_pair), "mean_p_first": round(sum(r["p_first"] for r in rows) / len(rows), 4),
            "first_wins": round(sum(r["p_first"] > 0.5 for r in rows) / len(rows), 4),
            "position_bias": round(sum(same) / len(same), 4), "mean_p_gold": round(sum(p_gold) / len(p_gold), 4),
            "calibrated_accuracy": round(sum(cal) / len(cal), 4),
            "order_accuracy": round(sum(r["p_first"] > 0.5 if r["first_is_gold"] else r["p_first"] < 0.5
                                         for r in rows) / len(rows), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "judge.sqlite"))
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="the model whose rationales are judged")
    ap.add_argument("--judges", default="smollm2-135m,qwen2.5-coder-0.5b")
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--own-pairs", type=int, default=None, help="pairs for the own-feedback conditions (generation)")
    ap.add_argument("--judge-max-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--conditions", default="empty,oracle,anti-oracle,neutral,no-chat,own",
                    help="which of: empty, oracle, anti-oracle, neutral, no-chat, own")
    ap.add_argument("--results", default=None)
    args = ap.parse_args(argv)

    from rationales.backends import get_backend
    from rationales.data.judge_pairs import reasoning_pairs
    from rationales.generate import continuation_prompt
    from rationales.store import Store
    from rationales.verify.judge import JudgeConfig, PairwiseJudge

    t0 = time.time()
    store = Store(args.store)
    items = reasoning_pairs(store, model=args.model, method="cot", per_problem=1, seed=args.seed)
    items = items[:args.pairs]
    if not items:
        print("summary: no pairs in the store (run benchmarks/judge.py --sample-only first)")
        return 1
    log(f"{len(items)} pairs (one per problem)")
    doc: dict[str, Any] = {"benchmark": "benchmarks/judge_bias.py", "date": time.strftime("%Y-%m-%d"),
                           "args": vars(args), "pairs": len(items), "judges": {}}
    def save(name: str, res: dict[str, Any]) -> None:  # after every condition: a run cut short keeps its numbers
        doc["judges"][name] = res
        if args.results:
            with open(args.results, "w") as fh:
                json.dump(doc, fh, indent=1)

    for name in [j.strip() for j in args.judges.split(",") if j.strip()]:
        tj = time.time()
        backend = get_backend("llamacpp", model=name, n_ctx=4096, n_threads=args.threads, n_parallel=8)
        judge = PairwiseJudge(backend, "correctness", JudgeConfig(max_tokens=args.judge_max_tokens))
        res: dict[str, Any] = {}

        def probs(prompt: Any, body: str) -> float:
            text = continuation_prompt(backend, prompt, body + " [RESULT]")
            a, b = backend.logprobs(text, [" A", " B"])
            import math

            m = max(a.logprob, b.logprob)
            return math.exp(a.logprob - m) / (math.exp(a.logprob - m) + math.exp(b.logprob - m))

        want = {c.strip() for c in args.conditions.split(",")}
        variants = ["template"] + (["neutral format"] if "neutral" in want else []) + \
            (["no chat template"] if "no-chat" in want else [])
        for variant in variants:
            for cond in ("empty", "oracle", "anti-oracle"):
                if (variant != "template" and cond == "anti-oracle") or cond not in want | {"empty", "oracle"}:
                    continue
                if variant == "template" and cond not in want:
                    continue
                rows = []
                for it in items:
                    for sw in (False, True):
                        p = judge.prompt(it, sw)
                        if variant == "neutral format":
                            p = neutral(p)
                        first_is_gold = (it.gold == "A") != sw
                        body = "Feedback:" if cond == "empty" else oracle_feedback(first_is_gold, cond == "anti-oracle")
                        chat = backend.chat
                        backend.chat = chat and variant != "no chat template"
                        try:
                            pf = probs(p, body)
                        finally:
                            backend.chat = chat
                        rows.append({"pair": it.id, "order": "BA" if sw else "AB", "p_first": pf,
                                     "first_is_gold": first_is_gold})
                key = cond if variant == "template" else f"{cond}, {variant}"
                res[key] = summarise(rows)
                log(f"{name} {key}: {res[key]}")
                save(name, res)
        own = items[:args.own_pairs or len(items)]
        for grammar in ((True, False) if "own" in want else ()):
            cfg = JudgeConfig(max_tokens=args.judge_max_tokens, retries=0, force=False, grammar=grammar,
                              calibrate=True, seed=args.seed + 1)
            js = PairwiseJudge(backend, "correctness", cfg, store=store).judge(own)
            rows = []
            gold = {it.id: it.gold for it in own}
            for j in js:
                for s in j.samples:
                    if s.probs is None:
                        continue
                    pf = s.probs["A"] if s.order == "AB" else s.probs["B"]
                    rows.append({"pair": j.item_id, "order": s.order, "p_first": pf,
                                 "first_is_gold": (gold[j.item_id] == "A") == (s.order == "AB")})
            key = "own+grammar" if grammar else "own, no grammar"
            res[key] = summarise(rows)
            res[key]["written_unparsed"] = sum(1 for j in js for s in j.samples if s.value is None)
            res[key]["written_position_bias"] = round(sum(1 for j in js if j.consistent is False) /
                                                      max(1, sum(1 for j in js if j.consistent is not None)), 4)
            res[key]["example"] = next((s.text[:300] for j in js for s in j.samples if s.text), "")
            log(f"{name} {key}: {res[key]}")
            save(name, res)
        backend.close()
        res["seconds"] = round(time.time() - tj)
        doc["judges"][name] = res
    doc["seconds"] = round(time.time() - t0)
    cols = ("mean_p_first", "first_wins", "position_bias", "mean_p_gold", "order_accuracy", "calibrated_accuracy")
    print(f"{len(items)} pairs, both orders; P = verdict probability after '[RESULT]'")
    print(f"{'judge':20s} {'condition':32s} " + " ".join(f"{c:>19s}" for c in cols))
    for name, res in doc["judges"].items():
        for cond, m in res.items():
            if isinstance(m, dict) and m:
                print(f"{name:20s} {cond:32s} " + " ".join(f"{m.get(c, ''):>19}" for c in cols))
    if args.results:
        with open(args.results, "w") as fh:
            json.dump(doc, fh, indent=1)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
