"""Stepwise-supervision datasets (PRM training data) built from the store.

Columns follow TRL's old stepwise-supervision format (``PRMTrainer``, TRL <= 1.13):

* ``prompt``: the problem (context, a blank line, then the question; the question alone
  when there is no context);
* ``completions``: one string per step. Steps end at the step boundaries recorded in the
  store (``Step.span``), never at a guessed "\\n": each string is the step's text plus the
  whitespace that followed it in the rationale, so ``"".join(completions)`` is the rationale
  text from its first step on and no separator token is needed (``step_separator=""``);
* ``labels``: one bool per step, or None where the label source has no label for that step
  (kept, so the text stays whole, but to be ignored by the loss: None is never cast to True);
* ``soft_labels``: one float in [0, 1] per step (None where unlabelled): Math-Shepherd's
  fraction of rollouts that reach the gold answer, GroundedPRM's (Q + 1) / 2, 1.0/0.0 for
  hard-only sources;

plus provenance: ``problem_id``, ``rationale_id``, ``source`` (task), ``model``, ``method``,
``label_source``, ``split`` (when a split is given), ``n_labelled``, ``gold``, ``correct``.

``unlabelled`` decides what happens to steps without a label: ``"null"`` (default, as above),
``"truncate"`` (cut each row before its first unlabelled step: plain bool lists, what a TRL
<= 1.13 ``PRMTrainer`` accepts unchanged) or ``"drop"`` (drop rows with any unlabelled step).
Rows without a single labelled step are always dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from ..errors import RationalesError, UnknownNameError
from ..records import Problem, Rationale
from ..store import Store
from ..verify.trained_prm import problem_text, rationale_pieces
from .labels import SOURCES, StepLabel, filter_counts, rationale_labels, require_labels

UNLABELLED = ("null", "truncate", "drop")
#: rationales made by internal machinery (rollouts, judgements), never PRM training rows
INTERNAL_METHODS = ("mc_rollout", "genprm", "grounded_mcts_step", "grounded_mcts_rollout", "mcts_step",
                    "mcts_rollout", "step", "rollout", "faithfulness_probe", "answer_from_rationale")


def problem_prompt(p: Problem) -> str:
    """The ``prompt`` column of a problem."""
    return problem_text(p)


def step_completions(r: Rationale) -> list[str]:
    """One string per step: the step's text and the whitespace after it, cut at the recorded
    spans (any text before the first step is kept at the start of the first). The same cut
    the trained PRMs use when scoring (``verify.trained_prm.rationale_pieces``)."""
    return rationale_pieces(r)


def stepwise_row(problem: Problem, r: Rationale, labels: list[StepLabel], label_source: str,
                 split: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "prompt": problem_prompt(problem),
        "completions": step_completions(r),
        "labels": [lab.hard for lab in labels],
        "soft_labels": [None if lab.hard is None else lab.soft for lab in labels],
        "problem_id": problem.id, "rationale_id": r.id, "source": problem.source, "model": r.model,
        "method": r.method, "label_source": label_source, "gold": problem.gold, "correct": r.correct,
        "n_labelled": sum(lab.hard is not None for lab in labels),
    }
    if split is not None:
        row["split"] = split
    return row


def _apply_unlabelled(row: dict[str, Any], how: str) -> dict[str, Any] | None:
    labels = row["labels"]
    if how == "null":
        return row
    if None not in labels:
        return row
    if how == "drop":
        return None
    k = labels.index(None)
    if k == 0:
        return None
    row = dict(row)
    for col in ("completions", "labels", "soft_labels"):
        row[col] = row[col][:k]
    row["n_labelled"] = k
    return row


def stepwise_rows(store: Store, *, label_source: str = "mc", strict: bool = False, task: str | None = None,
                  model: str | None = None, method: str | None = None,
                  problem_ids: Collection[str] | None = None,
                  split: Mapping[str, str] | Callable[[str], str | None] | None = None,
                  unlabelled: str = "null", rationales: list[Rationale] | None = None,
                  counts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Stepwise rows from the store (see the module doc). Filters: ``task`` (problem source),
    ``model``, ``method``, ``problem_ids``; ``split`` maps a problem id to its split name
    (rows whose split is None are left out). ``rationales`` replaces the store query (the
    problems still come from the store). ``counts``, when given, is filled with label counts
    (``labels.filter_counts``) and the rows kept. Raises ``LabelError`` when nothing is labelled."""
    if label_source not in SOURCES:
        raise UnknownNameError("label source", label_source, SOURCES)
    if unlabelled not in UNLABELLED:
        raise UnknownNameError("unlabelled-step policy", unlabelled, UNLABELLED)
    rs = rationales if rationales is not None else store.rationales(model=model, method=method)
    wanted = set(problem_ids) if problem_ids is not None else None
    problems: dict[str, Problem | None] = {}
    rows, all_labels = [], []
    for r in rs:
        if method is None and r.method in INTERNAL_METHODS:
            continue
        if wanted is not None and r.problem_id not in wanted:
            continue
        if not r.steps:
            continue
        if r.problem_id not in problems:
            problems[r.problem_id] = store.get_problem(r.problem_id)
        p = problems[r.problem_id]
        if p is None or (task is not None and p.source != task):
            continue
        name = None
        if split is not None:
            name = split(r.problem_id) if callable(split) else split.get(r.problem_id)
            if name is None:
                continue
        labels = rationale_labels(r, label_source, strict=strict)
        all_labels.append(labels)
        if not any(lab.hard is not None for lab in labels):
            continue
        row = _apply_unlabelled(stepwise_row(p, r, labels, label_source, name), unlabelled)
        if row is not None:
            rows.append(row)
    c = filter_counts(all_labels)
    c["rows"] = len(rows)
    c["rationales"] = len(all_labels)
    if counts is not None:
        counts.update(c)
    require_labels(c, label_source)
    if not rows:
        from .labels import LabelError

        raise LabelError(f"No stepwise rows left: every labelled rationale has an unlabelled step and "
                         f"unlabelled='{unlabelled}' removed it; use unlabelled='null' or 'truncate'.")
    return rows


def stepwise_dataset(store: Store, **kwargs: Any) -> Any:
    """``stepwise_rows`` as a ``datasets.Dataset``."""
    from datasets import Dataset

    return Dataset.from_list(stepwise_rows(store, **kwargs))


def write_stepwise(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSONL (``.jsonl``) or Parquet (``.parquet``); both load with
    ``datasets.load_dataset("json"|"parquet", data_files=...)`` with list columns intact."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        raise RationalesError(f"Unsupported stepwise file '{path.suffix}': use .jsonl or .parquet.")
    return path


def read_stepwise(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a stepwise JSONL/Parquet file, checked for the columns a PRM needs."""
    import json

    path = Path(path)
    if not path.exists():
        raise RationalesError(f"Stepwise file {path} does not exist; write one with "
                              "`rationales export --format stepwise`.")
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        else:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except Exception as e:  # noqa: BLE001 - any parse failure is the same user error
        raise RationalesError(f"Cannot read stepwise file {path} ({type(e).__name__}: {e}).") from e
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RationalesError(f"Stepwise file {path}, row {i + 1}: not a JSON object with prompt, completions "
                                  "and labels.")
        missing = [c for c in ("prompt", "completions", "labels") if c not in row]
        if missing:
            raise RationalesError(f"Stepwise file {path}, row {i + 1}: missing column(s) {', '.join(missing)}.")
        if not isinstance(row["completions"], list) or not isinstance(row["labels"], list) \
                or not all(isinstance(c, str) for c in row["completions"]) or not isinstance(row["prompt"], str):
            raise RationalesError(f"Stepwise file {path}, row {i + 1}: prompt must be a string and completions a "
                                  "list of strings, labels a list of true/false/null.")
        if any(lab is not None and not isinstance(lab, (bool, int, float)) for lab in row["labels"]):
            raise RationalesError(f"Stepwise file {path}, row {i + 1}: labels must be true, false or null.")
        if len(row["completions"]) != len(row["labels"]):
            raise RationalesError(f"Stepwise file {path}, row {i + 1}: {len(row['completions'])} completions "
                                  f"but {len(row['labels'])} labels.")
    return rows


__all__ = ["stepwise_rows", "stepwise_dataset", "stepwise_row", "step_completions", "problem_prompt",
           "write_stepwise", "read_stepwise", "UNLABELLED"]
