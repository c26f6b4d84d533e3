"""Sizing the compare strategies to a token budget.

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
* judge_vote, judge_best_of_n: floor(B / (t + min(t, JUDGE_MAX_TOKENS))) samples (one judgment each);
* greedy: one rationale, whatever the budget.

The cost models are the ``size`` of each entry of the strategy table (``jobs/strategies.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..records import Problem

if TYPE_CHECKING:
    from .strategies import CompareContext

JUDGE_MAX_TOKENS = 192  #: judge_vote / judge_best_of_n: max tokens of one judgment


@dataclass
class Estimate:
    """Pilot measurements the sizes are chosen from."""

    tokens_per_sample: float
    steps_per_sample: float
    greedy_tokens: float


def pilot(problems: Sequence[Problem], ctx: CompareContext) -> Estimate:
    """Greedy rationale + one sample per problem (both reused later): t and L."""
    greedy_rs = ctx.greedy(problems)
    samples = [rs[0] for rs in ctx.samples(problems, 1)]
    pool = samples or greedy_rs
    t = sum(r.tokens for r in pool) / max(1, len(pool))
    steps = sum(len(r.steps) for r in pool) / max(1, len(pool))
    g = sum(r.tokens for r in greedy_rs) / max(1, len(greedy_rs))
    return Estimate(round(t, 2), round(steps, 2), round(g, 2))


def n_samples(budget: int, t: float, k: int, est: Estimate, children: int) -> dict[str, int]:
    return {"n": k}


def max_samples(budget: int, t: float, k: int, est: Estimate, children: int) -> dict[str, int]:
    return {"max_samples": k}


def no_size(budget: int, t: float, k: int, est: Estimate, children: int) -> dict[str, int]:
    return {}


def beam_size(budget: int, t: float, k: int, est: Estimate, children: int) -> dict[str, int]:
    expand = min(3, k)
    return {"beams": max(1, k // expand), "expand": expand}


def mcts_size(budget: int, t: float, k: int, est: Estimate, children: int) -> dict[str, int]:
    per_rollout = t * (1 + children / max(1.0, est.steps_per_sample))
    return {"rollouts": max(1, int(budget // per_rollout)), "children": children}


def judged_size(budget: int, t: float, k: int, est: Estimate, children: int) -> dict[str, int]:
    return {"n": max(1, int(budget // (t + min(t, JUDGE_MAX_TOKENS))))}  # + one judgment per sample (capped)
