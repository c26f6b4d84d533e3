"""``rationales run --method brevity``: verbosity-aware reduction (score/brevity.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...config import MAX_TOKENS, MethodOptions, setting
from ...generate import GenerationStats
from ...score.brevity import reduce_all
from ...select.vote import majority_vote, strategy_row
from ..results import BrevityResult
from . import MethodContext


@dataclass
class BrevityOptions(MethodOptions):
    """-O options of --method brevity (verbosity-aware reduction)."""

    uses_template: ClassVar[bool] = True
    template: str | None = setting(None, help="CoT template (default: run's --template).")
    threshold: float = setting(0.1, lo=0.0, hi=10.0, help="Max drop of the answer's log-probability per removed sentence.")
    answer_max_tokens: int = setting(16, lo=1, hi=MAX_TOKENS, help="Max new tokens of a re-answer.")


OPTIONS = BrevityOptions


def run(ctx: MethodContext) -> BrevityResult:
    """``rationales run --method brevity``: sample CoT rationales, reduce each, re-answer from the
    reduced rationale, report tokens saved and accuracy kept."""

    o = BrevityOptions.from_options(ctx.options)
    specs = ctx.cot_specs(o.template or ctx.template)
    samples, stats = ctx.sample(specs)
    problems = [s.problem for s in specs]
    red_stats = GenerationStats()
    threshold = o.threshold
    pairs = reduce_all(ctx.backend, ctx.store, problems, [s.prompt for s in specs], samples, threshold=threshold,
                       answer_max_tokens=o.answer_max_tokens, stats=red_stats)
    reduced_sets = [[pr.reduced or pr.original for pr in row] for row in pairs]
    n = ctx.samples
    strategies = {
        "sample@1": strategy_row([majority_vote(p, rs[:1]) for p, rs in zip(problems, samples)]),
        "reduced sample@1": strategy_row([majority_vote(p, rs[:1]) for p, rs in zip(problems, reduced_sets)]),
        f"vote@{n}": strategy_row([majority_vote(p, rs) for p, rs in zip(problems, samples)]),
        f"reduced vote@{n}": strategy_row([majority_vote(p, rs) for p, rs in zip(problems, reduced_sets)]),
    }
    done = [pr for row in pairs for pr in row if pr.reduced is not None]
    was_right = [pr for pr in done if pr.original.correct]
    body_tokens = sum(pr.body_tokens for pr in done)
    saved = sum(pr.body_tokens - pr.reduced_body_tokens for pr in done)
    flat = [r for rs in samples for r in rs]
    return BrevityResult(
        problems=len(problems), samples_per_problem=n, threshold=threshold, strategies=strategies,
        reduced=len(done),
        skipped_no_reasoning=sum(1 for row in pairs for pr in row
                                 if pr.reduced is None and pr.original.answer is not None),
        sentences=sum(len(pr.reduction.sentences) for pr in done if pr.reduction),
        sentences_dropped=sum(len(pr.reduction.dropped) for pr in done if pr.reduction),
        body_tokens=body_tokens, body_tokens_saved=saved,
        body_tokens_saved_pct=round(100 * saved / body_tokens, 2) if body_tokens else 0.0,
        tokens_original=sum(pr.original.tokens for pr in done),
        tokens_reduced=sum(pr.reduced.tokens for pr in done if pr.reduced),
        accuracy_original=round(sum(bool(pr.original.correct) for pr in done) / len(done), 4) if done else None,
        accuracy_reduced=round(sum(bool(pr.reduced.correct) for pr in done if pr.reduced) / len(done), 4)
        if done else None,
        correct_kept=sum(bool(pr.reduced.correct) for pr in was_right if pr.reduced),
        correct_before=len(was_right),
        accuracy_kept=round(sum(bool(pr.reduced.correct) for pr in was_right if pr.reduced) / len(was_right), 4)
        if was_right else None,
        tokens=sum(r.tokens for r in flat), reanswer_samples_new=red_stats.new, **stats.as_dict(),
        problem_list=problems, pairs=pairs)
