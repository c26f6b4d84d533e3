"""``rationales run --method utility``: reasoning utility per rationale and step (score/utility.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...config import MethodOptions, setting
from ...score.utility import ANSWER_TEMPLATE, AnswerScorer, score_utility, utility_stats
from ...select.vote import majority_vote, strategy_row, utility_vote
from ..results import UtilityResult
from . import MethodContext


@dataclass
class UtilityOptions(MethodOptions):
    """-O options of --method utility (Chen et al. 2024 reasoning utility)."""

    uses_template: ClassVar[bool] = True
    template: str | None = setting(None, help="CoT template (default: run's --template).")
    answer_template: str = setting(ANSWER_TEMPLATE, help="How the answer is written after the rationale.")
    per_step: bool = setting(True, help="Also score the utility after each step.")
    weight_scale: float = setting(1.0, lo=0.0, hi=1000.0, help="Scale of the utility weights in the vote.")


OPTIONS = UtilityOptions


def run(ctx: MethodContext) -> UtilityResult:
    """``rationales run --method utility``: sample CoT rationales, score their utility for the
    gold answer (per step) and for their own answer, compare correct vs wrong rationales and
    a utility-weighted vote with the plain vote."""

    o = UtilityOptions.from_options(ctx.options)
    template = o.template or ctx.template
    scorer = AnswerScorer(ctx.backend, o.answer_template)
    specs = ctx.cot_specs(template)
    samples, stats = ctx.sample(specs)
    for spec, rs in zip(specs, samples):
        score_utility(ctx.backend, spec.problem, rs, spec.prompt, per_step=o.per_step,
                      scorer=scorer)
        ctx.store.put_rationales(rs)
    problems = [s.problem for s in specs]
    scale = o.weight_scale
    n = ctx.samples
    strategies = {
        "sample@1": strategy_row([majority_vote(p, rs[:1]) for p, rs in zip(problems, samples)]),
        f"vote@{n}": strategy_row([majority_vote(p, rs) for p, rs in zip(problems, samples)]),
        f"utility_vote@{n}": strategy_row([utility_vote(p, rs, scale) for p, rs in zip(problems, samples)]),
    }
    flat = [r for rs in samples for r in rs]
    utility = utility_stats(flat).as_dict()
    return UtilityResult(
        problems=len(problems), samples_per_problem=n, strategies=strategies, utility=utility,
        utility_own=utility_stats(flat, "utility_own").as_dict(), logprob_calls=scorer.calls,
        tokens=sum(r.tokens for r in flat), **stats.as_dict(),
        # flat copies for the CLI's one-line-per-value printout
        utility_mean_correct=utility["mean_correct"], utility_mean_wrong=utility["mean_wrong"],
        utility_auroc=utility["auroc"],
        problem_list=problems, samples=samples)
