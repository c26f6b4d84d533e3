"""Verbosity-aware rationale reduction: drop the sentences the answer does not need.

Jang et al., 2024/2025, "Verbosity-Aware Rationale Reduction: Sentence-Level Rationale Reduction
for Efficient and Effective Reasoning" (arXiv:2412.21006, Findings of ACL 2025): a sentence is
redundant when removing it does not make the answer less likely (its *verbosity* criterion,
the change of the answer's NLL); sentences are examined from the front to the back (early
sentences were found to matter least), the redundant ones removed, and the model is trained on
the reduced rationales (training is for ``train/``; this module builds the reduced rationales).

Choices here:

* Sentences: each line of the rationale body (final-answer statement cut off, see
  ``utility.rationale_body``), split further at sentence ends.
* Greedy, front to back: sentence i is dropped when log P(a | q, current reduction without i)
  >= log P(a | q, full rationale) - ``threshold``. Comparing with the *full* rationale (not the
  current reduction) bounds the total loss of the answer's log-probability by ``threshold``
  whatever the number of dropped sentences. Default threshold 0.1 nats.
* a = "The answer is {answer}." with the rationale's *own* answer (no gold needed; pass
  ``answer=`` to reduce toward the gold answer, e.g. for training sets of correct rationales).
* The reduced rationale is stored as a new ``Rationale`` (method ``"reduced"``, ``parent_id`` =
  the original) whose answer is re-derived: the model completes "<reduced body> The answer is"
  (greedy, to the end of the line) and that answer is checked like any other, so "accuracy
  kept" is measured, not assumed. A rationale with no reasoning before its answer is skipped.
* Token counts of bodies come from the backend's own tokenizer (``count_tokens``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend
from ..generate import GenerationStats, SampleSpec, continuation_prompt, finish_rationale, generate
from ..prompts import RenderedPrompt
from ..records import Problem, Rationale, Score, content_hash
from ..steps import split_spans
from ..store import Store
from .utility import ANSWER_TEMPLATE, AnswerScorer, rationale_body


def sentence_spans(body: str) -> list[tuple[int, int]]:
    """Sentence spans of ``body``: lines, each split at sentence ends."""
    spans = []
    for a, b in split_spans(body, "lines"):
        spans.extend((a + x, a + y) for x, y in split_spans(body[a:b], "sentences"))
    return spans


def join_sentences(body: str, spans: Sequence[tuple[int, int]], keep: Sequence[int]) -> str:
    """The kept sentences joined by a newline where a line break lay between them in ``body``,
    else by a space (so the layout of lines survives); newline-terminated when not empty."""
    keep = sorted(keep)
    parts = []
    for j, i in enumerate(keep):
        a, b = spans[i]
        parts.append(body[a:b])
        if j + 1 < len(keep):
            parts.append("\n" if "\n" in body[b:spans[keep[j + 1]][0]] else " ")
    text = "".join(parts)
    return text + "\n" if text else ""


@dataclass
class Reduction:
    """The outcome of reducing one rationale."""

    answer: str
    sentences: list[str]
    kept: list[int]
    dropped: list[int]
    full_logprob: float
    reduced_logprob: float
    reduced_body: str
    threshold: float
    trace: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "kept": self.kept, "dropped": self.dropped, "sentences": len(self.sentences),
                "full_logprob": self.full_logprob, "reduced_logprob": self.reduced_logprob,
                "threshold": self.threshold, "trace": self.trace}


def reduce_rationale(backend: Backend, prompt: RenderedPrompt, rationale: Rationale, *, answer: str | None = None,
                     threshold: float = 0.1, scorer: AnswerScorer | None = None) -> Reduction | None:
    """Greedy front-to-back sentence reduction of ``rationale`` (None: no answer to keep)."""
    target = answer if answer is not None else rationale.answer
    if target is None:
        return None
    if threshold < 0:
        from ..errors import RationalesError

        raise RationalesError(f"The reduction threshold is a log-probability drop and must be >= 0, got {threshold}.")
    scorer = scorer or AnswerScorer(backend)
    body = rationale_body(rationale.text)
    spans = sentence_spans(body)
    sentences = [body[a:b] for a, b in spans]
    keep = list(range(len(spans)))
    full = scorer(prompt, join_sentences(body, spans, keep), target).logprob
    current = full
    trace = []
    for i in range(len(spans)):
        trial = [k for k in keep if k != i]
        lp = scorer(prompt, join_sentences(body, spans, trial), target).logprob
        drop = lp >= full - threshold
        trace.append({"sentence": i, "logprob_without": lp, "dropped": drop})
        if drop:
            keep, current = trial, lp
    dropped = [i for i in range(len(spans)) if i not in keep]
    return Reduction(str(target), sentences, keep, dropped, full, current, join_sentences(body, spans, keep),
                     threshold, trace)


def count_tokens(backend: Backend, text: str, prompt_text: str = "") -> int:
    """Tokens of ``text`` after ``prompt_text`` under the backend's tokenizer: with its
    ``tokenize`` (llamacpp), the tokens the pair has beyond the prompt's own; otherwise the
    token count of ``text`` scored as a continuation (one ``logprobs`` call)."""
    if not text.strip():
        return 0
    tokenize = getattr(backend, "tokenize", None)
    if callable(tokenize):
        base, full = list(tokenize(prompt_text)), list(tokenize(prompt_text + text))
        shared = 0
        while shared < min(len(base), len(full)) and base[shared] == full[shared]:
            shared += 1
        return len(full) - shared
    return backend.logprobs(prompt_text, [text])[0].tokens


@dataclass
class ReducedPair:
    original: Rationale
    reduced: Rationale | None
    reduction: Reduction | None
    body_tokens: int = 0
    reduced_body_tokens: int = 0


def answer_lead(answer_template: str) -> str:
    """The words before the answer in the answer statement ("The answer is")."""
    return answer_template.split("{answer}", 1)[0].rstrip()


def _reduction_key(backend: Backend, r: Rationale, threshold: float, answer_template: str) -> str:
    return content_hash("reduction", r.id, r.answer, threshold, answer_template, backend.model)


def _load_reduction(store: Store, key: str) -> tuple[Reduction, dict[str, Any]] | None:
    """A reduction made earlier with the same settings (kept as a blob, so a rerun costs no
    log-prob call)."""
    saved = store.get_blob(key)
    if not saved:
        return None
    red = saved["reduction"]
    return (Reduction(red["answer"], red["sentence_texts"], red["kept"], red["dropped"], red["full_logprob"],
                      red["reduced_logprob"], red["reduced_body"], red["threshold"], red.get("trace", [])),
            saved)


def reduce_all(backend: Backend, store: Store, problems: Sequence[Problem], prompts: Sequence[RenderedPrompt],
               rationales: Sequence[Sequence[Rationale]], *, threshold: float = 0.1,
               answer_template: str = ANSWER_TEMPLATE, answer_max_tokens: int = 16,
               stats: GenerationStats | None = None) -> list[list[ReducedPair]]:
    """Reduce every rationale that has an answer and some reasoning, re-answer from each reduced
    body, and store the reduced rationales (method ``"reduced"``, ``parent_id`` = original).

    Re-answering: the model continues the reduced body followed by the answer statement's lead
    ("The answer is"), greedy, up to the end of the line, through ``generate()`` (cached), so
    what is measured is the answer the reduced reasoning leads to, not a fresh solution.
    Reductions made before with the same settings are reused from the store (blob kind
    ``"reduction"``); the reduced rationale's id depends only on the reduced text, so two
    thresholds that give the same reduction share one record."""
    scorer = AnswerScorer(backend, answer_template)
    lead = answer_lead(answer_template)
    pairs: list[list[ReducedPair]] = []
    specs: list[SampleSpec] = []
    where: list[tuple[int, int]] = []
    for p_i, (problem, prompt, rs) in enumerate(zip(problems, prompts, rationales)):
        row = []
        for r in rs:
            key = _reduction_key(backend, r, threshold, answer_template)
            loaded = _load_reduction(store, key) if r.answer is not None else None
            if loaded is not None:
                red, meta = loaded
            else:
                red = reduce_rationale(backend, prompt, r, threshold=threshold, scorer=scorer)
                meta = {}
                if red is not None and red.sentences:
                    base_text = continuation_prompt(backend, prompt, "")
                    meta = {"reduction": {**red.as_dict(), "answer_template": answer_template,
                                          "sentence_texts": red.sentences, "reduced_body": red.reduced_body},
                            "body_tokens": count_tokens(backend, rationale_body(r.text), base_text),
                            "reduced_body_tokens": count_tokens(backend, red.reduced_body, base_text),
                            "stated_tokens": count_tokens(backend, red.reduced_body + lead, base_text)}
                    store.put_blob(key, "reduction", meta)
            pair = ReducedPair(r, None, red)
            if red is not None and red.sentences:
                pair.body_tokens, pair.reduced_body_tokens = meta["body_tokens"], meta["reduced_body_tokens"]
                specs.append(SampleSpec(problem=problem, prompt=prompt, n=1, temperature=0.0,
                                        max_tokens=answer_max_tokens, stop=["\n"], method="reduced", parent_id=r.id,
                                        raw_prompt=continuation_prompt(backend, prompt, red.reduced_body + lead),
                                        meta=meta))
                where.append((p_i, len(row)))
            else:
                pair.reduction = None  # no answer, or no reasoning to reduce
            row.append(pair)
        pairs.append(row)
    results = generate(specs, backend, store, stats=stats) if specs else []
    assembled = []
    for (p_i, j), spec, res in zip(where, specs, results):
        pair = pairs[p_i][j]
        r = res[0]
        if not r.meta.get("assembled"):
            # the stored record holds only the continuation; make it the whole reduced rationale
            red = pair.reduction
            assert red is not None
            cont_tokens = r.tokens
            r = finish_rationale(spec.problem, red.reduced_body + lead + r.text, rid=r.id, prompt_id=r.prompt_id,
                                 model=r.model, sampling=r.sampling, index=r.sample_index,
                                 tokens=spec.meta["stated_tokens"] + cont_tokens, prompt_tokens=r.prompt_tokens,
                                 finish_reason=r.finish_reason, method="reduced", parent_id=pair.original.id,
                                 meta={**r.meta, "assembled": True, "continuation_tokens": cont_tokens})
            r.set_score(Score(kind="reduction", value=float(len(red.dropped)), by=backend.model or backend.name,
                              detail={"dropped": red.dropped, "sentences": len(red.sentences),
                                      "tokens_saved": pair.body_tokens - pair.reduced_body_tokens}))
            assembled.append(r)
        pair.reduced = r
    if assembled:
        store.put_rationales(assembled)
    return pairs


# ------------------------------------------------------------------ method: rationales run --method brevity


