"""Core commands: run, tasks, backends, models, export, runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import ConfigError
from ..jobs.run import RunConfig
from .common import JsonOpt, StoreOpt, err_console, open_store, out_console, parse_backend_opts, print_json, \
    progress_bar
from .options import emit, opt, parse_key_values, ray_opt, session
from .render import say, strategies_table, table


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("tasks")(tasks_cmd)
    app.command("backends")(backends_cmd)
    app.command("models")(models_cmd)
    from .export_data import export_cmd  # raw records and the training formats (data/)

    app.command("export")(export_cmd)
    app.command("runs")(runs_cmd)
    app.command("methods")(methods_cmd)


def run_cmd(
    task: str = typer.Argument("demo", help="Task: demo, reasoning_gym:NAME, a .jsonl/.csv/.parquet file, or a saved dataset dir."),
    backend: str = opt(RunConfig, "backend", "--backend", "-b"),
    model: Optional[str] = opt(RunConfig, "model", "--model", "-m"),
    samples: int = opt(RunConfig, "samples", "--samples", "-n"),
    limit: Optional[int] = opt(RunConfig, "limit", "--limit", "-k"),
    size: int = opt(RunConfig, "size"),
    seed: int = opt(RunConfig, "seed"),
    temperature: float = opt(RunConfig, "temperature"),
    top_p: float = opt(RunConfig, "top_p"),
    max_tokens: int = opt(RunConfig, "max_tokens"),
    template: str = opt(RunConfig, "template"),
    method: Optional[str] = opt(RunConfig, "method", "--method"),
    store: str = opt(RunConfig, "store"),
    out: str = opt(RunConfig, "out"),
    base_url: Optional[str] = opt(RunConfig, "base_url"),
    backend_opt: Optional[list[str]] = opt(RunConfig, "backend_options", "--backend-opt", "-o",
                                           help="Extra backend option KEY=VALUE (repeatable), e.g. -o n_ctx=8192."),
    method_opt: Optional[list[str]] = opt(RunConfig, "method_options", "--method-opt", "-O",
                                          help="Method option KEY=VALUE (repeatable), e.g. -O format=procedural."),
    question_col: str = opt(RunConfig, "question_col"),
    answer_col: str = opt(RunConfig, "answer_col"),
    context_col: Optional[str] = opt(RunConfig, "context_col"),
    answer_type: str = opt(RunConfig, "answer_type"),
    ray: Optional[str] = ray_opt(RunConfig),
    ray_actors: int = opt(RunConfig, "ray_actors", "--ray-actors"),
    json_out: bool = JsonOpt,
) -> None:
    """Sample rationales for TASK; compare greedy vs self-consistency vote@N; write a report.
    With --method NAME, run that prompting or trust method instead (same options)."""
    cfg = RunConfig(task=task, backend=backend, model=model, samples=samples, limit=limit, size=size, seed=seed,
                    temperature=temperature, top_p=top_p, max_tokens=max_tokens, template=template,
                    method=method or "cot", store=store, out=out, base_url=base_url,
                    backend_options=parse_backend_opts(backend_opt),
                    method_options=parse_key_values(method_opt, "--method-opt"), question_col=question_col,
                    answer_col=answer_col, context_col=context_col, answer_type=answer_type, ray=ray,
                    ray_actors=ray_actors)
    if cfg.method != "cot":
        return _run_method(cfg, json_out)
    if cfg.method_options:
        raise ConfigError("--method-opt applies to run --method NAME only; add --method or drop -O.")
    from ..jobs.run import run
    from ..prompts import load_template
    from ..report import write_report
    from ..tasks import load_task

    load_template(cfg.template)  # fail on a bad template before any model is loaded
    problems = load_task(cfg.task, size=cfg.size, seed=cfg.seed, limit=cfg.limit, **cfg.task_options())
    with session(cfg) as (st, be):
        if not json_out:
            say(err_console, f"{cfg.task}: {len(problems)} problems × (1 greedy + {cfg.samples} samples) on "
                f"{be.name}:{be.model}", bold="rationales run")
        with progress_bar(len(problems) * (cfg.samples + 1), "sampling", enabled=not json_out) as advance:
            result = run(cfg, be, st, problems, on_progress=advance)
        write_report(result, cfg.out)
    summary = emit(result, json_out)
    if summary is None:
        return
    out_console.print(strategies_table(f"{cfg.task} · {summary['model']} · {summary['problems']} problems",
                                       summary["strategies"]))
    say(out_console, f"samples: {summary['samples_new']} new, {summary['samples_cached']} cached · "
        f"tokens: {summary['tokens']} · outcomes: {summary['outcomes']} · {summary['time_s']} s")
    say(out_console, f"store: {summary['store']}")
    say(out_console, f"report: {summary['report']}")


def _run_method(cfg: RunConfig, json_out: bool) -> None:
    """``rationales run --method NAME``: every option of ``run`` reaches the method's context;
    the method's -O options and --template are checked before anything is loaded."""
    from ..jobs.methods import MethodContext, check_method, run_method
    from ..prompts import load_template
    from ..report import write_report
    from ..tasks import load_task

    name = cfg.method
    check_method(name, cfg.method_options, template=cfg.template)
    load_template(cfg.template)
    problems = load_task(cfg.task, size=cfg.size, seed=cfg.seed, limit=cfg.limit, **cfg.task_options())
    with session(cfg) as (st, be):
        if not json_out:
            say(err_console, f"{cfg.task}: {len(problems)} problems on {be.name}:{be.model}",
                bold=f"rationales run --method {name}")
        ctx = MethodContext(problems=problems, backend=be, store=st, out=Path(cfg.out), task=cfg.task,
                            samples=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_tokens=cfg.max_tokens, seed=cfg.seed, size=cfg.size, template=cfg.template,
                            options=dict(cfg.method_options))
        result = run_method(name, ctx)
        write_report(result, cfg.out)
    summary = emit(result, json_out)
    if summary is None:
        return
    if summary.get("strategies"):
        out_console.print(strategies_table(f"{cfg.task} · method {name}", summary["strategies"]))
    for key, value in summary.items():
        if key not in ("strategies", "curve") and not isinstance(value, (list, dict)):
            say(out_console, f"{key}: {value}")


def tasks_cmd(grep: Optional[str] = typer.Argument(None, help="Only names containing this text.")) -> None:
    """List the tasks that `run` accepts."""
    from ..tasks import list_tasks

    rows = [[name, desc] for name, desc in list_tasks() if grep is None or grep in name]
    rows += [["<file.jsonl|.csv|.parquet>", "your own problems (--question-col, --answer-col)"],
             ["<dir saved with datasets.save_to_disk>", "a local Hugging Face dataset"]]
    out_console.print(table("tasks", ["name", "description"], rows))


def backends_cmd() -> None:
    """List the backends (built-in and from plugins)."""
    from ..backends.base import BACKEND_HELP, available_backends

    rows = [[name, target, BACKEND_HELP.get(name, "plugin")] for name, target in sorted(available_backends().items())]
    out_console.print(table("backends", ["name", "implementation", "description"], rows))


def models_cmd() -> None:
    """List the model aliases that ship with PyPI packages (llamacpp backend)."""
    from ..models import DEFAULT_MODEL, MODEL_ALIASES

    rows = [[alias, "yes" if alias == DEFAULT_MODEL else "",
             info.get("description", "") if isinstance(info, dict) else info] for alias, info in MODEL_ALIASES.items()]
    out_console.print(table("model aliases (llamacpp)", ["alias", "default", "description"], rows))
    say(out_console, "Any .gguf path works too; other backends take their own model names.")


def runs_cmd(store: str = StoreOpt, json_out: bool = JsonOpt) -> None:
    """List the runs recorded in a store."""
    with open_store(store, create=False) as st:
        runs = st.runs()
    if json_out:
        print_json(runs)
        return
    rows = [[r["id"], r["command"], (r["config"] or {}).get("task", ""), "yes" if r["finished"] else "no",
             (r["summary"] or {}).get("samples_new", ""), (r["summary"] or {}).get("samples_cached", "")]
            for r in runs]
    out_console.print(table(f"runs in {store}", ["id", "command", "task", "finished", "new", "cached"], rows))


def methods_cmd() -> None:
    """List the methods that `run --method NAME` accepts."""
    from ..jobs.methods import METHODS

    rows = [["cot", "chain-of-thought sampling, greedy vs self-consistency vote (the default)"]]
    rows += [[name, entry.help or entry.source] for name, entry in METHODS.entries().items()]
    out_console.print(table("methods (rationales run TASK --method NAME)", ["name", "description"], rows))
