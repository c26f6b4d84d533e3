"""Problems from reasoning-gym's procedural generators (offline, with their own checkers).

``reasoning_gym:NAME`` with ``size`` and ``seed``. Each problem keeps the generator's entry
in ``meta["entry"]`` and its name/size/seed/index in ``meta["rg"]``, so the task's own
``score_answer`` can check answers later in another process: it runs only in the sandbox
worker (``sandbox.py``), which re-creates the dataset, never in this one.
Only full credit (1.0) counts as correct: some tasks give partial credit.
"""

from __future__ import annotations

from typing import Any

from ..errors import TaskError, UnknownNameError
from ..records import Problem


MAX_SIZE = 100_000  # problems generated per task


def task_names() -> list[str]:
    import reasoning_gym  # noqa: F401  (registers the generators)
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def load(name: str, size: int = 50, seed: int = 0, **config: Any) -> list[Problem]:
    """Generate ``size`` problems in the sandbox worker (reasoning-gym code never sees model text
    in this process, and generators that depend on the hash seed give the same problems in every
    run there)."""
    if not isinstance(name, str) or not name:
        raise TaskError("A reasoning-gym task needs a name: reasoning_gym:NAME (see `rationales tasks`).")
    if name not in task_names():
        raise UnknownNameError("reasoning-gym task", name, task_names())
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise TaskError(f"A reasoning-gym task's size must be a whole number from 1 to {MAX_SIZE}, got {size!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise TaskError(f"The task seed must be a whole number from 0 to 2**63-1, got {seed!r}.")
    from .sandbox import run_jobs

    rg = {"name": name, "size": size, "seed": seed, "config": config}
    res = run_jobs([{"kind": "rg_load", "rg": rg}])[0]
    if res.error is not None:
        raise TaskError(f"reasoning-gym task '{name}' could not be created ({res.error}); "
                        "check its options (composite tasks need a config).")
    problems = []
    for i, entry in enumerate(res.value or []):
        problems.append(Problem.make(
            str(entry["question"]), entry.get("answer"), source=f"reasoning_gym:{name}",
            answer_type="reasoning_gym",
            meta={"rg": {"name": name, "size": size, "seed": seed, "index": i, "config": config},
                  "entry": entry}))
    return problems


def score_entry(problem: Problem, answer: str) -> float:
    """reasoning-gym's own score for ``answer`` (0..1), computed in the sandbox worker
    (``rationales.tasks.sandbox``): many of its scorers ``eval`` the answer. A scorer that
    failed or ran out of time scores 0.0 here; ``rationales.answers.grade_answer`` reports why."""
    rg = problem.meta.get("rg")
    if not rg:
        raise TaskError(f"Problem {problem.id} has no reasoning-gym metadata; set answer_type otherwise.")
    from .sandbox import run_jobs

    job = {"kind": "rg", "rg": {k: rg.get(k) for k in ("name", "size", "seed", "index", "config")},
           "answer": answer, "entry": problem.meta.get("entry")}
    res = run_jobs([job])[0]
    return float(res.value) if res.error is None and isinstance(res.value, (int, float)) else 0.0
