"""``rationales patch FEEDBACK.jsonl``: revise stored rationales with natural-language feedback
(Malaviya et al., 2023) and report how often the patch fixes the answer, per rationale format."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import (BackendOpt, BaseUrlOpt, JsonOpt, ModelOpt, OutOpt, StoreOpt, err_console, make_backend,
                     open_store, out_console, print_json)


def register(app: typer.Typer) -> None:
    app.command("patch")(patch_cmd)


def patch_cmd(
    feedback_file: Path = typer.Argument(..., help='JSONL file, one {"rationale_id": ..., "feedback": "..."} per line.'),
    store: str = StoreOpt,
    backend: str = BackendOpt,
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    out: str = OutOpt,
    max_tokens: int = typer.Option(512, min=1, help="Max new tokens of a revised rationale."),
    json_out: bool = JsonOpt,
) -> None:
    """Patch stored rationales with feedback, answer again from the revised rationale alone,
    and print the patch success rate per format (fixed / wrong parents)."""
    import time

    from ..generate import GenerationStats
    from ..jobs.methods.patch import (SUCCESS_HEADER, patch_rationales, read_feedback_jsonl, resolve_items,
                                      success_by_format, success_table_rows)
    from ..report.patch import write_report

    t0 = time.time()
    items = read_feedback_jsonl(feedback_file)
    with open_store(store) as st:
        triples = resolve_items(items, st, feedback_file)  # every id checked before loading a model
        be = make_backend(backend, model, base_url)
        try:
            if not json_out:
                err_console.print(f"[bold]rationales patch[/] {len(triples)} feedback rows on {be.name}:{be.model}")
            stats = GenerationStats()
            results = patch_rationales(triples, be, st, max_tokens=max_tokens, stats=stats)
            summary = {"feedback_file": str(feedback_file), "backend": be.name, "model": be.model,
                       "patches": len(results), "patch_success": success_by_format(results),
                       "patch_ids": [r.patch.id for r in results], **stats.as_dict(),
                       "time_s": round(time.time() - t0, 2)}
            summary["report"] = str(write_report(Path(out), summary, results, st))
            run_id = st.start_run("patch", {"feedback_file": str(feedback_file), "model": be.model})
            st.finish_run(run_id, summary)
        finally:
            be.close()
    if json_out:
        print_json(summary)
        return
    from rich.table import Table

    t = Table(title=f"patch success per format · {summary['model']}")
    for col in SUCCESS_HEADER:
        t.add_column(col, justify="left" if col == "format" else "right")
    for row in success_table_rows(summary["patch_success"]):
        t.add_row(*row)
    out_console.print(t)
    out_console.print(f"calls: {summary['samples_new']} new, {summary['samples_cached']} cached · "
                      f"{summary['time_s']} s\nreport: {summary['report']}")
