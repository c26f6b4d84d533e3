"""Which stored rationales a training set is made of: one selection shared by every format.

``DataFilter`` holds the options (task, model, method, correct only, deduplicated, agreeing with
the self-consistency answer, at most K per problem, split side); ``select(store, f)`` returns the
problems with their kept rationales, in store order, plus a provenance record that trainers copy
into the model card. Rules:

* ``method=None`` keeps only *primary* rationales: those with no ``parent_id`` (probes,
  reductions, rollouts and step-controlled continuations are derived records of another one)
  and whose method is not an internal one (MC rollouts, search steps, probes).
* The self-consistency answer of a problem is the majority vote (``select.vote``) over *all*
  that problem's rationales that pass the task/model/method filters, before any other filter,
  so "agrees with self-consistency" means what QCRD means by it.
* Deduplication compares whitespace-collapsed, case-folded text; the first stored copy is kept.
* ``max_per_problem`` keeps the first K after the other filters (store order = sample order).
* The split is by problem and recorded in the store (``data.splits``); ``split="train"`` (the
  default for training) never returns a problem on the test side.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..answers import normalize
from ..errors import RationalesError
from ..records import Problem, Rationale
from ..select.vote import majority_vote
from ..store import Store
from .splits import record_split

INTERNAL_METHODS = frozenset({"mc_rollout", "genprm", "grounded_mcts_step", "grounded_mcts_rollout", "mcts_step",
                              "mcts_rollout", "step", "rollout", "faithfulness_probe", "answer_from_rationale",
                              "reduced", "scdpo", "qcrd_negative"})
SPLIT_SIDES = ("train", "test", "all")


class DataFilterError(RationalesError):
    pass


@dataclass
class DataFilter:
    """Selection options (the CLI offers each as an option of the same name)."""

    task: str | None = field(default=None, metadata={"help": "Only problems of this task (their source, e.g. "
                                                             "reasoning_gym:basic_arithmetic)."})
    model: str | None = field(default=None, metadata={"help": "Only rationales written by this model."})
    method: str | None = field(default=None, metadata={"help": "Only rationales of this method (default: every "
                                                               "primary rationale)."})
    correct_only: bool = field(default=False, metadata={"help": "Keep only rationales whose answer is correct."})
    dedupe: bool = field(default=True, metadata={"help": "Drop rationales whose text repeats an earlier one."})
    agree_sc: bool = field(default=False, metadata={"help": "Keep only rationales whose answer is the problem's "
                                                            "self-consistency (majority) answer."})
    max_per_problem: int | None = field(default=None, metadata={"help": "At most K rationales per problem."})
    split: str = field(default="train", metadata={"help": "Split side to use: train, test or all."})
    split_name: str = field(default="default", metadata={"help": "Name of the recorded train/test split."})
    test_fraction: float = field(default=0.2, metadata={"help": "Share of problems on the test side of a new "
                                                                "split."})
    split_seed: int = field(default=0, metadata={"help": "Seed of the split's problem assignment."})
    template: str = field(default="cot", metadata={"help": "Prompt template the rows are rendered with."})

    def __post_init__(self) -> None:
        if self.split not in SPLIT_SIDES:
            raise DataFilterError(f"split must be one of {', '.join(SPLIT_SIDES)}, got '{self.split}'.")
        if self.max_per_problem is not None and (not isinstance(self.max_per_problem, int) or self.max_per_problem < 1):
            raise DataFilterError(f"max_per_problem must be a positive integer, got {self.max_per_problem!r}.")
        if not math.isfinite(self.test_fraction) or not 0.0 <= self.test_fraction < 1.0:
            raise DataFilterError(f"test_fraction must be in [0, 1), got {self.test_fraction!r}.")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProblemGroup:
    """A problem, its kept rationales, the self-consistency answer and every candidate (kept or
    not, for builders that need the wrong ones too)."""

    problem: Problem
    rationales: list[Rationale]
    sc_answer: str | None
    candidates: list[Rationale]
    side: str


@dataclass
class SelectionResult:
    groups: list[ProblemGroup]
    provenance: dict[str, Any]

    @property
    def rationales(self) -> list[Rationale]:
        return [r for g in self.groups for r in g.rationales]


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def is_primary(r: Rationale) -> bool:
    return r.parent_id is None and r.method not in INTERNAL_METHODS


def select(store: Store, f: DataFilter) -> SelectionResult:
    """The problems and rationales ``f`` selects (see the module doc)."""
    rs = store.rationales(model=f.model, method=f.method)
    if f.method is None:
        rs = [r for r in rs if is_primary(r)]
    by_problem: dict[str, list[Rationale]] = {}
    for r in rs:
        by_problem.setdefault(r.problem_id, []).append(r)
    problems: dict[str, Problem] = {}
    for pid in by_problem:
        p = store.get_problem(pid)
        if p is not None and (f.task is None or p.source == f.task):
            problems[pid] = p
    split = record_split(store, list(problems), name=f.split_name, test_fraction=f.test_fraction, seed=f.split_seed)
    sides = {pid: "train" for pid in split.train} | {pid: "test" for pid in split.test}
    counts = {"rationales_seen": 0, "dropped_wrong": 0, "dropped_duplicate": 0, "dropped_disagree_sc": 0,
              "dropped_over_k": 0, "dropped_other_split": 0, "dropped_no_text": 0}
    groups: list[ProblemGroup] = []
    for pid, cands in by_problem.items():
        p = problems.get(pid)
        if p is None:
            continue
        counts["rationales_seen"] += len(cands)
        side = sides.get(pid, "train")
        if f.split != "all" and side != f.split:
            counts["dropped_other_split"] += len(cands)
            continue
        sc = majority_vote(p, cands).answer
        sc_key = normalize(sc)
        kept: list[Rationale] = []
        seen: set[str] = set()
        for r in cands:
            if not r.text.strip():
                counts["dropped_no_text"] += 1
                continue
            if f.correct_only and r.correct is not True:
                counts["dropped_wrong"] += 1
                continue
            if f.agree_sc and (sc_key is None or normalize(r.answer) != sc_key):
                counts["dropped_disagree_sc"] += 1
                continue
            k = _key(r.text)
            if f.dedupe and k in seen:
                counts["dropped_duplicate"] += 1
                continue
            if f.max_per_problem is not None and len(kept) >= f.max_per_problem:
                counts["dropped_over_k"] += 1
                continue
            seen.add(k)
            kept.append(r)
        groups.append(ProblemGroup(p, kept, sc, cands, side))
    n_kept = sum(len(g.rationales) for g in groups)
    provenance = {"store": str(store.path), "filters": f.as_dict(), "split": split.summary(),
                  "problems": len(groups), "rationales": n_kept, "counts": counts,
                  "models": sorted({r.model for g in groups for r in g.rationales})}
    return SelectionResult(groups, provenance)
