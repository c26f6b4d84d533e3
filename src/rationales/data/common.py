"""Shared pieces of the dataset builders: prompts, row styles, writing files, empty-data errors.

Row styles follow TRL's dataset conventions:

* ``conversational`` (default): prompts are lists of chat messages (``{"role", "content"}``) and
  answers are one assistant message; TRL applies the model's chat template, so the trained
  model is prompted exactly the way ``--backend transformers`` prompts it later.
* ``standard``: plain strings; the prompt is the base-model transcript ("Question: ... Answer:"),
  completions start with a space.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import RationalesError
from ..prompts import RenderedPrompt, render
from ..records import Problem

STYLES = ("conversational", "standard")


class EmptyDatasetError(RationalesError):
    pass


def check_style(style: str) -> None:
    if style not in STYLES:
        raise RationalesError(f"Unknown dataset style '{style}': use conversational or standard.")


def problem_prompt(problem: Problem, template: str = "cot") -> RenderedPrompt:
    return render(template, question=problem.question, context=problem.context)


def prompt_value(prompt: RenderedPrompt, style: str) -> Any:
    return [dict(m) for m in prompt.messages] if style == "conversational" else prompt.completion_text()


def answer_value(text: str, style: str) -> Any:
    return [{"role": "assistant", "content": text}] if style == "conversational" else " " + text.strip()


def require_rows(rows: Sequence[Any], what: str, provenance: dict[str, Any], hint: str) -> None:
    """One-line error when a builder produced nothing, with the counts that explain why."""
    if rows:
        return
    counts = provenance.get("counts", {})
    why = ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "the store has no matching rationales"
    raise EmptyDatasetError(f"No {what} rows: {why}. {hint}")


def finish_rows(rows: list[Any], what: str, prov: dict[str, Any], provenance: dict[str, Any] | None,
                hint: str) -> list[Any]:
    """A builder's last step: its provenance ``prov`` copied into the caller's ``provenance``
    dict (when given), then the rows, or the one-line error of :func:`require_rows`."""
    if provenance is not None:
        provenance.update(prov)
    require_rows(rows, what, prov, hint)
    return rows


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """JSONL (``.jsonl``/``.json``) or Parquet (``.parquet``); both load with
    ``datasets.load_dataset("json"|"parquet", data_files=PATH)`` with nested columns intact."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet"):
        raise RationalesError(f"Unsupported dataset file '{path.name}': use .jsonl or .parquet.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(list(rows)), tmp)
    else:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def to_dataset(rows: Sequence[dict[str, Any]]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(list(rows))


def write_provenance(path: str | Path, provenance: dict[str, Any]) -> Path:
    """``FILE.provenance.json`` next to an exported dataset (read by trainers for the model card)."""
    p = Path(path)
    out = p.with_name(p.name + ".provenance.json")
    out.write_text(json.dumps(provenance, indent=2, default=str), encoding="utf-8")
    return out


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    p = Path(path)
    side = p.with_name(p.name + ".provenance.json")
    if side.is_file():
        try:
            return json.loads(side.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None
    return None
