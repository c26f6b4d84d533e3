"""``rationales train ...``: the training stage's command group.

Each trainer's subcommand lives in its own module and registers itself on ``train_app``:
``cli/train_sft.py`` (sft, dpo, qcrd, pinto), ``cli/train_prm.py`` (prm), ``cli/train_judge.py``
(judge). A module named in ``SUBCOMMAND_MODULES`` that cannot be imported is an error, not a
silently missing command.
"""

from __future__ import annotations

import importlib

import typer

SUBCOMMAND_MODULES: list[str] = ["train_prm", "train_judge", "train_sft"]

train_app = typer.Typer(help="Train models from the store: sft, dpo, qcrd, pinto, prm, judge.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"rationales.cli.{name}").register(train_app)
    app.add_typer(train_app, name="train")
