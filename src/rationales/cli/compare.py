"""``rationales compare``: inference strategies at equal token budgets."""

from __future__ import annotations

from typing import Optional

import typer

from .common import (AnswerColOpt, AnswerTypeOpt, BackendOpt, BackendOptsOpt, BaseUrlOpt, ContextColOpt, JsonOpt,
                     ModelOpt, OutOpt, QuestionColOpt, StoreOpt, err_console, make_backend, open_store, out_console,
                     parse_backend_opts, print_json, progress_bar, task_mapping)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)


def compare_cmd(
    task: str = typer.Argument("demo", help="Task: demo, reasoning_gym:NAME, a .jsonl/.csv/.parquet file, ..."),
    strategies: str = typer.Option(
        "greedy,vote,tool_vote,adaptive,best_of_n,step_search", "--strategies", "-s",
        help="Comma-separated: greedy, vote, weighted_vote, tool_vote, best_of_n, adaptive, step_search, beam, mcts."),
    budget: int = typer.Option(1000, "--budget", min=1, help="Generated tokens per problem each strategy may spend."),
    budgets: Optional[str] = typer.Option(None, "--budgets",
                                          help="Sweep budgets, e.g. 500,1000,2000 (overrides --budget)."),
    prm: str = typer.Option("llm", "--prm",
                            help="Step scorer: llm (P(+)/P(-)), genprm (generative), tool (arithmetic check)."),
    how: str = typer.Option("min", "--how", help="PRM aggregate over steps: min, last, product, mean."),
    backend: str = BackendOpt,
    model: Optional[str] = ModelOpt,
    limit: Optional[int] = typer.Option(10, "--limit", "-k", min=1, help="Use the first K problems."),
    size: int = typer.Option(50, help="reasoning-gym: how many problems to generate."),
    seed: int = typer.Option(0, help="Base seed; every sample derives its own seed from it."),
    temperature: float = typer.Option(0.7, min=0.0, help="Sampling temperature."),
    top_p: float = typer.Option(0.95, min=0.0, max=1.0, help="Top-p of the sampled rationales."),
    max_tokens: int = typer.Option(512, min=1, help="Max new tokens per rationale, rollout or continuation."),
    max_steps: int = typer.Option(12, min=1, help="Step search / beam / MCTS: at most this many searched steps."),
    threshold: float = typer.Option(0.95, min=0.0, max=1.0,
                                    help="adaptive: stop sampling a problem once its vote is this certain (Beta)."),
    template: str = typer.Option("cot", help="Prompt template name or a .j2 file."),
    store: str = StoreOpt,
    out: str = OutOpt,
    base_url: Optional[str] = BaseUrlOpt,
    backend_opt: Optional[list[str]] = BackendOptsOpt,
    question_col: str = QuestionColOpt,
    answer_col: str = AnswerColOpt,
    context_col: Optional[str] = ContextColOpt,
    answer_type: str = AnswerTypeOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Run strategies at equal token budgets; report accuracy vs tokens with 95% CIs (table + compare.html)."""
    from ..prompts import load_template
    from ..verify.prm import AGGREGATES
    from ..errors import UnknownNameError
    from ..jobs.compare import PRMS, CompareConfig, compare, parse_budgets, parse_strategies, size_label
    from ..tasks import load_task

    names = parse_strategies(strategies)  # bad input fails before any model is loaded
    budget_list = parse_budgets(budgets if budgets else budget)
    if prm not in PRMS:
        raise UnknownNameError("PRM", prm, PRMS)
    if how not in AGGREGATES:
        raise UnknownNameError("PRM aggregate", how, AGGREGATES)
    load_template(template)
    problems = load_task(task, size=size, seed=seed, limit=limit,
                         **task_mapping(question_col, answer_col, context_col, answer_type))
    opts = parse_backend_opts(backend_opt)
    cfg = CompareConfig(task=task, strategies=names, budgets=budget_list, prm=prm, how=how, backend=backend,
                        model=model, limit=limit, size=size, seed=seed, temperature=temperature, top_p=top_p,
                        max_tokens=max_tokens, max_steps=max_steps, threshold=threshold, template=template,
                        store=store, out=out,
                        backend_options=opts)
    with open_store(store) as st:
        be = make_backend(backend, model, base_url, **opts)
        try:
            if not json_out:
                err_console.print(f"[bold]rationales compare[/] {task}: {len(problems)} problems, "
                                  f"{len(names)} strategies at {', '.join(map(str, budget_list))} tokens/problem "
                                  f"on {be.name}:{be.model}")
            with progress_bar(len(names) * len(budget_list), "strategies", enabled=not json_out) as advance:
                summary = compare(cfg, be, st, problems, on_progress=lambda name, b: advance(1))
        finally:
            be.close()
    if json_out:
        print_json(summary)
        return
    from rich.table import Table

    t = Table(title=f"{task} · {summary['model']} · {summary['problems']} problems · PRM {prm}")
    t.add_column("strategy", no_wrap=True)
    t.add_column("size", no_wrap=True)
    for col in ("accuracy", "95% CI", "tokens", "tok/problem", "acc/1k tok"):
        t.add_column(col, justify="right", no_wrap=col == "95% CI")
    for name, r in summary["strategies"].items():
        t.add_row(name, size_label(name, r["size"]), f"{r['accuracy']:.3f}",
                  f"{r['ci_low']:.2f}-{r['ci_high']:.2f}", str(r["tokens"]), f"{r['tokens_per_problem']:.0f}",
                  f"{r['accuracy_per_1k_tokens']:.3f}")
    out_console.print(t)
    est = summary["estimate"]
    out_console.print(f"pilot: {est['tokens_per_sample']} tokens, {est['steps_per_sample']} steps per sample · "
                      f"samples: {summary['samples_new']} new, {summary['samples_cached']} cached · "
                      f"{summary['time_s']} s")
    out_console.print(f"store: {summary['store']}\nreport: {summary['report']}")
