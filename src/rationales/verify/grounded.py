"""GroundedPRM's hybrid step reward (Zhang et al., 2025): tool verdicts of a path's steps plus
its final-answer verdict, earlier steps weighing more. The tree search that uses it is
select/grounded.py."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import RationalesError
from ..records import Rationale


def hybrid_reward(step_verdicts: Sequence[int | None], final: int) -> float:
    """R = sum_{i=1..N} (1/N) v_i (N-i+1)/N + F/N (GroundedPRM). ``None`` verdicts count as 0.

    >>> round(hybrid_reward([1, -1, 0], 1), 6)   # 1/3 - 2/9 + 0 + 1/3 = 4/9
    0.444444
    """
    if final not in (-1, 0, 1):
        raise RationalesError(f"hybrid_reward: the final verdict must be +1 or -1 (0 if unknown), got {final}.")
    vs = [0 if v is None else int(v) for v in step_verdicts]
    if any(v not in (-1, 0, 1) for v in vs):
        raise RationalesError(f"hybrid_reward: step verdicts must be +1, -1 or 0/None, got {list(step_verdicts)}.")
    n = len(vs)
    if n == 0:
        return float(final)
    return sum((1.0 / n) * v * (n - i + 1) / n for i, v in enumerate(vs, start=1)) + final / n


def path_reward(rationale: Rationale) -> float:
    """The hybrid reward of a finished, tool-checked path (F from ``rationale.correct``)."""
    return hybrid_reward([s.verdict("tool") for s in rationale.steps], 1 if rationale.correct else -1)
