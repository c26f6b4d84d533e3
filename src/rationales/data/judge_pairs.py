"""Judge data from the store, and preference pairs from a judge's own judgments.

* ``reasoning_pairs``: a RewardBench-style reasoning subset built where truth is known: for a
  problem with both a correct and a wrong stored rationale, a ``PairItem`` (instruction = the
  problem, responses = the two rationales, the correct one's side chosen by a seeded hash so
  the gold label is half A, half B). ``absolute_items``: each rationale as a ``JudgeItem`` whose
  gold score is the scale top when correct and the bottom when wrong.
* ``split_items``: disjoint train/test items by problem (``data.splits``, recorded in the store).
* ``judgment_pairs``: the self-rationalization pairs of seeds/001: for each item (and each
  prompt order of a pairwise judge) ``chosen`` = a sampled judgment whose verdict matches the
  reference (gold; the majority verdict where there is none), ``rejected`` = one that does not
  (a wrong verdict first, then an unreadable one). Rows are TRL's conversational preference
  format: ``prompt`` (messages), ``chosen`` / ``rejected`` (one assistant message each).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import RationalesError
from ..records import Problem, Rationale, content_hash
from ..store import Store
from ..verify.judge import JudgeItem, Judgment, PairItem


class JudgeDataError(RationalesError):
    """No usable judge data (no pairs, no items)."""


def _usable(r: Rationale) -> bool:
    return r.correct is not None and r.outcome in ("ok", "no_answer", "truncated") and bool(r.text.strip())


def _instruction(p: Problem) -> str:
    return p.question if not p.context else f"{p.context}\n\n{p.question}"


def stored_rationales(store: Store, *, model: str | None = None, method: str | None = None,
                      problem_ids: set[str] | None = None, judge_methods: bool = False) -> list[Rationale]:
    """Stored rationales with a known correctness (the store's own judge/PRM outputs left out)."""
    rs = store.rationales(model=model, method=method)
    if not judge_methods:
        rs = [r for r in rs if r.method not in ("genprm", "judge")]
    if problem_ids is not None:
        rs = [r for r in rs if r.problem_id in problem_ids]
    return [r for r in rs if _usable(r)]


def reasoning_pairs(store: Store, *, model: str | None = None, method: str | None = None,
                    problem_ids: set[str] | None = None, per_problem: int = 1, seed: int = 0,
                    rubric: Any = None) -> list[PairItem]:
    """Pairs (correct, wrong) of one problem's stored rationales, at most ``per_problem`` per
    problem (distinct rationales), gold side balanced by a seeded hash."""
    if per_problem < 1:
        raise JudgeDataError(f"per_problem must be at least 1, got {per_problem}.")
    groups: dict[str, list[Rationale]] = {}
    for r in stored_rationales(store, model=model, method=method, problem_ids=problem_ids):
        groups.setdefault(r.problem_id, []).append(r)
    out: list[PairItem] = []
    for pid, rs in groups.items():
        right = _dedupe([r for r in rs if r.correct])
        wrong = _dedupe([r for r in rs if not r.correct])
        if not right or not wrong:
            continue
        problem = store.get_problem(pid)
        if problem is None:
            continue
        rng = random.Random(content_hash("judge-pairs", seed, pid))
        rng.shuffle(right)
        rng.shuffle(wrong)
        for k in range(min(per_problem, len(right), len(wrong))):
            good, bad = right[k], wrong[k]
            a_is_good = int(content_hash("side", seed, good.id, bad.id), 16) % 2 == 0
            a, b = (good, bad) if a_is_good else (bad, good)
            out.append(PairItem(_instruction(problem), a.text, b.text, rubric=rubric,
                                id=content_hash("reasoning-pair", good.id, bad.id, seed),
                                gold="A" if a_is_good else "B",
                                meta={"problem_id": pid, "correct_id": good.id, "wrong_id": bad.id,
                                      "model": good.model, "gold_answer": problem.gold}))
    return out


def _dedupe(rs: list[Rationale]) -> list[Rationale]:
    seen, out = set(), []
    for r in rs:
        key = " ".join(r.text.split())
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def absolute_items(store: Store, *, model: str | None = None, method: str | None = None,
                   problem_ids: set[str] | None = None, low: int = 1, high: int = 5, reference: bool = False,
                   rubric: Any = None, limit: int | None = None) -> list[JudgeItem]:
    """Each stored rationale as an item with gold = ``high`` (correct) or ``low`` (wrong)."""
    out = []
    problems: dict[str, Problem | None] = {}
    for r in stored_rationales(store, model=model, method=method, problem_ids=problem_ids):
        if r.problem_id not in problems:
            problems[r.problem_id] = store.get_problem(r.problem_id)
        p = problems[r.problem_id]
        if p is None:
            continue
        ref = f"The answer is {p.gold}." if reference and p.gold is not None else None
        out.append(JudgeItem(_instruction(p), r.text, ref, rubric, id=f"rationale:{r.id}",
                             gold=float(high if r.correct else low),
                             meta={"problem_id": p.id, "rationale_id": r.id, "correct": r.correct}))
        if limit is not None and len(out) >= limit:
            break
    return out


def split_items(store: Store, items: Sequence[Any], *, name: str = "judge", test_fraction: float = 0.5,
                seed: int = 0) -> tuple[list[Any], list[Any]]:
    """(train, test) items with no problem on both sides; the split is recorded in the store."""
    from .splits import record_split

    pids = [it.meta.get("problem_id", it.id) for it in items]
    split = record_split(store, dict.fromkeys(pids), name=name, test_fraction=test_fraction, seed=seed)
    test = set(split.test)
    train_items = [it for it, pid in zip(items, pids) if pid not in test]
    test_items = [it for it, pid in zip(items, pids) if pid in test]
    return train_items, test_items


def _target(j: Judgment, gold: Any) -> Any:
    if gold is not None:
        return gold
    vals = [tuple(s.value) if isinstance(s.value, list) else s.value for s in j.samples
            if s.value is not None and s.how != "forced"]
    if not vals:
        return None
    (top, c), *rest = Counter(vals).most_common(2) + [(None, 0)]
    if rest and rest[0][1] == c:  # no majority
        return None
    return list(top) if isinstance(top, tuple) else top


def judgment_pairs(judge: Any, items: Sequence[Any], judgments: Sequence[Judgment], *, per_item: int = 1,
                   seed: int = 0, iteration: int = 0) -> list[dict[str, Any]]:
    """DPO rows from a judge's own sampled judgments (seeds/001). ``judge.prompt`` renders each
    item's prompt (pairwise: ``prompt(item, swapped)``); only samples whose text states its
    verdict (not forced ones) can be chosen. Returns rows with ``prompt``, ``chosen``,
    ``rejected`` (conversational) and provenance fields."""
    by_id = {it.id: it for it in items}
    rows: list[dict[str, Any]] = []
    for j in judgments:
        it = by_id.get(j.item_id)
        if it is None:
            continue
        target = _target(j, getattr(it, "gold", None))
        if target is None:
            continue
        groups: dict[str, list[Any]] = {}
        for s in j.samples:
            groups.setdefault(s.order or "", []).append(s)
        for order, ss in groups.items():
            good = [s for s in ss if s.value == target and s.how != "forced" and s.text.strip()]
            bad_wrong = [s for s in ss if s.value is not None and s.value != target and s.how != "forced"]
            bad_unread = [s for s in ss if s.value is None or s.how == "forced"]
            bad = bad_wrong + bad_unread
            if not good or not bad:
                continue
            rng = random.Random(content_hash("jpairs", seed, j.item_id, order, iteration))
            rng.shuffle(good)
            prompt = judge.prompt(it, order == "BA") if j.kind == "pairwise" else judge.prompt(it)
            for k in range(min(per_item, len(good), len(bad))):
                c, r = good[k], bad[k]
                if " ".join(c.text.split()) == " ".join(r.text.split()):
                    continue
                rows.append({"prompt": prompt.messages, "chosen": [{"role": "assistant", "content": c.text}],
                             "rejected": [{"role": "assistant", "content": r.text}], "item_id": j.item_id,
                             "order": order, "target": target, "chosen_verdict": c.value,
                             "rejected_verdict": r.value, "rejected_how": r.how, "iteration": iteration,
                             "reference": "gold" if getattr(it, "gold", None) is not None else "majority"})
    return rows


__all__ = ["reasoning_pairs", "absolute_items", "split_items", "judgment_pairs", "stored_rationales",
           "JudgeDataError"]
