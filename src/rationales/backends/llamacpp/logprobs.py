"""Continuation log-probabilities on the llamacpp backend's scoring context.

The prompt is evaluated once (slot 0, kept for the next call with the same prefix), copied to
one slot per continuation, and logits are read only at continuation positions. The scoring
context runs without flash attention by default (llama.cpp's CPU flash attention accumulates in
f16, which moved SmolLM2 token logprobs by up to 0.2 nats).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...errors import BackendError
from ..base import ContinuationScore
from .context import common_prefix

if TYPE_CHECKING:
    from .backend import LlamaCppBackend


def continuation_logprobs(backend: LlamaCppBackend, text: str, continuations: list[str]) -> list[ContinuationScore]:
    """log P(continuation | text) for each continuation (tokens straddling the boundary count
    toward the continuation)."""
    base = backend.tokenize(text)
    fulls = [backend.tokenize(text + c) for c in continuations]
    starts = [common_prefix(base, f) for f in fulls]  # continuation tokens: f[start:]
    if not continuations:
        return []
    m = min([len(base), *starts])
    if any(s < len(f) for s, f in zip(starts, fulls)) and m == 0:
        raise BackendError("logprobs() needs a non-empty prompt: the first token has nothing to be "
                           f"predicted from ({backend.model} adds no BOS token).")
    longest = max(len(f) for f in fulls)
    if longest > backend.n_ctx:
        raise BackendError(f"Prompt + continuation is {longest} tokens, but the llamacpp backend holds "
                           f"n_ctx={backend.n_ctx} tokens per sequence; shorten it or pass a larger n_ctx.")
    shared = base[:max(m - 1, 0)]  # held by slot 0; every continuation re-decodes from position m-1
    todo = sorted((i for i, (s, f) in enumerate(zip(starts, fulls)) if s < len(f)),
                  key=lambda i: -(len(fulls[i]) - len(shared)))
    if not todo:  # only empty continuations
        return [ContinuationScore(cont, 0.0, []) for cont in continuations]
    ctx = backend._context("_score", min(backend.n_parallel, len(todo)) + 1, longest)
    keep = common_prefix(ctx.prefix, shared)
    ctx.seq_rm(0, keep)
    for s in range(1, ctx.slots):
        ctx.seq_rm(s)
    ctx.prefix = shared[:keep]
    scores: dict[int, list[float]] = {i: [] for i in range(len(continuations))}
    cap = ctx.cap
    try:
        rest = shared[keep:]
        for c in range(0, len(rest), cap):  # the shared prompt, no logits
            ctx.decode([(0, keep + c + k, t, False) for k, t in enumerate(rest[c:c + cap])])
        ctx.prefix = list(shared)
        width = ctx.slots - 1
        for w in range(0, len(todo), width):
            wave = todo[w:w + width]
            for s in range(1, len(wave) + 1):
                ctx.seq_rm(s)
                if shared:
                    ctx.seq_cp(0, s)
            feed: list[tuple[int, int, int, bool, int]] = []  # seq, pos, token, logits, target
            for s, i in enumerate(wave, start=1):
                f = fulls[i]
                for pos in range(len(shared), len(f) - 1):
                    want = pos >= starts[i] - 1
                    feed.append((s, pos, f[pos], want, f[pos + 1] if want else -1))
            owner = {s: i for s, i in enumerate(wave, start=1)}
            for c in range(0, len(feed), cap):
                part = feed[c:c + cap]
                ctx.decode([e[:4] for e in part])
                for k, (s, _, _, want, target) in enumerate(part):
                    if want:
                        row = ctx.row(k)
                        top = float(row.max())
                        lse = top + float(np.log(np.exp(row - top, dtype=np.float64).sum()))
                        scores[owner[s]].append(float(row[target]) - lse)
    except BaseException:
        ctx.clear()
        raise
    return [ContinuationScore(cont, float(sum(scores[i])), scores[i]) for i, cont in enumerate(continuations)]
