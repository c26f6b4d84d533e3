"""``rationales compare``: inference strategies at equal token budgets."""

from __future__ import annotations

from typing import Optional

import typer

from ..jobs.compare import CompareConfig
from .common import JsonOpt, err_console, out_console, parse_backend_opts, progress_bar
from .options import emit, opt, ray_opt, session
from .render import say, table


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)


def compare_cmd(
    task: str = typer.Argument("demo", help="Task: demo, reasoning_gym:NAME, a .jsonl/.csv/.parquet file, ..."),
    strategies: str = opt(CompareConfig, "strategies", "--strategies", "-s"),
    budget: str = typer.Option("1000", "--budget", help="Generated tokens per problem each strategy may spend."),
    budgets: Optional[str] = typer.Option(None, "--budgets",
                                          help="Sweep budgets, e.g. 500,1000,2000 (overrides --budget)."),
    prm: str = opt(CompareConfig, "prm", "--prm"),
    how: str = opt(CompareConfig, "how", "--how"),
    backend: str = opt(CompareConfig, "backend", "--backend", "-b"),
    model: Optional[str] = opt(CompareConfig, "model", "--model", "-m"),
    limit: Optional[int] = opt(CompareConfig, "limit", "--limit", "-k"),
    size: int = opt(CompareConfig, "size"),
    seed: int = opt(CompareConfig, "seed"),
    temperature: float = opt(CompareConfig, "temperature"),
    top_p: float = opt(CompareConfig, "top_p"),
    max_tokens: int = opt(CompareConfig, "max_tokens", help="Max new tokens per rationale, rollout or continuation."),
    max_steps: int = opt(CompareConfig, "max_steps"),
    threshold: float = opt(CompareConfig, "threshold"),
    template: str = opt(CompareConfig, "template"),
    store: str = opt(CompareConfig, "store"),
    out: str = opt(CompareConfig, "out"),
    base_url: Optional[str] = opt(CompareConfig, "base_url"),
    backend_opt: Optional[list[str]] = opt(CompareConfig, "backend_options", "--backend-opt", "-o",
                                           help="Extra backend option KEY=VALUE (repeatable)."),
    question_col: str = opt(CompareConfig, "question_col"),
    answer_col: str = opt(CompareConfig, "answer_col"),
    context_col: Optional[str] = opt(CompareConfig, "context_col"),
    answer_type: str = opt(CompareConfig, "answer_type"),
    ray: Optional[str] = ray_opt(CompareConfig),
    ray_actors: int = opt(CompareConfig, "ray_actors", "--ray-actors"),
    json_out: bool = JsonOpt,
) -> None:
    """Run strategies at equal token budgets; report accuracy vs tokens with 95% CIs (table + compare.html)."""
    from ..jobs.compare import compare, parse_budgets, size_label
    from ..prompts import load_template
    from ..report import write_report
    from ..tasks import load_task

    # every option is checked before any model is loaded or anything is written
    cfg = CompareConfig(task=task, strategies=strategies.split(","), budgets=parse_budgets(budgets or budget),
                        prm=prm, how=how, backend=backend, model=model, base_url=base_url, limit=limit, size=size,
                        seed=seed, temperature=temperature, top_p=top_p, max_tokens=max_tokens, max_steps=max_steps,
                        threshold=threshold, template=template, store=store, out=out,
                        backend_options=parse_backend_opts(backend_opt), question_col=question_col,
                        answer_col=answer_col, context_col=context_col, answer_type=answer_type, ray=ray,
                        ray_actors=ray_actors)
    names, budget_list = cfg.strategies, cfg.budgets
    load_template(cfg.template)
    problems = load_task(cfg.task, size=cfg.size, seed=cfg.seed, limit=cfg.limit, **cfg.task_options())
    with session(cfg) as (st, be):
        if not json_out:
            say(err_console, f"{task}: {len(problems)} problems, {len(names)} strategies at "
                f"{', '.join(map(str, budget_list))} tokens/problem on {be.name}:{be.model}",
                bold="rationales compare")
        with progress_bar(len(names) * len(budget_list), "strategies", enabled=not json_out) as advance:
            result = compare(cfg, be, st, problems, on_progress=lambda name, b: advance(1))
        write_report(result, cfg.out)
    summary = emit(result, json_out)
    if summary is None:
        return
    cols = ["strategy", "size", "accuracy", "95% CI", "tokens", "tok/problem", "acc/1k tok"]
    rows = [[name, size_label(name, r["size"]), f"{r['accuracy']:.3f}", f"{r['ci_low']:.2f}-{r['ci_high']:.2f}",
             r["tokens"], f"{r['tokens_per_problem']:.0f}", f"{r['accuracy_per_1k_tokens']:.3f}"]
            for name, r in summary["strategies"].items()]
    out_console.print(table(f"{task} · {summary['model']} · {summary['problems']} problems · PRM {cfg.prm}", cols,
                            rows, right=tuple(cols[2:]), nowrap=("strategy", "size", "95% CI")))
    est = summary["estimate"]
    say(out_console, f"pilot: {est['tokens_per_sample']} tokens, {est['steps_per_sample']} steps per sample · "
        f"samples: {summary['samples_new']} new, {summary['samples_cached']} cached · {summary['time_s']} s")
    say(out_console, f"store: {summary['store']}")
    say(out_console, f"report: {summary['report']}")
