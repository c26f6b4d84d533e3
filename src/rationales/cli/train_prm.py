"""``rationales train prm``: train a process reward model from stored step labels.

The options are the fields of ``train.prm.PRMConfig`` (one source of truth: each field's help
text is its option's help), e.g.::

    rationales train prm --data rationales.sqlite --kind probe --model qwen2.5-coder-0.5b --label-source mc
    rationales train prm --data steps.jsonl --kind discriminative --model smollm2-135m --lora --soft
"""

from __future__ import annotations

import inspect
import json
from dataclasses import MISSING, fields
from typing import Any

import typer


def _parameters(cls: Any) -> list[inspect.Parameter]:
    params = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        decl = f"{flag}/--no-{f.name.replace('_', '-')}" if isinstance(default, bool) else flag
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=type(default),
                                        default=typer.Option(default, decl, help=f.metadata.get("help", ""))))
    params.append(inspect.Parameter("json_out", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, "--json", help="Print the result as one JSON object.")))
    return params


def register(train_app: typer.Typer) -> None:
    from ..train.prm import PRMConfig

    def prm_cmd(**kwargs: Any) -> None:
        """Train a PRM (probe | discriminative | generative) from step labels in a store or a stepwise file;
        the output directory is usable at once as `--prm DIR` in verify, compare and processbench."""
        from .common import err_console, out_console

        json_out = kwargs.pop("json_out", False)
        cfg = PRMConfig(**kwargs)
        from ..train.prm import train_prm

        if not json_out:
            err_console.print(f"training a {cfg.kind} PRM on {cfg.data} (labels: {cfg.label_source}"
                              f"{', soft' if cfg.soft else ''}) -> {cfg.output_dir}")
        res = train_prm(cfg)
        if json_out:
            typer.echo(json.dumps(res.as_dict(), default=str))
            return
        out_console.print(f"PRM ({cfg.kind}) saved to {res.output_dir}: {res.examples} training rows, "
                          f"{res.steps} steps, {res.seconds:.1f} s"
                          + (f", resumed from {res.resumed_from}" if res.resumed_from else ""))
        for split in ("train", "val"):
            m = res.metrics.get(split)
            if isinstance(m, dict) and m.get("steps"):
                auc = m.get("auroc")
                out_console.print(f"  {split}: {m['steps']} labelled steps, AUROC "
                                  f"{'n/a' if auc is None else f'{auc:.3f}'}, accuracy {m.get('accuracy')}")
        out_console.print(f"use it: rationales compare TASK --prm {res.output_dir}")

    prm_cmd.__signature__ = inspect.Signature(_parameters(PRMConfig))  # type: ignore[attr-defined]
    train_app.command("prm")(prm_cmd)
