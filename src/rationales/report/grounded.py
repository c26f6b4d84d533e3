"""``grounded.html``: GroundedPRM trees and their labelled paths."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..select.grounded import sibling_pairs
from ..select.tree import Tree


def write_report(out_dir: Path, summary: dict[str, Any], trees: Sequence[Tree]) -> Path:
    from .html import esc, page, rationale_html, table

    out_dir.mkdir(parents=True, exist_ok=True)
    keys = ("trees", "paths", "paths_right", "steps_labelled", "steps_tool_right", "steps_tool_wrong",
            "steps_mc_positive", "sibling_pairs", "tokens", "samples_new", "samples_cached", "iterations",
            "iterations_reused", "tokens_reused", "trees_settled")
    body = ["<p class='meta'>GroundedPRM data construction (Zhang et al., 2025): MCTS over steps, each step "
            "tool-checked, paths valued by the hybrid reward; step colours = tool and MC verdicts.</p>",
            table(["what", "count"], [(k.replace("_", " "), summary[k]) for k in keys])]
    for t in trees:
        ordered = sorted(t.rationales, key=lambda r: -(r.score("hybrid_reward") or 0.0))
        body.append(f"<div class='problem'><b>{esc(t.problem.question)}</b><div class='meta'>gold "
                    f"{esc(t.problem.gold)} · {len(t.nodes) - 1} tree steps · {len(t.paths)} paths · "
                    f"{t.tokens} tokens · {t.iterations} iterations ({t.reused} from stored samples"
                    f"{', settled' if t.stopped == 'settled' else ''}) · {len(sibling_pairs(t))} sibling pairs</div>"
                    + "".join(rationale_html(r, f"R={r.score('hybrid_reward'):.3f}") for r in ordered) + "</div>")
    path = out_dir / "grounded.html"
    path.write_text(page("GroundedPRM trees", "".join(body)), encoding="utf-8")
    return path
