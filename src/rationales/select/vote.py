"""Greedy, majority vote (self-consistency) and weighted vote over sampled rationales.

Self-consistency: Wang et al., 2023, "Self-Consistency Improves Chain of Thought Reasoning in
Language Models" — sample many rationales and take the most frequent final answer. Weighted
vote sums a per-rationale score (PRM, judge, ...) instead of counting (Li et al., 2023 /
Uesato et al., 2022). Answers are grouped by their normalised form (``answers.normalize``), so
"$18", "18.00" and "18" are one vote. Rationales with no answer do not vote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..records import Problem, Rationale
from ..answers import check_answer, normalize
from ..score.utility import utility_weight
from ..stats import accuracy


@dataclass
class Selection:
    """The outcome of a strategy on one problem."""

    problem_id: str
    answer: str | None
    correct: bool | None
    confidence: float | None
    tokens: int
    chosen: str | None = None  # id of a representative rationale
    votes: dict[str, float] = field(default_factory=dict)
    strategy: str = ""
    meta: dict = field(default_factory=dict)  # strategy details: samples used, steps, tree key, ...


def greedy(problem: Problem, rationale: Rationale) -> Selection:
    return Selection(problem.id, rationale.answer, bool(rationale.correct), None, rationale.tokens,
                     rationale.id, strategy="greedy")


def weighted_vote(problem: Problem, rationales: Sequence[Rationale],
                  weight: Callable[[Rationale], float | None] = lambda r: 1.0,
                  strategy: str = "weighted_vote") -> Selection:
    """Sum weights per normalised answer; the heaviest answer wins (ties: first seen).
    Confidence = the winner's share of the total weight of answered rationales."""
    tally: dict[str, float] = {}
    rep: dict[str, Rationale] = {}
    for r in rationales:
        key = normalize(r.answer)
        if key is None:
            continue
        w = weight(r)
        w = 0.0 if w is None else float(w)
        tally[key] = tally.get(key, 0.0) + w
        rep.setdefault(key, r)
    tokens = sum(r.tokens for r in rationales)
    if not tally:
        return Selection(problem.id, None, False if problem.gold is not None or problem.answer_type == "reasoning_gym" else None,
                         0.0, tokens, None, strategy=strategy)
    best = max(tally, key=lambda k: (tally[k], -list(tally).index(k)))
    total = sum(tally.values())
    winner = rep[best]
    return Selection(problem.id, winner.answer, check_answer(problem, winner.answer),
                     tally[best] / total if total > 0 else 0.0, tokens, winner.id, dict(tally), strategy)


def majority_vote(problem: Problem, rationales: Sequence[Rationale]) -> Selection:
    """Self-consistency; confidence = vote share among answered samples."""
    return weighted_vote(problem, rationales, lambda r: 1.0, strategy="vote")


def has_wrong_step(r: Rationale) -> bool:
    """True when a tool check found a wrong step (``verify.arithmetic.check_rationale`` adds them)."""
    return any(c.kind == "tool" and c.verdict is not None and c.verdict < 0 for s in r.steps for c in s.checks)


def tool_filtered_vote(problem: Problem, rationales: Sequence[Rationale]) -> Selection:
    """Majority vote among the rationales with no tool-checked wrong step (run the tool check
    first). When every rationale has a wrong step, all of them vote (the filter never leaves a
    problem unanswered); ``meta["kept"]`` says how many passed. Tokens: all samples."""
    kept = [r for r in rationales if not has_wrong_step(r)]
    sel = weighted_vote(problem, kept or list(rationales), lambda r: 1.0, strategy="tool_vote")
    sel.tokens = sum(r.tokens for r in rationales)
    sel.meta = {"kept": len(kept), "samples": len(rationales), "fallback": not kept}
    return sel


def strategy_row(selections: Sequence[Selection]) -> dict[str, Any]:
    acc = accuracy([s.correct for s in selections])
    row = acc.as_dict()
    row["tokens"] = sum(s.tokens for s in selections)
    conf = [s.confidence for s in selections if s.confidence is not None]
    if conf:
        row["mean_confidence"] = round(sum(conf) / len(conf), 4)
    return row


def utility_vote(problem: Problem, rationales: Sequence[Rationale], scale: float = 1.0) -> Selection:
    """Weighted vote, each rationale weighted by ``utility_weight`` (gold-free)."""
    return weighted_vote(problem, rationales, lambda r: utility_weight(r, scale=scale), strategy="utility_vote")


def filtered_vote(problem: Problem, rationales: Sequence[Rationale], keep: Any, strategy: str) -> Selection:
    """Majority vote over the rationales ``keep`` accepts (all of them when it accepts none);
    tokens count every rationale, since all were generated."""
    kept = [r for r in rationales if keep(r)] or list(rationales)
    sel = majority_vote(problem, kept)
    sel.tokens = sum(r.tokens for r in rationales)
    sel.strategy = strategy
    return sel
