"""Step-level search guided by a verifier: PRM-guided greedy search and deductive beam search.

Both grow a rationale one line at a time. Every candidate step is a stored, cached sample
(``tree.propose_steps``: a continuation of the steps so far that stops at the next newline),
and every candidate is valued by a step scorer (``score.prm``: LLM-as-PRM P(+)/(P(+)+P(-)),
the generative PRM, or a tool-check scorer), all candidates of one step in one batch.

* ``greedy_step_search``: reward-guided greedy search as GroundedPRM uses it at inference
  (Zhang et al., 2025, papers.md section 5): sample n = 8 candidate next steps and keep the one
  with the highest reward, until a step states a final answer.
* ``beam_step_search``: deductive beam search (Zhu et al., 2024, "Deductive Beam Search:
  Decoding Deducible Rationale for Chain-of-Thought Reasoning"): keep 5 beams; each live beam
  proposes ``expand`` (3) next steps, the verifier scores every new step, and the best 5 chains
  by cumulative score survive. Cumulative score: the product of step scores (the chance that
  every step is right; our reading of DBS); ``how`` may also be "min", "mean" or "last".
  Finished beams (a step stated the answer) stay in the pool and compete; the search ends when
  every kept beam is finished or after ``max_steps``.

Choices where the papers are silent: identical candidates are merged (their tokens still
count); empty and layout-only candidates ("\\[", "```") are dropped; ties go to the earlier
candidate; a reward the scorer could not produce (an unparsed
generative verdict, None) ranks as 0.5 (undecided); a chain that reaches ``max_steps``
without an answer, or whose candidates are all empty, is finished by one plain continuation so
it still states an answer (those tokens count too). Tokens spent = every generated token of
every candidate and continuation plus the scorer's generated tokens (``scorer_tokens``: only
generative scorers generate; LLM-as-PRM reads log-probabilities). The chosen rationale is
stored (method ``step_search`` / ``beam``) with a ``Check(kind="prm")`` on each searched step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend, ContinuationScore, GenerationRequest, GenerationResult, Messages, OnSample
from ..errors import RationalesError
from ..generate import GenerationStats
from ..prompts import RenderedPrompt
from ..records import Check, Problem, Sampling
from ..store import Store
from ..answers import check_answer, normalize
from ..verify.prm import scorer_name
from .best_of_n import rationale_score
from .tree import complete_paths, distinct_steps, path_rationale, problem_prompt, propose_steps, step_answer
from .vote import Selection


class CountingBackend(Backend):
    """Wraps a backend and counts the tokens it generates (``tokens_generated``), so a
    generative scorer's cost can be charged to the strategy that used it."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.model = inner.model
        self.chat = inner.chat
        self.tokens_generated = 0

    @property
    def samples_in_flight(self) -> int:
        return self.inner.samples_in_flight

    def generate(self, requests: Sequence[GenerationRequest], on_sample: OnSample | None = None
                 ) -> list[GenerationResult]:
        results = self.inner.generate(requests, on_sample=on_sample)
        self.tokens_generated += sum(c.tokens for res in results for c in res.completions)
        return results

    def logprobs(self, prompt: str | Messages, continuations: Sequence[str]) -> list[ContinuationScore]:
        return self.inner.logprobs(prompt, continuations)

    def render(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        return self.inner.render(messages, add_generation_prompt)


def scorer_tokens(scorer: Any) -> int:
    """Tokens a scorer has generated so far: its ``tokens_spent`` if it keeps one, else what
    its backend counted when that is a ``CountingBackend``; 0 otherwise."""
    value = getattr(scorer, "tokens_spent", None)
    if isinstance(value, int):
        return value
    backend = getattr(scorer, "backend", None)
    return backend.tokens_generated if isinstance(backend, CountingBackend) else 0


def score_candidates(scorer: Any, items: Sequence[tuple[Problem, Sequence[str], str]]) -> list[float | None]:
    """The scorer's reward for each (problem, earlier steps, candidate step), in one batch when
    the scorer has a single-step path (``score_steps``), else one ``score_prefix`` each."""
    if not items:
        return []
    single = getattr(scorer, "score_steps", None)
    if callable(single):
        return list(single([(p, list(prior), cand) for p, prior, cand in items]))
    from ..verify.prm import score_prefix

    return [score_prefix(scorer, p, list(prior), cand) for p, prior, cand in items]


def _rank(reward: float | None) -> float:
    return 0.5 if reward is None else float(reward)


@dataclass
class _Chain:
    problem: Problem
    prompt: RenderedPrompt
    steps: list[str] = field(default_factory=list)
    rewards: list[float | None] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)
    done: bool = False
    answer_step: bool = False  # the last step states a final answer


def _candidates(samples: Sequence[Any]) -> dict[str, int]:
    """Distinct non-empty candidate steps (text -> tokens of the sample that wrote it)."""
    return {text: s.tokens for text, s in distinct_steps(samples).items()}


def _finish(chains: Sequence[_Chain], spent: dict[str, int], backend: Backend, store: Store, *, method: str,
            by: str, temperature: float, finish_tokens: int, seed: int, stats: GenerationStats,
            how: str, strategy: str, extra: dict[str, Any]) -> list[Selection]:
    """Complete chains without an answer by one continuation; store the rationales; select."""
    need = [c for c in chains if not c.answer_step]
    outs = complete_paths([(c.problem, c.prompt, c.steps, seed) for c in need], backend, store,
                          temperature=temperature, max_tokens=finish_tokens, method=f"{method}_finish", stats=stats)
    tails = {id(c): o for c, o in zip(need, outs)}
    sels, rows = [], []
    for c in chains:
        tail = tails.get(id(c))
        if tail is not None:
            spent[c.problem.id] += tail.tokens
        r = path_rationale(c.problem, c.prompt, backend.model, method, c.steps, tail.text if tail else "",
                           tokens=sum(c.step_tokens) + (tail.tokens if tail else 0),
                           finish_reason=tail.finish_reason if tail else "stop",
                           sampling=Sampling(temperature=temperature, top_p=1.0, seed=seed),
                           meta={"tokens_spent": spent[c.problem.id], "searched_steps": len(c.steps),
                                 "finished_by_continuation": tail is not None})
        for step, reward in zip(r.steps, c.rewards):
            step.checks.append(Check(kind="prm", by=by, score=reward,
                                     verdict=None if reward is None else (1 if reward >= 0.5 else -1),
                                     detail={"search": method}))
        rows.append(r)
        score = rationale_score(c.rewards, how)
        key = normalize(r.answer)
        sels.append(Selection(c.problem.id, r.answer, check_answer(c.problem, r.answer), score,
                              spent[c.problem.id], r.id, {key: score} if key is not None else {}, strategy,
                              meta={"steps": len(c.steps), "finished_by_continuation": tail is not None, **extra}))
    store.put_rationales(rows)
    return sels


def _check_common(temperature: float, max_steps: int) -> None:
    if temperature <= 0:
        raise RationalesError("Step search samples several different candidates per step: use a temperature "
                              "above 0 (e.g. 0.7).")
    if max_steps < 1:
        raise RationalesError("Step search needs max_steps >= 1.")


def greedy_step_search(problems: Sequence[Problem], backend: Backend, store: Store, scorer: Any, *, n: int = 8,
                       max_steps: int = 10, temperature: float = 0.7, max_step_tokens: int = 128,
                       finish_tokens: int = 512, template: str = "cot", seed: int = 0,
                       stats: GenerationStats | None = None, method: str = "step_search",
                       on_step: Callable[[int], None] | None = None) -> list[Selection]:
    """PRM-guided greedy step search (n candidates per step, keep the best); all problems
    advance in lockstep, so each step is one batched generation and one batched scoring call.
    ``Selection.confidence`` is the min reward of the chosen steps."""
    _check_common(temperature, max_steps)
    if n < 1:
        raise RationalesError("Step search needs n >= 1 candidates per step.")
    stats = stats if stats is not None else GenerationStats()
    chains = [_Chain(p, problem_prompt(p, template)) for p in problems]
    spent = {p.id: 0 for p in problems}
    for t in range(max_steps):
        live = [c for c in chains if not c.done]
        if not live:
            break
        proposals = propose_steps([(c.problem, c.prompt, c.steps, n, seed) for c in live], backend, store,
                                  temperature=temperature, max_step_tokens=max_step_tokens,
                                  method=f"{method}_step", stats=stats)
        per_chain: list[dict[str, int]] = []
        items: list[tuple[Problem, Sequence[str], str]] = []
        for c, samples in zip(live, proposals):
            spent[c.problem.id] += sum(s.tokens for s in samples)
            cands = _candidates(samples)
            per_chain.append(cands)
            items.extend((c.problem, c.steps, text) for text in cands)
        before = scorer_tokens(scorer)
        rewards = score_candidates(scorer, items)
        scoring = scorer_tokens(scorer) - before
        i = 0
        for c, cands in zip(live, per_chain):
            if scoring and items:
                spent[c.problem.id] += round(scoring * len(cands) / len(items))
            if not cands:  # the model wants to stop (or only to open display maths) here
                c.done = True
                continue
            texts, rw = list(cands), rewards[i:i + len(cands)]
            i += len(cands)
            best = max(range(len(texts)), key=lambda j: (_rank(rw[j]), -j))
            c.steps.append(texts[best])
            c.rewards.append(rw[best])
            c.step_tokens.append(cands[texts[best]])
            if step_answer(texts[best]) is not None:
                c.done = c.answer_step = True
        if on_step:
            on_step(t)
    return _finish(chains, spent, backend, store, method=method, by=scorer_name(scorer), temperature=temperature,
                   finish_tokens=finish_tokens, seed=seed, stats=stats, how="min", strategy="step_search",
                   extra={"n": n})


def beam_step_search(problems: Sequence[Problem], backend: Backend, store: Store, scorer: Any, *, beams: int = 5,
                     expand: int = 3, max_steps: int = 10, how: str = "product", temperature: float = 0.7,
                     max_step_tokens: int = 128, finish_tokens: int = 512, template: str = "cot", seed: int = 0,
                     stats: GenerationStats | None = None, method: str = "beam",
                     on_step: Callable[[int], None] | None = None) -> list[Selection]:
    """Deductive-beam-style step beam search; returns the best finished chain per problem
    (``Selection.confidence`` = its cumulative score)."""
    _check_common(temperature, max_steps)
    if beams < 1 or expand < 1:
        raise RationalesError("Beam search needs beams >= 1 and expand >= 1.")
    rationale_score([], how)  # an unknown aggregate fails here, before any generation
    stats = stats if stats is not None else GenerationStats()
    pools: dict[str, list[_Chain]] = {}
    for p in problems:
        pools[p.id] = [_Chain(p, problem_prompt(p, template))]
    spent = {p.id: 0 for p in problems}
    for t in range(max_steps):
        live = [b for p in problems for b in pools[p.id] if not b.done]
        if not live:
            break
        proposals = propose_steps([(b.problem, b.prompt, b.steps, expand, seed) for b in live], backend, store,
                                  temperature=temperature, max_step_tokens=max_step_tokens,
                                  method=f"{method}_step", stats=stats)
        new: dict[str, list[_Chain]] = {p.id: [b for b in pools[p.id] if b.done] for p in problems}
        grown: list[tuple[_Chain, dict[str, int]]] = []
        items: list[tuple[Problem, Sequence[str], str]] = []
        for b, samples in zip(live, proposals):
            spent[b.problem.id] += sum(x.tokens for x in samples)
            cands = _candidates(samples)
            if not cands:  # nothing more to say: the beam ends as it is
                b.done = True
                new[b.problem.id].append(b)
                continue
            grown.append((b, cands))
            items.extend((b.problem, b.steps, text) for text in cands)
        before = scorer_tokens(scorer)
        rewards = score_candidates(scorer, items)
        scoring = scorer_tokens(scorer) - before
        i = 0
        for b, cands in grown:
            if scoring:
                spent[b.problem.id] += round(scoring * len(cands) / len(items))
            for text in cands:
                ends = step_answer(text) is not None
                new[b.problem.id].append(_Chain(b.problem, b.prompt, [*b.steps, text], [*b.rewards, rewards[i]],
                                                [*b.step_tokens, cands[text]], done=ends, answer_step=ends))
                i += 1
        for p in problems:
            seen: set[tuple[str, ...]] = set()
            unique = []
            for ch in new[p.id]:
                if tuple(ch.steps) not in seen:
                    seen.add(tuple(ch.steps))
                    unique.append(ch)
            order = sorted(range(len(unique)), key=lambda j: (-rationale_score(unique[j].rewards, how), j))
            pools[p.id] = [unique[j] for j in order[:beams]]
        if on_step:
            on_step(t)
    best = []
    for p in problems:
        pool = pools[p.id]
        ranked = sorted(range(len(pool)), key=lambda j: (not pool[j].answer_step,
                                                         -rationale_score(pool[j].rewards, how), j))
        best.append(pool[ranked[0]])
    return _finish(best, spent, backend, store, method=method, by=scorer_name(scorer), temperature=temperature,
                   finish_tokens=finish_tokens, seed=seed, stats=stats, how=how, strategy="beam",
                   extra={"beams": beams, "expand": expand, "how": how})
