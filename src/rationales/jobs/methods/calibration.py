"""``rationales run --method calibration``: agreement and verbal confidence, ECE (score/calibration.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...config import MethodOptions, setting
from ...answers import check_answer
from ...generate import cot_specs
from ...score.calibration import agreement_scores, calibration_summary, verbal_scores, vote_calibration
from ...select.vote import Selection, majority_vote, strategy_row
from ..results import CalibrationResult
from . import MethodContext


@dataclass
class CalibrationOptions(MethodOptions):
    """-O options of --method calibration."""

    uses_template: ClassVar[bool] = True
    template: str | None = setting(None, help="CoT template (default: run's --template).")
    bins: int = setting(10, lo=1, hi=1000, help="Reliability bins.")
    verbal: bool = setting(True, help="Also ask for a verbal 'Confidence: N%'.")


OPTIONS = CalibrationOptions


def run(ctx: MethodContext) -> CalibrationResult:
    """``rationales run --method calibration``: N CoT samples per problem -> vote-share
    confidence; one greedy rationale with a verbal confidence per problem; ECE, Brier and a
    reliability diagram for both (and per-sample agreement)."""

    o = CalibrationOptions.from_options(ctx.options)
    n_bins = o.bins
    specs = ctx.cot_specs(o.template or ctx.template)
    verbal = o.verbal
    verbal_specs = cot_specs(ctx.problems, template="cot_confidence", n=1, temperature=0.0,
                             max_tokens=ctx.max_tokens, method="cot_confidence") if verbal else []
    out, stats = ctx.sample([*specs, *verbal_specs])
    samples, verbal_rs = out[:len(specs)], [rs[0] for rs in out[len(specs):]]
    problems = [s.problem for s in specs]
    for rs in samples:
        agreement_scores(rs)
    ctx.store.put_rationales([r for rs in samples for r in rs])
    for p, r in zip(problems, verbal_rs):
        verbal_scores(p, [r])
    if verbal_rs:
        ctx.store.put_rationales(verbal_rs)

    votes = [majority_vote(p, rs) for p, rs in zip(problems, samples)]
    n = ctx.samples
    strategies = {f"vote@{n}": strategy_row(votes),
                  "sample@1": strategy_row([majority_vote(p, rs[:1]) for p, rs in zip(problems, samples)])}
    calib: dict[str, dict[str, Any]] = {f"vote share (vote@{n})": vote_calibration(votes, n_bins)}
    flat = [r for rs in samples for r in rs]
    answered = [r for r in flat if r.answer is not None]
    calib["sample agreement"] = calibration_summary([r.score("agreement") for r in answered],
                                                    [r.correct for r in answered], n_bins)
    unparsed = 0
    if verbal_rs:
        strategies["verbal greedy"] = strategy_row(
            [Selection(p.id, r.answer, check_answer(p, r.answer), r.score("verbal_confidence"), r.tokens, r.id,
                       strategy="verbal") for p, r in zip(problems, verbal_rs)])
        parsed = [r for r in verbal_rs if r.score("verbal_confidence") is not None]
        unparsed = len(verbal_rs) - len(parsed)
        calib["verbal (greedy)"] = calibration_summary([r.score("verbal_confidence") for r in parsed],
                                                       [r.correct for r in parsed], n_bins)
    return CalibrationResult(
        problems=len(problems), samples_per_problem=n, strategies=strategies, calibration=calib,
        ece_vote=calib[f"vote share (vote@{n})"]["ece"],
        ece_verbal=calib["verbal (greedy)"]["ece"] if verbal_rs else None,
        verbal_parsed=len(verbal_rs) - unparsed, verbal_unparsed=unparsed,
        tokens=sum(r.tokens for r in flat) + sum(r.tokens for r in verbal_rs), **stats.as_dict(),
        problem_list=problems, votes=votes, verbal_rs=verbal_rs)
