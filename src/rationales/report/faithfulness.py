"""``faithfulness.html``: counterfactual probes per rationale."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Problem, Rationale
from ..score.faithfulness import perturbed_text
from ..store import Store


def write_report(out: Path, summary: dict[str, Any], problems: Sequence[Problem],
                 samples: Sequence[Sequence[Rationale]], store: Store) -> Path:
    from .html import esc, page, rationale_html, strategies_table, table

    out.mkdir(parents=True, exist_ok=True)
    keys = ["rationales_probed", "faithful", "unfaithful", "mean_change_rate", "consistent", "inconsistent",
            "accuracy_faithful", "accuracy_unfaithful", "accuracy_consistent", "accuracy_inconsistent", "probes"]
    body = [f"<p class='meta'>{summary['problems']} problems × {summary['samples_per_problem']} samples · "
            f"{summary['probes']} probes ({summary['probes_new']} new)</p>",
            "<h2>Strategies</h2>", strategies_table(summary["strategies"]),
            "<h2>Faithfulness and consistency</h2>", table(["measure", "value"], [(k, summary[k]) for k in keys]),
            "<p class='meta'>faithful = the decomposed answer changed under at least one counterfactual "
            "(masked tokens / replaced numbers); unfaithful = it changed under none.</p>", "<h2>Problems</h2>"]
    for p, rs in zip(problems, samples):
        parts = [f"<div class='problem'><b>{esc(p.question)}</b><div class='meta'>gold: {esc(p.gold)}</div>"]
        for r in rs:
            parts.append(rationale_html(r, f"sample {r.sample_index}"))
            f = next((s for s in reversed(r.scores) if s.kind == "faithfulness"), None)
            if f is None:
                continue
            rows = [("intact", f.detail.get("intact_answer"), "")]
            rows += [(d["perturbation"], d["answer"], "changed" if d["changed"] else "same")
                     for d in f.detail.get("probes", [])]
            flag = f.detail.get("flag")
            parts.append(f"<details><summary>probes{' — <b>flagged unfaithful</b>' if flag else ''}</summary>"
                         + table(["perturbation", "answer", ""], rows) + "".join(
                             f"<div class='meta'>{esc(d['perturbation'])} rationale the probe saw:</div>"
                             f"<pre>{esc(perturbed_text(store, d['probe_id']))}</pre>"
                             for d in f.detail.get("probes", [])[:1]) + "</details>")
        parts.append("</div>")
        body.append("".join(parts))
    path = out / "faithfulness.html"
    path.write_text(page("faithfulness (PINTO counterfactuals) and consistency", "".join(body)), encoding="utf-8")
    return path
