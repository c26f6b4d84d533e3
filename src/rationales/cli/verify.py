"""``rationales verify`` (re-score stored rationales step by step) and ``rationales processbench``
(step-error detection metric). The jobs are ``jobs/verify.py`` and ``jobs/processbench.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import BackendOpt, BaseUrlOpt, JsonOpt, ModelOpt, OutOpt, StoreOpt, err_console, make_backend, \
    open_store, out_console, print_json, progress_bar


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_cmd)
    app.command("processbench")(processbench_cmd)


def verify_cmd(
    store: str = StoreOpt,
    checkers: str = typer.Option("tool,prm", "--checkers", "-c",
                                 help="Comma-separated checkers: tool (arithmetic, no model), mc (Math-Shepherd "
                                      "rollouts), prm (LLM P(+)/P(-)), genprm (GroundedPRM-format judge)."),
    backend: str = BackendOpt,
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    method: Optional[str] = typer.Option(None, "--method", help="Only rationales of this method (e.g. cot). "
                                         "Default: all but by-products (MC rollouts, judgements, step fragments)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-k", min=1, help="Verify only the first K rationales."),
    mc_samples: int = typer.Option(8, "--mc-samples", min=1, help="MC rollouts per step (Math-Shepherd N)."),
    mc_max_tokens: int = typer.Option(256, "--mc-max-tokens", min=1, help="Max new tokens per MC rollout."),
    temperature: float = typer.Option(0.7, min=0.0, help="Temperature of the MC rollouts."),
    threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="PRM reward at or above which a step is +1."),
    rel_tol: float = typer.Option(1e-6, "--rel-tol", min=0.0, help="Relative tolerance of the arithmetic check."),
    rule: str = typer.Option("agree", "--rule", help="Consensus rule: agree | majority | tool_first."),
    seed: int = typer.Option(0, help="Base seed of the MC rollouts."),
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Re-score stored rationales step by step (tool, mc, prm, genprm), save the checks, print
    per-step verdicts and agreement, and write verify.html."""
    from ..errors import UnknownNameError
    from ..jobs.verify import load_rationales, mc_rollouts, parse_checkers, verify
    from ..report.verify import write_verify_report
    from ..verify.consensus import RULES

    names = parse_checkers(checkers)
    if rule not in RULES:
        raise UnknownNameError("consensus rule", rule, RULES)
    with open_store(store, create=False) as st:
        items = load_rationales(st, method=method, limit=limit)
        if not json_out:
            err_console.print(f"[bold]rationales verify[/] {len(items.rationales)} rationales, {items.steps} steps, "
                              f"checkers: {', '.join(names)}")
        be = make_backend(backend, model, base_url) if any(c != "tool" for c in names) else None
        try:
            total = mc_rollouts(items.rationales, mc_samples) if "mc" in names else 0
            with progress_bar(total, "mc rollouts", enabled=not json_out and total > 0) as advance:
                result = verify(items, st, be, checkers=names, mc_samples=mc_samples, mc_max_tokens=mc_max_tokens,
                                temperature=temperature, threshold=threshold, rel_tol=rel_tol, rule=rule, seed=seed,
                                on_progress=advance)
        finally:
            if be is not None:
                be.close()
    summary = result.summary
    summary["store"] = store
    summary["report"] = str(write_verify_report(Path(out), result))
    if json_out:
        print_json(summary)
        return
    out_console.print(steps_table(result.rationales))
    out_console.print(agreement_table(summary["consensus"], rule))
    verdicts = " · ".join(f"{k}: +{v['+1']} -{v['-1']} ?{v['undecided']}" for k, v in summary["verdicts"].items())
    out_console.print(f"verdicts: {verdicts}")
    if "genprm" in summary:
        out_console.print(f"genprm verdicts parsed: {summary['genprm']['parsed']}, "
                          f"unparsed: {summary['genprm']['failed']}")
    out_console.print(f"report: {summary['report']}")


def steps_table(rationales: list[Any]) -> Any:
    from rich import box
    from rich.table import Table

    from ..jobs.verify import verdict_cell, verdict_columns

    t = Table(title="per-step verdicts", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = verdict_columns(rationales)
    t.add_column("rationale", overflow="fold")
    t.add_column("step", justify="right", overflow="fold")
    t.add_column("text", overflow="fold", min_width=12, ratio=1)
    for col in columns:
        t.add_column(col, overflow="fold")
    for r in rationales:
        mark = "✓" if r.correct else ("✗" if r.correct is False else "")
        for s in r.steps:
            excerpt = " ".join(s.text.split())
            excerpt = excerpt if len(excerpt) <= 60 else excerpt[:57] + "..."
            t.add_row(f"{r.id[:8]} {mark}" if s.index == 0 else "", str(s.index + 1), excerpt,
                      *(verdict_cell(s, k) for k in columns))
    return t


def agreement_table(counts: dict[str, Any], rule: str) -> Any:
    from rich.table import Table

    t = Table(title=f"agreement between checkers (consensus rule: {rule})")
    t.add_column("steps with")
    t.add_column("count", justify="right")
    for key, label in (("agree", "2+ verdicts, all agree"), ("disagree", "2+ verdicts, disagree"),
                       ("single", "one verdict"), ("none", "no verdict")):
        t.add_row(label, str(counts[key]))
    for pair, c in counts["pairs"].items():
        if c["agree"] or c["disagree"]:
            t.add_row(f"{pair} agree / disagree", f"{c['agree']} / {c['disagree']}")
    labels = counts["labels"]
    t.add_row("consensus +1 / -1 / none", f"{labels['+1']} / {labels['-1']} / {labels['none']}")
    return t


def processbench_cmd(
    file: Optional[str] = typer.Argument(None, help="ProcessBench-style JSONL (problem, steps, label)."),
    build: Optional[int] = typer.Option(None, "--build", min=1,
                                        help="Build N items from reasoning-gym gsm_symbolic (half corrupted)."),
    detector: str = typer.Option("tool", "--detector", help="tool (arithmetic checker) | prm | genprm."),
    backend: str = BackendOpt,
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="A step with reward below this is an error."),
    limit: Optional[int] = typer.Option(None, "--limit", "-k", min=1, help="Use the first K items."),
    seed: int = typer.Option(0, help="Seed of --build."),
    save: Optional[str] = typer.Option(None, "--save", help="Write the (built) items to this JSONL file."),
    json_out: bool = JsonOpt,
) -> None:
    """Step-error detection scores (ProcessBench): accuracy on erroneous and on correct solutions, and F1."""
    from ..jobs.processbench import check_detector, load_items, processbench

    check_detector(detector)
    items = load_items(file, build, seed=seed, limit=limit, save=save)
    source = file if file is not None else f"gsm_symbolic build {build} seed {seed}"
    be = make_backend(backend, model, base_url) if detector != "tool" else None
    try:
        scores = processbench(items, detector, be, threshold=threshold, source=source)
    finally:
        if be is not None:
            be.close()
    if json_out:
        print_json(scores)
        return
    from rich.table import Table

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}"

    t = Table(title=f"ProcessBench-style scores · detector {detector} · {scores['source']}")
    for col in ("error acc %", "correct acc %", "F1 %", "erroneous", "correct"):
        t.add_column(col, justify="right")
    t.add_row(pct(scores["error_acc"]), pct(scores["correct_acc"]), pct(scores["f1"]), str(scores["n_error"]),
              str(scores["n_correct"]))
    out_console.print(t)
    if save:
        out_console.print(f"items: {save}")
