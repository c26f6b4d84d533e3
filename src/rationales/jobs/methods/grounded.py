"""``rationales run --method grounded``: GroundedPRM trees per problem (select/grounded.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...config import MAX_SAMPLES, MethodOptions, setting
from ...generate import GenerationStats
from ...select.grounded import grounded_trees, sibling_pairs
from ..results import GroundedResult
from . import MethodContext


@dataclass
class GroundedOptions(MethodOptions):
    """-O options of --method grounded (GroundedPRM MCTS, Zhang et al. 2025)."""

    uses_template: ClassVar[bool] = True
    rollouts: int | None = setting(None, lo=1, hi=MAX_SAMPLES, help="MCTS rollouts per problem (default: -n).")
    children: int = setting(3, lo=1, hi=16, help="Children per expansion.")
    c: float = setting(1.414, lo=0.0, hi=100.0, help="UCT exploration constant.")
    max_depth: int = setting(7, lo=1, hi=64, help="Depth limit in steps.")
    gamma: float = setting(0.9, lo=0.0, hi=1.0, help="Discount of backed-up values.")
    rel_tol: float = setting(1e-6, lo=0.0, hi=1.0, help="Relative tolerance of the tool check.")
    settle: int = setting(4, lo=0, hi=MAX_SAMPLES,
                          help="Stop a tree once this many finished paths agree on right/wrong (0: never).")
    reuse: bool = setting(True, help="Take the first iterations from stored samples of the same prompt and model.")
    whole_expansions: bool = setting(True, help="Expand with whole continuations (a child's rest is its rollout).")
    budget_children: bool = setting(True, help="Propose no more children than iterations are left (whole expansions).")
    lazy_children: bool = setting(True, help="Draw a node's proposals one at a time, when UCT first visits an "
                                             "unvisited child (whole expansions): none is left unvisited.")


OPTIONS = GroundedOptions


def run(ctx: MethodContext) -> GroundedResult:
    """``rationales run TASK --method grounded [-n ROLLOUTS]``: build a GroundedPRM tree per
    problem (``-n`` = rollouts, default 8; ``ctx.options`` may set children, max_depth, gamma,
    c, rel_tol), store the step-labelled paths and trees, and write ``grounded.html``.

    The one accuracy row is the share of finished paths whose answer is right (the trees use
    the gold answer in their reward, so no "best path" accuracy is reported: it would leak it)."""
    from ...select.vote import Selection, strategy_row

    o = GroundedOptions.from_options(ctx.options)
    stats = GenerationStats()
    trees = grounded_trees(ctx.problems, ctx.backend, ctx.store, rollouts=o.rollouts or ctx.samples,
                           children=o.children, c=o.c, max_depth=o.max_depth, gamma=o.gamma,
                           temperature=ctx.temperature if ctx.temperature > 0 else 0.7,
                           rollout_tokens=ctx.max_tokens, seed=ctx.seed, rel_tol=o.rel_tol, template=ctx.template,
                           settle=o.settle, reuse=o.reuse,
                           whole_expansions=o.whole_expansions, budget_children=o.budget_children,
                           lazy_children=o.lazy_children, stats=stats)
    paths = [r for t in trees for r in t.rationales]
    path_sels = [Selection(r.problem_id, r.answer, r.correct, None, r.tokens, r.id, strategy="grounded path")
                 for r in paths]
    steps = [s for r in paths for s in r.steps]
    pairs = [pair for t in trees for pair in sibling_pairs(t)]
    return GroundedResult(
        strategies={"finished paths (share right)": strategy_row(path_sels)},
        samples_new=stats.new, samples_cached=stats.cached,
        tokens=sum(t.tokens for t in trees), tokens_new=stats.tokens_new,
        trees=len(trees), paths=len(paths), paths_right=sum(1 for r in paths if r.correct),
        steps_labelled=len(steps),
        steps_tool_right=sum(1 for s in steps if s.verdict("tool") == 1),
        steps_tool_wrong=sum(1 for s in steps if s.verdict("tool") == -1),
        steps_mc_positive=sum(1 for s in steps if s.verdict("mc") == 1),
        sibling_pairs=len(pairs), iterations=sum(t.iterations for t in trees),
        iterations_reused=sum(t.reused for t in trees), tokens_reused=sum(t.reused_tokens for t in trees),
        trees_settled=sum(1 for t in trees if t.stopped == "settled"), tree_list=trees)
