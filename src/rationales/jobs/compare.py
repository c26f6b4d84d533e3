"""Compare inference strategies at equal token budgets (``rationales compare``).

The strategies are the table in ``jobs/strategies.py``; each is sized to the budget by its cost
model (``jobs/sizing.py``: a pilot pass measures tokens and steps per sample) and, where it
scores steps, uses the step scorer of ``--prm`` (``jobs/scoring.py``).

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
from ..config import MAX_BUDGET, MAX_TOKENS, BackendConfig, ConfigError, OutputConfig, SamplingConfig, TaskConfig, \
    setting
from ..errors import RationalesError
from ..generate import GenerationStats
from ..records import Problem
from ..select.vote import Selection, strategy_row
from ..store import Store
from ..verify.prm import AGGREGATES
from ..verify.scorers import checker_name
from .results import CompareResult
from .scoring import make_scorer, prm_rewards
from .sizing import JUDGE_MAX_TOKENS, Estimate, pilot
from .strategies import DEFAULT_STRATEGIES, STRATEGIES, CompareContext, Strategy, parse_strategies, plan, run_strategy

__all__ = ["CompareConfig", "compare", "parse_budgets", "size_label", "compare_row", "MAX_STEPS",
           # re-exported from strategies.py / sizing.py / scoring.py
           "STRATEGIES", "DEFAULT_STRATEGIES", "Strategy", "CompareContext", "parse_strategies", "plan",
           "run_strategy", "Estimate", "pilot", "JUDGE_MAX_TOKENS", "make_scorer", "prm_rewards"]

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
