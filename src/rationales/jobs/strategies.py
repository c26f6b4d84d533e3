"""The strategy table of ``rationales compare``: name -> :class:`Strategy` (how it runs on the
shared :class:`CompareContext`, and its cost model from ``jobs/sizing.py``). Plugins register a
``Strategy`` under the entry point group ``rationales.strategies``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..answers import check_answer
from ..backends.base import Backend
from ..errors import RationalesError, UnknownNameError
from ..generate import GenerationStats, cot_specs, generate
from ..records import Problem, Rationale
from ..registry import Registry
from ..select.vote import Selection
from ..store import Store
from .scoring import make_scorer, prm_rewards
from .sizing import (JUDGE_MAX_TOKENS, Estimate, beam_size, judged_size, max_samples, mcts_size, n_samples,
                     no_size)

if TYPE_CHECKING:
    from .compare import CompareConfig

#: strategy name -> :class:`Strategy` (built-ins below; plugins: entry point group
#: ``rationales.strategies``, a ``Strategy`` object). Iterating gives the names.
STRATEGIES: Registry[Strategy] = Registry("strategy")
DEFAULT_STRATEGIES = ("greedy", "vote", "tool_vote", "adaptive", "best_of_n", "step_search")


def parse_strategies(spec: str | Sequence[str]) -> list[str]:
    """"greedy,vote" -> ["greedy", "vote"]; unknown names fail with a did-you-mean."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise RationalesError("--strategies is empty; name at least one of: " + ", ".join(STRATEGIES) + ".")
    for n in names:
        if n not in STRATEGIES:
            raise UnknownNameError("strategy", n, STRATEGIES)
    return list(dict.fromkeys(names))


@dataclass
class CompareContext:
    """What a strategy runs on: the compare config, the backend and store, and the counts of new
    and cached samples; ``samples`` and ``greedy`` are the CoT rationales all strategies share."""

    cfg: CompareConfig
    backend: Backend
    store: Store
    stats: GenerationStats

    def samples(self, problems: Sequence[Problem], n: int) -> list[list[Rationale]]:
        c = self.cfg
        specs = cot_specs(problems, template=c.template, n=n, temperature=c.temperature, top_p=c.top_p,
                          max_tokens=c.max_tokens, seed=c.seed, method="cot")
        return generate(specs, self.backend, self.store, stats=self.stats)

    def greedy(self, problems: Sequence[Problem]) -> list[Rationale]:
        specs = cot_specs(problems, template=self.cfg.template, n=1, temperature=0.0,
                          max_tokens=self.cfg.max_tokens, method="cot")
        return [rs[0] for rs in generate(specs, self.backend, self.store, stats=self.stats)]


@dataclass(frozen=True)
class Strategy:
    """One entry of the strategy table: ``run(params, problems, ctx) -> [Selection]`` and
    ``size(budget, t, k, est, children) -> params`` (``t`` tokens per sample, ``k = B // t``)."""

    help: str
    run: Callable[[dict[str, int], Sequence[Problem], CompareContext], list[Selection]]
    size: Callable[[int, float, int, Estimate, int], dict[str, int]]


def _greedy(params: dict[str, int], problems: Sequence[Problem], ctx: CompareContext) -> list[Selection]:
    from ..select.vote import greedy

    sels = [greedy(p, r) for p, r in zip(problems, ctx.greedy(problems))]
    for p, sel in zip(problems, sels):  # checked now, like every other strategy's answer
        sel.correct = check_answer(p, sel.answer)
    return sels


def _vote(params: dict[str, int], problems: Sequence[Problem], ctx: CompareContext) -> list[Selection]:
    from ..select.vote import majority_vote

    return [majority_vote(p, rs) for p, rs in zip(problems, ctx.samples(problems, params["n"]))]


def _tool_vote(params: dict[str, int], problems: Sequence[Problem], ctx: CompareContext) -> list[Selection]:
    from ..select.vote import tool_filtered_vote
    from ..verify.arithmetic import check_rationale

    samples = ctx.samples(problems, params["n"])
    for rs in samples:
        for r in rs:
            check_rationale(r, rel_tol=ctx.cfg.rel_tol)
    ctx.store.put_rationales([r for rs in samples for r in rs])
    return [tool_filtered_vote(p, rs) for p, rs in zip(problems, samples)]


def _prm_scored(pick: str) -> Callable[[dict[str, int], Sequence[Problem], CompareContext], list[Selection]]:
    """weighted_vote / best_of_n over PRM-scored samples (the scorer's tokens count)."""

    def run(params: dict[str, int], problems: Sequence[Problem], ctx: CompareContext) -> list[Selection]:
        from ..select.best_of_n import best_of_n, rationale_score
        from ..select.vote import weighted_vote

        c = ctx.cfg
        samples = ctx.samples(problems, params["n"])
        rewards, cost = prm_rewards(problems, samples, make_scorer(c.prm, ctx.backend, c.rel_tol), ctx.store)
        sels = []
        for p, rs in zip(problems, samples):
            if pick == "weighted_vote":
                sel = weighted_vote(p, rs, lambda r: rationale_score(rewards[r.id], c.how))
            else:
                sel = best_of_n(p, rs, [rewards[r.id] for r in rs], c.how)
            sel.tokens += sum(cost[r.id] for r in rs)
            sels.append(sel)
        return sels

    return run


def _adaptive(params: dict[str, int], problems: Sequence[Problem], ctx: CompareContext) -> list[Selection]:
    from ..select.adaptive import adaptive_consistency

    c = ctx.cfg
    return adaptive_consistency(problems, ctx.backend, ctx.store, batch=min(2, params["max_samples"]),
                                max_samples=params["max_samples"], threshold=c.threshold, template=c.template,
                                temperature=c.temperature, top_p=c.top_p, max_tokens=c.max_tokens, seed=c.seed,
                                stats=ctx.stats)


def _judged(params: dict[str, int], problems: Sequence[Problem], ctx: CompareContext, name: str) -> list[Selection]:
    from ..verify.judge import AbsoluteJudge, JudgeConfig
    from .judge import judge_selections

    judge = AbsoluteJudge(ctx.backend, "correctness", JudgeConfig(max_tokens=JUDGE_MAX_TOKENS), store=ctx.store)
    return judge_selections(name, list(problems), ctx.samples(problems, params["n"]), judge, ctx.store)


def _search_common(ctx: CompareContext) -> dict[str, Any]:
    c = ctx.cfg
    return dict(temperature=c.temperature, max_step_tokens=c.max_step_tokens, template=c.template, seed=c.seed,
                stats=ctx.stats)


def _step_search(params: dict[str, int], problems: Sequence[Problem], ctx: CompareContext) -> list[Selection]:
    from ..select.step_search import greedy_step_search

    c = ctx.cfg
    return greedy_step_search(problems, ctx.backend, ctx.store, make_scorer(c.prm, ctx.backend, c.rel_tol),
                              n=params["n"], max_steps=c.max_steps, finish_tokens=c.max_tokens, **_search_common(ctx))


def _beam(params: dict[str, int], problems: Sequence[Problem], ctx: CompareContext) -> list[Selection]:
    from ..select.step_search import beam_step_search

    c = ctx.cfg
    return beam_step_search(problems, ctx.backend, ctx.store, make_scorer(c.prm, ctx.backend, c.rel_tol),
                            beams=params["beams"], expand=params["expand"], max_steps=c.max_steps,
                            finish_tokens=c.max_tokens, **_search_common(ctx))


def _mcts(params: dict[str, int], problems: Sequence[Problem], ctx: CompareContext) -> list[Selection]:
    from ..select.mcts import mcts_search

    c = ctx.cfg
    return mcts_search(problems, ctx.backend, ctx.store, make_scorer(c.prm, ctx.backend, c.rel_tol),
                       rollouts=params["rollouts"], children=params["children"], how=c.how,
                       rollout_tokens=c.max_tokens, max_depth=c.max_steps, **_search_common(ctx))


for _name, _strategy in {
    "greedy": Strategy("one greedy rationale (temperature 0)", _greedy, no_size),
    "vote": Strategy("self-consistency: majority vote over N samples (Wang et al., 2023)", _vote, n_samples),
    "weighted_vote": Strategy("vote weighted by each sample's PRM score", _prm_scored("weighted_vote"), n_samples),
    "tool_vote": Strategy("majority vote among samples with no tool-checked wrong step", _tool_vote, n_samples),
    "best_of_n": Strategy("the sample with the best PRM score (aggregated over steps)", _prm_scored("best_of_n"),
                          n_samples),
    "adaptive": Strategy("adaptive consistency: sample 2 at a time until the vote is certain (Aggarwal et al., "
                         "2023)", _adaptive, max_samples),
    "step_search": Strategy("PRM-guided greedy step search: n candidate steps, keep the best (GroundedPRM)",
                            _step_search, n_samples),
    "beam": Strategy("step beam search scored by the PRM (deductive beam search, Zhu et al., 2024)", _beam,
                     beam_size),
    "mcts": Strategy("MCTS over steps valued by the PRM", _mcts, mcts_size),
    "judge_vote": Strategy("vote weighted by the model's own judge score (rationale, then 1-5; jobs/judge.py)",
                           lambda params, problems, ctx: _judged(params, problems, ctx, "judge_vote"), judged_size),
    "judge_best_of_n": Strategy("the sample the model's own judge scores highest (its judgment tokens count)",
                                lambda params, problems, ctx: _judged(params, problems, ctx, "judge_best_of_n"),
                                judged_size),
}.items():
    STRATEGIES.register(_name, _strategy, help=_strategy.help)


def plan(strategy: str, budget: int, est: Estimate, children: int = 3) -> dict[str, int]:
    """The size parameter(s) of ``strategy`` that fit ``budget`` tokens per problem."""
    t = max(1.0, est.tokens_per_sample)
    k = max(1, int(budget // t))
    return STRATEGIES.get(strategy).size(budget, t, k, est, children)


def run_strategy(name: str, params: dict[str, int], problems: Sequence[Problem],
                 ctx: CompareContext) -> list[Selection]:
    """Run one strategy at the given size; one Selection per problem (tokens = spent)."""
    return STRATEGIES.get(name).run(params, problems, ctx)
