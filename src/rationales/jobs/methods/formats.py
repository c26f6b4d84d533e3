"""Rationale formats with decomposed answering (method ``formats``).

Malaviya, Lee, Roth, Yatskar, 2023, "What if you said that differently?: How Explanation
Formats Affect Human Feedback Efficacy and User Perception" (seeds/000). A decomposed QA model
first writes a rationale from context + question in one of five formats, then answers **from
the rationale alone**: a second call that sees only the question and the rationale.

Formats (templates ``prompts/templates/format_<name>.j2``, two short demonstrations each, one
reading-comprehension item with a context and one arithmetic word problem):

* ``markup_and_mask``: relevant sentences copied with [bracket] markup, the rest masked "...";
* ``annotated_report``: Approach / Evidence (fact -> contribution) / Conclusion;
* ``procedural``: numbered steps;
* ``subquestions``: Q1/A1, Q2/A2, ... question decomposition;
* ``decision_tree``: a chain of decisions ending in a leaf.

Choices where the paper is silent (it used Quoref and PubMedQA with larger models):
rationales are greedy (temperature 0, one per problem and format) so accuracy per format is
deterministic; the answer call is greedy with 48 new tokens; the format rationale record keeps
what its own text states as ``meta["rationale_answer"]`` while ``answer``/``correct`` are set
from the answer call (``meta["answer_id"]`` links to that record). ``decomposed=False`` asks
for "The answer is X." at the end of the rationale instead of a second call (used by the
ensemble method).

Options (``ctx.options``): ``format`` (one name or a comma list; default all five),
``decomposed`` (default True), ``answer_max_tokens`` (48).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

from ...config import MAX_TOKENS, MethodOptions, setting
from ...backends.base import Backend
from ...errors import RationalesError, UnknownNameError
from ...generate import GenerationStats, SampleSpec, generate
from ...prompts import render
from ...records import Problem, Rationale
from ...select.vote import Selection, strategy_row
from ...store import Store
from ...answers import check_answer, extract_answer
from . import MethodContext
from ..results import FormatsResult

#: name -> one-line description (the template is ``format_<name>.j2``)
FORMATS: dict[str, str] = {
    "markup_and_mask": "Markup-and-Mask: relevant facts copied with [markup], the rest masked",
    "annotated_report": "Annotated Report: approach, annotated evidence, conclusion",
    "procedural": "Procedural: numbered steps",
    "subquestions": "Subquestions: question decomposition, Q1/A1, Q2/A2, ...",
    "decision_tree": "Decision Tree: a chain of decisions ending in a leaf",
}

ANSWER_METHOD = "answer_from_rationale"
#: specs per backend call: the llamacpp backend decodes all their samples as one continuous batch
CHUNK = 32


def parse_formats(value: str | Sequence[str] | None) -> list[str]:
    """``None``/"all" -> all five; "a,b" or a list -> those, checked against ``FORMATS``."""
    if value is None or value == "all" or value == []:
        return list(FORMATS)
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    for name in names:
        if name not in FORMATS:
            raise UnknownNameError("rationale format", name, FORMATS)
    if not names:
        raise RationalesError("No rationale format given; use one of: " + ", ".join(FORMATS) + ".")
    return names


def format_method(fmt: str) -> str:
    return f"format:{fmt}"


def format_specs(problems: Sequence[Problem], fmt: str, *, decomposed: bool = True, n: int = 1,
                 temperature: float = 0.0, top_p: float = 1.0, max_tokens: int = 512,
                 seed: int = 0) -> list[SampleSpec]:
    """One spec per problem for a rationale in format ``fmt`` (greedy by default)."""
    if fmt not in FORMATS:
        raise UnknownNameError("rationale format", fmt, FORMATS)
    specs = []
    for p in problems:
        prompt = render(f"format_{fmt}", question=p.question, context=p.context, decomposed=decomposed)
        specs.append(SampleSpec(problem=p, prompt=prompt, n=n, temperature=temperature, top_p=top_p,
                                max_tokens=max_tokens, seed=seed, method=format_method(fmt),
                                meta={"format": fmt, "decomposed": decomposed}))
    return specs


def answer_specs(pairs: Sequence[tuple[Problem, Rationale]], *, max_tokens: int = 48) -> list[SampleSpec]:
    """The decomposed answer call: its prompt holds only the question and the rationale."""
    specs = []
    for problem, r in pairs:
        prompt = render("answer_from_rationale", question=problem.question, rationale=r.text.strip())
        specs.append(SampleSpec(problem=problem, prompt=prompt, n=1, temperature=0.0, max_tokens=max_tokens,
                                method=ANSWER_METHOD, parent_id=r.id,
                                meta={"format": r.meta.get("format"), "answers": r.id}))
    return specs


def answer_from_rationales(pairs: Sequence[tuple[Problem, Rationale]], backend: Backend, store: Store, *,
                           max_tokens: int = 48, stats: GenerationStats | None = None) -> list[Rationale]:
    """Answer each rationale from itself alone and record that answer on the rationale.

    The rationale record keeps its own stated answer in ``meta["rationale_answer"]``; its
    ``answer``/``correct``/``outcome`` become those of the answer call, whose record id is
    ``meta["answer_id"]``. Returns the updated rationales (also written to the store)."""
    if not pairs:
        return []
    answers = generate(answer_specs(pairs, max_tokens=max_tokens), backend, store, stats=stats, chunk_size=CHUNK)
    updated = []
    for (problem, r), (ans,) in zip(pairs, answers):
        if "rationale_answer" not in r.meta:
            r.meta["rationale_answer"] = extract_answer(r.text)
        r.meta.update(answer_id=ans.id, decomposed=True, answer_tokens=ans.tokens)
        r.answer = ans.answer
        r.correct = check_answer(problem, ans.answer)
        r.outcome = "ok" if ans.answer is not None else (
            "truncated" if r.finish_reason == "length" else "no_answer")
        store.put_rationale(r)
        updated.append(r)
    return updated


def decomposed_selection(problem: Problem, r: Rationale, strategy: str) -> Selection:
    """A greedy selection whose tokens count the rationale and its answer call."""
    tokens = r.tokens + int(r.meta.get("answer_tokens") or 0)
    return Selection(problem.id, r.answer, bool(r.correct), None, tokens, r.id, strategy=strategy)


def run_formats(problems: Sequence[Problem], backend: Backend, store: Store, *,
                formats: Sequence[str] | None = None, decomposed: bool = True, max_tokens: int = 512,
                answer_max_tokens: int = 48, stats: GenerationStats | None = None,
                on_progress: Any = None) -> dict[str, list[Rationale]]:
    """Greedy rationale per problem in each format, answered from the rationale alone when
    ``decomposed``. Returns format -> rationales (aligned with ``problems``)."""
    stats = stats if stats is not None else GenerationStats()
    fmts = parse_formats(list(formats) if formats else None)
    specs = [s for fmt in fmts for s in format_specs(problems, fmt, decomposed=decomposed, max_tokens=max_tokens)]
    out = generate(specs, backend, store, stats=stats, on_progress=on_progress, chunk_size=CHUNK)
    by_format: dict[str, list[Rationale]] = {}
    for i, fmt in enumerate(fmts):
        by_format[fmt] = [rs[0] for rs in out[i * len(problems):(i + 1) * len(problems)]]
    if decomposed:
        pairs = [(p, r) for fmt in fmts for p, r in zip(problems, by_format[fmt])]
        answer_from_rationales(pairs, backend, store, max_tokens=answer_max_tokens, stats=stats)
    return by_format


@dataclass
class FormatsOptions(MethodOptions):
    """-O options of --method formats."""

    format: str | None = setting(None, aliases=("formats",), help="One format or a comma list (default: all five).")
    decomposed: bool = setting(True, help="Answer from the rationale alone (decomposed QA).")
    answer_max_tokens: int = setting(48, lo=1, hi=MAX_TOKENS, help="Max new tokens of the answer call.")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_formats(self.format)


OPTIONS = FormatsOptions


def run(ctx: MethodContext) -> FormatsResult:
    """``rationales run --method formats``: accuracy per rationale format (decomposed QA)."""

    t0 = time.time()
    o = FormatsOptions.from_options(ctx.options)
    fmts = parse_formats(o.format)
    decomposed = o.decomposed
    stats = GenerationStats()
    problems = list(ctx.problems)
    by_format = run_formats(problems, ctx.backend, ctx.store, formats=fmts, decomposed=decomposed,
                            max_tokens=ctx.max_tokens,
                            answer_max_tokens=o.answer_max_tokens,
                            stats=stats, on_progress=ctx.on_progress)
    strategies: dict[str, dict[str, Any]] = {}
    agree: dict[str, float] = {}
    for fmt, rs in by_format.items():
        sels = [decomposed_selection(p, r, fmt) for p, r in zip(problems, rs)]
        strategies[fmt] = strategy_row(sels)
        stated = [r for r in rs if r.meta.get("rationale_answer") is not None and r.answer is not None]
        if decomposed and stated:
            from ...answers import normalize

            agree[fmt] = round(sum(normalize(r.meta["rationale_answer"]) == normalize(r.answer) for r in stated)
                               / len(stated), 4)
    return FormatsResult(
        task=ctx.task, backend=ctx.backend.name, model=ctx.backend.model,
        problems=len(problems), formats=fmts, decomposed=decomposed, strategies=strategies,
        answer_agrees_with_rationale=agree, **stats.as_dict(),
        tokens=sum(s["tokens"] for s in strategies.values()), time_s=round(time.time() - t0, 2),
        problem_list=problems, by_format=by_format)


