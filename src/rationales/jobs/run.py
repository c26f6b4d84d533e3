"""The main job (``rationales run``): load -> generate -> segment/verify -> select -> report.

Samples one greedy rationale and N sampled rationales per problem, compares greedy with
self-consistency (majority vote over N, Wang et al. 2023) with 95% Wilson intervals and the
tokens each spent, and writes an HTML report with an accuracy-vs-samples curve.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..backends.base import Backend
from ..generate import GenerationStats, cot_specs, generate
from ..records import Problem, Rationale
from ..select.vote import greedy, majority_vote, strategy_row
from ..score.calibration import vote_calibration
from ..store import Store


@dataclass
class RunConfig:
    task: str = "demo"
    backend: str = "llamacpp"
    model: str | None = None
    samples: int = 8
    limit: int | None = 10
    size: int = 50
    seed: int = 0
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    template: str = "cot"
    store: str = "rationales.sqlite"
    out: str = "rationales-out"
    method: str = "cot"
    segment: str = "auto"
    backend_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)


def vote_curve(problems: Sequence[Problem], samples: Sequence[Sequence[Rationale]],
               repeats: int = 32, seed: int = 0) -> list[dict[str, float]]:
    """Expected accuracy of vote@k for k = 1..N, averaged over random k-subsets of each
    problem's samples (a fixed RNG, so the curve is reproducible)."""
    n = min((len(s) for s in samples), default=0)
    rng = random.Random(seed)
    curve = []
    for k in range(1, n + 1):
        total = 0.0
        for p, rs in zip(problems, samples):
            reps = 1 if k == n else repeats
            hits = 0
            for _ in range(reps):
                subset = rng.sample(list(rs), k)
                hits += bool(majority_vote(p, subset).correct)
            total += hits / reps
        curve.append({"k": k, "accuracy": total / max(1, len(problems)),
                      "tokens_per_problem": k * _mean_tokens(samples)})
    return curve


def _mean_tokens(samples: Sequence[Sequence[Rationale]]) -> float:
    toks = [r.tokens for rs in samples for r in rs]
    return sum(toks) / len(toks) if toks else 0.0


def run(config: RunConfig, backend: Backend, store: Store, problems: Sequence[Problem],
        on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run the main job over ``problems``; returns the summary (also saved in the store's runs)."""
    t0 = time.time()
    run_id = store.start_run("run", asdict(config))
    stats = GenerationStats()
    greedy_specs = cot_specs(problems, template=config.template, n=1, temperature=0.0,
                             max_tokens=config.max_tokens, method=config.method)
    sample_specs = cot_specs(problems, template=config.template, n=config.samples,
                             temperature=config.temperature, top_p=config.top_p,
                             max_tokens=config.max_tokens, seed=config.seed, method=config.method)
    both = generate([*greedy_specs, *sample_specs], backend, store, on_progress=on_progress,
                    stats=stats, segment_mode=config.segment)
    greedy_rs = [rs[0] for rs in both[:len(problems)]]
    samples = both[len(problems):]

    sel_greedy = [greedy(p, r) for p, r in zip(problems, greedy_rs)]
    sel_vote = [majority_vote(p, rs) for p, rs in zip(problems, samples)]
    single = [majority_vote(p, rs[:1]) for p, rs in zip(problems, samples)]
    strategies = {
        "greedy": strategy_row(sel_greedy),
        "sample@1": strategy_row(single),
        f"vote@{config.samples}": strategy_row(sel_vote),
    }
    all_rs = [*greedy_rs, *(r for rs in samples for r in rs)]
    outcomes = Counter(r.outcome for r in all_rs)
    summary: dict[str, Any] = {
        "run_id": run_id,
        "task": config.task,
        "backend": backend.name,
        "model": backend.model,
        "problems": len(problems),
        "samples_per_problem": config.samples,
        "strategies": strategies,
        "samples_new": stats.new,
        "samples_cached": stats.cached,
        "tokens": sum(r.tokens for r in all_rs),
        "tokens_new": stats.tokens_new,
        "outcomes": dict(outcomes),
        "curve": vote_curve(problems, samples, seed=config.seed),
        # ECE / reliability bins of the vote-share confidence (score/calibration.py)
        "calibration": vote_calibration(sel_vote),
        "time_s": round(time.time() - t0, 2),
        "store": str(store.path),
    }
    from ..report.run import write_run_report

    report = write_run_report(Path(config.out), summary, problems, greedy_rs, samples, sel_vote)
    summary["report"] = str(report)
    store.finish_run(run_id, summary)
    return summary
