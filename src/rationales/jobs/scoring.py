"""The step scorers of the compare strategies (``--prm llm|genprm|tool``): a fresh scorer per
strategy (``make_scorer``) and the PRM rewards of samples, kept on their steps in the store so a
sample is scored once per scorer (``prm_rewards``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backends.base import Backend
from ..records import Problem, Rationale, Score
from ..store import Store
from ..verify.scorers import checker_name


def make_scorer(kind: str, backend: Backend, rel_tol: float = 1e-6) -> Any:
    """A fresh step scorer (fresh: in-memory caches never make a later strategy's scoring free);
    a generative scorer's backend counts the tokens it generates."""
    from ..select.step_search import CountingBackend
    from ..verify.scorers import make_step_scorer

    key = checker_name(kind, scorers_only=True, what="PRM")
    return make_step_scorer(key, CountingBackend(backend) if key == "genprm" else backend, rel_tol=rel_tol)


def unscored(problems: Sequence[Problem], samples: Sequence[Sequence[Rationale]], scored: Any
             ) -> tuple[list[Problem], list[Rationale]]:
    """The samples that ``scored`` says still need scoring, each with its problem (flattened), so a
    scorer or judge runs once over all of them and a stored score is never recomputed."""
    todo_p, todo_r = [], []
    for p, rs in zip(problems, samples):
        for r in rs:
            if not scored(r):
                todo_p.append(p)
                todo_r.append(r)
    return todo_p, todo_r


def prm_rewards(problems: Sequence[Problem], samples: Sequence[Sequence[Rationale]], scorer: Any,
                store: Store) -> tuple[dict[str, list[float | None]], dict[str, int]]:
    """Step rewards of every sample (rationale id -> rewards) and the scorer tokens charged to
    each. Rewards are kept on the steps (``Check(kind="prm")``, via ``verify.prm.prm_checks``)
    and stored, so a sample is scored once per scorer."""
    from ..select.step_search import scorer_tokens
    from ..verify.prm import prm_checks, scorer_name

    by = scorer_name(scorer)

    def scored(r: Rationale) -> bool:
        return any(s.kind == "prm_cost" and s.by == by for s in r.scores)

    todo_p, todo_r = unscored(problems, samples, scored)
    if todo_r:
        before = scorer_tokens(scorer)
        prm_checks(scorer, todo_p, todo_r)
        spent = scorer_tokens(scorer) - before
        for k, r in enumerate(todo_r):
            share = spent // len(todo_r) + (1 if k < spent % len(todo_r) else 0)
            r.set_score(Score(kind="prm_cost", value=float(share), by=by, detail={"tokens": share}))
        store.put_rationales(todo_r)
    rewards, cost = {}, {}
    for rs in samples:
        for r in rs:
            rewards[r.id] = [next((c.score for c in reversed(s.checks) if c.kind == "prm" and c.by == by), None)
                             for s in r.steps]
            cost[r.id] = int(next((s.value or 0 for s in r.scores if s.kind == "prm_cost" and s.by == by), 0))
    return rewards, cost
