"""``brevity.html``: original vs reduced rationales."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Problem
from ..score.brevity import ReducedPair


def write_report(out: Path, summary: dict[str, Any], problems: Sequence[Problem],
                 pairs: Sequence[Sequence[ReducedPair]]) -> Path:
    from .html import esc, page, rationale_html, strategies_table, table

    out.mkdir(parents=True, exist_ok=True)
    keys = ["threshold", "reduced", "sentences", "sentences_dropped", "body_tokens", "body_tokens_saved",
            "body_tokens_saved_pct", "tokens_original", "tokens_reduced", "accuracy_original", "accuracy_reduced",
            "correct_before", "correct_kept", "accuracy_kept"]
    body = [f"<p class='meta'>{summary['problems']} problems × {summary['samples_per_problem']} samples</p>",
            "<h2>Strategies</h2>", strategies_table(summary["strategies"]),
            "<h2>Tokens saved vs accuracy kept</h2>", table(["measure", "value"], [(k, summary[k]) for k in keys]),
            "<p class='meta'>A sentence is dropped when, without it, log P(answer | question, rationale) stays within "
            "the threshold (nats) of its value with the full rationale; the reduced rationale's answer is re-derived "
            "by the model from the reduced text.</p>", "<h2>Problems</h2>"]
    for p, row in zip(problems, pairs):
        parts = [f"<div class='problem'><b>{esc(p.question)}</b><div class='meta'>gold: {esc(p.gold)}</div>"]
        for pr in row:
            parts.append(rationale_html(pr.original, f"original {pr.original.sample_index}"))
            if pr.reduced is not None and pr.reduction is not None:
                dropped = "".join(f"<li><s>{esc(pr.reduction.sentences[i])}</s></li>" for i in pr.reduction.dropped)
                parts.append(rationale_html(pr.reduced, f"reduced ({len(pr.reduction.dropped)} of "
                                                        f"{len(pr.reduction.sentences)} sentences dropped)")
                             + (f"<details><summary>dropped sentences</summary><ul>{dropped}</ul></details>"
                                if dropped else ""))
        parts.append("</div>")
        body.append("".join(parts))
    path = out / "brevity.html"
    path.write_text(page("verbosity-aware rationale reduction", "".join(body)), encoding="utf-8")
    return path
