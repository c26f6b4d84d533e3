"""Small statistics used by every report: accuracy with a Wilson 95% interval, and the exact
McNemar test on paired right/wrong outcomes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (better than normal at small n)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Accuracy:
    correct: int
    total: int

    @property
    def value(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.total)

    def as_dict(self) -> dict[str, float]:
        lo, hi = self.ci
        return {"accuracy": round(self.value, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4),
                "correct": self.correct, "n": self.total}


def accuracy(flags: Sequence[bool | None]) -> Accuracy:
    """Accuracy over problems; None (no verdict possible) counts as wrong."""
    return Accuracy(sum(1 for f in flags if f), len(flags))


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int, float]:
    """Exact two-sided McNemar test of paired outcomes (a binomial test on the discordant pairs):
    (items only ``b`` gets right, items only ``a`` gets right, p-value).

    >>> mcnemar_exact([False, False, False, True], [True, True, True, True])
    (3, 0, 0.25)
    """
    b_only = sum(1 for x, y in zip(a, b) if not x and y)
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    n = b_only + a_only
    if n == 0:
        return b_only, a_only, 1.0
    tail = sum(math.comb(n, i) for i in range(min(b_only, a_only) + 1)) / 2 ** n
    return b_only, a_only, min(1.0, 2 * tail)
