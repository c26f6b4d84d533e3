"""``rationales run --method faithfulness``: counterfactual probes and consistency (score/faithfulness.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...config import MAX_TOKENS, MethodOptions, setting
from ...generate import GenerationStats
from ...records import Rationale
from ...score.faithfulness import score_faithfulness
from ...select.vote import filtered_vote, majority_vote, strategy_row
from ..results import FaithfulnessResult
from . import MethodContext


def _faithful(r: Rationale) -> bool:
    v = r.score("faithfulness")
    return v is not None and v > 0


def _consistent(r: Rationale) -> bool:
    return r.score("consistency") == 1.0


@dataclass
class FaithfulnessOptions(MethodOptions):
    """-O options of --method faithfulness (PINTO counterfactual probes)."""

    uses_template: ClassVar[bool] = True
    template: str | None = setting(None, help="CoT template (default: run's --template).")
    mask_ratio: float = setting(0.3, lo=0.0, hi=1.0, lo_open=True, help="Share of rationale tokens masked.")
    n_masks: int = setting(2, lo=1, hi=64, help="Masked copies per rationale.")
    numbers: bool = setting(True, help="Also probe with the rationale's numbers replaced.")
    probe_max_tokens: int = setting(48, lo=1, hi=MAX_TOKENS, help="Max new tokens of a probe answer.")


OPTIONS = FaithfulnessOptions


def run(ctx: MethodContext) -> FaithfulnessResult:
    """``rationales run --method faithfulness``: sample CoT rationales, probe each with
    counterfactual perturbations, check answer-rationale consistency, and compare the vote over
    all samples with votes over faithful-only and consistent-only samples."""

    o = FaithfulnessOptions.from_options(ctx.options)
    specs = ctx.cot_specs(o.template or ctx.template)
    samples, stats = ctx.sample(specs)
    problems = [s.problem for s in specs]
    probe_stats = GenerationStats()
    probes = score_faithfulness(ctx.backend, ctx.store, problems, samples, ratio=o.mask_ratio,
                                n_masks=o.n_masks, numbers=o.numbers,
                                seed=ctx.seed, max_tokens=o.probe_max_tokens, stats=probe_stats)
    flat = [r for rs in samples for r in rs]
    faith = [r.score("faithfulness") for r in flat]
    faith = [v for v in faith if v is not None]
    cons = [r.score("consistency") for r in flat]
    cons = [v for v in cons if v is not None]
    n = ctx.samples
    strategies = {
        f"vote@{n}": strategy_row([majority_vote(p, rs) for p, rs in zip(problems, samples)]),
        f"vote@{n} faithful-only": strategy_row(
            [filtered_vote(p, rs, _faithful, "faithful_vote") for p, rs in zip(problems, samples)]),
        f"vote@{n} consistent-only": strategy_row(
            [filtered_vote(p, rs, _consistent, "consistent_vote") for p, rs in zip(problems, samples)]),
    }

    def acc_of(rs: list[Rationale]) -> float | None:
        judged = [r for r in rs if r.correct is not None]
        return round(sum(bool(r.correct) for r in judged) / len(judged), 4) if judged else None

    answered = [r for r in flat if r.answer is not None]
    return FaithfulnessResult(
        problems=len(problems), samples_per_problem=n, strategies=strategies,
        rationales_probed=len([r for r in flat if r.score("faithfulness") is not None]),
        faithful=sum(1 for v in faith if v > 0), unfaithful=sum(1 for v in faith if v == 0),
        mean_change_rate=round(sum(faith) / len(faith), 4) if faith else None,
        consistent=sum(1 for v in cons if v == 1.0), inconsistent=sum(1 for v in cons if v == 0.0),
        accuracy_faithful=acc_of([r for r in answered if _faithful(r)]),
        accuracy_unfaithful=acc_of([r for r in answered if r.score("faithfulness") == 0]),
        accuracy_consistent=acc_of([r for r in answered if _consistent(r)]),
        accuracy_inconsistent=acc_of([r for r in answered if r.score("consistency") == 0.0]),
        probes=probes, probes_new=probe_stats.new, tokens=sum(r.tokens for r in flat),
        probe_tokens_new=probe_stats.tokens_new, **stats.as_dict(),
        problem_list=problems, samples=samples, store=ctx.store)
