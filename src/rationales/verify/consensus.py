"""Consensus step labels: combine the tool, Monte-Carlo and PRM verdicts of each step.

Each step contributes the latest verdict of each source kind (``tool``, ``mc``, ``prm``) that
is not None (for ``prm``: the latest decided PRM check, LLM PRM or generative PRM). Counts, independent of the rule:

* ``agree``: two or more verdicts, all equal;
* ``disagree``: two or more verdicts that differ;
* ``single``: exactly one verdict;
* ``none``: no verdict at all;
* ``pairs``: for each pair of sources present on a step ("tool/mc", "tool/prm", "mc/prm"),
  how often they agree and disagree.

Rules (the consensus verdict; None = no label, the step is dropped from training data):

* ``agree`` (default): the common verdict when all available verdicts agree (one verdict
  agrees with itself), None when they disagree. High precision, lower coverage - the
  GroundedPRM-style "keep only labels the sources agree on".
* ``majority``: the sign of the sum of verdicts; None on a tie.
* ``tool_first``: a tool verdict of -1 decides (a wrong computation is wrong whatever a model
  thinks); otherwise the majority of the mc and prm verdicts, the tool's +1 breaking a tie;
  with only a tool +1, +1. Tools are precise but cover little (ENVIRONMENT.md: most wrong
  answers contain no wrong arithmetic), so their +1 alone does not outvote the others.

Labels are attached as ``Check(kind="consensus", by=rule, verdict, detail={"sources": ...})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

from ..errors import UnknownNameError
from ..records import Check, Rationale, Step

SOURCES = ("tool", "mc", "prm")
RULES = ("agree", "majority", "tool_first")


def step_sources(step: Step, sources: Sequence[str] = SOURCES) -> dict[str, int]:
    """The latest non-None verdict of each source kind on a step."""
    out: dict[str, int] = {}
    for kind in sources:
        for c in reversed(step.checks):
            if c.kind == kind and c.verdict is not None:
                out[kind] = 1 if c.verdict > 0 else -1
                break
    return out


def _sign(total: int) -> int | None:
    return 1 if total > 0 else (-1 if total < 0 else None)


def combine(verdicts: dict[str, int], rule: str = "agree") -> int | None:
    """The consensus verdict of one step's source verdicts under ``rule``."""
    if rule not in RULES:
        raise UnknownNameError("consensus rule", rule, RULES)
    vals = list(verdicts.values())
    if not vals:
        return None
    if rule == "agree":
        return vals[0] if all(v == vals[0] for v in vals) else None
    if rule == "majority":
        return _sign(sum(vals))
    tool = verdicts.get("tool")
    if tool == -1:
        return -1
    others = [v for k, v in verdicts.items() if k != "tool"]
    if not others:
        return tool
    return _sign(sum(others)) or tool


def consensus_labels(rationales: Sequence[Rationale], rule: str = "agree",
                     sources: Sequence[str] = SOURCES) -> tuple[list[Rationale], dict[str, Any]]:
    """Attach a consensus check to every step (in place) and count agreement.

    Returns (rationales, counts) with counts ``{"agree", "disagree", "single", "none",
    "pairs": {"tool/mc": {"agree", "disagree"}, ...}, "labels": {"+1", "-1", "none"}}``."""
    if rule not in RULES:
        raise UnknownNameError("consensus rule", rule, RULES)
    counts: dict[str, Any] = {"agree": 0, "disagree": 0, "single": 0, "none": 0,
                              "pairs": {f"{a}/{b}": {"agree": 0, "disagree": 0} for a, b in combinations(sources, 2)},
                              "labels": {"+1": 0, "-1": 0, "none": 0}}
    for r in rationales:
        for step in r.steps:
            got = step_sources(step, sources)
            vals = list(got.values())
            if not vals:
                counts["none"] += 1
            elif len(vals) == 1:
                counts["single"] += 1
            elif all(v == vals[0] for v in vals):
                counts["agree"] += 1
            else:
                counts["disagree"] += 1
            for a, b in combinations(sources, 2):
                if a in got and b in got:
                    counts["pairs"][f"{a}/{b}"]["agree" if got[a] == got[b] else "disagree"] += 1
            verdict = combine(got, rule)
            counts["labels"]["none" if verdict is None else ("+1" if verdict > 0 else "-1")] += 1
            step.checks = [c for c in step.checks if c.kind != "consensus"]
            step.checks.append(Check(kind="consensus", by=rule, verdict=verdict,
                                     detail={"rule": rule, "sources": got}))
    return list(rationales), counts


__all__ = ["consensus_labels", "combine", "step_sources", "RULES", "SOURCES"]
