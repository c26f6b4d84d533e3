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
from dataclasses import asdict, dataclass
from typing import Any

from ..backends.base import Backend
from ..config import MAX_SAMPLES, BackendConfig, OutputConfig, SamplingConfig, TaskConfig, setting
from ..generate import GenerationStats, cot_specs, generate
from ..records import Problem, Rationale
from ..steps import MODES as SEGMENT_MODES
from ..select.vote import greedy, majority_vote, strategy_row
from ..store import Store
from .results import RunResult


@dataclass
class RunConfig(OutputConfig, BackendConfig, TaskConfig, SamplingConfig):
    """Settings of ``rationales run`` (and of ``run --method NAME``, which passes them on)."""

    samples: int = setting(8, lo=1, hi=MAX_SAMPLES, help="Sampled rationales per problem (vote@N).")
    template: str = setting("cot", help="Prompt template name or a .j2 file.")
    method: str = setting("cot", help="Prompting method (see `rationales methods`).")
    segment: str = setting("auto", choices=SEGMENT_MODES, what="segmentation mode", help="How rationales are cut into steps.")
    method_options: dict[str, Any] = setting(default_factory=dict, flag="--method-opt",
                                             help="Method option KEY=VALUE (run --method NAME).")


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
        on_progress: Callable[[int], None] | None = None) -> RunResult:
    """Run the main job over ``problems``; the result's JSON is also saved in the store's runs."""
    from ..score.calibration import vote_calibration  # numpy: loaded when a run starts, not for --help

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
    result = RunResult(
        run_id=run_id, task=config.task, backend=backend.name, model=backend.model, problems=len(problems),
        samples_per_problem=config.samples, strategies=strategies, samples_new=stats.new,
        samples_cached=stats.cached, tokens=sum(r.tokens for r in all_rs), tokens_new=stats.tokens_new,
        outcomes=dict(outcomes), curve=vote_curve(problems, samples, seed=config.seed),
        # ECE / reliability bins of the vote-share confidence (score/calibration.py)
        calibration=vote_calibration(sel_vote), time_s=round(time.time() - t0, 2), store=str(store.path),
        records={"problems": list(problems), "greedy_rs": greedy_rs, "samples": samples, "votes": sel_vote})
    store.finish_run(run_id, result.to_json())
    return result
