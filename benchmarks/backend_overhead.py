"""Single-sequence overhead of the llamacpp backend vs raw llama-cpp-python.

Both sides decode the same prompt greedily on the same loaded model for the same number of
tokens (greedy output is identical, so the token counts match): the backend's
``generate`` with one seed vs ``Llama.create_completion`` (``reset()`` first, so both process
the whole prompt). Rounds alternate the order (raw, ours, ours, raw, ...) so drift on a shared
machine hits both sides. Run alone:

    flock /tmp/rationales-model.lock python benchmarks/backend_overhead.py

The last line is ``overhead: X.X%`` (positive: the backend is slower than raw).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PROMPT = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper who finds a "
                                      "message in a bottle. Describe every day of his week."}]


def main() -> None:
    from rationales.backends.base import GenerationRequest
    from rationales.backends.llamacpp import LlamaCppBackend
    from rationales.models import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    backend = LlamaCppBackend(model=args.model, n_ctx=2048, n_threads=args.threads, n_parallel=1)
    llm = backend.llm
    prompt = backend.render(PROMPT)
    print(f"model {backend.model}; prompt {len(backend.tokenize(prompt))} tokens; {args.tokens} new tokens, greedy; "
          f"threads {args.threads}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}", flush=True)

    def raw() -> tuple[float, int, str]:
        llm.reset()
        t0 = time.perf_counter()
        out = llm.create_completion(prompt, max_tokens=args.tokens, temperature=0.0)
        return time.perf_counter() - t0, out["usage"]["completion_tokens"], out["choices"][0]["text"]

    def ours() -> tuple[float, int, str]:
        req = GenerationRequest(prompt=prompt, seeds=[0], temperature=0.0, max_tokens=args.tokens)
        t0 = time.perf_counter()
        comp = backend.generate([req])[0].completions[0]
        return time.perf_counter() - t0, comp.tokens, comp.text

    raw(), ours()  # warm-up: page in the weights, build both contexts
    totals = {"raw": [0.0, 0], "ours": [0.0, 0]}
    texts = set()
    for r in range(args.rounds):
        order = [("raw", raw), ("ours", ours)] if r % 2 == 0 else [("ours", ours), ("raw", raw)]
        for name, fn in order:
            dt, n, text = fn()
            totals[name][0] += dt
            totals[name][1] += n
            texts.add(text)
            print(f"round {r} {name:4s}: {n} tokens in {dt:.2f}s = {n / dt:.1f} tok/s", flush=True)
    backend.close()
    if len(texts) != 1 or totals["raw"][1] != totals["ours"][1]:
        print("warning: the two sides did not produce the same text / token count")
    rate_raw = totals["raw"][1] / totals["raw"][0]
    rate_ours = totals["ours"][1] / totals["ours"][0]
    print(f"raw create_completion {rate_raw:.1f} tok/s, backend {rate_ours:.1f} tok/s (prompt included)")
    print(f"overhead: {(rate_raw / rate_ours - 1) * 100:.1f}%")


if __name__ == "__main__":
    main()
