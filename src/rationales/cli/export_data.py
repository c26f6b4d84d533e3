"""``rationales export PATH --format raw|sft|dpo|stepwise|contrastive|pinto``.

``raw`` (the default) writes one row per stored rationale with its problem, steps, checks and
scores. The training formats write TRL's columns (``data/``) with the selection options of
``data.filters.DataFilter`` (built from its fields: one source of truth) and record the
train/test split in the store; ``PATH.provenance.json`` says what went in.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import typer

from .common import JsonOpt, StoreOpt, open_store, out_console, print_json


def _parameters() -> list[inspect.Parameter]:
    from ..data.filters import DataFilter
    from .train_sft import config_parameters

    kw = inspect.Parameter.KEYWORD_ONLY
    head = [
        inspect.Parameter("path", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str,
                          default=typer.Argument(..., help="Output file: .jsonl or .parquet.")),
        inspect.Parameter("store", kw, annotation=str, default=StoreOpt),
        inspect.Parameter("format", kw, annotation=str, default=typer.Option(
            "raw", "--format", "-f", help="raw (every stored field), sft, dpo, stepwise, contrastive or pinto.")),
        inspect.Parameter("style", kw, annotation=str, default=typer.Option(
            "conversational", help="conversational (chat messages) or standard (plain strings).")),
        inspect.Parameter("layout", kw, annotation=str, default=typer.Option(
            "messages", help="sft: messages or prompt_completion.")),
        inspect.Parameter("reduced", kw, annotation=bool, default=typer.Option(
            False, "--reduced/--original", help="sft: the stored verbosity-reduced rationales instead of the "
                                                "originals (reports tokens saved and accuracy kept).")),
        inspect.Parameter("pairs", kw, annotation=str, default=typer.Option(
            "outcome", help="dpo: pair sources, comma-separated: outcome, step_controlled, sibling.")),
        inspect.Parameter("max_pairs_per_problem", kw, annotation=int, default=typer.Option(
            4, help="dpo: at most this many outcome pairs per problem.")),
        inspect.Parameter("label_source", kw, annotation=str, default=typer.Option(
            "mc", help="stepwise: step labels from tool, mc, mc_soft, grounded, consensus or human checks.")),
        inspect.Parameter("unlabelled", kw, annotation=str, default=typer.Option(
            "null", help="stepwise: null, truncate or drop for steps without a label.")),
        inspect.Parameter("max_positives", kw, annotation=int, default=typer.Option(5, help="contrastive: positives per problem.")),
        inspect.Parameter("max_negatives", kw, annotation=int, default=typer.Option(5, help="contrastive: negatives per problem.")),
    ]
    filt = [p for p in config_parameters(DataFilter) if p.name != "json_out"]
    return head + filt + [inspect.Parameter("json_out", kw, annotation=bool, default=JsonOpt)]


def export_cmd(**kw: Any) -> None:
    """Export stored rationales as JSONL or Parquet: raw records, or training sets in TRL's columns."""
    from ..data.export import export_dataset
    from ..data.filters import DataFilter, SPLIT_SIDES
    from ..errors import RationalesError

    path, store, fmt, json_out = kw.pop("path"), kw.pop("store"), kw.pop("format"), kw.pop("json_out")
    opts = {k: kw.pop(k) for k in ("style", "layout", "reduced", "max_pairs_per_problem", "label_source",
                                  "unlabelled", "max_positives", "max_negatives")}
    opts["pair_sources"] = tuple(p.strip() for p in kw.pop("pairs").split(",") if p.strip())
    if kw.get("split") not in SPLIT_SIDES:
        raise RationalesError(f"--split must be one of {', '.join(SPLIT_SIDES)}, got '{kw.get('split')}'.")
    f = DataFilter(**kw)
    if fmt != "sft":
        opts.pop("layout"), opts.pop("reduced")
    if fmt != "dpo":
        opts.pop("pair_sources"), opts.pop("max_pairs_per_problem")
    if fmt != "stepwise":
        opts.pop("label_source"), opts.pop("unlabelled")
    if fmt != "contrastive":
        opts.pop("max_positives"), opts.pop("max_negatives")
    if fmt in ("raw", "stepwise"):
        opts.pop("style")
    with open_store(store, create=False) as st:
        n, prov = export_dataset(st, Path(path), fmt, f, **opts)
    if json_out:
        print_json({"rows": n, "path": path, "provenance": prov})
        return
    what = "rationales" if fmt == "raw" else f"{fmt} rows"
    out_console.print(f"wrote {n} {what} to {path}")
    split = prov.get("split")
    if split:
        out_console.print(f"split '{split['name']}' ({f.split} side used): {split['train_problems']} train / "
                          f"{split['test_problems']} test problems, recorded in {store}; provenance: "
                          f"{path}.provenance.json")
    red = prov.get("reduction")
    if red:
        out_console.print(f"reduced rationales: {red['replaced']} used ({red['no_reduction']} without a reduction), "
                          f"tokens {red['tokens_original']} -> {red['tokens_reduced']} (saved {red['tokens_saved']}, "
                          f"{red['tokens_saved_share']}), accuracy kept {red['accuracy_kept']}")


export_cmd.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
