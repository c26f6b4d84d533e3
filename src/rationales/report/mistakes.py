"""``mistakes.html``: learning-from-mistakes variants vs CoT."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Problem, Rationale


def write_report(out: Path, summary: dict[str, Any], heldout: Sequence[Problem],
                 by_variant: dict[str, list[Rationale]], example: dict[str, list[dict[str, str]]]) -> Path:
    from .html import esc, page, rationale_html, strategies_table

    name = summary["method"]
    body = [f"<p class='meta'>task <b>{esc(summary['task'])}</b> · model {esc(summary['model'])} · "
            f"{summary['train_problems']} training / {summary['heldout_problems']} held-out problems · "
            f"{summary['demo_pool']} training questions with a wrong sample · selection {esc(summary['selection'])} · "
            f"{summary['shots']} shots · show {esc(summary['show'])}</p>",
            "<h2>Accuracy on held-out problems</h2>", strategies_table(summary["strategies"])]
    for v, messages in example.items():
        text = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
        body.append(f"<details><summary>prompt of {esc(v)} (first held-out problem)</summary>"
                    f"<pre style='white-space:pre-wrap'>{esc(text)}</pre></details>")
    body.append("<h2>Held-out problems</h2>")
    for i, p in enumerate(heldout):
        body.append(f"<div class='problem'><b>{esc(p.question)}</b><div class='meta'>gold: {esc(p.gold)}</div>"
                    + "".join(rationale_html(rs[i], v) for v, rs in by_variant.items()) + "</div>")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.html"
    path.write_text(page(f"{name}: learning from mistakes in context", "".join(body)), encoding="utf-8")
    return path
