"""Problems from JSONL / CSV / Parquet files, with a column mapping."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..errors import TaskError
from ..records import Problem
from .jsonl import clean_json, clean_text, read_json, read_jsonl, read_text

ANSWER_TYPES = ("auto", "number", "math", "exact", "choice", "reasoning_gym")


def _csv_rows(path: Path, delimiter: str) -> list[dict[str, Any]]:
    text = read_text(path, "task file")  # UTF-8, BOM dropped (Excel writes one)
    try:
        return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            raise TaskError(f"{path}: a quote (\") opened in the file is never closed, so everything after it "
                            "would become one field (and swallow the answers); close or remove that quote.") from e
    try:  # other oddities that strict parsing refuses but ordinary CSV readers accept
        return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as e:
        raise TaskError(f"Cannot read {path} as CSV ({e}); is it really {path.suffix} text?") from e


def _rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(path, "task file")
    if suffix == ".json":
        data = read_json(path, "task file")
        if not isinstance(data, list):
            raise TaskError(f"{path} must hold a JSON list of objects (or use .jsonl).")
        for i, row in enumerate(data, 1):
            if not isinstance(row, dict):
                raise TaskError(f"{path}: item {i} of the list is not a JSON object; each item must be one object "
                                'such as {"question": ..., "answer": ...}.')
        return data
    if suffix in (".csv", ".tsv"):
        return _csv_rows(path, "\t" if suffix == ".tsv" else ",")
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        except OSError as e:
            raise TaskError(f"Cannot read {path} ({e}).") from e
        except Exception as e:
            if type(e).__module__.startswith("pyarrow"):
                raise TaskError(f"Cannot read {path} as Parquet ({e}).") from e
            raise
        return [clean_json(r) if isinstance(r, dict) else r for r in rows]
    raise TaskError(f"Unsupported file type '{suffix}' for {path}: use .jsonl, .json, .csv, .tsv or .parquet.")


def _names(cols: set[str]) -> str:
    """Column names for a one-line message (newlines and control characters escaped)."""
    return ", ".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in sorted(cols))


def _text(value: Any) -> str:
    """A cell as text: strings as they are, other JSON values as JSON (never Python's repr)."""
    if isinstance(value, str):
        return clean_text(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        return str(value)


def rows_to_problems(rows: list[dict[str, Any]], source: str, question_col: str = "question",
                     answer_col: str = "answer", context_col: str | None = None, id_col: str | None = None,
                     answer_type: str = "auto", choices_col: str | None = None) -> list[Problem]:
    if answer_type not in ANSWER_TYPES:
        raise TaskError(f"Unknown answer type '{answer_type}'; use one of: {', '.join(ANSWER_TYPES)}.")
    if not rows:
        raise TaskError(f"{source} has no rows.")
    cols = {str(k) for k in rows[0]}
    if question_col not in cols:
        raise TaskError(f"{source} has no column '{question_col}' (columns: {_names(cols)}); "
                        "pass --question-col NAME.")
    if answer_col not in cols:
        fallback = next((c for c in ("answer", "gold", "label", "target", "solution") if c in cols), None)
        if answer_col != "answer" or fallback is None:
            raise TaskError(f"{source} has no column '{answer_col}' (columns: {_names(cols)}); "
                            "pass --answer-col NAME.")
        answer_col = fallback
    problems = []
    for i, row in enumerate(rows):
        q = row.get(question_col)
        if q is None or str(q).strip() == "":
            raise TaskError(f"{source} row {i + 1} has an empty '{question_col}'.")
        gold = row.get(answer_col)
        if isinstance(gold, (dict, list)):
            gold = _text(gold)
        meta = {str(k): v for k, v in row.items() if k not in (question_col, answer_col)}
        if id_col:
            meta["source_id"] = row.get(id_col)
        choices = _choices(row.get(choices_col), source, i) if choices_col else None
        context = row.get(context_col) if context_col else None
        problems.append(Problem.make(
            _text(q), gold, source=source, context=_text(context) if context not in (None, "") else None,
            answer_type=answer_type, choices=choices,
            meta=json.loads(json.dumps(meta, default=str))))
    return problems


def _choices(value: Any, source: str, i: int) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [c.strip() for c in value.split("|")]
    if not isinstance(value, list):
        raise TaskError(f"{source} row {i + 1}: the choices must be a list (or a JSON list / 'a|b|c' string).")
    return [_text(c) for c in value]


def load(path: str | Path, **mapping: Any) -> list[Problem]:
    path = Path(path)
    try:
        exists = path.exists()
    except (OSError, ValueError) as e:
        raise TaskError(f"Cannot use {str(path)[:200]!r} as a task file path ({e.strerror if isinstance(e, OSError) else e}).") from e
    if not exists:
        raise TaskError(f"No such file: {path}.")
    return rows_to_problems(_rows(path), source=path.name, **mapping)
