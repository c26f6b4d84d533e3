"""``rationales run --method utility``: reasoning utility per rationale and step (score/utility.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...score.utility import ANSWER_TEMPLATE, AnswerScorer, score_utility, utility_stats
from ...select.vote import majority_vote, strategy_row, utility_vote
from . import option


def run(ctx: Any) -> dict[str, Any]:
    """``rationales run --method utility``: sample CoT rationales, score their utility for the
    gold answer (per step) and for their own answer, compare correct vs wrong rationales and
    a utility-weighted vote with the plain vote."""

    opts = ctx.options
    template = option(opts, "template", "cot")
    scorer = AnswerScorer(ctx.backend, option(opts, "answer_template", ANSWER_TEMPLATE))
    specs = ctx.cot_specs(template)
    samples, stats = ctx.sample(specs)
    for spec, rs in zip(specs, samples):
        score_utility(ctx.backend, spec.problem, rs, spec.prompt, per_step=option(opts, "per_step", True),
                      scorer=scorer)
        ctx.store.put_rationales(rs)
    problems = [s.problem for s in specs]
    scale = option(opts, "weight_scale", 1.0)
    n = ctx.samples
    strategies = {
        "sample@1": strategy_row([majority_vote(p, rs[:1]) for p, rs in zip(problems, samples)]),
        f"vote@{n}": strategy_row([majority_vote(p, rs) for p, rs in zip(problems, samples)]),
        f"utility_vote@{n}": strategy_row([utility_vote(p, rs, scale) for p, rs in zip(problems, samples)]),
    }
    flat = [r for rs in samples for r in rs]
    summary: dict[str, Any] = {
        "method": "utility",
        "problems": len(problems),
        "samples_per_problem": n,
        "strategies": strategies,
        "utility": utility_stats(flat).as_dict(),
        "utility_own": utility_stats(flat, "utility_own").as_dict(),
        "logprob_calls": scorer.calls,
        "tokens": sum(r.tokens for r in flat),
        **stats.as_dict(),
    }
    # flat copies for the CLI's one-line-per-value printout
    summary["utility_mean_correct"] = summary["utility"]["mean_correct"]
    summary["utility_mean_wrong"] = summary["utility"]["mean_wrong"]
    summary["utility_auroc"] = summary["utility"]["auroc"]
    from ...report.utility import write_report

    summary["report"] = str(write_report(Path(ctx.out), summary, problems, samples))
    return summary
