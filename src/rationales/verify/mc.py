"""Monte-Carlo step labels (Math-Shepherd, Wang et al. 2024).

A step is good when the solution can still reach the gold answer from it: from the prefix of
steps 0..k, sample ``n`` completions (default 8) and extract each completion's final answer.

* hard label: +1 when **any** completion reaches the gold answer, else -1 (Math-Shepherd "HE");
* soft label: the **fraction** of completions that do (Math-Shepherd "SE"), kept in
  ``Check.score``.

Rollouts are ordinary samples: ``SampleSpec(raw_prompt=continuation_prompt(...),
method="mc_rollout", parent_id=<rationale id>)``, so they are stored, cached by content hash
(a rerun costs nothing, a killed run resumes) and show up in exports.

Choices where the paper is silent:

* the prompt is rebuilt from the rationale's own template: ``rationale.method`` when it names a
  prompt template, else ``"cot"`` (the same instructions the rationale was written under);
* a rollout's answer is extracted from prefix + completion, so a prefix that already states
  the answer counts even if the completion adds nothing;
* the last step needs no rollouts: its prefix is the whole rationale, so its label is the
  rationale's own correctness (soft 1.0 / 0.0);
* a problem without a gold answer gets no MC labels (verdict None) - there is nothing to reach.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..backends.base import Backend
from ..generate import SampleSpec, continuation_prompt, generate, steps_prefix
from ..prompts import render, template_names
from ..records import Check, Problem, Rationale
from ..store import Store
from ..answers import check_answer, extract_answer, normalize
from .prm import align_problems

CHECK_BY = "math-shepherd"
ROLLOUT_METHOD = "mc_rollout"


def rollout_template(r: Rationale) -> str:
    """The prompt template a rationale was written with (its method, if that names one), else cot."""
    return r.method if r.method in template_names() else "cot"


def mc_labels(problems: Sequence[Problem] | Mapping[str, Problem], rationales: Sequence[Rationale],
              backend: Backend, store: Store, n: int = 8, temperature: float = 0.7, max_tokens: int = 256,
              seed: int = 0, on_progress: Callable[[int], None] | None = None) -> list[Rationale]:
    """Attach ``Check(kind="mc", verdict=+1/-1, score=fraction correct)`` to every step.

    In place; returns the rationales (write them back with ``store.put_rationales``). Rollouts
    are generated in one batch over all rationales and steps and stored as ``mc_rollout``."""
    probs = align_problems(problems, rationales)
    plans: list[tuple[Rationale, Problem, int, str]] = []  # rationale, problem, step index, prefix
    specs: list[SampleSpec] = []
    templates: dict[str, str] = {}
    for r, p in zip(rationales, probs):
        if p.gold is None and p.answer_type != "reasoning_gym":
            continue
        template = templates.setdefault(r.method, rollout_template(r))
        prompt = render(template, question=p.question, context=p.context)
        texts = [s.text for s in r.steps]
        for k in range(len(texts) - 1):  # the last step's label is the rationale's own correctness
            prefix = steps_prefix(texts[:k + 1])
            plans.append((r, p, k, prefix))
            specs.append(SampleSpec(problem=p, prompt=prompt, n=n, temperature=temperature,
                                    max_tokens=max_tokens, seed=seed, method=ROLLOUT_METHOD, parent_id=r.id,
                                    raw_prompt=continuation_prompt(backend, prompt, prefix),
                                    meta={"step": k, "template": template}))
    results = generate(specs, backend, store, on_progress=on_progress) if specs else []
    labels: dict[tuple[str, int], Check] = {}
    for (r, p, k, prefix), rollouts in zip(plans, results):
        answers, hits = [], 0
        for roll in rollouts:
            ans = extract_answer(prefix + roll.text)
            ok = check_answer(p, ans) is True
            hits += ok
            answers.append(normalize(ans))
        labels[(r.id, k)] = Check(kind="mc", by=CHECK_BY, verdict=1 if hits else -1, score=hits / len(rollouts),
                                  detail={"n": len(rollouts), "correct": hits, "answers": answers,
                                          "temperature": temperature, "max_tokens": max_tokens})
    for r, p in zip(rationales, probs):
        for step in r.steps:
            step.checks = [c for c in step.checks if not (c.kind == "mc" and c.by == CHECK_BY)]
        if not r.steps:
            continue
        if p.gold is None and p.answer_type != "reasoning_gym":
            continue
        for k, step in enumerate(r.steps[:-1]):
            step.checks.append(labels[(r.id, k)])
        last = r.steps[-1]
        correct = bool(r.correct) if r.correct is not None else check_answer(p, r.answer) is True
        last.checks.append(Check(kind="mc", by=CHECK_BY, verdict=1 if correct else -1, score=float(correct),
                                 detail={"n": 0, "final": True, "answer": normalize(r.answer)}))
    return list(rationales)


def mc_summary(rationales: Sequence[Rationale]) -> dict[str, Any]:
    """Counts of MC labels: steps labelled, +1, -1, mean soft label."""
    checks = [c for r in rationales for s in r.steps for c in s.checks if c.kind == "mc" and c.by == CHECK_BY]
    return {"steps": len(checks), "positive": sum(c.verdict == 1 for c in checks),
            "negative": sum(c.verdict == -1 for c in checks),
            "mean_soft": (sum(c.score or 0.0 for c in checks) / len(checks)) if checks else None}


__all__ = ["mc_labels", "mc_summary", "rollout_template", "ROLLOUT_METHOD"]
