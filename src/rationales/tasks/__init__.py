"""Task loaders: ``load_task(spec)`` turns a task name or path into ``Problem`` records.

Specs:
* ``demo``: the bundled grade-school arithmetic task (20 problems, hand-checked golds);
* ``reasoning_gym:NAME``: any reasoning-gym generator (``size``, ``seed`` options);
* a ``.jsonl`` / ``.json`` / ``.csv`` / ``.tsv`` / ``.parquet`` file (column mapping options);
* a directory saved with ``datasets.save_to_disk`` (optionally ``hf:PATH``).
"""

from __future__ import annotations

import importlib.resources as resources
from pathlib import Path
from typing import Any

from ..errors import TaskError, UnknownNameError
from ..records import Problem

BUNDLED = {"demo": ("demo_math.jsonl", "20 grade-school arithmetic word problems (bundled)")}
FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("rationales.tasks") / "data" / BUNDLED[name][0]))


def _probe(spec: str) -> str:
    """What a path names: 'dataset' (save_to_disk directory), 'dir', 'file' or 'missing'."""
    from . import hf

    try:
        p = Path(spec)
        if hf.is_saved_dataset(p):
            return "dataset"
        if p.is_dir():
            return "dir"
        return "file" if p.exists() else "missing"
    except (OSError, ValueError):  # a name too long, a NUL byte: not a path we can open
        return "missing"


def load_task(spec: str, *, size: int = 50, seed: int = 0, limit: int | None = None,
              **mapping: Any) -> list[Problem]:
    """Load problems for a task spec; ``limit`` keeps the first K."""
    from . import files as file_loader
    from . import hf

    if not isinstance(spec, str) or not spec.strip():
        raise TaskError("No task given: a task is 'demo', reasoning_gym:NAME (see `rationales tasks`), or the path "
                        "of a .jsonl/.json/.csv/.tsv/.parquet file or a saved Hugging Face dataset.")
    if spec in BUNDLED:
        problems = file_loader.rows_to_problems(file_loader._rows(bundled_path(spec)), source=spec,
                                                answer_type="number")
    elif spec.startswith(("reasoning_gym:", "rg:")):
        from . import reasoning_gym

        name = spec.split(":", 1)[1].strip()
        n = max(size, limit or 0)
        problems = reasoning_gym.load(name, size=n, seed=seed)
    elif spec.startswith("hf:") or _probe(spec) == "dataset":
        problems = hf.load(spec[3:] if spec.startswith("hf:") else spec, **mapping)
    elif Path(spec).suffix.lower() in FILE_SUFFIXES or _probe(spec) != "missing":
        if _probe(spec) == "dir":
            raise TaskError(f"{spec} is a directory but not a dataset saved with save_to_disk; give a task file "
                            "or a saved dataset directory.")
        problems = file_loader.load(spec, **mapping)
    else:
        raise UnknownNameError("task", spec, [*BUNDLED, "reasoning_gym:<name>", "<file.jsonl|csv|parquet>"])
    if limit is not None:
        problems = problems[:limit]
    return problems


def list_tasks() -> list[tuple[str, str]]:
    from . import reasoning_gym

    rows = [(name, desc) for name, (_, desc) in BUNDLED.items()]
    try:
        rows += [(f"reasoning_gym:{n}", "reasoning-gym generator") for n in reasoning_gym.task_names()]
    except ImportError:
        rows.append(("reasoning_gym:*", "install reasoning-gym to list its generators"))
    return rows


__all__ = ["load_task", "list_tasks", "Problem"]
