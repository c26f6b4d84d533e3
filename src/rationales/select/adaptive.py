"""Adaptive consistency: stop sampling a problem once its votes make the answer certain enough.

Aggarwal et al., 2023, "Let's Sample Step by Step: Adaptive-Consistency for Efficient Reasoning
and Coding with LLMs". Samples come in small batches (default 2, all problems in lockstep so
each round is one batched ``generate`` call; samples are the same cached ``cot`` samples that
``vote`` uses, so the two strategies share work). After each batch a stopping criterion looks
at the answer counts:

* ``beta`` (the paper's default, threshold 0.95): with v1, v2 the counts of the two most
  frequent answers, the probability that the leader really is the more likely answer under a
  Beta(v1 + 1, v2 + 1) posterior, P(p > 1/2). For integer parameters this is the binomial
  tail P(Bin(v1 + v2 + 1, 1/2) <= v1) (the regularised incomplete beta identity), computed
  exactly: 2-0 votes -> 7/8 = 0.875 (go on), 4-0 -> 31/32 = 0.969 (stop), 3-1 -> 26/32.
* ``share``: the leading answer's share of the answered samples reaches the threshold.

Sampling also stops at ``max_samples`` (the paper uses 40; here the compare command sets it
from the token budget). Samples without an answer do not vote but their tokens count.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

from ..backends.base import Backend
from ..errors import RationalesError
from ..generate import GenerationStats, cot_specs, generate
from ..records import Problem, Rationale
from ..store import Store
from ..answers import normalize
from .vote import Selection, majority_vote

CRITERIA = ("beta", "share")


def beta_confidence(top: int, second: int) -> float:
    """P(p_top > p_second) under Beta(top + 1, second + 1): P(Bin(top + second + 1, 1/2) <= top)."""
    n = top + second + 1
    return sum(math.comb(n, k) for k in range(top + 1)) / 2 ** n


def stop_confidence(rationales: Sequence[Rationale], criterion: str = "beta") -> float:
    """How sure the votes so far make the leading answer (0 when nothing answered)."""
    counts = Counter(k for k in (normalize(r.answer) for r in rationales) if k is not None)
    if not counts:
        return 0.0
    top = counts.most_common(2)
    if criterion == "share":
        return top[0][1] / sum(counts.values())
    return beta_confidence(top[0][1], top[1][1] if len(top) > 1 else 0)


def adaptive_consistency(problems: Sequence[Problem], backend: Backend, store: Store, *, batch: int = 2,
                         max_samples: int = 16, threshold: float = 0.95, criterion: str = "beta",
                         template: str = "cot", temperature: float = 0.7, top_p: float = 0.95,
                         max_tokens: int = 512, seed: int = 0, stats: GenerationStats | None = None,
                         on_progress: Callable[[int], None] | None = None) -> list[Selection]:
    """Majority vote with adaptive sample counts; ``Selection.meta`` has ``samples`` (how many
    were drawn) and ``confidence_at_stop``. Tokens: every drawn sample."""
    if criterion not in CRITERIA:
        raise RationalesError(f"Unknown stopping criterion '{criterion}'; use one of {', '.join(CRITERIA)}.")
    if batch < 1 or max_samples < 1:
        raise RationalesError("adaptive consistency needs batch >= 1 and max_samples >= 1.")
    if not 0 < threshold <= 1:
        raise RationalesError(f"The stopping threshold must be in (0, 1], got {threshold}.")
    stats = stats if stats is not None else GenerationStats()
    drawn = {p.id: 0 for p in problems}
    out: dict[str, Selection] = {}
    active = list(problems)
    while active:
        k = min(max_samples, drawn[active[0].id] + batch)
        local = GenerationStats()
        specs = cot_specs(active, template=template, n=k, temperature=temperature, top_p=top_p,
                          max_tokens=max_tokens, seed=seed, method=template)
        results = generate(specs, backend, store, stats=local, on_progress=None)
        # samples this run drew in earlier rounds are not "cached" work of the store
        stats.new += local.new
        stats.tokens_new += local.tokens_new
        stats.calls += local.calls
        stats.cached += local.cached - sum(drawn[p.id] for p in active)
        if on_progress:
            on_progress(sum(k - drawn[p.id] for p in active))
        still = []
        for p, rs in zip(active, results):
            drawn[p.id] = k
            conf = stop_confidence(rs, criterion)
            if conf >= threshold or k >= max_samples:
                sel = majority_vote(p, rs)
                sel.strategy = "adaptive"
                sel.meta = {"samples": k, "confidence_at_stop": conf, "criterion": criterion}
                out[p.id] = sel
            else:
                still.append(p)
        active = still
    return [out[p.id] for p in problems]
