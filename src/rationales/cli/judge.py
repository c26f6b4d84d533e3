"""``rationales judge``: judges with rationales over stored rationales or a JSONL file."""

from __future__ import annotations

from typing import Optional

import typer

from .common import (BackendOpt, BackendOptsOpt, BaseUrlOpt, JsonOpt, ModelOpt, OutOpt, StoreOpt, err_console,
                     make_backend, open_store, out_console, parse_backend_opts, print_json)


def register(app: typer.Typer) -> None:
    app.command("judge")(judge_cmd)


def judge_cmd(
    file: Optional[str] = typer.Argument(None, help="A JSONL file in prometheus-eval's fields (instruction, response, "
                                                    "reference_answer, rubric; relative: response_A, response_B). "
                                                    "Omit it to judge the store's rationales."),
    mode: str = typer.Option("absolute", "--mode", help="absolute (a score), pairwise (A vs B, both orders), "
                                                        "ranking (more than two), or step (each step of stored "
                                                        "rationales gets a Check(kind=judge))."),
    rubric: str = typer.Option("correctness", "--rubric", help="Built-in rubric (correctness, reasoning, helpfulness, "
                                                              "harmlessness, faithfulness, step), a JSON file, or text."),
    low: Optional[int] = typer.Option(None, "--low", help="Scale bottom (default: the rubric's, 1)."),
    high: Optional[int] = typer.Option(None, "--high", help="Scale top (default: the rubric's, 5)."),
    run: Optional[str] = typer.Option(None, "--run", help="Store: rationales of this run id (its model, method, task)."),
    method: Optional[str] = typer.Option(None, "--method", help="Store: only rationales of this method (e.g. cot)."),
    source_model: Optional[str] = typer.Option(None, "--source-model", help="Store: only rationales of this model."),
    task: Optional[str] = typer.Option(None, "--task", help="Store: only problems of this task/source."),
    reference: bool = typer.Option(False, "--reference/--no-reference",
                                   help="Store: show the gold answer to the judge as the reference answer."),
    per_problem: int = typer.Option(1, "--per-problem", help="Pairwise over the store: pairs per problem."),
    rank_k: int = typer.Option(3, "--rank-k", help="Ranking over the store: responses ranked per problem (2-5)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-k", help="Judge at most this many items."),
    n: int = typer.Option(1, "--n", help="Judgments sampled per item (and per order); >1 needs --temperature > 0."),
    temperature: float = typer.Option(0.0, "--temperature", help="Judge sampling temperature."),
    aggregate: str = typer.Option("majority", "--aggregate", help="With --n > 1: majority, mean, best (best-of-N by "
                                                                  "log-likelihood) or first."),
    max_tokens: int = typer.Option(384, "--max-tokens", help="Max new tokens per judgment."),
    grammar: bool = typer.Option(True, "--grammar/--no-grammar", help="Constrain the verdict with a GBNF grammar "
                                                                      "where the backend can (llama.cpp, servers)."),
    retries: int = typer.Option(1, "--retries", help="Fresh samples for an unreadable verdict (0-5)."),
    force: bool = typer.Option(True, "--force/--no-force", help="Then read the verdict off log-probabilities; "
                                                                "--no-force leaves it unparsed."),
    calibrate: bool = typer.Option(False, "--calibrate/--no-calibrate",
                                   help="Pairwise: decide each pair by P(A) vs P(B) read off log-probabilities "
                                        "after each feedback, averaged over both orders (against position bias)."),
    seed: int = typer.Option(0, "--seed", help="Base seed."),
    backend: str = BackendOpt,
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    backend_opt: Optional[list[str]] = BackendOptsOpt,
    store: str = StoreOpt,
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Judge responses with a rationale before each verdict; agreement with gold, a table and judge.html."""
    from rich.table import Table

    from ..jobs.judge import JudgeJobConfig, run_judge
    from ..report.judge import write_judge_report
    from ..verify.judge import JudgeConfig

    jcfg = JudgeConfig(n=n, temperature=temperature, max_tokens=max_tokens, seed=seed, aggregate=aggregate,
                       grammar=grammar, retries=retries, force=force, calibrate=calibrate)
    cfg = JudgeJobConfig(mode=mode, file=file, run=run, method=method, source_model=source_model, task=task,
                         rubric=rubric, low=low, high=high, reference=reference, limit=limit,
                         per_problem=per_problem, rank_k=rank_k, seed=seed, judge=jcfg)  # bad options fail before a model loads
    if file:
        from ..jobs.judge import read_jsonl

        read_jsonl(file, mode, limit)  # a malformed file fails before a model loads
    opts = parse_backend_opts(backend_opt)
    with open_store(store) as st:
        be = make_backend(backend, model, base_url, **opts)
        try:
            if not json_out:
                err_console.print(f"[bold]rationales judge[/] ({mode}) on {be.name}:{be.model}")
            result = run_judge(cfg, be, st)
        finally:
            be.close()
    report = write_judge_report(result, out)
    summary = result.summary()
    summary["report"] = str(report)
    if json_out:
        summary["judgments"] = result.rows()
        print_json(summary)
        return
    t = Table(title=f"judge ({mode}): {summary['items']} items, {summary['tokens']} tokens, {summary['seconds']} s")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in summary["agreement"].items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}: {b}" for a, b in v.items())
        elif isinstance(v, float):
            v = f"{v:.3f}"
        t.add_row(k, str(v))
    out_console.print(t)
    c = Table(title="verdicts")
    c.add_column("outcome")
    c.add_column("count", justify="right")
    for k, v in sorted(summary["counts"].items()):
        c.add_row(k, str(v))
    out_console.print(c)
    out_console.print(f"report: {report}")
