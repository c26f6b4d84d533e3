"""``patch.html``: feedback patches and their success per format."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..jobs.methods.patch import PatchResult
from ..store import Store


def success_table_rows(success: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """The patch-success table (``SUCCESS_HEADER`` columns), one row per format: this page's and
    the ``rationales patch`` command's."""
    rows = []
    for fmt, s in success.items():
        rate = "-" if s["success_rate"] is None else f"{s['success_rate']:.3f}"
        rows.append((fmt, str(s["wrong_parents"]), str(s["fixed"]), rate,
                     f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]", str(s["patches"]),
                     f"{s['kept_correct']}/{s['right_parents']}"))
    return rows


SUCCESS_HEADER = ("format", "wrong parents", "fixed", "success rate", "95% CI", "patches", "right kept right")


def write_report(out: Path, summary: dict[str, Any], results: Sequence[PatchResult], store: Store) -> Path:
    from .html import esc, page, rationale_html, strategies_table, table

    body = [f"<p class='meta'>task <b>{esc(summary.get('task', ''))}</b> · model {esc(summary.get('model', ''))} · "
            f"feedback: {esc(summary.get('feedback_source', ''))} · {summary.get('patches', len(results))} patches</p>",
            "<h2>Patch success per format</h2>",
            table(SUCCESS_HEADER, success_table_rows(summary["patch_success"]))]
    if summary.get("strategies"):
        body += ["<h2>Accuracy before and after patching</h2>", strategies_table(summary["strategies"])]
    body.append("<h2>Patches</h2>")
    for res in results:
        problem = store.get_problem(res.parent.problem_id)
        body.append(f"<div class='problem'><b>{esc(problem.question if problem else res.parent.problem_id)}</b>"
                    f"<div class='meta'>gold: {esc(problem.gold if problem else '')} · format {esc(res.format)} · "
                    f"{'fixed' if res.fixed else 'not fixed'}</div>{rationale_html(res.parent, 'before')}"
                    f"<div class='meta'>feedback: {esc(res.feedback)}</div>{rationale_html(res.patch, 'patched')}</div>")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "patch.html"
    path.write_text(page("feedback patching", "".join(body)), encoding="utf-8")
    return path
