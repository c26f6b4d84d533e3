"""Compare inference strategies at equal token budgets (``rationales compare``).

Each strategy has one size parameter (samples N, candidates per step n, beam width, MCTS
rollouts, adaptive sample cap). A pilot pass draws one greedy rationale and one sampled
rationale per problem (both cached and reused by the strategies) and measures the mean tokens
per sampled rationale ``t`` and steps per rationale ``L``; each strategy's size is then the
largest that its cost model keeps within the budget B (generated tokens per problem):

* vote, weighted_vote, tool_vote, best_of_n: N = floor(B / t) samples (at least 1);
* adaptive: up to floor(B / t) samples, 2 at a time, stopping early when the vote is certain;
* step_search: n = floor(B / t) candidates per step (n candidates for each of ~L steps);
* beam: floor(B / t) candidates per step split as ``expand`` = min(3, .) per beam and
  ``beams`` = that // expand;
* mcts: floor(B / (t * (1 + children / L))) rollouts (a rollout plus one expansion each);
* greedy: one rationale, whatever the budget.

The tokens each strategy actually spent are measured and reported (all generated tokens of
every sample, candidate, rollout and continuation it used, cached or not, plus a generative
scorer's tokens), with accuracy, a 95% Wilson interval and accuracy per 1k tokens; with several
budgets each strategy becomes a curve. Sample-based strategies share the same cached samples
(the ``run`` command's samples too), and PRM step rewards are kept on the samples' steps in
the store, so reruns and larger budgets redo nothing.

The step scorer (``--prm``): ``llm`` (the model itself as PRM, P(+)/(P(+)+P(-)), no generated
tokens: it reads log-probabilities), ``genprm`` (GroundedPRM-style generative judgement; its
tokens count), ``tool`` (the arithmetic tool check as a PRM: 1 for a right step, 0 for a wrong
one, 0.5 when the step has no checkable claim).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..backends.base import Backend
from ..config import (MAX_BUDGET, MAX_TOKENS, BackendConfig, ConfigError, OutputConfig, SamplingConfig, TaskConfig,
                      setting)
from ..errors import RationalesError, UnknownNameError
from ..generate import GenerationStats, cot_specs, generate
from ..records import Problem, Rationale, Score
from ..store import Store
from ..verify.prm import AGGREGATES
from ..registry import Registry
from ..verify.scorers import checker_name
from .results import CompareResult
from ..answers import check_answer
from ..select.vote import Selection, strategy_row

#: strategy name -> :class:`Strategy` (built-ins below; plugins: entry point group
#: ``rationales.strategies``, a ``Strategy`` object). Iterating gives the names.
STRATEGIES: Registry[Strategy] = Registry("strategy")
JUDGE_MAX_TOKENS = 192  #: judge_vote / judge_best_of_n: max tokens of one judgment
DEFAULT_STRATEGIES = ("greedy", "vote", "tool_vote", "adaptive", "best_of_n", "step_search")
PRM_STRATEGIES = {"weighted_vote", "best_of_n", "step_search", "beam", "mcts"}
#: step scorers for ``--prm`` (verify/scorers.py; ``prm`` is accepted as the old name of ``llm``)
PRMS = ("llm", "genprm", "tool")
MAX_STEPS = 256  #: searched steps of step_search / beam / mcts


@dataclass
class CompareConfig(OutputConfig, BackendConfig, TaskConfig, SamplingConfig):
    """Settings of ``rationales compare``."""

    strategies: list[str] = setting(default_factory=lambda: list(DEFAULT_STRATEGIES),
                                    help="Comma-separated: greedy, vote, weighted_vote, tool_vote, best_of_n, adaptive, "
                                         "step_search, beam, mcts.")
    budgets: list[int] = setting(default_factory=lambda: [1000],
                                 help=f"Generated tokens per problem each strategy may spend (1..{MAX_BUDGET}).")
    prm: str = setting("llm", help="Step scorer: llm (P(+)/P(-)), genprm (generative), tool (arithmetic check).")
    how: str = setting("min", choices=AGGREGATES, what="PRM aggregate", help="PRM aggregate over steps: min, last, product, mean.")
    max_steps: int = setting(12, lo=1, hi=MAX_STEPS, help="Step search / beam / MCTS: at most this many steps.")
    max_step_tokens: int = setting(128, lo=1, hi=MAX_TOKENS, help="Max new tokens of one searched step.")
    children: int = setting(3, lo=1, hi=16, help="MCTS children per expansion.")
    template: str = setting("cot", help="Prompt template name or a .j2 file.")
    rel_tol: float = setting(1e-6, lo=0.0, hi=1.0, help="Relative tolerance of the arithmetic check.")
    threshold: float = setting(0.95, lo=0.0, hi=1.0, lo_open=True,
                               help="adaptive: stop sampling a problem once its vote is this certain (Beta).")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.strategies = parse_strategies(self.strategies)
        self.budgets = parse_budgets(self.budgets)
        self.prm = checker_name(self.prm, scorers_only=True, what="PRM")
        if self.temperature <= 0 and any(s != "greedy" for s in self.strategies):
            raise ConfigError("Sampling strategies need --temperature above 0 (e.g. 0.7).")


def parse_strategies(spec: str | Sequence[str]) -> list[str]:
    """"greedy,vote" -> ["greedy", "vote"]; unknown names fail with a did-you-mean."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise RationalesError("--strategies is empty; name at least one of: " + ", ".join(STRATEGIES) + ".")
    for n in names:
        if n not in STRATEGIES:
            raise UnknownNameError("strategy", n, STRATEGIES)
    return list(dict.fromkeys(names))


def parse_budgets(spec: str | int | Sequence[int]) -> list[int]:
    """"500,1000" -> [500, 1000] (tokens per problem, each >= 1)."""
    if isinstance(spec, int):
        items: list[Any] = [spec]
    elif isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = list(spec)
    out = []
    for item in items:
        try:
            b = int(item) if not isinstance(item, str) or len(item) < 40 else int("x")
        except (TypeError, ValueError):
            try:  # "1e6" is a whole number too
                f = float(item) if isinstance(item, str) and len(item) < 40 else math.nan
                b = int(f) if math.isfinite(f) and f.is_integer() else int("x")
            except (TypeError, ValueError, OverflowError):
                raise RationalesError(f"Budget '{str(item)[:40]}' is not a whole number of tokens; write e.g. "
                                      "--budgets 500,1000.") from None
        if b < 1:
            raise RationalesError(f"Budget {b} must be at least 1 token per problem.")
        if b > MAX_BUDGET:
            raise RationalesError(f"Budget {b} is over the limit of {MAX_BUDGET} tokens per problem "
                                  "(rationales/config.py); give a smaller --budget.")
        out.append(b)
    if not out:
        raise RationalesError("No budget given; write e.g. --budget 1000 or --budgets 500,1000,2000.")
    return sorted(dict.fromkeys(out))


# ---------------------------------------------------------------- scorers


def make_scorer(kind: str, backend: Backend, rel_tol: float = 1e-6) -> Any:
    """A fresh step scorer (fresh: in-memory caches never make a later strategy's scoring free);
    a generative scorer's backend counts the tokens it generates."""
    from ..select.step_search import CountingBackend
    from ..verify.scorers import make_step_scorer

    key = checker_name(kind, scorers_only=True, what="PRM")
    return make_step_scorer(key, CountingBackend(backend) if key == "genprm" else backend, rel_tol=rel_tol)


def prm_rewards(problems: Sequence[Problem], samples: Sequence[Sequence[Rationale]], scorer: Any,
                store: Store) -> tuple[dict[str, list[float | None]], dict[str, int]]:
    """Step rewards of every sample (rationale id -> rewards) and the scorer tokens charged to
    each. Rewards are kept on the steps (``Check(kind="prm")``, via ``score.prm.prm_checks``)
    and stored, so a sample is scored once per scorer."""
    from ..verify.prm import prm_checks
    from ..select.step_search import scorer_tokens
    from ..verify.prm import scorer_name

    by = scorer_name(scorer)

    def scored(r: Rationale) -> bool:
        return any(s.kind == "prm_cost" and s.by == by for s in r.scores)

    todo_p, todo_r = [], []
    for p, rs in zip(problems, samples):
        for r in rs:
            if not scored(r):
                todo_p.append(p)
                todo_r.append(r)
    if todo_r:
        before = scorer_tokens(scorer)
        prm_checks(scorer, todo_p, todo_r)
        spent = scorer_tokens(scorer) - before
        for k, r in enumerate(todo_r):
            share = spent // len(todo_r) + (1 if k < spent % len(todo_r) else 0)
            r.set_score(Score(kind="prm_cost", value=float(share), by=by, detail={"tokens": share}))
        store.put_rationales(todo_r)
    rewards, cost = {}, {}
    for rs in samples:
        for r in rs:
            rewards[r.id] = [next((c.score for c in reversed(s.checks) if c.kind == "prm" and c.by == by), None)
                             for s in r.steps]
            cost[r.id] = int(next((s.value or 0 for s in r.scores if s.kind == "prm_cost" and s.by == by), 0))
    return rewards, cost


# ---------------------------------------------------------------- sizing


@dataclass
class Estimate:
    """Pilot measurements the sizes are chosen from."""

    tokens_per_sample: float
    steps_per_sample: float
    greedy_tokens: float


def plan(strategy: str, budget: int, est: Estimate, children: int = 3) -> dict[str, int]:
    """The size parameter(s) of ``strategy`` that fit ``budget`` tokens per problem."""
    t = max(1.0, est.tokens_per_sample)
    k = max(1, int(budget // t))
    return STRATEGIES.get(strategy).size(budget, t, k, est, children)


# ---------------------------------------------------------------- running


@dataclass
class CompareContext:
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


def pilot(problems: Sequence[Problem], ctx: CompareContext) -> Estimate:
    """Greedy rationale + one sample per problem (both reused later): t and L."""
    greedy_rs = ctx.greedy(problems)
    samples = [rs[0] for rs in ctx.samples(problems, 1)]
    pool = samples or greedy_rs
    t = sum(r.tokens for r in pool) / max(1, len(pool))
    steps = sum(len(r.steps) for r in pool) / max(1, len(pool))
    g = sum(r.tokens for r in greedy_rs) / max(1, len(greedy_rs))
    return Estimate(round(t, 2), round(steps, 2), round(g, 2))


def run_strategy(name: str, params: dict[str, int], problems: Sequence[Problem],
                 ctx: CompareContext) -> list[Selection]:
    """Run one strategy at the given size; one Selection per problem (tokens = spent)."""
    return STRATEGIES.get(name).run(params, problems, ctx)


# ---------------------------------------------------------------- the strategies


@dataclass(frozen=True)
class Strategy:
    """One entry of the strategy table: ``run(params, problems, ctx) -> [Selection]`` and
    ``size(budget, t, k, est, children) -> params`` (``t`` tokens per sample, ``k = B // t``)."""

    help: str
    run: Callable[[dict[str, int], Sequence[Problem], CompareContext], list[Selection]]
    size: Callable[[int, float, int, Estimate, int], dict[str, int]]


def _n_samples(budget: int, t: float, k: int, est: Estimate, children: int) -> dict[str, int]:
    return {"n": k}


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


def _beam_size(budget: int, t: float, k: int, est: Estimate, children: int) -> dict[str, int]:
    expand = min(3, k)
    return {"beams": max(1, k // expand), "expand": expand}


def _mcts_size(budget: int, t: float, k: int, est: Estimate, children: int) -> dict[str, int]:
    per_rollout = t * (1 + children / max(1.0, est.steps_per_sample))
    return {"rollouts": max(1, int(budget // per_rollout)), "children": children}


def _judged_size(budget: int, t: float, k: int, est: Estimate, children: int) -> dict[str, int]:
    return {"n": max(1, int(budget // (t + min(t, JUDGE_MAX_TOKENS))))}  # + one judgment per sample (capped)


for _name, _strategy in {
    "greedy": Strategy("one greedy rationale (temperature 0)", _greedy, lambda *a: {}),
    "vote": Strategy("self-consistency: majority vote over N samples (Wang et al., 2023)", _vote, _n_samples),
    "weighted_vote": Strategy("vote weighted by each sample's PRM score", _prm_scored("weighted_vote"), _n_samples),
    "tool_vote": Strategy("majority vote among samples with no tool-checked wrong step", _tool_vote, _n_samples),
    "best_of_n": Strategy("the sample with the best PRM score (aggregated over steps)", _prm_scored("best_of_n"),
                          _n_samples),
    "adaptive": Strategy("adaptive consistency: sample 2 at a time until the vote is certain (Aggarwal et al., "
                         "2023)", _adaptive, lambda budget, t, k, est, children: {"max_samples": k}),
    "step_search": Strategy("PRM-guided greedy step search: n candidate steps, keep the best (GroundedPRM)",
                            _step_search, _n_samples),
    "beam": Strategy("step beam search scored by the PRM (deductive beam search, Zhu et al., 2024)", _beam,
                     _beam_size),
    "mcts": Strategy("MCTS over steps valued by the PRM", _mcts, _mcts_size),
    "judge_vote": Strategy("vote weighted by the model's own judge score (rationale, then 1-5; jobs/judge.py)",
                           lambda params, problems, ctx: _judged(params, problems, ctx, "judge_vote"), _judged_size),
    "judge_best_of_n": Strategy("the sample the model's own judge scores highest (its judgment tokens count)",
                                lambda params, problems, ctx: _judged(params, problems, ctx, "judge_best_of_n"),
                                _judged_size),
}.items():
    STRATEGIES.register(_name, _strategy, help=_strategy.help)


def size_label(name: str, params: dict[str, int]) -> str:
    if not params:
        return "1"
    return ", ".join(f"{k}={v}" for k, v in params.items())


def compare_row(selections: Sequence[Selection], budget: int, params: dict[str, int]) -> dict[str, Any]:

    row = strategy_row(selections)
    n = max(1, len(selections))
    row["tokens_per_problem"] = round(row["tokens"] / n, 1)
    row["accuracy_per_1k_tokens"] = (round(1000 * row["accuracy"] / row["tokens_per_problem"], 4)
                                     if row["tokens_per_problem"] else 0.0)
    row["budget"] = budget
    row["size"] = dict(params)
    return row


def compare(cfg: CompareConfig, backend: Backend, store: Store, problems: Sequence[Problem],
            on_progress: Callable[[str, int], None] | None = None) -> CompareResult:
    """Run every strategy at every budget; the result's JSON is also saved as a run."""
    t0 = time.time()
    strategies = parse_strategies(cfg.strategies)
    budgets = parse_budgets(cfg.budgets)
    if not problems:
        raise RationalesError(f"Task {cfg.task} gave no problems; check the task name and --limit.")
    if all(p.gold is None and p.answer_type != "reasoning_gym" for p in problems):
        raise RationalesError(f"Task {cfg.task} has no gold answers, so accuracy cannot be measured; give the "
                              "answer column (--answer-col) or use a task with answers.")
    run_id = store.start_run("compare", asdict(cfg))
    stats = GenerationStats()
    ctx = CompareContext(cfg, backend, store, stats)
    est = pilot(problems, ctx)
    rows: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies}
    selections: dict[str, list[Selection]] = {}
    done_sizes: dict[tuple[str, str], dict[str, Any]] = {}
    for budget in budgets:
        for name in strategies:
            params = plan(name, budget, est, cfg.children)
            key = (name, repr(sorted(params.items())))
            if key in done_sizes:  # same size as a smaller budget: same result
                row = dict(done_sizes[key], budget=budget)
            else:
                sels = run_strategy(name, params, problems, ctx)
                row = compare_row(sels, budget, params)
                done_sizes[key] = row
                selections[name if len(budgets) == 1 else f"{name}@{budget}"] = sels
            rows[name if len(budgets) == 1 else f"{name}@{budget}"] = row
            curves[name].append(row)
            if on_progress:
                on_progress(name, budget)
    result = CompareResult(
        run_id=run_id, task=cfg.task, backend=backend.name, model=backend.model, problems=len(problems),
        budgets=budgets, prm=cfg.prm, how=cfg.how, estimate=asdict(est), strategies=rows, curves=curves,
        samples_new=stats.new, samples_cached=stats.cached, tokens=sum(r["tokens"] for r in done_sizes.values()),
        tokens_new=stats.tokens_new, time_s=round(time.time() - t0, 2), store=str(store.path),
        records={"problems": list(problems), "selections": selections})
    store.finish_run(run_id, result.to_json())
    return result


# ---------------------------------------------------------------- report


