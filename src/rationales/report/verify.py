"""``verify.html``: per-step verdicts of every checker, agreement and consensus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..jobs.verify import VerifyResult, verdict_cell, verdict_columns
from .html import esc, page, rationale_html, table


def write_verify_report(out_dir: Path, result: VerifyResult) -> Path:
    rationales, problems, summary = result.records["rationales"], result.records["problems"], result.to_json()
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = summary["consensus"]
    legend = ("<p class='meta'>Steps are coloured by their verdicts: "
              "<span class='step good' style='display:inline'>every verdict +1</span> "
              "<span class='step bad' style='display:inline'>every verdict -1</span> "
              "<span class='step mixed' style='display:inline'>verdicts disagree</span> "
              "<span class='step' style='display:inline;border:1px solid #ddd'>no verdict</span>. "
              "Hover a step for its checks (tool: the expression it evaluated).</p>")
    verdict_rows = [(k, v["+1"], v["-1"], v["undecided"], v["unchecked"]) for k, v in summary["verdicts"].items()]
    agree_rows: list[tuple[Any, ...]] = [
        ("2+ verdicts, all agree", counts["agree"]), ("2+ verdicts, disagree", counts["disagree"]),
        ("one verdict", counts["single"]), ("no verdict", counts["none"])]
    agree_rows += [(f"{pair}: agree / disagree", f"{c['agree']} / {c['disagree']}")
                   for pair, c in counts["pairs"].items()]
    labels = counts["labels"]
    agree_rows.append((f"consensus ({summary['rule']}) +1 / -1 / none",
                       f"{labels['+1']} / {labels['-1']} / {labels['none']}"))
    body = [f"<p class='meta'>{summary['rationales']} rationales · {summary['steps']} steps · checkers "
            f"{esc(', '.join(summary['checkers']))}"
            + (f" · {esc(summary['backend'])}" if summary.get("backend") else "") + "</p>", legend,
            "<h2>Verdicts</h2>", table(["checker", "+1", "-1", "undecided", "not checked"], verdict_rows),
            "<h2>Agreement</h2>", table(["steps", "count"], agree_rows), "<h2>Rationales</h2>"]
    by_problem: dict[str, list[Any]] = {}
    for r in rationales:
        by_problem.setdefault(r.problem_id, []).append(r)
    columns = verdict_columns(rationales)
    for pid, rs in by_problem.items():
        p = problems[pid]
        parts = [f"<div class='problem'><b>{esc(p.question)}</b><div class='meta'>gold: {esc(p.gold)}</div>"]
        for r in rs:
            parts.append(rationale_html(r, f"{r.method} #{r.sample_index} ({r.id[:8]})"))
            rows = [(s.index + 1, s.text[:80], *(verdict_cell(s, k) for k in columns)) for s in r.steps]
            parts.append("<details><summary>per-step verdicts</summary>"
                         + table(["step", "text", *columns], rows) + "</details>")
        parts.append("</div>")
        body.append("".join(parts))
    path = out_dir / "verify.html"
    path.write_text(page("rationales verify", "".join(body)), encoding="utf-8")
    return path
