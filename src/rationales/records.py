"""The one record format that flows through every stage.

``Problem`` -> ``Rationale`` (cut into ``Step``s, each carrying ``Check``s) -> ``Score``s.
Stages add to these records; they never copy them into ad-hoc dicts.

Identifiers are content hashes, so the same request (problem, prompt, model, sampling,
sample index) always gets the same id: a rerun finds it in the store instead of generating it
again, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, Field

CheckKind = Literal["tool", "mc", "judge", "prm", "human", "consensus"]
Outcome = Literal["ok", "no_answer", "truncated", "error"]


def content_hash(*parts: Any, length: int = 16) -> str:
    """Stable short hash of JSON-serialisable parts (order matters)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:length]


class Check(BaseModel):
    """One verdict on one step: +1 right, -1 wrong, None = nothing checkable / undecided."""

    kind: CheckKind
    verdict: int | None = None
    score: float | None = None
    by: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class Step(BaseModel):
    """A piece of a rationale with its character span in ``Rationale.text``."""

    index: int
    text: str
    span: tuple[int, int]
    checks: list[Check] = Field(default_factory=list)

    def verdict(self, kind: str) -> int | None:
        """The latest verdict of a given check kind, or None."""
        for check in reversed(self.checks):
            if check.kind == kind:
                return check.verdict
        return None


class Score(BaseModel):
    """A rationale-level score: vote share, judge 1-5, PRM aggregate, utility, ..."""

    kind: str
    value: float | None
    by: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class Problem(BaseModel):
    id: str
    question: str
    gold: str | None = None
    context: str | None = None
    source: str = ""
    answer_type: str = "auto"  # auto | math | number | exact | choice | reasoning_gym
    choices: list[str] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def make(cls, question: str, gold: Any = None, *, source: str = "", context: str | None = None,
             **kwargs: Any) -> "Problem":
        gold_s = None if gold is None else str(gold)
        pid = content_hash("problem", source, question, context, gold_s)
        return cls(id=pid, question=question, gold=gold_s, context=context, source=source, **kwargs)


class Sampling(BaseModel):
    """Sampling settings of one sample. ``seed`` is the sample's own explicit seed."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    stop: list[str] = Field(default_factory=list)
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


class Rationale(BaseModel):
    id: str
    problem_id: str
    prompt_id: str
    model: str
    method: str = "cot"
    sampling: Sampling = Field(default_factory=Sampling)
    sample_index: int = 0
    text: str = ""
    steps: list[Step] = Field(default_factory=list)
    answer: str | None = None
    outcome: Outcome = "ok"
    correct: bool | None = None
    tokens: int = 0
    prompt_tokens: int = 0
    finish_reason: str = "stop"
    logprobs: list[float] | None = None
    parent_id: str | None = None
    scores: list[Score] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)

    @staticmethod
    def make_id(problem_id: str, prompt_id: str, model: str, sampling: Sampling, sample_index: int,
                method: str = "cot", parent_id: str | None = None) -> str:
        return content_hash("rationale", problem_id, prompt_id, model, sampling.model_dump(),
                            sample_index, method, parent_id)

    def score(self, kind: str) -> float | None:
        for s in reversed(self.scores):
            if s.kind == kind:
                return s.value
        return None

    def set_score(self, score: Score) -> None:
        self.scores = [s for s in self.scores if not (s.kind == score.kind and s.by == score.by)]
        self.scores.append(score)
