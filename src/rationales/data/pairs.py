"""Step-controlled pair mining (Step-Controlled DPO; Lu et al., 2024, "Step-Controlled DPO:
Leveraging Stepwise Error for Enhanced Mathematical Reasoning").

For a correct rationale with n steps, keep its first k steps (1 <= k < n) and let the model
continue from there, one step at a time, at a *rising* temperature: the j-th generated step
(j = 0, 1, ...) is sampled at T = min(1.4, 1.1 + 0.05 * j), so errors become likelier the further
the continuation goes. A continuation that ends in a wrong (or no) answer gives the pair
(prefix + the original continuation, prefix + the wrong continuation); a correct one is another
attempt, up to ``max_attempts`` per (rationale, k). Choices:

* Prefixes: up to ``prefixes_per_rationale`` values of k, spread evenly over 1..n-1.
* Every step is sampled through ``rationales.generate`` (method ``scdpo_step``, raw prompt =
  the chat prompt with an open assistant turn holding prefix + steps so far, ``stop=["\\n"]``),
  so samples are stored and cached: a rerun redraws nothing. Attempt a uses base seed
  ``seed + a``. Steps of all open continuations are batched into one ``generate`` call.
* The assembled continuation is stored as a ``Rationale`` (method ``scdpo``, ``parent_id`` =
  the correct rationale, ``meta``: ``prefix_steps``, ``attempt``, ``temperatures``), which
  ``data.dpo`` turns into DPO rows. A continuation ends at a step holding an answer, an empty
  step, or ``max_steps``.
* Counted: attempts per pair found, continuations that stayed correct, pairs per k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..answers import extract_answer
from ..backends.base import Backend
from ..errors import RationalesError
from ..generate import GenerationStats, SampleSpec, continuation_prompt, finish_rationale, generate, steps_prefix
from ..records import Problem, Rationale, Sampling, content_hash
from ..store import Store
from .common import problem_prompt

METHOD = "scdpo"
STEP_METHOD = "scdpo_step"


@dataclass
class StepControlledConfig:
    base_temperature: float = 1.1
    temperature_step: float = 0.05
    max_temperature: float = 1.4
    max_attempts: int = 4
    prefixes_per_rationale: int = 2
    max_steps: int = 12
    max_step_tokens: int = 96
    seed: int = 0
    template: str = "cot"

    def __post_init__(self) -> None:
        for name in ("base_temperature", "temperature_step", "max_temperature"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise RationalesError(f"{name} must be a finite number >= 0, got {v}.")
        if self.max_temperature < self.base_temperature:
            raise RationalesError("max_temperature must be >= base_temperature.")
        for name in ("max_attempts", "prefixes_per_rationale", "max_steps", "max_step_tokens"):
            if getattr(self, name) < 1:
                raise RationalesError(f"{name} must be >= 1, got {getattr(self, name)}.")

    def temperature(self, j: int) -> float:
        """Temperature of the j-th generated step (0-based)."""
        return round(min(self.max_temperature, self.base_temperature + self.temperature_step * j), 6)


@dataclass
class MiningResult:
    pairs: int = 0
    items: int = 0
    attempts: int = 0
    still_correct: int = 0
    exhausted: int = 0
    pairs_by_k: dict[int, int] = field(default_factory=dict)
    attempts_per_pair: float | None = None
    stats: GenerationStats = field(default_factory=GenerationStats)

    def as_dict(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "items": self.items, "attempts": self.attempts,
                "still_correct": self.still_correct, "exhausted": self.exhausted,
                "pairs_by_k": dict(self.pairs_by_k), "attempts_per_pair": self.attempts_per_pair,
                **self.stats.as_dict()}


def prefix_lengths(n_steps: int, count: int) -> list[int]:
    """Up to ``count`` values of k in 1..n-1, spread evenly (n = 5, count = 2 -> [1, 4])."""
    if n_steps < 2:
        return []
    ks = list(range(1, n_steps))
    if len(ks) <= count:
        return ks
    return sorted({ks[round(i * (len(ks) - 1) / max(1, count - 1))] if count > 1 else ks[0] for i in range(count)})


@dataclass
class _Item:
    problem: Problem
    rationale: Rationale
    k: int
    done: bool = False


def _cont_id(item: _Item, attempt: int, model: str, cfg: StepControlledConfig) -> str:
    return content_hash("scdpo", item.rationale.id, item.k, attempt, model, cfg.base_temperature,
                        cfg.temperature_step, cfg.max_temperature, cfg.max_steps, cfg.max_step_tokens, cfg.seed,
                        cfg.template)


def mine_step_controlled(problems: Sequence[Problem], rationales: Sequence[Sequence[Rationale]], backend: Backend,
                         store: Store, cfg: StepControlledConfig | None = None) -> MiningResult:
    """Mine step-controlled wrong continuations for the correct rationales given per problem
    (see the module doc); they are stored (method ``scdpo``) and counted."""
    cfg = cfg or StepControlledConfig()
    res = MiningResult()
    items: list[_Item] = []
    for p, rs in zip(problems, rationales):
        for r in rs:
            if r.correct is not True:
                continue
            for k in prefix_lengths(len(r.steps), cfg.prefixes_per_rationale):
                items.append(_Item(p, r, k))
    res.items = len(items)
    prompts = {p.id: problem_prompt(p, cfg.template) for p in problems}
    for attempt in range(cfg.max_attempts):
        open_items = [it for it in items if not it.done]
        if not open_items:
            break
        todo: list[tuple[_Item, str]] = []
        for it in open_items:
            cid = _cont_id(it, attempt, backend.model, cfg)
            saved = store.get_rationale(cid)
            res.attempts += 1
            if saved is not None:  # assembled before: reuse
                _count(res, it, saved)
            else:
                todo.append((it, cid))
        # step-wise continuation of every open attempt, batched across items
        texts = {cid: [] for _, cid in todo}
        temps: dict[str, list[float]] = {cid: [] for _, cid in todo}
        tokens = {cid: 0 for _, cid in todo}
        active = list(todo)
        for j in range(cfg.max_steps):
            if not active:
                break
            t = cfg.temperature(j)
            specs = []
            for it, cid in active:
                prefix = steps_prefix([s.text for s in it.rationale.steps[:it.k]] + texts[cid])
                specs.append(SampleSpec(problem=it.problem, prompt=prompts[it.problem.id], n=1, temperature=t,
                                        max_tokens=cfg.max_step_tokens, stop=["\n"], seed=cfg.seed + attempt,
                                        method=STEP_METHOD, parent_id=it.rationale.id,
                                        raw_prompt=continuation_prompt(backend, prompts[it.problem.id], prefix),
                                        meta={"prefix_steps": it.k, "attempt": attempt, "step": j}))
            out = generate(specs, backend, store, stats=res.stats)
            still = []
            for (it, cid), rs in zip(active, out):
                step = rs[0].text.strip()
                tokens[cid] += rs[0].tokens
                if step:
                    texts[cid].append(step)
                    temps[cid].append(t)
                if step and extract_answer(step) is None and j + 1 < cfg.max_steps:
                    still.append((it, cid))
            active = still
        for it, cid in todo:
            body = steps_prefix(texts[cid])
            r = finish_rationale(it.problem, body, rid=cid, prompt_id=it.rationale.prompt_id, model=backend.model,
                                 sampling=Sampling(temperature=temps[cid][-1] if temps[cid] else cfg.base_temperature,
                                                   max_tokens=cfg.max_step_tokens, seed=cfg.seed + attempt),
                                 index=attempt, tokens=tokens[cid], method=METHOD, parent_id=it.rationale.id,
                                 meta={"prefix_steps": it.k, "attempt": attempt, "temperatures": temps[cid],
                                       "prefix": steps_prefix([s.text for s in it.rationale.steps[:it.k]])})
            store.put_rationale(r)
            _count(res, it, r)
    res.exhausted = sum(1 for it in items if not it.done)
    res.attempts_per_pair = round(res.attempts / res.pairs, 3) if res.pairs else None
    return res


def _count(res: MiningResult, it: _Item, cont: Rationale) -> None:
    if it.done:
        return
    if cont.correct is True:
        res.still_correct += 1
        return
    it.done = True
    res.pairs += 1
    res.pairs_by_k[it.k] = res.pairs_by_k.get(it.k, 0) + 1
