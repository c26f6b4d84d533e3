"""``formats.html``: accuracy per rationale format."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Problem, Rationale


def write_report(out: Path, summary: dict[str, Any], problems: Sequence[Problem],
                 by_format: dict[str, list[Rationale]]) -> Path:
    from .html import esc, page, rationale_html, strategies_table

    body = [f"<p class='meta'>task <b>{esc(summary['task'])}</b> · model {esc(summary['model'])} · "
            f"{summary['problems']} problems · decomposed={summary['decomposed']} · "
            f"{summary['samples_new']} new / {summary['samples_cached']} cached calls</p>",
            "<h2>Accuracy per rationale format</h2>", strategies_table(summary["strategies"])]
    if summary.get("answer_agrees_with_rationale"):
        body.append("<p class='meta'>answer from the rationale alone equals the answer the rationale states: "
                    + ", ".join(f"{esc(k)} {v:.2f}" for k, v in summary["answer_agrees_with_rationale"].items())
                    + "</p>")
    body.append("<h2>Problems</h2>")
    for i, p in enumerate(problems):
        body.append(f"<div class='problem'><b>{esc(p.question)}</b><div class='meta'>gold: {esc(p.gold)}</div>"
                    + "".join(rationale_html(by_format[f][i], f) for f in by_format) + "</div>")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "formats.html"
    path.write_text(page("rationale formats (decomposed QA)", "".join(body)), encoding="utf-8")
    return path
