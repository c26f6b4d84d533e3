"""``rationales run --method grounded``: GroundedPRM trees per problem (select/grounded.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...generate import GenerationStats
from ...select.grounded import grounded_trees, sibling_pairs


def run(ctx: Any) -> dict[str, Any]:
    """``rationales run TASK --method grounded [-n ROLLOUTS]``: build a GroundedPRM tree per
    problem (``-n`` = rollouts, default 8; ``ctx.options`` may set children, max_depth, gamma,
    c, rel_tol), store the step-labelled paths and trees, and write ``grounded.html``.

    The one accuracy row is the share of finished paths whose answer is right (the trees use
    the gold answer in their reward, so no "best path" accuracy is reported: it would leak it)."""
    from ...select.vote import Selection, strategy_row

    opts = ctx.options or {}
    stats = GenerationStats()
    rollouts = max(1, int(opts.get("rollouts", ctx.samples)))
    trees = grounded_trees(ctx.problems, ctx.backend, ctx.store, rollouts=rollouts,
                           children=int(opts.get("children", 3)), c=float(opts.get("c", 1.414)),
                           max_depth=int(opts.get("max_depth", 7)), gamma=float(opts.get("gamma", 0.9)),
                           temperature=ctx.temperature if ctx.temperature > 0 else 0.7,
                           rollout_tokens=ctx.max_tokens, seed=ctx.seed, rel_tol=float(opts.get("rel_tol", 1e-6)),
                           stats=stats)
    paths = [r for t in trees for r in t.rationales]
    path_sels = [Selection(r.problem_id, r.answer, r.correct, None, r.tokens, r.id, strategy="grounded path")
                 for r in paths]
    steps = [s for r in paths for s in r.steps]
    pairs = [pair for t in trees for pair in sibling_pairs(t)]
    summary: dict[str, Any] = {
        "strategies": {"finished paths (share right)": strategy_row(path_sels)},
        "samples_new": stats.new, "samples_cached": stats.cached,
        "tokens": sum(t.tokens for t in trees), "tokens_new": stats.tokens_new,
        "trees": len(trees), "paths": len(paths), "paths_right": sum(1 for r in paths if r.correct),
        "steps_labelled": len(steps),
        "steps_tool_right": sum(1 for s in steps if s.verdict("tool") == 1),
        "steps_tool_wrong": sum(1 for s in steps if s.verdict("tool") == -1),
        "steps_mc_positive": sum(1 for s in steps if s.verdict("mc") == 1),
        "sibling_pairs": len(pairs),
    }
    from ...report.grounded import _write_report

    summary["report"] = str(_write_report(Path(ctx.out), summary, trees))
    return summary
