"""``rationales train judge``: the self-rationalizing judge loop (train/judge.py).

The options are built from ``JudgeTrainConfig``'s fields and help texts (one source of truth,
TRL style): ``--model``, ``--data``, ``--iterations``, ``--n``, ``--beta`` ...
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any, Optional

import typer

from .common import JsonOpt, err_console, out_console, print_json


def _options(cls: type) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        origin_args = typing.get_args(hint)
        if type(None) in origin_args:  # X | None
            base = next(a for a in origin_args if a is not type(None))
            annotation: Any = Optional[base]
        else:
            annotation = hint
        flag = "--" + f.name.replace("_", "-")
        decls = [f"{flag}/--no-{f.name.replace('_', '-')}"] if hint is bool else [flag]
        default = typer.Option(f.default, *decls, help=f.metadata.get("help", ""))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=annotation))
    return params


def register(train_app: typer.Typer) -> None:
    from ..train.judge import JudgeTrainConfig

    def train_judge_cmd(**kwargs: Any) -> None:
        """Self-rationalizing judge (seeds/001): sample judgments, DPO on its own agreeing vs disagreeing
        rationales, iterate; held-out pairwise accuracy per iteration vs untrained, self-consistency, best-of-N."""
        json_out = kwargs.pop("json_out")
        from rich.table import Table

        from ..train.judge import train_judge

        cfg = JudgeTrainConfig(**kwargs)  # validated before any model loads
        say = (lambda msg: None) if json_out else (lambda msg: err_console.print(f"[dim]{msg}[/]"))
        result = train_judge(cfg, on_progress=say)
        table = result.table()
        if json_out:
            print_json({"output_dir": result.output_dir, "train_items": result.train_items,
                        "test_items": result.test_items, "seconds": round(result.seconds, 1),
                        "judges": {k: {m: v for m, v in d.items() if m != "outcomes"} for k, d in table.items()},
                        "iterations": [{"iteration": i.iteration, "pairs": i.pairs, "train_loss": i.train_loss,
                                        "model_dir": i.model_dir} for i in result.iterations]})
            return
        t = Table(title=f"judge on {result.test_items} held-out items ({result.train_items} training items)")
        for col in ("judge", "accuracy", "95% CI", "unparsed rate", "position bias"):
            t.add_column(col, justify="left" if col == "judge" else "right")
        for name, m in table.items():
            acc = m.get("accuracy")
            t.add_row(name, "-" if acc is None else f"{acc:.3f}", f"[{m.get('ci_low', 0):.3f}, {m.get('ci_high', 1):.3f}]",
                      str(m.get("unparsed_rate")), str(m.get("position_bias", "-")))
        out_console.print(t)
        out_console.print(f"trained judge: {result.output_dir} (use --backend transformers --model "
                          f"{result.output_dir})")

    params = _options(JudgeTrainConfig)
    params.append(inspect.Parameter("json_out", inspect.Parameter.KEYWORD_ONLY, default=JsonOpt, annotation=bool))
    train_judge_cmd.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    train_app.command("judge")(train_judge_cmd)
