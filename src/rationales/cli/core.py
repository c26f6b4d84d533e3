"""Core commands: run, tasks, backends, models, export, runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import (AnswerColOpt, AnswerTypeOpt, BackendOpt, BackendOptsOpt, BaseUrlOpt, ContextColOpt, JsonOpt,
                     ModelOpt, OutOpt, QuestionColOpt, StoreOpt, err_console, make_backend, open_store, out_console,
                     parse_backend_opts, print_json, progress_bar, strategies_table, task_mapping)


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("tasks")(tasks_cmd)
    app.command("backends")(backends_cmd)
    app.command("models")(models_cmd)
    from .export_data import export_cmd  # raw records and the training formats (data/)

    app.command("export")(export_cmd)
    app.command("runs")(runs_cmd)
    app.command("methods")(methods_cmd)


def parse_method_opts(pairs: Optional[list[str]]) -> dict:
    """-O KEY=VALUE pairs for `run --method` (values parsed as JSON when possible)."""
    from ..errors import RationalesError

    bad = [p for p in pairs or [] if "=" not in p or not p.partition("=")[0].strip()]
    if bad:
        raise RationalesError(f"--method-opt expects KEY=VALUE, got '{bad[0]}'.")
    return parse_backend_opts(pairs)


def run_cmd(
    task: str = typer.Argument("demo", help="Task: demo, reasoning_gym:NAME, a .jsonl/.csv/.parquet file, or a saved dataset dir."),
    backend: str = BackendOpt,
    model: Optional[str] = ModelOpt,
    samples: int = typer.Option(8, "--samples", "-n", min=1, help="Sampled rationales per problem (vote@N)."),
    limit: Optional[int] = typer.Option(10, "--limit", "-k", min=1, help="Use the first K problems."),
    size: int = typer.Option(50, help="reasoning-gym: how many problems to generate."),
    seed: int = typer.Option(0, help="Base seed; every sample derives its own seed from it."),
    temperature: float = typer.Option(0.7, min=0.0, help="Sampling temperature of the N samples."),
    top_p: float = typer.Option(0.95, min=0.0, max=1.0),
    max_tokens: int = typer.Option(512, min=1, help="Max new tokens per rationale."),
    template: str = typer.Option("cot", help="Prompt template name or a .j2 file."),
    method: Optional[str] = typer.Option(None, "--method", help="Prompting method (see `rationales methods`)."),
    store: str = StoreOpt,
    out: str = OutOpt,
    base_url: Optional[str] = BaseUrlOpt,
    backend_opt: Optional[list[str]] = BackendOptsOpt,
    method_opt: Optional[list[str]] = typer.Option(
        None, "--method-opt", "-O", help="Method option KEY=VALUE (repeatable), e.g. -O format=procedural."),
    question_col: str = QuestionColOpt,
    answer_col: str = AnswerColOpt,
    context_col: Optional[str] = ContextColOpt,
    answer_type: str = AnswerTypeOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Sample rationales for TASK; compare greedy vs self-consistency vote@N; write a report."""
    from ..jobs.run import RunConfig, run
    from ..tasks import load_task

    if method and method != "cot":
        return _run_method(method, task=task, backend=backend, model=model, samples=samples, limit=limit,
                           size=size, seed=seed, temperature=temperature, max_tokens=max_tokens, store=store,
                           out=out, base_url=base_url, json_out=json_out,
                           backend_options=parse_backend_opts(backend_opt), options=parse_method_opts(method_opt),
                           task_options=task_mapping(question_col, answer_col, context_col, answer_type))
    from ..prompts import load_template

    load_template(template)  # fail on a bad template before any model is loaded
    problems = load_task(task, size=size, seed=seed, limit=limit,
                         **task_mapping(question_col, answer_col, context_col, answer_type))
    cfg = RunConfig(task=task, backend=backend, model=model, samples=samples, limit=limit, size=size, seed=seed,
                    temperature=temperature, top_p=top_p, max_tokens=max_tokens, template=template, store=store,
                    out=out, backend_options=parse_backend_opts(backend_opt))
    with open_store(store) as st:
        be = make_backend(backend, model, base_url, **parse_backend_opts(backend_opt))
        try:
            if not json_out:
                err_console.print(f"[bold]rationales run[/] {task}: {len(problems)} problems × (1 greedy + "
                                  f"{samples} samples) on {be.name}:{be.model}")
            with progress_bar(len(problems) * (samples + 1), "sampling", enabled=not json_out) as advance:
                summary = run(cfg, be, st, problems, on_progress=advance)
        finally:
            be.close()
    if json_out:
        print_json(summary)
        return
    out_console.print(strategies_table(f"{task} · {summary['model']} · {summary['problems']} problems",
                                       summary["strategies"]))
    out_console.print(f"samples: {summary['samples_new']} new, {summary['samples_cached']} cached · "
                      f"tokens: {summary['tokens']} · outcomes: {summary['outcomes']} · {summary['time_s']} s")
    out_console.print(f"store: {summary['store']}\nreport: {summary['report']}")


def _run_method(name: str, *, task: str, backend: str, model: str | None, samples: int, limit: int | None,
                size: int, seed: int, temperature: float, max_tokens: int, store: str, out: str,
                base_url: str | None, json_out: bool, options: dict | None = None,
                backend_options: dict | None = None, task_options: dict | None = None) -> None:
    """``rationales run --method NAME``: load task, backend, store; run the method; print its summary."""
    from ..jobs.methods import MethodContext, method_function, run_method
    from ..tasks import load_task

    method_function(name)  # an unknown method fails before anything is loaded
    problems = load_task(task, size=size, seed=seed, limit=limit, **(task_options or {}))
    with open_store(store) as st:
        be = make_backend(backend, model, base_url, **(backend_options or {}))
        try:
            if not json_out:
                err_console.print(f"[bold]rationales run --method {name}[/] {task}: {len(problems)} problems on "
                                  f"{be.name}:{be.model}")
            ctx = MethodContext(problems=problems, backend=be, store=st, out=Path(out), task=task, samples=samples,
                                temperature=temperature, max_tokens=max_tokens, seed=seed, size=size,
                                options=options or {})
            summary = run_method(name, ctx)
        finally:
            be.close()
    if json_out:
        print_json(summary)
        return
    if summary.get("strategies"):
        out_console.print(strategies_table(f"{task} · method {name}", summary["strategies"]))
    for key, value in summary.items():
        if key not in ("strategies", "curve") and not isinstance(value, (list, dict)):
            out_console.print(f"{key}: {value}")


def tasks_cmd(grep: Optional[str] = typer.Argument(None, help="Only names containing this text.")) -> None:
    """List the tasks that `run` accepts."""
    from rich.table import Table

    from ..tasks import list_tasks

    t = Table(title="tasks")
    t.add_column("name")
    t.add_column("description")
    for name, desc in list_tasks():
        if grep is None or grep in name:
            t.add_row(name, desc)
    t.add_row("<file.jsonl|.csv|.parquet>", "your own problems (--question-col, --answer-col)")
    t.add_row("<dir saved with datasets.save_to_disk>", "a local Hugging Face dataset")
    out_console.print(t)


def backends_cmd() -> None:
    """List the backends (built-in and from plugins)."""
    from rich.table import Table

    from ..backends.base import BACKEND_HELP, available_backends

    t = Table(title="backends")
    t.add_column("name")
    t.add_column("implementation")
    t.add_column("description")
    for name, target in sorted(available_backends().items()):
        t.add_row(name, target, BACKEND_HELP.get(name, "plugin"))
    out_console.print(t)


def models_cmd() -> None:
    """List the model aliases that ship with PyPI packages (llamacpp backend)."""
    from rich.table import Table

    from ..models import DEFAULT_MODEL, MODEL_ALIASES

    t = Table(title="model aliases (llamacpp)")
    for col in ("alias", "default", "description"):
        t.add_column(col)
    for alias, info in MODEL_ALIASES.items():
        desc = info.get("description", "") if isinstance(info, dict) else str(info)
        t.add_row(alias, "yes" if alias == DEFAULT_MODEL else "", desc)
    out_console.print(t)
    out_console.print("Any .gguf path works too; other backends take their own model names.")


def runs_cmd(store: str = StoreOpt, json_out: bool = JsonOpt) -> None:
    """List the runs recorded in a store."""
    from rich.table import Table

    with open_store(store, create=False) as st:
        runs = st.runs()
    if json_out:
        print_json(runs)
        return
    t = Table(title=f"runs in {store}")
    for col in ("id", "command", "task", "finished", "new", "cached"):
        t.add_column(col)
    for r in runs:
        s = r["summary"] or {}
        t.add_row(r["id"], r["command"], str(r["config"].get("task", "")), "yes" if r["finished"] else "no",
                  str(s.get("samples_new", "")), str(s.get("samples_cached", "")))
    out_console.print(t)


def methods_cmd() -> None:
    """List the methods that `run --method NAME` accepts."""
    from rich.table import Table

    from ..jobs.methods import METHODS

    t = Table(title="methods (rationales run TASK --method NAME)")
    t.add_column("name")
    t.add_column("description")
    t.add_row("cot", "chain-of-thought sampling, greedy vs self-consistency vote (the default)")
    for name, (_, desc) in METHODS.items():
        t.add_row(name, desc)
    out_console.print(t)
