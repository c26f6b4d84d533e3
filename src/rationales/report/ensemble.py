"""``ensemble.html``: rationale-augmented ensemble members and votes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Problem, Rationale
from ..select.vote import majority_vote


def write_report(out: Path, summary: dict[str, Any], problems: Sequence[Problem],
                 pooled: Sequence[Sequence[Rationale]]) -> Path:
    from .html import esc, page, rationale_html, strategies_table

    body = [f"<p class='meta'>task <b>{esc(summary['task'])}</b> · model {esc(summary['model'])} · "
            f"{summary['problems']} problems · {summary['samples']} samples per problem over "
            f"{len(summary['members'])} prompts: "
            + ", ".join(f"{esc(m)} ×{n}" for m, n in summary["samples_per_member"].items()) + "</p>",
            "<h2>Ensemble vs single prompt at equal samples</h2>", strategies_table(summary["strategies"]),
            "<h2>Problems</h2>"]
    for p, rs in zip(problems, pooled):
        v = majority_vote(p, rs)
        tally = ", ".join(f"{esc(k)}: {c:g}" for k, c in sorted(v.votes.items(), key=lambda kv: -kv[1]))
        body.append(f"<div class='problem'><b>{esc(p.question)}</b><div class='meta'>gold: {esc(p.gold)} · "
                    f"ensemble vote: {esc(v.answer)} {'✓' if v.correct else '✗'} ({tally})</div><details><summary>"
                    f"{len(rs)} rationales</summary>"
                    + "".join(rationale_html(r, r.meta.get("member") or r.method) for r in rs) + "</details></div>")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "ensemble.html"
    path.write_text(page("rationale-augmented ensemble", "".join(body)), encoding="utf-8")
    return path
