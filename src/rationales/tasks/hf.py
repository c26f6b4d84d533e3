"""Problems from a Hugging Face dataset saved with ``datasets.save_to_disk`` (offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import TaskError
from ..records import Problem
from .files import rows_to_problems


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json"))


def load(path: str | Path, split: str | None = None, **mapping: Any) -> list[Problem]:
    try:
        import datasets
    except ImportError as e:
        raise TaskError("Loading saved datasets needs the `datasets` package: pip install 'rationales[hf]'.") from e
    path = Path(path)
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise TaskError(f"{path} is not a dataset saved with save_to_disk ({e}).") from e
    except Exception as e:  # a damaged saved dataset: arrow/json/fsspec errors
        if type(e).__module__.split(".")[0] in ("datasets", "pyarrow", "fsspec", "json") or isinstance(e, OSError):
            raise TaskError(f"Cannot read the saved dataset {path} ({type(e).__name__}: {str(e)[:200]}).") from e
        raise
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            split = "test" if "test" in ds else next(iter(ds))
        if split not in ds:
            raise TaskError(f"{path} has no split '{split}' (splits: {', '.join(ds)}).")
        ds = ds[split]
    return rows_to_problems(ds.to_list(), source=f"hf:{path.name}", **mapping)
