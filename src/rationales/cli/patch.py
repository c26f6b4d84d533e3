"""``rationales patch FEEDBACK.jsonl``: revise stored rationales with natural-language feedback
(Malaviya et al., 2023) and report how often the patch fixes the answer, per rationale format."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..jobs.methods.patch import PatchConfig
from .common import JsonOpt, err_console, make_backend, open_store, out_console
from .options import arg, emit, opt
from .render import say, table


def register(app: typer.Typer) -> None:
    app.command("patch")(patch_cmd)


def patch_cmd(
    feedback_file: Path = arg(PatchConfig, "feedback_file", required=True),
    store: str = opt(PatchConfig, "store"),
    backend: str = opt(PatchConfig, "backend", "--backend", "-b"),
    model: Optional[str] = opt(PatchConfig, "model", "--model", "-m"),
    base_url: Optional[str] = opt(PatchConfig, "base_url"),
    out: str = opt(PatchConfig, "out"),
    max_tokens: int = opt(PatchConfig, "max_tokens"),
    json_out: bool = JsonOpt,
) -> None:
    """Patch stored rationales with feedback, answer again from the revised rationale alone,
    and print the patch success rate per format (fixed / wrong parents)."""
    from ..jobs.methods.patch import patch_job, read_feedback_jsonl, resolve_items
    from ..report import write_report
    from ..report.patch import SUCCESS_HEADER, success_table_rows

    cfg = PatchConfig(feedback_file=str(feedback_file), store=store, backend=backend, model=model,
                      base_url=base_url, out=out, max_tokens=max_tokens)
    items = read_feedback_jsonl(feedback_file)
    with open_store(cfg.store) as st:
        triples = resolve_items(items, st, feedback_file)  # every id checked before loading a model
        be = make_backend(cfg.backend, cfg.model, cfg.base_url)
        try:
            if not json_out:
                say(err_console, f"{len(triples)} feedback rows on {be.name}:{be.model}", bold="rationales patch")
            result = patch_job(triples, be, st, feedback_file=cfg.feedback_file, max_tokens=cfg.max_tokens)
        finally:
            be.close()
        write_report(result, cfg.out)
    summary = emit(result, json_out)
    if summary is None:
        return
    out_console.print(table(f"patch success per format · {summary['model']}", list(SUCCESS_HEADER),
                            [list(row) for row in success_table_rows(summary["patch_success"])],
                            right=tuple(SUCCESS_HEADER[1:])))
    say(out_console, f"calls: {summary['samples_new']} new, {summary['samples_cached']} cached · {summary['time_s']} s")
    say(out_console, f"report: {summary['report']}")
