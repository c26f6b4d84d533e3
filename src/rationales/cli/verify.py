"""``rationales verify`` (re-score stored rationales step by step) and ``rationales processbench``
(step-error detection metric). The jobs are ``jobs/verify.py`` and ``jobs/processbench.py``."""

from __future__ import annotations

from typing import Any, Optional

import typer

from ..jobs.processbench import ProcessBenchConfig
from ..jobs.verify import VerifyConfig
from .common import JsonOpt, err_console, make_backend, open_store, out_console, progress_bar
from .options import arg, emit, opt, ray_opt, session
from .render import say, table


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_cmd)
    app.command("processbench")(processbench_cmd)


def verify_cmd(
    store: str = opt(VerifyConfig, "store"),
    checkers: str = opt(VerifyConfig, "checkers", "--checkers", "-c"),
    backend: str = opt(VerifyConfig, "backend", "--backend", "-b"),
    model: Optional[str] = opt(VerifyConfig, "model", "--model", "-m"),
    base_url: Optional[str] = opt(VerifyConfig, "base_url"),
    method: Optional[str] = opt(VerifyConfig, "method", "--method"),
    limit: Optional[int] = opt(VerifyConfig, "limit", "--limit", "-k"),
    mc_samples: int = opt(VerifyConfig, "mc_samples", "--mc-samples"),
    mc_max_tokens: int = opt(VerifyConfig, "mc_max_tokens", "--mc-max-tokens"),
    mc_search: str = opt(VerifyConfig, "mc_search", "--mc-search"),
    mc_wrong_per_problem: Optional[int] = opt(VerifyConfig, "mc_wrong_per_problem", "--mc-wrong-per-problem"),
    mc_solved_only: bool = opt(VerifyConfig, "mc_solved_only", "--mc-solved-only/--mc-all-problems"),
    temperature: float = opt(VerifyConfig, "temperature", help="Temperature of the MC rollouts."),
    threshold: float = opt(VerifyConfig, "threshold"),
    rel_tol: float = opt(VerifyConfig, "rel_tol", "--rel-tol"),
    rule: str = opt(VerifyConfig, "rule", "--rule"),
    seed: int = opt(VerifyConfig, "seed", help="Base seed of the MC rollouts."),
    out: str = opt(VerifyConfig, "out"),
    ray: Optional[str] = ray_opt(VerifyConfig),
    ray_actors: int = opt(VerifyConfig, "ray_actors", "--ray-actors"),
    json_out: bool = JsonOpt,
) -> None:
    """Re-score stored rationales step by step (tool, mc, llm, genprm), save the checks, print
    per-step verdicts and agreement, and write verify.html."""
    from ..jobs.verify import load_rationales, mc_rollouts, verify
    from ..report import write_report

    cfg = VerifyConfig(store=store, checkers=checkers.split(","), backend=backend, model=model, base_url=base_url,
                       method=method, limit=limit, mc_samples=mc_samples, mc_max_tokens=mc_max_tokens,
                       mc_search=mc_search, mc_wrong_per_problem=mc_wrong_per_problem, mc_solved_only=mc_solved_only,
                       temperature=temperature, threshold=threshold, rel_tol=rel_tol, rule=rule, seed=seed, out=out,
                       ray=ray, ray_actors=ray_actors)
    with open_store(cfg.store, create=False) as st:  # rationales are checked before a model is loaded
        items = load_rationales(st, method=cfg.method, limit=cfg.limit)
    with session(cfg, create=False, model=cfg.needs_model) as (st, be):
        if not json_out:
            say(err_console, f"{len(items.rationales)} rationales, {items.steps} steps, checkers: "
                f"{', '.join(cfg.checkers)}", bold="rationales verify")
        total = mc_rollouts(items.rationales, cfg.mc_samples) if "mc" in cfg.checkers and cfg.mc_search == "every" else 0
        with progress_bar(total, "mc rollouts", enabled=not json_out and total > 0) as advance:
            result = verify(items, st, be, cfg, on_progress=advance)
    result.store = store
    write_report(result, cfg.out)
    summary = emit(result, json_out)
    if summary is None:
        return
    out_console.print(steps_table(result.records["rationales"]))
    out_console.print(agreement_table(summary["consensus"], cfg.rule))
    verdicts = " · ".join(f"{k}: +{v['+1']} -{v['-1']} ?{v['undecided']}" for k, v in summary["verdicts"].items())
    say(out_console, f"verdicts: {verdicts}")
    if "genprm" in summary:
        say(out_console, f"genprm verdicts parsed: {summary['genprm']['parsed']}, "
            f"unparsed: {summary['genprm']['failed']}")
    if "mc_search" in summary:
        ms = summary["mc_search"]
        say(out_console, f"mc binary search: {ms['searched']} wrong rationales searched ({ms['skipped_unsolved']} "
            f"skipped, unsolved), {ms['rollouts']} rollouts, {ms['tokens']} tokens, {ms['steps_labelled']} steps "
            f"labelled ({ms['free_positive']} +1 and {ms['free_negative']} -1 free)")
    say(out_console, f"report: {summary['report']}")


def steps_table(rationales: list[Any]) -> Any:
    """Per-step verdicts; step text is model text, so every cell is literal text."""
    from rich import box

    from ..jobs.verify import verdict_cell, verdict_columns

    columns = verdict_columns(rationales)
    rows = []
    for r in rationales:
        mark = "✓" if r.correct else ("✗" if r.correct is False else "")
        for s in r.steps:
            excerpt = " ".join(s.text.split())
            excerpt = excerpt if len(excerpt) <= 60 else excerpt[:57] + "..."
            rows.append([f"{r.id[:8]} {mark}" if s.index == 0 else "", s.index + 1, excerpt,
                         *(verdict_cell(s, k) for k in columns)])
    t = table("per-step verdicts", ["rationale", "step", "text", *columns], rows, right=("step",),
              box=box.SIMPLE_HEAD, pad_edge=False)
    for col in t.columns:
        col.overflow = "fold"
    t.columns[2].min_width, t.columns[2].ratio = 12, 1
    return t


def agreement_table(counts: dict[str, Any], rule: str) -> Any:
    rows: list[list[Any]] = [[label, counts[key]] for key, label in (
        ("agree", "2+ verdicts, all agree"), ("disagree", "2+ verdicts, disagree"),
        ("single", "one verdict"), ("none", "no verdict"))]
    rows += [[f"{pair} agree / disagree", f"{c['agree']} / {c['disagree']}"]
             for pair, c in counts["pairs"].items() if c["agree"] or c["disagree"]]
    labels = counts["labels"]
    rows.append(["consensus +1 / -1 / none", f"{labels['+1']} / {labels['-1']} / {labels['none']}"])
    return table(f"agreement between checkers (consensus rule: {rule})", ["steps with", "count"], rows,
                 right=("count",))


def processbench_cmd(
    file: Optional[str] = arg(ProcessBenchConfig, "file"),
    build: Optional[int] = opt(ProcessBenchConfig, "build", "--build"),
    detector: str = opt(ProcessBenchConfig, "detector", "--detector"),
    backend: str = opt(ProcessBenchConfig, "backend", "--backend", "-b"),
    model: Optional[str] = opt(ProcessBenchConfig, "model", "--model", "-m"),
    base_url: Optional[str] = opt(ProcessBenchConfig, "base_url"),
    threshold: float = opt(ProcessBenchConfig, "threshold"),
    calibrate: Optional[str] = opt(ProcessBenchConfig, "calibrate", "--calibrate"),
    limit: Optional[int] = opt(ProcessBenchConfig, "limit", "--limit", "-k"),
    seed: int = opt(ProcessBenchConfig, "seed"),
    save: Optional[str] = opt(ProcessBenchConfig, "save", "--save"),
    json_out: bool = JsonOpt,
) -> None:
    """Step-error detection scores (ProcessBench): accuracy on erroneous and on correct solutions, and F1."""
    from ..jobs.processbench import load_items, processbench

    cfg = ProcessBenchConfig(file=file, build=build, detector=detector, backend=backend, model=model,
                             base_url=base_url, threshold=threshold, calibrate=calibrate, limit=limit, seed=seed,
                             save=save)
    items = load_items(cfg)
    be = make_backend(cfg.backend, cfg.model, cfg.base_url) if cfg.detector != "tool" else None
    try:
        result = processbench(items, cfg, be)
    finally:
        if be is not None:
            be.close()
    scores = emit(result, json_out)
    if scores is None:
        return

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}"

    cols = ["error acc %", "correct acc %", "F1 %", "erroneous", "correct"]
    out_console.print(table(f"ProcessBench-style scores · detector {cfg.detector} · {scores['source']}", cols,
                            [[pct(scores["error_acc"]), pct(scores["correct_acc"]), pct(scores["f1"]),
                              scores["n_error"], scores["n_correct"]]], right=tuple(cols)))
    cal = scores.get("calibration")
    if cal:
        say(out_console, f"threshold {scores['threshold']:.2f}, chosen on {cal['items']} items of {cal['file']} "
                         f"(F1 there {pct(cal['f1'])}%)")
    if cfg.save:
        say(out_console, f"items: {cfg.save}")
