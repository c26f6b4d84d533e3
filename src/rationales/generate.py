"""The generate stage: N rationales per problem, cached in the store, committed as they finish.

Every sample has an explicit seed derived from (base seed, problem, prompt, sample index), so
samples of one problem differ, reruns repeat exactly, and the rationale's content-hash id is
known *before* generating: whatever the store already has is never generated again, and a
killed run resumes with only the missing samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .backends.base import Backend, Completion, GenerationRequest
from .prompts import RenderedPrompt, render
from .records import Problem, Rationale, Sampling, content_hash
from .steps import segment
from .store import Store
from .answers import extract_answer, grade_answer


def sample_seed(base_seed: int, problem_id: str, prompt_id: str, index: int) -> int:
    """A sample's own seed (31-bit, llama.cpp and numpy accept it)."""
    return int(content_hash("seed", base_seed, problem_id, prompt_id, index), 16) % (2**31 - 1)


@dataclass
class SampleSpec:
    """What to sample for a problem: a rendered prompt and sampling settings."""

    problem: Problem
    prompt: RenderedPrompt
    n: int = 8
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    stop: list[str] = field(default_factory=list)
    seed: int = 0
    method: str = "cot"
    parent_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: raw text prompt instead of the rendered transcript (continuations of a prefix)
    raw_prompt: str | None = None

    def samplings(self) -> list[Sampling]:
        if self.temperature <= 0:  # greedy: one sample, seed irrelevant
            return [Sampling(temperature=0.0, top_p=1.0, max_tokens=self.max_tokens, stop=self.stop, seed=0)]
        return [Sampling(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                         stop=self.stop, seed=sample_seed(self.seed, self.problem.id, self.prompt_id, i))
                for i in range(self.n)]

    @property
    def prompt_id(self) -> str:
        return content_hash("raw", self.raw_prompt) if self.raw_prompt is not None else self.prompt.id


@dataclass
class GenerationStats:
    new: int = 0
    cached: int = 0
    tokens_new: int = 0
    calls: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"samples_new": self.new, "samples_cached": self.cached, "tokens_new": self.tokens_new}


def finish_rationale(problem: Problem, text: str, *, rid: str, prompt_id: str, model: str,
                     sampling: Sampling, index: int, tokens: int = 0, prompt_tokens: int = 0,
                     finish_reason: str = "stop", method: str = "cot", parent_id: str | None = None,
                     meta: dict[str, Any] | None = None, segment_mode: str = "auto") -> Rationale:
    """Turn model text into a ``Rationale``: steps, extracted answer, outcome, correctness.
    Never raises for odd text: when extracting, segmenting or checking fails (or a checker
    reaches no verdict, e.g. it timed out), the sample is kept with ``outcome="error"`` and the
    reason in ``meta["error"]``, so one sample can never stop a run or its reruns."""
    meta = dict(meta or {})
    errors: list[str] = []
    try:
        answer = extract_answer(text)
    except Exception as e:  # pragma: no cover - extract_answer is property-tested not to raise
        answer, _ = None, errors.append(f"answer extraction failed: {type(e).__name__}: {e}")
    try:
        steps = segment(text, segment_mode)
    except Exception as e:
        steps = []
        errors.append(f"segmentation failed: {type(e).__name__}: {e}")
    grade = grade_answer(problem, answer)
    if grade.error:
        errors.append(grade.error)
    if finish_reason == "length" and answer is None:
        outcome = "truncated"
    elif answer is None:
        outcome = "no_answer"
    else:
        outcome = "ok"
    if errors:
        outcome = "error"
        meta["error"] = "; ".join(errors)[:1000]
    return Rationale(
        id=rid, problem_id=problem.id, prompt_id=prompt_id, model=model, method=method,
        sampling=sampling, sample_index=index, text=text, steps=steps,
        answer=answer, outcome=outcome, correct=grade.correct, tokens=tokens,
        prompt_tokens=prompt_tokens, finish_reason=finish_reason, parent_id=parent_id, meta=meta)


def make_request(backend: Backend, spec: SampleSpec, samplings: Sequence[Sampling], tag: Any,
                 indices: Sequence[int] | None = None) -> GenerationRequest:
    common = dict(seeds=[s.seed for s in samplings], temperature=spec.temperature if spec.temperature > 0 else 0.0,
                  top_p=spec.top_p, max_tokens=spec.max_tokens, stop=list(spec.stop), tag=tag,
                  indices=list(indices) if indices is not None else None)
    if spec.raw_prompt is not None:
        return GenerationRequest(prompt=spec.raw_prompt, **common)
    if backend.chat:
        return GenerationRequest(messages=spec.prompt.messages, **common)
    return GenerationRequest(prompt=spec.prompt.completion_text(), **common)


#: the fewest samples one backend call carries (when there are that many to draw)
SAMPLES_PER_CALL = 64


def call_chunks(todo: list[tuple[int, list[int]]], min_requests: int,
                min_samples: int) -> Iterator[list[tuple[int, list[int]]]]:
    """``todo`` (plan index, missing sample indices) cut into backend calls of at least
    ``min_requests`` requests and ``min_samples`` samples each (the last call takes the rest).
    Counting samples, not only requests, matters for one-sample specs (tree proposals and
    rollouts, MC rollouts, step search): 8 of them per call decoded 8 sequences where the
    backend holds 16-32, and each call waited for its longest sequence."""
    chunk: list[tuple[int, list[int]]] = []
    samples = 0
    for item in todo:
        chunk.append(item)
        samples += len(item[1])
        if len(chunk) >= min_requests and samples >= min_samples:
            yield chunk
            chunk, samples = [], 0
    if chunk:
        yield chunk


def generate(specs: Sequence[SampleSpec], backend: Backend, store: Store, *,
             chunk_size: int = 8, segment_mode: str = "auto",
             on_progress: Callable[[int], None] | None = None,
             stats: GenerationStats | None = None) -> list[list[Rationale]]:
    """Sample every spec's rationales, reusing stored ones. Returns one list per spec, in
    sample order. ``on_progress(k)`` is called with the number of samples just done."""
    stats = stats if stats is not None else GenerationStats()
    plans = []  # (spec, samplings, ids)
    for spec in specs:
        samplings = spec.samplings()
        ids = [Rationale.make_id(spec.problem.id, spec.prompt_id, backend.model, s, i, spec.method, spec.parent_id)
               for i, s in enumerate(samplings)]
        plans.append((spec, samplings, ids))
    store.put_problems({s.problem.id: s.problem for s in specs}.values())
    have = store.has([rid for _, _, ids in plans for rid in ids])

    todo = []  # (plan index, [sample indices missing])
    for p_i, (spec, samplings, ids) in enumerate(plans):
        missing = [i for i, rid in enumerate(ids) if rid not in have]
        stats.cached += len(ids) - len(missing)
        if on_progress and len(ids) - len(missing):
            on_progress(len(ids) - len(missing))
        if missing:
            todo.append((p_i, missing))

    # a backend spread over many workers wants enough requests per call to keep them all busy
    chunk_size = max(chunk_size, int(getattr(backend, "min_chunk", 0)))
    per_call = max(SAMPLES_PER_CALL, 2 * int(backend.samples_in_flight))

    def run(todo: list[tuple[int, list[int]]]) -> None:
        for chunk in call_chunks(todo, chunk_size, per_call):
            if claims is not None:
                claims.renew()
            requests = []
            for p_i, missing in chunk:
                spec, samplings, _ = plans[p_i]
                requests.append(make_request(backend, spec, [samplings[i] for i in missing], tag=(p_i, missing),
                                             indices=missing))

            def on_sample(r_i: int, comp: Completion, requests: list[GenerationRequest] = requests) -> None:
                p_i, missing = requests[r_i].tag
                spec, samplings, ids = plans[p_i]
                i = missing[comp.index]
                r = finish_rationale(spec.problem, comp.text, rid=ids[i], prompt_id=spec.prompt_id,
                                     model=backend.model, sampling=samplings[i], index=i, tokens=comp.tokens,
                                     prompt_tokens=comp.prompt_tokens,
                                     finish_reason=comp.finish_reason, method=spec.method,
                                     parent_id=spec.parent_id, meta=spec.meta, segment_mode=segment_mode)
                store.put_rationale(r)  # committed as soon as it is finished
                stats.new += 1
                stats.tokens_new += comp.tokens
                if on_progress:
                    on_progress(1)

            stats.calls += 1
            backend.generate(requests, on_sample=on_sample)

    claims = None
    if getattr(backend, "claims_work", False):  # drivers that may share a store (scale-out)
        from .scale.claims import WorkClaims

        claims = WorkClaims(store)
    if claims is None:
        run(todo)
    else:  # generate only what this driver claimed; wait for (or take over) what others hold
        while todo:
            won = claims.claim([plans[p_i][2][i] for p_i, missing in todo for i in missing])
            mine = [(p_i, [i for i in missing if plans[p_i][2][i] in won]) for p_i, missing in todo]
            others = [(p_i, [i for i in missing if plans[p_i][2][i] not in won]) for p_i, missing in todo]
            try:
                run([(p_i, m) for p_i, m in mine if m])
            finally:
                claims.release(won)
            waiting = [plans[p_i][2][i] for p_i, missing in others for i in missing]
            still = set(claims.wait(waiting)) if waiting else set()
            stats.cached += len(waiting) - len(still)
            todo = [(p_i, [i for i in missing if plans[p_i][2][i] in still]) for p_i, missing in others]
            todo = [(p_i, m) for p_i, m in todo if m]

    found = store.get_rationales([rid for _, _, ids in plans for rid in ids])
    out = []
    for spec, _, ids in plans:
        missing = [rid for rid in ids if rid not in found]
        if missing:
            from .errors import BackendError

            raise BackendError(f"The backend returned {len(ids) - len(missing)} of {len(ids)} samples for problem "
                               f"{spec.problem.id}; run the same command again to fill in the rest.")
        out.append([found[rid] for rid in ids])
    return out


def cot_specs(problems: Sequence[Problem], *, template: str = "cot", n: int = 8, temperature: float = 0.7,
              top_p: float = 1.0, max_tokens: int = 512, seed: int = 0, examples: list[dict] | None = None,
              method: str | None = None, stop: list[str] | None = None) -> list[SampleSpec]:
    """One spec per problem from a prompt template."""
    specs = []
    for p in problems:
        prompt = render(template, question=p.question, context=p.context, examples=examples or [])
        specs.append(SampleSpec(problem=p, prompt=prompt, n=n, temperature=temperature, top_p=top_p,
                                max_tokens=max_tokens, seed=seed, method=method or prompt.template,
                                stop=stop or []))
    return specs


def continuation_prompt(backend: Backend, prompt: RenderedPrompt, prefix: str) -> str:
    """Raw prompt text that makes the model continue an assistant answer from ``prefix``
    (a partial rationale): for chat models the rendered chat with an open assistant turn, for
    base models the completion transcript. Used for step-wise search and MC rollouts."""
    if backend.chat:
        return backend.render(prompt.messages, add_generation_prompt=True) + prefix
    text = prompt.completion_text()
    return text + (" " + prefix if prefix else "")


def steps_prefix(step_texts: Sequence[str]) -> str:
    """The text of the first k steps as a rationale prefix (one step per line, newline-ended)."""
    return "".join(t.rstrip("\n") + "\n" for t in step_texts)
