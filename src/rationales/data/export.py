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
