"""Generative PRM in the GroundedPRM format (Zhang et al., 2025): the model writes
``<verify>...</verify><judge>...</judge><output>\\boxed{+}</output>`` (or ``\\boxed{-}``) per step.
The verdict is parsed leniently (see ``parse_verdict``); reward 1.0 for +, 0.0 for -, ``None``
when unreadable (counted in ``stats["failed"]``). The shared step-scorer helpers live in
``verify/prm.py``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..backends.base import Backend, GenerationRequest
from ..prompts import RenderedPrompt, render
from ..records import Problem, Rationale, content_hash
from .prm import StepItem, align_problems, plus_minus_reward, prompt_text


_OUTPUT = re.compile(r"<\s*output\s*>(.*?)(?:<\s*/\s*output\s*>|$)", re.IGNORECASE | re.DOTALL)


_JUDGE = re.compile(r"<\s*judge\s*>(.*?)(?:<\s*/\s*judge\s*>|<\s*output\s*>|$)", re.IGNORECASE | re.DOTALL)


_BOXED = re.compile(r"\\?boxed\s*\{\s*(?:\\text\s*\{\s*)?([^{}]*?)\s*\}?\s*\}")


_SIGN = {"+": 1, "-": -1, "−": -1, "–": -1, "correct": 1, "incorrect": -1, "right": 1, "wrong": -1,
         "yes": 1, "no": -1, "true": 1, "false": -1}


_WORDS = re.compile(r"\b(not\s+correct|incorrect|wrong|erroneous|correct)\b", re.IGNORECASE)


def _sign(s: str) -> int | None:
    return _SIGN.get(s.strip().strip("$*.").strip().lower())


def parse_verdict(text: str) -> tuple[int | None, str]:
    """The +1/-1 verdict written by a generative PRM and how it was found: "boxed" (a
    ``\\boxed{+}``/``\\boxed{-}``, in ``<output>`` first, else anywhere, the last one wins),
    "output" (a bare +/- or correct/incorrect inside ``<output>``), "words" ("correct",
    "incorrect", "wrong", "not correct" in the output, the judgement or the last line); or
    (None, "unparsed")."""
    m = None
    for m in _OUTPUT.finditer(text):
        pass
    output = m.group(1) if m else None
    for section in ([output] if output is not None else []) + [text]:
        for content in reversed(_BOXED.findall(section)):
            sign = _sign(content)
            if sign is not None:
                return sign, "boxed"
    if output is not None and _sign(output) is not None:
        return _sign(output), "output"
    judge = _JUDGE.search(text)
    tail = text.strip().splitlines()[-1] if text.strip() else ""
    for section in (output, judge.group(1) if judge else None, tail):
        words = _WORDS.findall(section or "")
        if words:
            return (1 if words[-1].lower() == "correct" else -1), "words"
    return None, "unparsed"


class GenerativePRM:
    """GroundedPRM-format generative PRM: reward 1.0 for \\boxed{+}, 0.0 for \\boxed{-}, None when
    the output has no readable verdict (counted in ``stats["failed"]``)."""

    def __init__(self, backend: Backend, template: str = "prm_generative", *, store: Any = None,
                 max_tokens: int = 256, temperature: float = 0.0, seed: int = 0, soft: bool = False):
        self.backend = backend
        self.template = template
        self.store = store
        self.max_tokens, self.temperature, self.seed, self.soft = max_tokens, temperature, seed, soft
        self.stats = {"parsed": 0, "failed": 0}
        self.last_details: list[list[dict[str, Any]]] = []
        self._cache: dict[str, tuple[float | None, dict[str, Any]]] = {}

    @property
    def name(self) -> str:
        return f"genprm:{self.backend.model}"

    def render(self, problem: Problem, previous: Sequence[str], step: str) -> RenderedPrompt:
        return render(self.template, question=problem.question, context=problem.context,
                      previous=list(previous), step=step, index=len(previous))

    def _generate(self, jobs: list[tuple[Problem, RenderedPrompt, str | None]]) -> list[str]:
        """One judgement per job (problem, prompt, parent rationale id), through the store if any."""
        if self.store is not None:
            from ..generate import SampleSpec, generate

            specs = [SampleSpec(problem=p, prompt=pr, n=1, temperature=self.temperature, max_tokens=self.max_tokens,
                                stop=["</output>"], seed=self.seed, method="genprm", parent_id=parent)
                     for p, pr, parent in jobs]
            return [rs[0].text for rs in generate(specs, self.backend, self.store)]
        reqs = []
        for i, (p, pr, _) in enumerate(jobs):
            kw: dict[str, Any] = dict(seeds=[self.seed], temperature=self.temperature, max_tokens=self.max_tokens,
                                      stop=["</output>"], tag=i)
            reqs.append(GenerationRequest(messages=pr.messages, **kw) if self.backend.chat
                        else GenerationRequest(prompt=pr.completion_text(), **kw))
        return [res.completions[0].text if res.completions else "" for res in self.backend.generate(reqs)]

    def _reward(self, prompt: RenderedPrompt, output: str) -> tuple[float | None, dict[str, Any]]:
        verdict, how = parse_verdict(output)
        detail: dict[str, Any] = {"output": output[:2000], "parsed": how}
        if verdict is None:
            self.stats["failed"] += 1
            detail["failure"] = "unparsed verdict"
            return None, detail
        self.stats["parsed"] += 1
        reward = 1.0 if verdict > 0 else 0.0
        cut = output.rfind("boxed{")
        if self.soft and cut >= 0:
            text = prompt_text(self.backend, prompt, output[:cut + len("boxed{")])
            reward = plus_minus_reward(self.backend, text)
            detail["soft"] = True
        detail["verdict"] = verdict
        return reward, detail

    def score_steps(self, items: Sequence[StepItem], parents: Sequence[str | None] | None = None
                    ) -> list[float | None]:
        return [r for r, _ in self._score_items(items, parents)]

    def _score_items(self, items: Sequence[StepItem], parents: Sequence[str | None] | None = None
                     ) -> list[tuple[float | None, dict[str, Any]]]:
        parents = list(parents) if parents is not None else [None] * len(items)
        prompts = [self.render(p, prev, step) for p, prev, step in items]
        keys = [content_hash("genprm", self.template, self.backend.model, pr.messages, self.temperature,
                             self.max_tokens, self.seed, self.soft) for pr in prompts]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        seen: dict[str, int] = {}
        uniq = [seen.setdefault(keys[i], i) for i in todo if keys[i] not in seen]
        outputs = self._generate([(items[i][0], prompts[i], parents[i]) for i in uniq])
        for i, out in zip(uniq, outputs):
            self._cache[keys[i]] = self._reward(prompts[i], out)
        return [self._cache[k] for k in keys]

    def score(self, problems: Sequence[Problem], rationales: Sequence[Rationale]) -> list[list[float | None]]:
        probs = align_problems(problems, rationales)
        items, parents, shape = [], [], []
        for p, r in zip(probs, rationales):
            texts = [s.text for s in r.steps]
            shape.append(len(texts))
            items.extend((p, texts[:k], texts[k]) for k in range(len(texts)))
            parents.extend([r.id] * len(texts))
        flat = self._score_items(items, parents)
        out, details, i = [], [], 0
        for n in shape:
            out.append([r for r, _ in flat[i:i + n]])
            details.append([d for _, d in flat[i:i + n]])
            i += n
        self.last_details = details
        return out
