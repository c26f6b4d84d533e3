"""Export stored rationales as JSONL or Parquet (one row per rationale, problem fields joined)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RationalesError
from ..store import Store


def rationale_rows(store: Store, method: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    problems: dict[str, Any] = {}
    rows = []
    for r in store.rationales(method=method, model=model):
        if r.problem_id not in problems:
            problems[r.problem_id] = store.get_problem(r.problem_id)
        p = problems[r.problem_id]
        row = r.model_dump(mode="json")
        row["question"] = p.question if p else None
        row["gold"] = p.gold if p else None
        row["source"] = p.source if p else None
        rows.append(row)
    return rows


def export_rationales(store: Store, path: Path, method: str | None = None, model: str | None = None) -> int:
    rows = rationale_rows(store, method, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # nested, variable records: keep structured columns as JSON strings for a stable schema
        flat = [{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in row.items()} for row in rows]
        pq.write_table(pa.Table.from_pylist(flat), path)
    else:
        raise RationalesError(f"Unsupported export format '{suffix}': use .jsonl or .parquet.")
    return len(rows)


# ---------------------------------------------------------------- training datasets (TRL columns)

FORMATS = ("raw", "sft", "dpo", "stepwise", "contrastive", "pinto")


def dataset_rows(store: Store, fmt: str, f: Any = None, *, style: str = "conversational", layout: str = "messages",
                 reduced: bool = False, pair_sources: tuple[str, ...] = ("outcome",), max_pairs_per_problem: int = 4,
                 label_source: str = "mc", unlabelled: str = "null", max_positives: int = 5,
                 max_negatives: int = 5, need_reasoning: bool = True, ratio: float = 0.3, n_masks: int = 2) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of a training dataset in TRL's columns, and their provenance (store, filters, split,
    label source, counts). ``f`` is a ``data.filters.DataFilter``."""
    from .filters import DataFilter

    f = f if f is not None else DataFilter()
    prov: dict[str, Any] = {}
    if fmt == "sft":
        from .sft import sft_rows

        rows = sft_rows(store, f, layout=layout, style=style, reduced=reduced, provenance=prov)
    elif fmt == "dpo":
        from .dpo import dpo_rows

        rows = dpo_rows(store, f, sources=pair_sources, style=style, max_pairs_per_problem=max_pairs_per_problem,
                        provenance=prov)
    elif fmt == "contrastive":
        from .contrastive import contrastive_rows

        rows = contrastive_rows(store, f, style=style, max_positives=max_positives, max_negatives=max_negatives,
                                need_reasoning=need_reasoning, provenance=prov)
    elif fmt == "pinto":
        from .counterfactual import pinto_rows

        rows = pinto_rows(store, f, style=style, ratio=ratio, n_masks=n_masks, provenance=prov)
    elif fmt == "stepwise":
        rows, prov = _stepwise(store, f, label_source=label_source, unlabelled=unlabelled)
    elif fmt == "raw":
        rows = rationale_rows(store, method=f.method, model=f.model)
        prov = {"store": str(store.path), "format": "raw", "rows": len(rows)}
    else:
        from ..errors import UnknownNameError

        raise UnknownNameError("export format", fmt, FORMATS)
    prov.setdefault("format", fmt)
    return rows, prov


def _stepwise(store: Store, f: Any, *, label_source: str, unlabelled: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Engineer F's stepwise builder (``data.stepwise``) with this module's filters and split."""
    try:
        from .stepwise import stepwise_rows
    except ImportError as e:  # pragma: no cover - the module ships with the package
        raise RationalesError(f"The stepwise format is not available in this install ({e}).") from e
    from .filters import select

    sel = select(store, f)  # the same selection and recorded split as every other format
    chosen = [r for g in sel.groups for r in g.rationales]
    counts: dict[str, Any] = {}
    rows = stepwise_rows(store, label_source=label_source, task=f.task, model=f.model, method=f.method,
                         rationales=chosen, split=lambda pid: f.split if f.split != "all" else "all",
                         unlabelled=unlabelled, counts=counts)
    prov = dict(sel.provenance, format="stepwise", label_source=label_source, unlabelled=unlabelled,
                label_counts=counts, rows=len(rows))
    return rows, prov


def build_dataset(store: Store, fmt: str, f: Any = None, **kwargs: Any) -> Any:
    """A ``datasets.Dataset`` of the given format (see ``dataset_rows``); its provenance is in
    ``dataset.info.description`` as JSON."""
    from datasets import Dataset, DatasetInfo

    rows, prov = dataset_rows(store, fmt, f, **kwargs)
    return Dataset.from_list(rows, info=DatasetInfo(description=json.dumps(prov, default=str)))


def export_dataset(store: Store, path: str | Path, fmt: str, f: Any = None,
                   **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """Write a training dataset as JSONL or Parquet, plus ``PATH.provenance.json``."""
    from .common import write_provenance, write_rows

    if fmt == "raw":
        n = export_rationales(store, Path(path), method=getattr(f, "method", None), model=getattr(f, "model", None))
        return n, {"format": "raw", "rows": n}
    if Path(path).suffix.lower() not in (".jsonl", ".json", ".parquet"):
        raise RationalesError(f"Unsupported dataset file '{Path(path).name}': use .jsonl or .parquet.")
    rows, prov = dataset_rows(store, fmt, f, **kwargs)
    write_rows(rows, path)
    prov["file"] = str(path)
    write_provenance(path, prov)
    return len(rows), prov
