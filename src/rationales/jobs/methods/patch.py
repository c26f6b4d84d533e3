"""Natural-language feedback patching of rationales (method ``patch``, command ``rationales patch``).

Malaviya, Lee, Roth, Yatskar, 2023, "What if you said that differently?" (seeds/000): users
read a wrong answer with its rationale and write free-text feedback; the model then **patches
the rationale in context** (prompt = question, old rationale, feedback -> revised rationale)
and answers again from the revised rationale alone (decomposed QA, ``formats.py``). The metric
is how often patching fixes the answer, per rationale format.

Records: each patch is a new ``Rationale`` (method ``patch``) whose ``parent_id`` is the old
rationale and whose ``meta`` holds ``{"feedback", "format", "feedback_source"}``; the feedback
is part of the prompt, so different feedback on the same rationale gives a different patch.

Feedback sources: a JSONL file of ``{"rationale_id", "feedback"}`` rows (a person's feedback,
``rationales patch FILE``); ``model`` (the model reads the question, the rationale and "its
answer X is wrong" and writes the feedback itself, ``feedback_model.j2``); ``gold`` (scripted
from the gold answer: says which answer is right, for benchmarks; an upper bound, since it
leaks the answer); ``wrong`` (scripted: only says the answer is wrong).

Choices where the paper is silent: patches and feedback are greedy; the revised rationale may
use up to ``max_tokens``; success rate = fixed / patched among *wrong* parents (each
(rationale, feedback) pair is one attempt), with a Wilson 95% interval; patches of parents
that were already right are counted apart (``kept_correct``).

Options of ``run --method patch``: ``format`` (as in formats), ``feedback`` (model | gold |
wrong; default model) or ``feedback_file`` (a JSONL path), ``answer_max_tokens`` (48).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config import MAX_TOKENS, BackendConfig, MethodOptions, OutputConfig, setting
from ...backends.base import Backend
from ...errors import RationalesError, UnknownNameError
from ...generate import GenerationStats, SampleSpec, generate
from ...prompts import render
from ...records import Problem, Rationale
from ...stats import wilson_interval
from ...select.vote import strategy_row
from ...store import Store
from . import MethodContext
from .formats import CHUNK, FORMATS, answer_from_rationales, decomposed_selection, parse_formats, run_formats
from ..results import PatchJobResult, PatchMethodResult

FEEDBACK_SOURCES = ("model", "gold", "wrong")
PATCH_METHOD = "patch"
FEEDBACK_METHOD = "feedback"


@dataclass
class FeedbackItem:
    """One piece of feedback on one stored rationale (``line``: where it came from)."""

    rationale_id: str
    feedback: str
    line: int | None = None
    source: str = "user"


@dataclass
class PatchResult:
    parent: Rationale
    patch: Rationale
    feedback: str
    format: str

    @property
    def fixed(self) -> bool:
        return self.parent.correct is False and self.patch.correct is True


def read_feedback_jsonl(path: str | Path) -> list[FeedbackItem]:
    """Rows ``{"rationale_id": ..., "feedback": "..."}``, one per line; blank lines skipped.
    A malformed line is a one-line ``RationalesError`` naming the file and line."""
    from ...tasks.jsonl import read_jsonl_numbered

    path = Path(path)
    items = []
    shape = '{"rationale_id": "...", "feedback": "..."}'
    for no, row in read_jsonl_numbered(path, f"feedback file (one {shape} per line)", RationalesError):
        rid, feedback = row.get("rationale_id"), row.get("feedback")
        if not isinstance(rid, str) or not rid.strip():
            raise RationalesError(f"{path} line {no}: missing \"rationale_id\" (a stored rationale's id, "
                                  "see `rationales export`).")
        if not isinstance(feedback, str) or not feedback.strip():
            raise RationalesError(f"{path} line {no}: missing \"feedback\" text for rationale {rid}.")
        items.append(FeedbackItem(rid.strip(), feedback.strip(), line=no))
    if not items:
        raise RationalesError(f"Feedback file {path} has no feedback rows; write one JSON object per line: {shape}.")
    return items


def write_feedback_jsonl(path: str | Path, items: Sequence[FeedbackItem]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"rationale_id": i.rationale_id, "feedback": i.feedback}) + "\n"
                            for i in items), encoding="utf-8")
    return path


def resolve_items(items: Sequence[FeedbackItem], store: Store,
                  source: str | Path | None = None) -> list[tuple[Rationale, Problem, FeedbackItem]]:
    """Look up each item's rationale and problem; an unknown id is an error naming its line."""
    found = store.get_rationales(i.rationale_id for i in items)
    out = []
    where = f"{source} " if source else ""
    for item in items:
        r = found.get(item.rationale_id)
        if r is None:
            at = f"{where}line {item.line}: " if item.line else ""
            raise RationalesError(f"{at}no rationale with id '{item.rationale_id}' in store {store.path}; "
                                  "use ids from `rationales export` on the same --store.")
        problem = store.get_problem(r.problem_id)
        if problem is None:
            raise RationalesError(f"Rationale {r.id} refers to problem {r.problem_id}, which is not in store "
                                  f"{store.path}.")
        out.append((r, problem, item))
    return out


def format_of(r: Rationale) -> str:
    """The rationale format of a record: meta["format"], else from a "format:NAME" method."""
    fmt = r.meta.get("format")
    if fmt:
        return str(fmt)
    return r.method.split(":", 1)[1] if r.method.startswith("format:") else r.method


def gold_feedback(problem: Problem, r: Rationale) -> str:
    """Scripted feedback that names the correct answer (benchmarks; leaks the gold)."""
    return (f"The final answer {r.answer if r.answer is not None else '(none given)'} is wrong; the correct answer "
            f"is {problem.gold}. Find the first step that goes wrong, fix it, and redo the steps after it so "
            f"that they reach {problem.gold}.")


def wrong_feedback(problem: Problem, r: Rationale) -> str:
    """Scripted feedback that only says the answer is wrong."""
    return (f"The final answer {r.answer if r.answer is not None else '(none given)'} is wrong. Check every "
            "number and calculation against the question, fix the first mistake, and redo the steps after it.")


def model_feedback(pairs: Sequence[tuple[Problem, Rationale]], backend: Backend, store: Store, *,
                   max_tokens: int = 160, stats: GenerationStats | None = None) -> list[str]:
    """The model writes the feedback itself (told only that the answer is wrong); cached as
    rationales of method ``feedback`` whose parent is the reviewed rationale."""
    specs = [SampleSpec(problem=p, prompt=render("feedback_model", question=p.question, context=p.context,
                                                 rationale=r.text.strip(),
                                                 answer=r.answer if r.answer is not None else "(none)"),
                        n=1, temperature=0.0, max_tokens=max_tokens, method=FEEDBACK_METHOD, parent_id=r.id,
                        meta={"format": format_of(r)})
             for p, r in pairs]
    out = generate(specs, backend, store, stats=stats, chunk_size=CHUNK) if specs else []
    return [rs[0].text.strip() or "The answer is wrong; check the steps." for rs in out]


def make_feedback(pairs: Sequence[tuple[Problem, Rationale]], source: str, backend: Backend, store: Store, *,
                  stats: GenerationStats | None = None) -> list[FeedbackItem]:
    if source not in FEEDBACK_SOURCES:
        raise UnknownNameError("feedback source", source, FEEDBACK_SOURCES)
    if source == "model":
        texts = model_feedback(pairs, backend, store, stats=stats)
    else:
        fn = gold_feedback if source == "gold" else wrong_feedback
        texts = [fn(p, r) for p, r in pairs]
    return [FeedbackItem(r.id, t, source=source) for (p, r), t in zip(pairs, texts)]


def patch_specs(triples: Sequence[tuple[Rationale, Problem, FeedbackItem]], *,
                max_tokens: int = 512) -> list[SampleSpec]:
    specs = []
    for parent, problem, item in triples:
        fmt = format_of(parent)
        prompt = render("patch_rationale", question=problem.question, context=problem.context,
                        rationale=parent.text.strip(), feedback=item.feedback, format_hint=FORMATS.get(fmt, ""))
        specs.append(SampleSpec(problem=problem, prompt=prompt, n=1, temperature=0.0, max_tokens=max_tokens,
                                method=PATCH_METHOD, parent_id=parent.id,
                                meta={"feedback": item.feedback, "format": fmt, "feedback_source": item.source}))
    return specs


def patch_rationales(triples: Sequence[tuple[Rationale, Problem, FeedbackItem]], backend: Backend, store: Store,
                     *, max_tokens: int = 512, answer_max_tokens: int = 48,
                     stats: GenerationStats | None = None) -> list[PatchResult]:
    """Revise each rationale with its feedback, answer the revision from itself alone, and
    store it as a child of the old rationale. Cached: the same feedback is never re-run."""
    if not triples:
        return []
    patches = generate(patch_specs(triples, max_tokens=max_tokens), backend, store, stats=stats, chunk_size=CHUNK)
    patched = answer_from_rationales([(problem, rs[0]) for (_, problem, _), rs in zip(triples, patches)],
                                     backend, store, max_tokens=answer_max_tokens, stats=stats)
    return [PatchResult(parent, patch, item.feedback, format_of(parent))
            for (parent, _, item), patch in zip(triples, patched)]


def _rate_row(results: Sequence[PatchResult]) -> dict[str, Any]:
    wrong = [r for r in results if r.parent.correct is False]
    fixed = sum(r.fixed for r in wrong)
    others = [r for r in results if r.parent.correct is True]
    lo, hi = wilson_interval(fixed, len(wrong))
    return {"wrong_parents": len(wrong), "fixed": fixed,
            "success_rate": round(fixed / len(wrong), 4) if wrong else None,
            "ci_low": round(lo, 4), "ci_high": round(hi, 4), "patches": len(results),
            "right_parents": len(others), "kept_correct": sum(bool(r.patch.correct) for r in others),
            "patch_tokens": sum(r.patch.tokens + int(r.patch.meta.get("answer_tokens") or 0) for r in results)}


def success_by_format(results: Sequence[PatchResult]) -> dict[str, dict[str, Any]]:
    """Per format (and ``all``): how many wrong parents were patched and how many patches are
    right. ``success_rate`` = fixed / wrong_parents (None when no parent was wrong)."""
    table: dict[str, dict[str, Any]] = {}
    for fmt in dict.fromkeys(r.format for r in results):
        table[fmt] = _rate_row([r for r in results if r.format == fmt])
    if results:
        table["all"] = _rate_row(results)
    return table


@dataclass
class PatchOptions(MethodOptions):
    """-O options of --method patch."""

    format: str | None = setting(None, aliases=("formats",), help="One format or a comma list (default: all five).")
    answer_max_tokens: int = setting(48, lo=1, hi=MAX_TOKENS, help="Max new tokens of the answer call.")
    feedback: str = setting("model", choices=FEEDBACK_SOURCES, what="feedback source", help="Who writes the feedback.")
    feedback_file: str | None = setting(None, help="A feedback JSONL file instead (rationale_id, feedback).")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_formats(self.format)


OPTIONS = PatchOptions


def run(ctx: MethodContext) -> PatchMethodResult:
    """``rationales run --method patch``: rationales in each format (decomposed), feedback on
    the wrong ones, patches, and the patch success rate per format."""

    t0 = time.time()
    stats = GenerationStats()
    problems = list(ctx.problems)
    o = PatchOptions.from_options(ctx.options)
    fmts = parse_formats(o.format)
    amt = o.answer_max_tokens
    by_format = run_formats(problems, ctx.backend, ctx.store, formats=fmts, max_tokens=ctx.max_tokens,
                            answer_max_tokens=amt, stats=stats, on_progress=ctx.on_progress)
    by_id = {p.id: p for p in problems}
    wrong = [(by_id[r.problem_id], r) for fmt in fmts for r in by_format[fmt] if r.correct is False]
    if o.feedback_file:
        source = o.feedback_file
        triples = resolve_items(read_feedback_jsonl(source), ctx.store, source)
    else:
        source = o.feedback
        items = make_feedback(wrong, source, ctx.backend, ctx.store, stats=stats)
        triples = [(r, p, item) for (p, r), item in zip(wrong, items)]
    results = patch_rationales(triples, ctx.backend, ctx.store, max_tokens=ctx.max_tokens,
                               answer_max_tokens=amt, stats=stats)
    success = success_by_format(results)

    patched_by_parent = {res.parent.id: res.patch for res in results}
    strategies: dict[str, dict[str, Any]] = {}
    for fmt in fmts:
        before = [decomposed_selection(p, r, fmt) for p, r in zip(problems, by_format[fmt])]
        after = [decomposed_selection(p, patched_by_parent.get(r.id, r), f"{fmt}+patch")
                 for p, r in zip(problems, by_format[fmt])]
        strategies[fmt] = strategy_row(before)
        strategies[f"{fmt}+patch"] = strategy_row(after)
    return PatchMethodResult(
        task=ctx.task, backend=ctx.backend.name, model=ctx.backend.model,
        problems=len(problems), formats=fmts, feedback_source=source, strategies=strategies,
        patch_success=success, patches=len(results), **stats.as_dict(),
        tokens=sum(s["tokens"] for k, s in strategies.items() if not k.endswith("+patch"))
        + (success.get("all", {}).get("patch_tokens", 0)),
        time_s=round(time.time() - t0, 2), results=results, store=ctx.store)


@dataclass
class PatchConfig(OutputConfig, BackendConfig):
    """Settings of ``rationales patch FEEDBACK.jsonl``."""

    feedback_file: str = setting("", help='JSONL file, one {"rationale_id": ..., "feedback": "..."} per line.')
    max_tokens: int = setting(512, lo=1, hi=MAX_TOKENS, help="Max new tokens of a revised rationale.")


def patch_job(triples: Sequence[tuple[Rationale, Problem, FeedbackItem]], backend: Backend, store: Store, *,
              feedback_file: str, max_tokens: int = 512) -> PatchJobResult:
    """``rationales patch FEEDBACK.jsonl``: patch the resolved (rationale, problem, feedback)
    triples, re-answer, and summarise the success per format (recorded as a run)."""
    t0 = time.time()
    stats = GenerationStats()
    results = patch_rationales(triples, backend, store, max_tokens=max_tokens, stats=stats)
    result = PatchJobResult(feedback_file=feedback_file, backend=backend.name, model=backend.model,
                            patches=len(results), patch_success=success_by_format(results),
                            patch_ids=[r.patch.id for r in results], **stats.as_dict(),
                            time_s=round(time.time() - t0, 2), results=results, store=store)
    run_id = store.start_run("patch", {"feedback_file": feedback_file, "model": backend.model})
    store.finish_run(run_id, result.to_json())
    return result
