"""Problems from JSONL / CSV / Parquet files, with a column mapping."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..errors import TaskError
from ..records import Problem


def _rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            rows = []
            with path.open(encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise TaskError(f"{path}:{n} is not valid JSON ({e.msg}); fix or remove that line.") from e
            return rows
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise TaskError(f"{path} must hold a JSON list of objects (or use .jsonl).")
            return data
        if suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8", newline="") as f:
                return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
        raise TaskError(f"Cannot read {path} ({e}); is it really {suffix} text?") from e
    except OSError as e:
        raise TaskError(f"Cannot read {path} ({e}).") from e
    except Exception as e:
        if type(e).__module__.startswith("pyarrow"):
            raise TaskError(f"Cannot read {path} as Parquet ({e}).") from e
        raise
    raise TaskError(f"Unsupported file type '{suffix}' for {path}: use .jsonl, .json, .csv, .tsv or .parquet.")


def rows_to_problems(rows: list[dict[str, Any]], source: str, question_col: str = "question",
                     answer_col: str = "answer", context_col: str | None = None, id_col: str | None = None,
                     answer_type: str = "auto", choices_col: str | None = None) -> list[Problem]:
    if not rows:
        raise TaskError(f"{source} has no rows.")
    cols = set(rows[0])
    if question_col not in cols:
        raise TaskError(f"{source} has no column '{question_col}' (columns: {', '.join(sorted(cols))}); "
                        "pass --question-col NAME.")
    if answer_col not in cols:
        fallback = next((c for c in ("answer", "gold", "label", "target", "solution") if c in cols), None)
        if answer_col != "answer" or fallback is None:
            raise TaskError(f"{source} has no column '{answer_col}' (columns: {', '.join(sorted(cols))}); "
                            "pass --answer-col NAME.")
        answer_col = fallback
    problems = []
    for i, row in enumerate(rows):
        q = row.get(question_col)
        if q is None or str(q).strip() == "":
            raise TaskError(f"{source} row {i + 1} has an empty '{question_col}'.")
        gold = row.get(answer_col)
        meta = {k: v for k, v in row.items() if k not in (question_col, answer_col)}
        if id_col:
            meta["source_id"] = row.get(id_col)
        choices = row.get(choices_col) if choices_col else None
        problems.append(Problem.make(
            str(q), gold, source=source, context=str(row[context_col]) if context_col and row.get(context_col) else None,
            answer_type=answer_type, choices=list(choices) if choices else None,
            meta=json.loads(json.dumps(meta, default=str))))
    return problems


def load(path: str | Path, **mapping: Any) -> list[Problem]:
    path = Path(path)
    if not path.exists():
        raise TaskError(f"No such file: {path}.")
    return rows_to_problems(_rows(path), source=path.name, **mapping)
