"""Best-of-N: keep the one sampled rationale a process reward model likes best.

Cobbe et al., 2021 (verifier reranking) and Lightman et al., 2023 / Wang et al., 2024
(Math-Shepherd) with a PRM: a rationale's score is its step rewards aggregated by ``min``
(default: a chain is as good as its worst step), ``last``, ``product`` or ``mean``
(``score.prm.aggregate``; a step reward the scorer could not produce is skipped, and a
rationale with no reward at all scores 0.5). Rationales that state an answer are preferred
over those that do not (a no-answer pick is never right); ties go to the earlier sample.
Tokens: every sample counts, since all N were generated to make the choice (scorer tokens are
added by the caller).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import RationalesError
from ..records import Problem, Rationale
from ..answers import check_answer, normalize
from .vote import Selection


def rationale_score(rewards: Sequence[float | None], how: str = "min") -> float:
    """A rationale's PRM score: its step rewards aggregated by ``how``. Rewards the scorer
    could not produce (None) are skipped; with none left the score is 0.5 (undecided)."""
    from ..verify.prm import aggregate

    value = aggregate(list(rewards), how)
    return 0.5 if value is None else float(value)


def best_of_n(problem: Problem, rationales: Sequence[Rationale], step_rewards: Sequence[Sequence[float | None]],
              how: str = "min") -> Selection:
    """The rationale with the highest aggregated step reward; confidence = that score."""
    if len(rationales) != len(step_rewards):
        raise RationalesError(f"best_of_n got {len(rationales)} rationales but {len(step_rewards)} reward lists.")
    tokens = sum(r.tokens for r in rationales)
    scores = [rationale_score(rw, how) for rw in step_rewards]
    pool = [i for i, r in enumerate(rationales) if r.answer is not None] or list(range(len(rationales)))
    if not pool:
        return Selection(problem.id, None, check_answer(problem, None), 0.0, 0, None, strategy="best_of_n",
                         meta={"how": how})
    best = pool[0]
    for i in pool[1:]:
        if scores[i] > scores[best]:
            best = i
    votes: dict[str, float] = {}
    for r, s in zip(rationales, scores):
        key = normalize(r.answer)
        if key is not None:
            votes[key] = max(votes.get(key, -float("inf")), s)
    chosen = rationales[best]
    return Selection(problem.id, chosen.answer, check_answer(problem, chosen.answer), scores[best], tokens,
                     chosen.id, votes, "best_of_n", meta={"how": how, "scores": scores, "samples": len(rationales)})
