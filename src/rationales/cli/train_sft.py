"""``rationales train sft | dpo | qcrd | pinto``: options built from the config dataclasses.

``config_command(cls, run)`` turns a ``TrainConfig`` dataclass into a typer command: one
``--option`` per field (name with dashes, the field's default and its ``metadata["help"]``),
``data`` as the positional argument, booleans as ``--x/--no-x``, list fields as comma-separated
text. The dataclass validates in ``__post_init__``, so the CLI and the Python API accept exactly
the same values (one source of truth). Other trainers' CLI modules can reuse it.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any, Optional

import typer

from .common import JsonOpt, err_console, out_console, print_json

_SKIP = {"progress"}  # set from --json (no bar when printing JSON)


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(base type, optional?) of an annotation."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)) and \
            type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def config_parameters(cls: type) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        if f.name in _SKIP:
            continue
        tp, optional = _unwrap(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f.metadata.get("help", "")
        flag = "--" + f.name.replace("_", "-")
        if typing.get_origin(tp) is list:
            ann: Any = str
            default = ",".join(default or [])
            help_text += " (comma-separated)"
        elif tp is bool:
            ann = bool
            flag = f"{flag}/--no-{f.name.replace('_', '-')}"
        else:
            ann = Optional[tp] if optional else tp
        if f.name == "data":
            params.append(inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str,
                                            default=typer.Argument(..., help=help_text)))
            continue
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=ann,
                                        default=typer.Option(default, flag, help=help_text)))
    params.append(inspect.Parameter("json_out", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=JsonOpt))
    return sorted(params, key=lambda p: p.kind)


def config_command(cls: type, run: Callable[[Any], Any], method: str, doc: str) -> Callable[..., None]:
    """A typer command function for config class ``cls`` that calls ``run(config)``."""

    def command(**kwargs: Any) -> None:
        json_out = kwargs.pop("json_out", False)
        cfg = cls(**kwargs, progress=not json_out)
        if not json_out:
            err_console.print(f"[bold]rationales train {method}[/] {cfg.data} -> {cfg.output_dir} (base {cfg.model})")
        result = run(cfg)
        render(result, json_out)

    command.__signature__ = inspect.Signature(config_parameters(cls))  # type: ignore[attr-defined]
    command.__doc__ = doc
    command.__name__ = f"train_{method}"
    return command


def render(result: Any, json_out: bool) -> None:
    data = result.as_dict()
    if json_out:
        print_json(data)
        return
    from rich.table import Table

    t = Table(title=f"train {result.method}: {result.steps} steps")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key, value in result.metrics.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (dict, list)):
            continue
        t.add_row(key, str(value))
    out_console.print(t)
    if result.resumed_from:
        out_console.print(f"resumed from {result.resumed_from}")
    red = result.metrics.get("reduction")
    if isinstance(red, dict):
        out_console.print(f"reduced rationales: {red.get('replaced')} used, tokens saved {red.get('tokens_saved')} "
                          f"({red.get('tokens_saved_share')}), accuracy kept {red.get('accuracy_kept')}")
    out_console.print(f"model: {result.output_dir} (model_card.json inside)\n"
                      f"use it: rationales run TASK --backend transformers --model {result.output_dir}")


def register(train_app: typer.Typer) -> None:
    from ..train.dpo import DPOTrainConfig, train_dpo
    from ..train.pinto import PINTOTrainConfig, train_pinto
    from ..train.qcrd import QCRDTrainConfig, train_qcrd
    from ..train.sft import SFTTrainConfig, train_sft

    specs = [
        ("sft", SFTTrainConfig, train_sft, "Supervised fine-tuning on stored rationales (TRL SFTTrainer)."),
        ("dpo", DPOTrainConfig, train_dpo, "DPO on rationale pairs: correct vs wrong, step-controlled, sibling "
                                           "steps (TRL DPOTrainer, explicit reference model)."),
        ("qcrd", QCRDTrainConfig, train_qcrd, "QCRD: contrastive rationale distillation with an online "
                                              "discriminator and self-adversarial negatives."),
        ("pinto", PINTOTrainConfig, train_pinto, "PINTO: answer from question + rationale, less confident when "
                                                 "the rationale is perturbed."),
    ]
    for name, cls, fn, doc in specs:
        train_app.command(name, help=doc)(config_command(cls, fn, name, doc))
    train_app.command("pairs", help="Mine Step-Controlled DPO pairs into the store (for `train dpo --pairs "
                                    "step_controlled`).")(pairs_cmd)


def pairs_cmd(
    store: str = typer.Argument(..., help="Store with correct rationales to mine from (pairs are stored there)."),
    backend: str = typer.Option("llamacpp", "--backend", "-b", help="Backend that writes the continuations."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model of the continuations (the policy)."),
    task: Optional[str] = typer.Option(None, help="Only problems of this task."),
    from_model: Optional[str] = typer.Option(None, help="Only rationales written by this model."),
    limit: Optional[int] = typer.Option(None, min=1, help="At most this many problems."),
    max_attempts: int = typer.Option(4, min=1, help="Continuations tried per (rationale, prefix) until one is wrong."),
    prefixes: int = typer.Option(2, min=1, help="Prefix lengths k tried per rationale."),
    max_step_tokens: int = typer.Option(96, min=1, help="Max tokens of one continued step."),
    seed: int = typer.Option(0, help="Base seed (attempt a uses seed + a)."),
    split_name: str = typer.Option("default", help="Recorded split; only its train side is mined."),
    test_fraction: float = typer.Option(0.2, help="Test share of a new split."),
    json_out: bool = JsonOpt,
) -> None:
    """Mine Step-Controlled DPO pairs: continue correct rationales after k steps at rising temperature
    (1.1 + 0.05 per step, cap 1.4) until the answer is wrong; then `train dpo --pairs step_controlled`."""
    from ..data.filters import DataFilter, select
    from ..data.pairs import StepControlledConfig, mine_step_controlled
    from ..errors import RationalesError
    from .common import make_backend, open_store

    cfg = StepControlledConfig(max_attempts=max_attempts, prefixes_per_rationale=prefixes,
                               max_step_tokens=max_step_tokens, seed=seed)
    with open_store(store, create=False) as st:
        sel = select(st, DataFilter(task=task, model=from_model, correct_only=True, split_name=split_name,
                                    test_fraction=test_fraction))
        groups = [g for g in sel.groups if g.rationales][:limit]
        if not groups:
            raise RationalesError(f"No correct rationales on the train side of {store}; sample some with "
                                  "`rationales run` first.")
        be = make_backend(backend, model)
        try:
            res = mine_step_controlled([g.problem for g in groups], [g.rationales for g in groups], be, st, cfg)
        finally:
            be.close()
    if json_out:
        print_json(res.as_dict())
        return
    out_console.print(f"step-controlled pairs: {res.pairs} of {res.items} (rationale, k) items in {res.attempts} "
                      f"attempts ({res.still_correct} continuations stayed correct, {res.exhausted} items without a "
                      f"wrong one); by k: {res.pairs_by_k}; samples {res.stats.new} new, {res.stats.cached} cached")
