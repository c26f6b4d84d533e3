"""Step labels for PRM training, read from the ``Check``s already in the store.

One function, ``step_label(step, source)``, turns a step's stored checks into a training label
``(hard, soft)``: ``hard`` is True/False or None (no label: the step is kept but ignored by
the loss, never cast to True), ``soft`` a float in [0, 1] or None. Sources:

* ``tool``: the arithmetic tool check (``Check(kind="tool")``); steps without a checkable
  claim have no label.
* ``mc``: Math-Shepherd Monte-Carlo labels (``Check(kind="mc", by="math-shepherd")``): hard =
  any of the N rollouts from the step reaches the gold answer, soft = the fraction that do.
* ``grounded``: GroundedPRM tree labels (``Check(kind="mc", by="grounded_mcts")``, Q in
  [-1, 1] from the hybrid reward R = sum (1/N) v_i (N-i+1)/N + F/N backed up through the
  tree): hard = Q > 0, soft = (Q + 1) / 2; a step the tool found wrong is False (soft 0)
  whatever its Q, as the paper's tool verdict v_i = -1 says.
* ``consensus``: Qwen2.5-Math-PRM's consensus filtering (Zhang et al. 2025, "The Lessons of
  Developing Process Reward Models"): keep a step only where the MC verdict and the
  tool/judge verdict agree; disagreeing steps get no label. ``strict=True`` (the paper) also
  drops steps that have an MC verdict but no tool/judge verdict; ``strict=False`` keeps the MC
  label there (our tool check abstains on prose, so strict filtering keeps few steps).
* ``mc_tool``: the MC label, with the tool check's negatives added: a step the arithmetic tool
  found wrong is False whatever its MC label (or lack of one), a step with no MC label but a
  tool-right verdict is True. With cheap MC labels (a wrong rationale labels only its last
  step) this is where the mid-rationale negatives come from at no model cost.
* ``human``: ``Check(kind="human")`` verdicts (+1 right, -1 wrong; PRM800K's neutral 0 is no label).

``filter_counts`` reports how many steps each source labels, and for consensus how many it
kept, dropped for disagreement and dropped for a missing second verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RationalesError, UnknownNameError
from ..records import Check, Rationale, Step

SOURCES = ("tool", "mc", "grounded", "consensus", "human", "mc_tool")
MC_BY = "math-shepherd"
GROUNDED_BY = "grounded_mcts"


class LabelError(RationalesError):
    """No usable step labels."""


@dataclass(frozen=True)
class StepLabel:
    hard: bool | None
    soft: float | None
    why: str = ""  # "labelled", "no check", "neutral", "disagree", "missing second verdict"


def _latest(step: Step, kind: str, by: str | None = None, not_by: Iterable[str] = ()) -> Check | None:
    skip = set(not_by)
    for c in reversed(step.checks):
        if c.kind != kind or c.verdict is None:
            continue
        if by is not None and c.by != by:
            continue
        if c.by in skip:
            continue
        return c
    return None


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def _mc(step: Step) -> Check | None:
    """The Math-Shepherd MC check; any other ``mc`` check not made by the GroundedPRM tree."""
    return _latest(step, "mc", MC_BY) or _latest(step, "mc", not_by=(GROUNDED_BY,))


def _second(step: Step) -> Check | None:
    """The tool verdict, else an LLM judge's verdict: the second opinion consensus needs."""
    return _latest(step, "tool") or _latest(step, "judge")


def step_label(step: Step, source: str = "mc", *, strict: bool = False) -> StepLabel:
    """The training label of one step from its stored checks (see the module doc)."""
    if source not in SOURCES:
        raise UnknownNameError("label source", source, SOURCES)
    if source in ("tool", "human"):
        c = _latest(step, source)
        if c is None:
            return StepLabel(None, None, "no check")
        if c.verdict == 0:  # PRM800K's neutral rating (or a tool that could not tell): no label
            return StepLabel(None, None, "neutral")
        ok = c.verdict > 0
        return StepLabel(ok, 1.0 if ok else 0.0, "labelled")
    if source == "mc":
        c = _mc(step)
        if c is None:
            return StepLabel(None, None, "no check")
        soft = _clip01(c.score) if c.score is not None else (1.0 if c.verdict > 0 else 0.0)
        return StepLabel(c.verdict > 0, soft, "labelled")
    if source == "mc_tool":
        c, tool = _mc(step), _latest(step, "tool")
        if tool is not None and tool.verdict < 0:
            return StepLabel(False, 0.0, "labelled")
        if c is None:
            if tool is None:
                return StepLabel(None, None, "no check")
            return StepLabel(True, 1.0, "labelled")
        soft = _clip01(c.score) if c.score is not None else (1.0 if c.verdict > 0 else 0.0)
        return StepLabel(c.verdict > 0, soft, "labelled")
    if source == "grounded":
        c = _latest(step, "mc", GROUNDED_BY)
        tool = _latest(step, "tool")
        if tool is not None and tool.verdict < 0:
            return StepLabel(False, 0.0, "labelled")
        if c is None:
            return StepLabel(None, None, "no check")
        q = c.score if c.score is not None else float(c.verdict)
        return StepLabel(q > 0, _clip01((q + 1.0) / 2.0), "labelled")
    # consensus
    mc, other = _mc(step), _second(step)
    if mc is None:
        return StepLabel(None, None, "no check")
    soft = _clip01(mc.score) if mc.score is not None else (1.0 if mc.verdict > 0 else 0.0)
    if other is None:
        if strict:
            return StepLabel(None, None, "missing second verdict")
        return StepLabel(mc.verdict > 0, soft, "labelled")
    if (mc.verdict > 0) != (other.verdict > 0):
        return StepLabel(None, None, "disagree")
    return StepLabel(mc.verdict > 0, soft, "labelled")


def rationale_labels(r: Rationale, source: str = "mc", *, strict: bool = False) -> list[StepLabel]:
    return [step_label(s, source, strict=strict) for s in r.steps]


def consensus_filter(rationales: Sequence[Rationale], *, strict: bool = True) -> tuple[list[list[StepLabel]],
                                                                                      dict[str, int]]:
    """Qwen2.5-Math-PRM consensus filtering over stored checks: per rationale, per step, the
    kept label (or None), and counts (kept, disagree, missing second verdict, no mc)."""
    labels = [rationale_labels(r, "consensus", strict=strict) for r in rationales]
    return labels, filter_counts(labels)


def filter_counts(labels: Iterable[Iterable[StepLabel]]) -> dict[str, int]:
    counts = {"steps": 0, "labelled": 0, "positive": 0, "negative": 0, "no check": 0, "disagree": 0,
              "missing second verdict": 0}
    for row in labels:
        for lab in row:
            counts["steps"] += 1
            if lab.hard is None:
                counts[lab.why or "no check"] = counts.get(lab.why or "no check", 0) + 1
            else:
                counts["labelled"] += 1
                counts["positive" if lab.hard else "negative"] += 1
    return counts


def require_labels(counts: dict[str, Any], source: str) -> None:
    """A one-line error when a label source labelled nothing."""
    if not counts.get("labelled"):
        hint = {"tool": "run `rationales verify --checkers tool` first",
                "mc": "run `rationales verify --checkers mc` first (Math-Shepherd rollouts)",
                "grounded": "run `rationales run TASK --method grounded` first",
                "consensus": "it needs MC labels and tool (or judge) checks on the same steps: run "
                             "`rationales verify --checkers tool,mc`",
                "human": "label steps in `rationales review` first"}.get(source, "")
        raise LabelError(f"No labelled steps for label source '{source}' in the selected rationales "
                         f"({counts.get('steps', 0)} steps seen); {hint}.")


__all__ = ["SOURCES", "StepLabel", "LabelError", "step_label", "rationale_labels", "consensus_filter",
           "filter_counts", "require_labels"]
