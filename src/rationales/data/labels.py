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
           "filter_counts", "require_labels", "mc_search_labels"]


# ------------------------------------------------------------------ cheap Math-Shepherd labels


def mc_search_labels(problems: Any, rationales: Sequence[Rationale], backend: Any, store: Any, *, n: int = 4,
                     wave: int = 2, max_tokens: int = 320, temperature: float = 0.7, seed: int = 0,
                     max_wrong_per_problem: int | None = None, solved_only: bool = False,
                     stats: dict[str, Any] | None = None) -> list[Rationale]:
    """Math-Shepherd hard labels at a fraction of the rollouts (``Check(kind="mc",
    by="math-shepherd")``, in place; store them with ``store.put_rationales``):

    * a rationale with the right answer is itself a completion from each of its prefixes that
      reaches the gold answer, so every step is +1 without a rollout (``detail["inferred"]``);
    * a wrong rationale's last step is -1 (its prefix is the whole rationale);
    * the first wrong step of a wrong rationale is found by binary search (OmegaPRM, Luo et al.
      2024): probe the middle step with rollouts; a rollout reaching the gold answer makes that
      step and all before it +1, none makes it and all after it -1 (Math-Shepherd's label is
      monotone along a path in expectation; the probed steps carry their measured soft label,
      the others are marked inferred);
    * rollouts of all probes of all rationales run in one batched ``generate`` per wave of
      ``wave`` samples, up to ``n`` per probe; a probe stops at its first success.

    Rollouts are ordinary stored samples (``method="mc_rollout"``): a rerun costs nothing.
    ``max_wrong_per_problem`` bounds the searched wrong rationales per problem (the others keep
    only their free labels). ``solved_only`` searches only problems that one of the given
    rationales solves: where no sample reaches the gold, rollouts almost never do either, so the
    search pays its full budget (``n`` rollouts per probe) to label every step -1, which says
    "this problem is hard", not which step went wrong (``stats["skipped_unsolved"]``).
    ``stats`` is filled with rollouts, tokens and labelled steps."""
    from ..answers import check_answer, extract_answer
    from ..generate import GenerationStats, SampleSpec, continuation_prompt, generate, steps_prefix
    from ..prompts import render, template_names
    from ..verify.prm import align_problems

    probs = align_problems(problems, rationales)
    gstats = GenerationStats()
    st = stats if stats is not None else {}
    for key in ("rollouts", "tokens", "probes", "searched", "free_positive", "free_negative", "skipped_unsolved"):
        st.setdefault(key, 0)
    solved = {p.id for r, p in zip(rationales, probs)
              if r.steps and (bool(r.correct) if r.correct is not None else check_answer(p, r.answer) is True)}

    def put(step: Any, verdict: int, score: float | None, detail: dict[str, Any]) -> None:
        step.checks = [c for c in step.checks if not (c.kind == "mc" and c.by == MC_BY)]
        step.checks.append(Check(kind="mc", by=MC_BY, verdict=verdict, score=score, detail=detail))

    searches: list[dict[str, Any]] = []
    wrong_seen: dict[str, int] = {}
    for r, p in zip(rationales, probs):
        if not r.steps or (p.gold is None and p.answer_type != "reasoning_gym"):
            continue
        correct = bool(r.correct) if r.correct is not None else check_answer(p, r.answer) is True
        if correct:
            for s in r.steps:
                put(s, 1, None, {"inferred": "the rationale itself reaches the gold answer"})
            st["free_positive"] += len(r.steps)
            continue
        put(r.steps[-1], -1, 0.0, {"n": 0, "final": True})
        st["free_negative"] += 1
        k = wrong_seen.get(p.id, 0)
        if len(r.steps) < 2 or (max_wrong_per_problem is not None and k >= max_wrong_per_problem):
            continue
        if solved_only and p.id not in solved:
            st["skipped_unsolved"] += 1
            continue
        wrong_seen[p.id] = k + 1
        template = r.method if r.method in template_names() else "cot"
        searches.append({"r": r, "p": p, "prompt": render(template, question=p.question, context=p.context),
                         "lo": 0, "hi": len(r.steps) - 1, "probed": {}})
    st["searched"] += len(searches)

    while True:
        active = [s for s in searches if s["lo"] < s["hi"]]
        if not active:
            break
        probes = []
        for s in active:
            mid = (s["lo"] + s["hi"]) // 2
            probes.append((s, mid, {"hits": 0, "n": 0}))
        drawn = 0
        while True:
            todo = [(s, mid, acc) for s, mid, acc in probes if acc["hits"] == 0 and acc["n"] < n]
            if not todo:
                break
            upto = min(n, drawn + wave)
            specs = []
            for s, mid, _ in todo:
                prefix = steps_prefix([x.text for x in s["r"].steps[:mid + 1]])
                specs.append(SampleSpec(problem=s["p"], prompt=s["prompt"], n=upto, temperature=temperature,
                                        max_tokens=max_tokens, seed=seed, method="mc_rollout", parent_id=s["r"].id,
                                        raw_prompt=continuation_prompt(backend, s["prompt"], prefix),
                                        meta={"step": mid, "search": "binary"}))
            results = generate(specs, backend, store, stats=gstats)
            for (s, mid, acc), rolls in zip(todo, results):
                prefix = steps_prefix([x.text for x in s["r"].steps[:mid + 1]])
                for roll in rolls[drawn:upto]:  # every drawn rollout counts, even after a success
                    st["rollouts"] += 1
                    st["tokens"] += roll.tokens
                    if acc["hits"] == 0:
                        acc["n"] += 1
                        acc["hits"] += check_answer(s["p"], extract_answer(prefix + roll.text)) is True
            drawn = upto
        st["probes"] += len(probes)
        for s, mid, acc in probes:
            s["probed"][mid] = acc
            if acc["hits"]:
                s["lo"] = mid + 1
            else:
                s["hi"] = mid
    for s in searches:
        r, first = s["r"], s["hi"]
        for i, step in enumerate(r.steps[:-1]):
            acc = s["probed"].get(i)
            if acc is not None:
                put(step, 1 if acc["hits"] else -1, acc["hits"] / max(1, acc["n"]),
                    {"n": acc["n"], "correct": acc["hits"], "search": "binary", "stopped_early": bool(acc["hits"])})
            else:
                put(step, 1 if i < first else -1, None,
                    {"inferred": f"binary search: first wrong step is {first}", "search": "binary"})
    st["tokens_new"] = st.get("tokens_new", 0) + gstats.tokens_new
    st["steps_labelled"] = sum(1 for r in rationales for s in r.steps
                               if any(c.kind == "mc" and c.by == MC_BY for c in s.checks))
    return list(rationales)
