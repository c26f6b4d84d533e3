"""Rationale-augmented ensembles (method ``ensemble``).

Wang, Wang, Schuurmans, Le, Chi, Zhou, 2022, "Rationale-Augmented Ensembles in Language
Models": instead of sampling every rationale from one prompt (self-consistency), vary the
prompt as well (the demonstrations, their order, the rationale format) and sample from each;
the final answer is the majority vote over all the sampled rationales ("output space
aggregation"). Compared here with the single-prompt vote at the same total number of samples.

Members (``ensemble`` option, comma separated; default ``cot,cot_fewshot,format:procedural,
format:subquestions``):

* a prompt template name (``cot``, ``cot_fewshot``, or any ``.j2`` path);
* ``format:NAME``: one of the five rationale formats (``formats.py``), answering in the same
  call ("The answer is X.");
* ``demos:I``: few-shot CoT whose demonstrations are the I-th seeded draw of ``shots``
  training problems with a right rationale (the task's gold rationale, else the model's own
  right sample): the paper's "input-rationale ensemble". Uses the deterministic train /
  held-out split of ``mistakes.split_problems`` (option ``train_size``).

The N = ``ctx.samples`` samples are split as evenly as possible over the M members (the first
N mod M members get one more); N must be at least M. The single-prompt baseline samples N from
the first member, whose first samples are the ensemble's own (same seeds, so they are shared,
not drawn twice). Ties in the vote go to the answer seen first (``vote.weighted_vote``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

from ...config import MAX_PROBLEMS, MethodOptions, setting
from ...errors import RationalesError
from ...generate import GenerationStats, SampleSpec, cot_specs, generate
from ...records import Problem, content_hash
from ...select.vote import majority_vote, strategy_row
from . import MethodContext
from .formats import CHUNK, format_specs
from ..results import EnsembleResult

DEFAULT_MEMBERS = ("cot", "cot_fewshot", "format:procedural", "format:subquestions")


def parse_members(value: str | Sequence[str] | None) -> list[str]:
    if not value:
        return list(DEFAULT_MEMBERS)
    members = [m.strip() for m in (value.split(",") if isinstance(value, str) else value) if m.strip()]
    if len(set(members)) != len(members):
        raise RationalesError(f"Ensemble members must differ (got {', '.join(members)}).")
    for m in members:
        if m.startswith("demos:") and not m[6:].isdigit():
            raise RationalesError(f"Ensemble member '{m}' must be demos:<number>, e.g. demos:0.")
    return members


def split_samples(total: int, members: int) -> list[int]:
    """``total`` samples over ``members`` prompts as evenly as possible (first ones get more)."""
    if members < 1:
        raise RationalesError("An ensemble needs at least one prompt.")
    if total < members:
        raise RationalesError(f"{total} samples cannot cover {members} ensemble prompts; use --samples {members} "
                              "or more, or fewer prompts.")
    return [total // members + (1 if j < total % members else 0) for j in range(members)]


def demonstration_pool(train: Sequence[Problem], ctx: MethodContext, stats: GenerationStats) -> list[dict[str, str]]:
    """Training problems with a right rationale: the gold one, else the model's own right sample."""
    from .mistakes import gold_rationale

    pool: list[dict[str, str]] = []
    need = []
    for p in train:
        gold = gold_rationale(p)
        if gold:
            pool.append({"question": p.question, "rationale": gold.strip(), "problem_id": p.id})
        else:
            need.append(p)
    if need:
        specs = cot_specs(need, n=ctx.samples, temperature=ctx.temperature, top_p=ctx.top_p,
                          max_tokens=ctx.max_tokens, seed=ctx.seed, method="cot")
        for p, rs in zip(need, generate(specs, ctx.backend, ctx.store, stats=stats, chunk_size=CHUNK)):
            right = [r for r in rs if r.correct]
            if right:
                pool.append({"question": p.question, "rationale": right[0].text.strip(), "problem_id": p.id})
    return pool


def member_specs(member: str, problems: Sequence[Problem], n: int, ctx: MethodContext,
                 demo_sets: dict[str, list[dict[str, str]]]) -> list[SampleSpec]:
    common = dict(n=n, temperature=ctx.temperature, top_p=ctx.top_p, max_tokens=ctx.max_tokens, seed=ctx.seed)
    if member.startswith("format:"):
        return format_specs(problems, member.split(":", 1)[1], decomposed=False, **common)
    if member.startswith("demos:"):
        examples = [{"question": d["question"], "rationale": d["rationale"]} for d in demo_sets[member]]
        specs = cot_specs(problems, template="cot_fewshot", examples=examples, method="ensemble_demos", **common)
        for s in specs:
            s.meta = {"demos": [d["problem_id"] for d in demo_sets[member]], "member": member}
        return specs
    return cot_specs(problems, template=member, **common)


@dataclass
class EnsembleOptions(MethodOptions):
    """-O options of --method ensemble."""

    ensemble: str | None = setting(None, aliases=("members",),
                                   help="Members, comma-separated: cot, cot_fewshot, format:NAME, demos:N.")
    train_size: int | None = setting(None, lo=1, hi=MAX_PROBLEMS, help="demos:* members: training problems.")
    shots: int = setting(2, lo=1, hi=64, help="demos:* members: demonstrations per prompt.")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_members(self.ensemble)


OPTIONS = EnsembleOptions


def run(ctx: MethodContext) -> EnsembleResult:
    """``rationales run --method ensemble``: vote across prompts x samples vs one prompt."""

    t0 = time.time()
    stats = GenerationStats()
    o = EnsembleOptions.from_options(ctx.options)
    members = parse_members(o.ensemble)
    counts = split_samples(ctx.samples, len(members))
    problems = list(ctx.problems)
    demo_sets: dict[str, list[dict[str, str]]] = {}
    train: list[Problem] = []
    if any(m.startswith("demos:") for m in members):
        from .mistakes import split_problems

        train, problems = split_problems(problems, o.train_size)
        pool = demonstration_pool(train, ctx, stats)
        shots = o.shots
        if len(pool) < shots:
            raise RationalesError(f"demos:* members need {shots} training problems with a right rationale, found "
                                  f"{len(pool)}; raise train_size or --samples, or lower shots.")
        for m in members:
            if m.startswith("demos:"):
                rng = random.Random(int(content_hash("ensemble-demos", ctx.seed, m), 16))
                demo_sets[m] = rng.sample(pool, shots)

    specs: list[SampleSpec] = []
    for m, n in zip(members, counts):
        specs += member_specs(m, problems, n, ctx, demo_sets)
    out = generate(specs, ctx.backend, ctx.store, stats=stats, on_progress=ctx.on_progress, chunk_size=CHUNK)
    # the single-prompt baseline, after the ensemble: its first samples are the ensemble's own
    single = generate(member_specs(members[0], problems, ctx.samples, ctx, demo_sets), ctx.backend, ctx.store,
                      stats=stats, on_progress=ctx.on_progress, chunk_size=CHUNK)

    h = len(problems)
    per_member = [out[j * h:(j + 1) * h] for j in range(len(members))]
    pooled = [[r for rs in per_member for r in rs[i]] for i in range(h)]
    n_total = ctx.samples
    strategies: dict[str, dict[str, Any]] = {
        f"single {members[0]} vote@{n_total}": strategy_row([majority_vote(p, rs) for p, rs in zip(problems, single)]),
        f"ensemble vote@{n_total} ({len(members)} prompts)":
            strategy_row([majority_vote(p, rs) for p, rs in zip(problems, pooled)]),
    }
    for m, n, rows in zip(members, counts, per_member):
        strategies[f"{m} vote@{n}"] = strategy_row([majority_vote(p, rs) for p, rs in zip(problems, rows)])
    return EnsembleResult(
        task=ctx.task, backend=ctx.backend.name, model=ctx.backend.model,
        problems=len(problems), train_problems=len(train), members=members,
        samples_per_member=dict(zip(members, counts)), samples=n_total, strategies=strategies,
        **stats.as_dict(), tokens=sum(r.tokens for rs in [*pooled, *single] for r in rs),
        time_s=round(time.time() - t0, 2), problem_list=problems, pooled=pooled)


