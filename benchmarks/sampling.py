"""Batched parallel sampling (llamacpp backend) vs a naive loop of create_completion calls.

Samples ``--samples`` rationales for each of ``--problems`` grade-school problems, exactly
``--tokens`` new tokens each (end-of-generation tokens are suppressed on both sides), and
compares:

* batched: ONE ``LlamaCppBackend.generate`` call; every prompt evaluated once, all sequences
  decoded together (``n_parallel`` >= samples x problems);
* naive: one ``Llama.create_completion`` per sample on the same loaded model, ``reset()``
  before each call so every call processes its prompt (no automatic prefix reuse).

Order: batched, naive, batched again (ABA, so drift on a shared machine hits both sides);
the batched time is the mean of its two runs. Run alone (two llama.cpp processes on 2 cores
slow each other 10-100x):

    flock /tmp/rationales-model.lock python benchmarks/sampling.py

The last line is ``speedup: X.Xx``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PROBLEMS = [
    "Tom has 12 apples. He gives 5 to his sister and then buys 8 more. How many apples does Tom have now?",
    "A pencil costs 3 dollars and a notebook costs 7 dollars. How much do 4 pencils and 2 notebooks cost in total?",
    "There are 24 students in a class. One third of them walk to school. How many students do not walk to school?",
    "A baker makes 48 cookies and packs them into boxes of 6. How many boxes does he fill?",
    "Sara reads 15 pages a day. How many pages does she read in 6 days?",
    "A train travels 60 km per hour for 3 hours and then 40 km per hour for 2 hours. How far does it go?",
    "Lena has 5 boxes with 9 marbles each. She loses 7 marbles. How many marbles are left?",
    "A shop sells 23 cakes on Monday and twice as many on Tuesday. How many cakes in the two days?",
]
SHOTS = [
    ("Jim buys 3 packs of 4 batteries and uses 5 of them. How many batteries are left?",
     "Step 1: Jim buys 3 packs with 4 batteries each, so he has 3 * 4 = 12 batteries.\n"
     "Step 2: He uses 5 of them, so 12 - 5 = 7 batteries are left.\n"
     "Step 3: Check: 7 + 5 = 12, which matches the 12 he bought.\n"
     "The answer is \\boxed{7}."),
    ("A farmer has 18 cows and 3 times as many chickens. He sells 20 chickens. How many animals does he have now?",
     "Step 1: The farmer has 3 times as many chickens as cows: 3 * 18 = 54 chickens.\n"
     "Step 2: He sells 20 chickens, so 54 - 20 = 34 chickens remain.\n"
     "Step 3: The cows are not sold, so he still has 18 cows.\n"
     "Step 4: In total he has 18 + 34 = 52 animals.\n"
     "The answer is \\boxed{52}."),
    ("Maria saves 12 dollars a week for 5 weeks and then spends 17 dollars on a book. How much money is left?",
     "Step 1: In 5 weeks she saves 12 * 5 = 60 dollars.\n"
     "Step 2: The book costs 17 dollars, so 60 - 17 = 43 dollars are left.\n"
     "Step 3: Check: 43 + 17 = 60, the amount she saved.\n"
     "The answer is \\boxed{43}."),
]
SYSTEM = ("You are a careful math tutor. Solve the problem step by step. Write one step per line, "
          "show every calculation, explain why each step follows from the previous ones, check the "
          "result at the end, and finish with 'The answer is \\boxed{N}.'")


def messages(problem: str, shots: int) -> list[dict[str, str]]:
    out = [{"role": "system", "content": SYSTEM}]
    for q, a in SHOTS[:shots]:
        out += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return out + [{"role": "user", "content": problem}]


def main() -> None:
    from rationales.backends.base import GenerationRequest
    from rationales.backends.llamacpp import LlamaCppBackend
    from rationales.models import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--shots", type=int, default=3, help="worked examples in each prompt (0-3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-parallel", type=int, default=0, help="default: problems x samples")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--flash-attn", type=int, choices=[0, 1], default=None,
                    help="flash attention on both sides (default: the backend's default)")
    args = ap.parse_args()

    n_par = args.n_parallel or args.problems * args.samples
    fa = {} if args.flash_attn is None else {"flash_attn": bool(args.flash_attn)}
    backend = LlamaCppBackend(model=args.model, n_ctx=4096, n_threads=args.threads, n_parallel=n_par,
                              ignore_eos=True, **fa)
    llm = backend.llm
    problems = [PROBLEMS[i % len(PROBLEMS)] for i in range(args.problems)]
    prompts = [backend.render(messages(p, args.shots)) for p in problems]
    n_prompt = [len(backend.tokenize(p)) for p in prompts]
    eog = [t for t in range(backend.n_vocab) if backend.is_eog(t)]
    bias = {t: -1e9 for t in eog}
    print(f"model {backend.model}; {args.problems} problems x {args.samples} samples x {args.tokens} tokens; "
          f"prompt tokens {n_prompt}; threads {args.threads}; n_parallel {n_par}; flash_attn {backend.flash_attn}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}", flush=True)

    def batched() -> tuple[float, int]:
        reqs = [GenerationRequest(prompt=p, seeds=list(range(args.samples)), temperature=args.temperature,
                                  top_p=1.0, max_tokens=args.tokens) for p in prompts]
        t0 = time.perf_counter()
        res = backend.generate(reqs)
        dt = time.perf_counter() - t0
        return dt, sum(c.tokens for r in res for c in r.completions)

    def naive() -> tuple[float, int]:
        tokens, t0 = 0, time.perf_counter()
        for p in prompts:
            for s in range(args.samples):
                llm.reset()
                out = llm.create_completion(p, max_tokens=args.tokens, temperature=args.temperature, top_p=1.0,
                                            top_k=0, min_p=0.0, seed=s, logit_bias=bias)
                tokens += out["usage"]["completion_tokens"]
        return time.perf_counter() - t0, tokens

    b1, tb = batched()
    print(f"batched run 1: {tb} tokens in {b1:.1f}s = {tb / b1:.1f} tok/s", flush=True)
    n1, tn = naive()
    print(f"naive loop:    {tn} tokens in {n1:.1f}s = {tn / n1:.1f} tok/s", flush=True)
    b2, tb2 = batched()
    print(f"batched run 2: {tb2} tokens in {b2:.1f}s = {tb2 / b2:.1f} tok/s", flush=True)
    backend.close()
    if not tb == tb2 == tn == args.problems * args.samples * args.tokens:
        print(f"warning: token counts differ (batched {tb}/{tb2}, naive {tn})", file=sys.stderr)
    rate_b = (tb + tb2) / (b1 + b2)
    rate_n = tn / n1
    print(f"batched {rate_b:.1f} tok/s, naive {rate_n:.1f} tok/s")
    print(f"speedup: {rate_b / rate_n:.1f}x")


if __name__ == "__main__":
    main()
