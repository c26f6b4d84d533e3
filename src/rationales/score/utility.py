"""Reasoning utility: how much a rationale raises the log-probability of the gold answer.

Guo, 2025, "Measuring Reasoning Utility in LLMs via Conditional Entropy Reduction"
(arXiv:2508.20395): the utility of a reasoning chain Z for an answer Y given the input X is the
drop in the model's uncertainty about Y, H(Y | X) - H(Y | X, Z), tracked step by step as the
context grows (X, Z_1..k). Chains whose uncertainty falls over the steps are mostly right; flat
or rising curves mostly wrong.

Choices made here (the paper is silent on them, or needs what a backend may not give):

* The paper averages the entropy over the whole vocabulary at each answer token; the backend
  protocol returns log-probabilities of given continuations, so we use the negative
  log-likelihood of the *gold* answer span (its cross-entropy), which every backend computes:
  ``utility = log P(a | X, Z) - log P(a | X)`` with ``a = "The answer is {gold}."`` scored right
  after the rationale in the model's own transcript (``generate.continuation_prompt``) and, for
  the baseline, at the start of the assistant turn (no rationale). Positive = the rationale
  makes the gold answer more likely.
* Per step: ``per_step[k-1]`` = cumulative utility after the first k steps (k = 1..K), so
  ``per_step[-1] == value``; ``nll_per_token`` gives the per-token NLL curve (baseline first).
* The rationale's own final-answer statement ("The answer is ...", ``\\boxed``, ``####``) and
  everything after the first one is cut off before scoring (``rationale_body``): a rationale
  gets no credit for merely restating an answer, and a wrong stated answer does not poison the
  continuation.
* The utility-weighted vote must not see the gold answer, so it weights each rationale by the
  utility toward *its own* answer (``kind="utility_own"``), squashed with a logistic function:
  weight = 1 / (1 + exp(-utility_own)); a rationale that does not move its answer's probability
  gets weight 0.5, one that makes it much likelier gets close to 1.

Stored as ``Score(kind="utility", detail={"per_step": [...], "baseline": ..., ...})``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend, ContinuationScore
from ..errors import RationalesError
from ..generate import continuation_prompt, steps_prefix
from ..prompts import RenderedPrompt
from ..records import Problem, Rationale, Score
from ..steps import segment

ANSWER_TEMPLATE = "The answer is {answer}."

# An explicit final-answer statement: \boxed / \fbox / #### / "(the) (final) answer is|:|=".
_FINAL_MARK = re.compile(r"\\boxed|\\fbox|####|\b(?:the\s+)?(?:final\s+)?answer\s*(?:is\b|:|=)", re.IGNORECASE)
_SENT_END = re.compile(r"[.!?](?=\s)")
_TRAILING_CONNECTOR = re.compile(
    r"(?:[\s,;:]|\b(?:so|thus|therefore|hence|and|then|which means|that means)\b)*$", re.IGNORECASE)


def rationale_body(text: str) -> str:
    """The reasoning of ``text`` without its final-answer statement.

    Cuts at the first explicit answer statement. The sentence holding it is dropped, except
    for a calculation written before the marker in the same sentence ("8 + 7 = 15, so the
    answer is 15." keeps "8 + 7 = 15")."""
    m = _FINAL_MARK.search(text)
    if not m:
        return text.strip()
    start = m.start()
    line_start = text.rfind("\n", 0, start) + 1
    cut = line_start
    for s in _SENT_END.finditer(text, line_start, start):
        cut = s.end()
    lead = text[cut:start]
    if any(ch.isdigit() for ch in lead):
        lead = _TRAILING_CONNECTOR.sub("", lead)
        return (text[:cut] + lead).strip()
    return text[:cut].strip()


def body_steps(body: str, segment_mode: str = "auto") -> list[str]:
    """The steps of a rationale body (as texts, in order)."""
    return [s.text for s in segment(body, segment_mode)] if body.strip() else []


class AnswerScorer:
    """``log P(answer statement | prompt, rationale prefix)`` from a backend, memoised, so a
    baseline shared by the samples of one problem is scored once."""

    def __init__(self, backend: Backend, answer_template: str = ANSWER_TEMPLATE):
        if "{answer}" not in answer_template:
            raise RationalesError(f"The answer template '{answer_template}' needs an '{{answer}}' placeholder, "
                                  "e.g. 'The answer is {answer}.'")
        self.backend = backend
        self.answer_template = answer_template
        self.calls = 0
        self._memo: dict[tuple[str, str, str], ContinuationScore] = {}

    def continuation(self, prompt_text: str, answer: str) -> str:
        cont = self.answer_template.format(answer=answer)
        if prompt_text and not prompt_text[-1].isspace():
            cont = " " + cont
        return cont

    def __call__(self, prompt: RenderedPrompt, prefix: str, answer: str) -> ContinuationScore:
        key = (prompt.id, prefix, answer)
        if key not in self._memo:
            text = continuation_prompt(self.backend, prompt, prefix)
            self.calls += 1
            self._memo[key] = self.backend.logprobs(text, [self.continuation(text, answer)])[0]
        return self._memo[key]


def _by(backend: Backend) -> str:
    return backend.model or backend.name


def reasoning_utility(backend: Backend, problem: Problem, rationale: Rationale, prompt: RenderedPrompt, *,
                      answer: str | None = None, per_step: bool = True, segment_mode: str = "auto",
                      kind: str = "utility", scorer: AnswerScorer | None = None) -> Score:
    """Utility of ``rationale`` for ``answer`` (default: the problem's gold answer).

    ``prompt`` is the prompt the rationale answered (the transcript it is scored in)."""
    scorer = scorer or AnswerScorer(backend)
    target = answer if answer is not None else problem.gold
    if target is None or not str(target).strip():
        return Score(kind=kind, value=None, by=_by(backend),
                     detail={"reason": "no answer to score (the problem has no gold answer)"})
    target = str(target).strip()
    steps = body_steps(rationale_body(rationale.text), segment_mode)
    base = scorer(prompt, "", target)
    ks = list(range(1, len(steps) + 1)) if per_step else ([len(steps)] if steps else [])
    scored = [scorer(prompt, steps_prefix(steps[:k]), target) for k in ks]
    full = scored[-1] if scored else base
    value = full.logprob - base.logprob
    detail: dict[str, Any] = {
        "answer": target,
        "answer_template": scorer.answer_template,
        "baseline": base.logprob,
        "with_rationale": full.logprob,
        "steps": len(steps),
        "answer_tokens": base.tokens,
        "per_step": [s.logprob - base.logprob for s in scored] if per_step else [],
        "nll_per_token": [-s.logprob / max(1, s.tokens) for s in [base, *scored]] if per_step else [],
    }
    return Score(kind=kind, value=value, by=_by(backend), detail=detail)


def _cached(r: Rationale, kind: str, by: str, answer: str | None, template: str, per_step: bool) -> Score | None:
    for s in reversed(r.scores):
        if (s.kind == kind and s.by == by and s.detail.get("answer") == (None if answer is None else str(answer).strip())
                and s.detail.get("answer_template") == template
                and (not per_step or s.detail.get("per_step") or s.detail.get("steps") == 0)):
            return s
    return None


def score_utility(backend: Backend, problem: Problem, rationales: Sequence[Rationale], prompt: RenderedPrompt, *,
                  per_step: bool = True, own: bool = True, segment_mode: str = "auto",
                  scorer: AnswerScorer | None = None) -> None:
    """Attach ``utility`` (gold answer, per step) and, with ``own``, ``utility_own`` (the
    rationale's own answer, for gold-free weighting) to each rationale. Scores already on a
    rationale for the same model and answer are reused, so a rerun costs nothing."""
    scorer = scorer or AnswerScorer(backend)
    by = _by(backend)
    for r in rationales:
        if problem.gold is not None and _cached(r, "utility", by, problem.gold, scorer.answer_template, per_step) is None:
            r.set_score(reasoning_utility(backend, problem, r, prompt, per_step=per_step, segment_mode=segment_mode,
                                          scorer=scorer))
        if own and r.answer is not None and _cached(r, "utility_own", by, r.answer, scorer.answer_template,
                                                    False) is None:
            r.set_score(reasoning_utility(backend, problem, r, prompt, answer=r.answer, per_step=False,
                                          segment_mode=segment_mode, kind="utility_own", scorer=scorer))


def utility_weight(r: Rationale, kind: str = "utility_own", scale: float = 1.0) -> float | None:
    """Logistic weight of a rationale's utility toward its own answer (None: no score)."""
    u = r.score(kind)
    if u is None:
        return None
    z = max(-50.0, min(50.0, u / scale))
    return 1.0 / (1.0 + math.exp(-z))


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(a random positive scores above a random negative), ties counting one half."""
    if not positive or not negative:
        return None
    import numpy as np

    p = np.asarray(positive, dtype=float)[:, None]
    n = np.asarray(negative, dtype=float)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


@dataclass
class UtilityStats:
    correct: list[float] = field(default_factory=list)
    wrong: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def mean(xs: list[float]) -> float | None:
            return round(sum(xs) / len(xs), 4) if xs else None

        a = auroc(self.correct, self.wrong)
        return {"mean_correct": mean(self.correct), "mean_wrong": mean(self.wrong), "n_correct": len(self.correct),
                "n_wrong": len(self.wrong), "auroc": None if a is None else round(a, 4)}


def utility_stats(rationales: Sequence[Rationale], kind: str = "utility") -> UtilityStats:
    stats = UtilityStats()
    for r in rationales:
        u = r.score(kind)
        if u is None or r.correct is None:
            continue
        (stats.correct if r.correct else stats.wrong).append(u)
    return stats


# ------------------------------------------------------------------ method: rationales run --method utility


