"""Problems from reasoning-gym's procedural generators (offline, with their own checkers).

``reasoning_gym:NAME`` with ``size`` and ``seed``. Each problem keeps the generator's entry
in ``meta["entry"]`` so the task's own ``score_answer`` can check answers later, even in
another process (the dataset is re-created from name/size/seed, cached per process).
Only full credit (1.0) counts as correct: some tasks give partial credit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..errors import TaskError, UnknownNameError
from ..records import Problem


def task_names() -> list[str]:
    import reasoning_gym  # noqa: F401  (registers the generators)
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


@lru_cache(maxsize=64)
def _dataset(name: str, size: int, seed: int, config_items: tuple = ()) -> Any:
    import reasoning_gym

    try:
        return reasoning_gym.create_dataset(name, size=size, seed=seed, **dict(config_items))
    except (TypeError, ValueError, AssertionError) as e:
        raise TaskError(f"reasoning-gym task '{name}' could not be created ({e}); "
                        "check its options (composite tasks need a config).") from e


def load(name: str, size: int = 50, seed: int = 0, **config: Any) -> list[Problem]:
    if name not in task_names():
        raise UnknownNameError("reasoning-gym task", name, task_names())
    ds = _dataset(name, size, seed, tuple(sorted(config.items())))
    problems = []
    for i in range(len(ds)):
        entry = ds[i]
        problems.append(Problem.make(
            entry["question"], entry.get("answer"), source=f"reasoning_gym:{name}",
            answer_type="reasoning_gym",
            meta={"rg": {"name": name, "size": size, "seed": seed, "index": i, "config": config},
                  "entry": _jsonable(entry)}))
    return problems


def _jsonable(entry: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(entry, default=str))


def score_entry(problem: Problem, answer: str) -> float:
    """reasoning-gym's own score for ``answer`` (0..1)."""
    rg = problem.meta.get("rg")
    if not rg:
        raise TaskError(f"Problem {problem.id} has no reasoning-gym metadata; set answer_type otherwise.")
    ds = _dataset(rg["name"], rg["size"], rg["seed"], tuple(sorted((rg.get("config") or {}).items())))
    entry = ds[rg["index"]]
    try:
        return float(ds.score_answer(answer, entry) or 0.0)
    except Exception:  # a checker crashing on odd model output is a wrong answer, not a crash
        return 0.0
