"""Process reward models: one reward in [0, 1] per step of a rationale.

Every scorer is a batch function (search-and-learn style)::

    class StepScorer(Protocol):
        def score(self, problems, rationales) -> list[list[float | None]]   # one reward per step

``problems`` is aligned with ``rationales`` (one problem per rationale; a list holding each
rationale's problem by id also works). Implementations:

* ``LLMPRM``: a language model as PRM. A prompt (``prm_judge.j2``) shows the question, the
  earlier steps and the step to judge; the reward is P("+") / (P("+") + P("-")) from the
  backend's ``logprobs`` of the two one-character answers, i.e. the inference reward of
  GroundedPRM (Zhang et al. 2025) and of Math-Shepherd-style PRMs. Rewards are cached in memory
  per (question, earlier steps, step), so scoring a prefix again (step search) is free.
* ``GenerativePRM`` (``verify/genprm.py``): the generative format of GroundedPRM: the model writes
  ``<verify>...</verify><judge>...</judge><output>\\boxed{+}</output>`` (or ``\\boxed{-}``).
  The verdict is parsed leniently (missing tags, spaces, ``\\boxed{ + }``, ``−``, the words
  "correct"/"incorrect"); reward 1.0 for +, 0.0 for -. An output with no readable verdict is a
  counted failure (``stats["failed"]``, recorded in the check's detail) with reward ``None``,
  never a silent 0 or 1. ``soft=True`` replaces the hard 0/1 by P(+)/(P(+)+P(-)) of the
  token written inside ``\\boxed{`` (the paper's inference reward); default hard, because a
  parsed verdict is what the model actually said. Generations go through the store when one
  is given (cached, resumable: ``method="genprm"``, ``parent_id`` = the rationale).
* ``FunctionPRM(fn)``: wraps any batch function ``fn(problems, rationales)`` - this is how a
  trained PRM (e.g. a token-classification model) plugs in.

Scorers may expose ``last_details`` (per rationale, per step: a dict) after ``score``;
``prm_checks`` copies it into each ``Check.detail``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..backends.base import Backend
from ..errors import RationalesError
from ..prompts import RenderedPrompt, render
from ..records import Check, Problem, Rationale, Score, Step, content_hash

StepItem = tuple[Problem, Sequence[str], str]  # (problem, earlier step texts, step text)


@runtime_checkable
class StepScorer(Protocol):
    def score(self, problems: Sequence[Problem], rationales: Sequence[Rationale]) -> list[list[float]]:
        """One reward in [0, 1] per step of each rationale (None where a scorer could not decide)."""
        ...


# ------------------------------------------------------------------ helpers


def align_problems(problems: Sequence[Problem] | Mapping[str, Problem],
                   rationales: Sequence[Rationale]) -> list[Problem]:
    """The problem of each rationale: ``problems`` aligned one-to-one, or looked up by id."""
    if not isinstance(problems, Mapping):
        if len(problems) == len(rationales) and all(p.id == r.problem_id for p, r in zip(problems, rationales)):
            return list(problems)
        problems = {p.id: p for p in problems}
    out = []
    for r in rationales:
        p = problems.get(r.problem_id)
        if p is None:
            raise RationalesError(f"Rationale {r.id} belongs to problem {r.problem_id}, which was not given; "
                                  "pass the problems of every rationale (store.get_problem(id)).")
        out.append(p)
    return out


def rationale_from_steps(problem: Problem, step_texts: Sequence[str], *, model: str = "", method: str = "partial",
                         rid: str | None = None) -> Rationale:
    """A Rationale whose steps are exactly ``step_texts`` (one per line, spans into the joined
    text): partial rationales during step search, ProcessBench items, gold solutions."""
    text, steps, pos = "", [], 0
    for i, s in enumerate(step_texts):
        s = s.strip()
        if i:
            text += "\n"
            pos += 1
        steps.append(Step(index=i, text=s, span=(pos, pos + len(s))))
        text += s
        pos += len(s)
    rid = rid or content_hash("partial", problem.id, list(step_texts), model)
    return Rationale(id=rid, problem_id=problem.id, prompt_id="", model=model, method=method, text=text,
                     steps=steps)


def prompt_text(backend: Backend, prompt: RenderedPrompt, prefix: str = "") -> str:
    """The text the model sees: the chat rendered with an open assistant turn (chat models) or
    the completion transcript (base models), followed by ``prefix``."""
    from ..generate import continuation_prompt

    return continuation_prompt(backend, prompt, prefix)


def plus_minus_reward(backend: Backend, text: str, positive: str = "+", negative: str = "-") -> float:
    """P(positive) / (P(positive) + P(negative)) after ``text``, from the backend's logprobs."""
    pos, neg = backend.logprobs(text, [positive, negative])
    d = neg.logprob - pos.logprob
    if d > 700:
        return 0.0
    return 1.0 / (1.0 + math.exp(d))


def scorer_name(scorer: Any) -> str:
    """The name a scorer's checks are recorded under (``Check.by``)."""
    return str(getattr(scorer, "name", type(scorer).__name__))


# ------------------------------------------------------------------ LLM as PRM


class LLMPRM:
    """A language model as process reward model: reward = P(+)/(P(+)+P(-)) for each step."""

    def __init__(self, backend: Backend, template: str = "prm_judge", positive: str = "+", negative: str = "-"):
        self.backend = backend
        self.template = template
        self.positive, self.negative = positive, negative
        self._cache: dict[str, float] = {}
        self.calls = 0
        self.last_details: list[list[dict[str, Any]]] = []

    @property
    def name(self) -> str:
        return f"llm-prm:{self.backend.model}"

    def render(self, problem: Problem, previous: Sequence[str], step: str) -> RenderedPrompt:
        return render(self.template, question=problem.question, context=problem.context,
                      previous=list(previous), step=step, index=len(previous))

    def _key(self, problem: Problem, previous: Sequence[str], step: str) -> str:
        return content_hash("llm-prm", self.template, self.backend.model, problem.question, problem.context,
                            list(previous), step)

    def score_steps(self, items: Sequence[StepItem]) -> list[float]:
        """Rewards of single steps given their earlier steps (the batch unit of step search)."""
        out = []
        for problem, previous, step in items:
            key = self._key(problem, previous, step)
            if key not in self._cache:
                self.calls += 1
                text = prompt_text(self.backend, self.render(problem, previous, step))
                self._cache[key] = plus_minus_reward(self.backend, text, self.positive, self.negative)
            out.append(self._cache[key])
        return out

    def score(self, problems: Sequence[Problem], rationales: Sequence[Rationale]) -> list[list[float]]:
        probs = align_problems(problems, rationales)
        items, shape = [], []
        for p, r in zip(probs, rationales):
            texts = [s.text for s in r.steps]
            shape.append(len(texts))
            items.extend((p, texts[:k], texts[k]) for k in range(len(texts)))
        flat = self.score_steps(items)
        out, i = [], 0
        for n in shape:
            out.append(flat[i:i + n])
            i += n
        self.last_details = [[{"template": self.template}] * n for n in shape]
        return out


# ------------------------------------------------------------------ generative PRM (GroundedPRM format)


# ------------------------------------------------------------------ any batch function


class FunctionPRM:
    """Wraps a batch function ``fn(problems, rationales) -> list[list[float]]`` (a trained PRM)."""

    def __init__(self, fn: Callable[[Sequence[Problem], Sequence[Rationale]], list[list[float | None]]],
                 name: str = "function"):
        self.fn = fn
        self.name = name

    def score(self, problems: Sequence[Problem], rationales: Sequence[Rationale]) -> list[list[float | None]]:
        probs = align_problems(problems, rationales)
        out = [list(x) for x in self.fn(probs, rationales)]
        if len(out) != len(rationales) or any(len(o) != len(r.steps) for o, r in zip(out, rationales)):
            raise RationalesError(f"PRM function {self.name} must return one list per rationale with one reward per "
                                  "step; got a different shape.")
        for rewards in out:
            for x in rewards:
                if x is not None and not (0.0 <= float(x) <= 1.0):
                    raise RationalesError(f"PRM function {self.name} returned reward {x}; rewards must be in [0, 1] "
                                          "(apply a sigmoid/softmax to raw logits).")
        return out


# ------------------------------------------------------------------ using rewards

AGGREGATES = ("min", "last", "product", "mean")


def aggregate(rewards: Sequence[float | None], how: str = "min") -> float | None:
    """A rationale-level score from step rewards (None rewards are skipped; None when empty).
    ``min`` (the weakest step; the usual PRM choice), ``last``, ``product`` or ``mean``."""
    vals = [float(x) for x in rewards if x is not None]
    if how not in AGGREGATES:
        from ..errors import UnknownNameError

        raise UnknownNameError("PRM aggregate", how, AGGREGATES)
    if not vals:
        return None
    if how == "min":
        return min(vals)
    if how == "last":
        return vals[-1]
    if how == "product":
        return math.prod(vals)
    return sum(vals) / len(vals)


def prm_checks(scorer: StepScorer, problems: Sequence[Problem], rationales: Sequence[Rationale],
               threshold: float = 0.5) -> list[Rationale]:
    """Score every step and attach ``Check(kind="prm", score=reward, verdict=+1 if reward >=
    threshold else -1)`` (verdict None where the reward is None), plus a rationale-level
    ``Score(kind="prm", value=min reward)``. In place; returns the rationales."""
    rewards = scorer.score(problems, rationales)
    details = getattr(scorer, "last_details", None) or []
    by = scorer_name(scorer)
    for r_i, (r, rs) in enumerate(zip(rationales, rewards)):
        for s_i, (step, reward) in enumerate(zip(r.steps, rs)):
            detail = dict(details[r_i][s_i]) if r_i < len(details) and s_i < len(details[r_i]) else {}
            detail["threshold"] = threshold
            verdict = None if reward is None else (1 if reward >= threshold else -1)
            step.checks = [c for c in step.checks if not (c.kind == "prm" and c.by == by)]
            step.checks.append(Check(kind="prm", by=by, verdict=verdict,
                                     score=None if reward is None else float(reward), detail=detail))
        r.set_score(Score(kind="prm", value=aggregate(rs, "min"), by=by,
                          detail={"aggregate": "min", "product": aggregate(rs, "product"),
                                  "last": aggregate(rs, "last"), "mean": aggregate(rs, "mean"),
                                  "failed": sum(x is None for x in rs)}))
    return list(rationales)


def score_prefix(scorer: StepScorer, problem: Problem, prior_steps: Sequence[str], candidate: str) -> float | None:
    """Reward of ``candidate`` as the next step after ``prior_steps`` (step search). Uses the
    scorer's single-step path when it has one, else scores a partial rationale and takes its
    last step. None only when a generative PRM could not parse its own verdict."""
    single = getattr(scorer, "score_steps", None)
    if callable(single):
        return single([(problem, list(prior_steps), candidate)])[0]
    r = rationale_from_steps(problem, [*prior_steps, candidate])
    rewards = scorer.score([problem], [r])[0]
    return rewards[-1] if rewards else None


__all__ = ["StepScorer", "LLMPRM", "FunctionPRM", "aggregate", "prm_checks", "score_prefix", "scorer_name",
           "rationale_from_steps", "align_problems", "plus_minus_reward", "AGGREGATES"]
