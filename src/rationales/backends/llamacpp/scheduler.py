"""Which sample decodes in which sequence slot: admission with shared prompt KV, and the batch.

Every sample of a ``generate`` call is a :class:`Job`; the context's sequence ids are
:class:`Slot` s. Each step :func:`admit` fills free slots from the waiting jobs and
:func:`fill` builds the next batch: one token per running job plus chunks of prompts still
being evaluated.

* each distinct prompt is evaluated once; the other samples of that prompt get a copy of its
  KV cache (``llama_memory_seq_cp``) and re-decode only the prompt's last token;
* when a sequence finishes, its slot is refilled from the waiting samples (continuous
  batching); when nothing waits, the running sequences are moved down so the busy slots stay
  contiguous (llama.cpp splits a batch into one micro-batch per run of consecutive sequence
  ids, and each micro-batch costs a full pass over the weights).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import BackendError
from ..base import GenerationRequest
from .context import Context


@dataclass(eq=False)
class Prompt:
    tokens: list[int]


@dataclass(eq=False)
class Job:
    """One sample being generated."""

    r: int
    index: int
    seed: int
    prompt: Prompt
    request: GenerationRequest
    max_tokens: int
    rng: np.random.Generator
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    pending: list[int] = field(default_factory=list)
    decoder: Any = None
    grammar: Any = None  # a sampler.Grammar when the request has one


@dataclass(eq=False)
class Slot:
    """One sequence id of the context: the job in it and what its KV cells hold."""

    job: Job | None = None
    prompt: Prompt | None = None  # cells [0, n_past) start with this prompt's tokens
    n_past: int = 0
    touched: bool = False  # a KV copy into this slot is pending (applied at the next decode)


def admit(ctx: Context, slots: list[Slot], waiting: deque[Job]) -> None:
    """Fill free slots from the queue (sharing prompt KV), then keep busy slots contiguous.

    A job whose prompt some slot holds gets a copy of that slot's cells minus the prompt's
    last token (re-decoded for fresh logits); a job whose prompt is still being evaluated
    waits; otherwise it evaluates its prompt itself."""
    holders: dict[Prompt, list[int]] = {}
    for i, o in enumerate(slots):
        if o.prompt is not None:
            holders.setdefault(o.prompt, []).append(i)
    for s_i, slot in enumerate(slots):
        if slot.job is not None:
            continue
        chosen = None
        for w_i, job in enumerate(waiting):
            pr = job.prompt
            n_keep = len(pr.tokens) - 1
            if slot.prompt is pr and slot.n_past >= n_keep and not slot.touched:
                ctx.seq_rm(s_i, n_keep)  # reuse this slot's own prompt cells
                chosen = w_i
                break
            held = holders.get(pr, [])
            donor = next((d for d in held if d != s_i and slots[d].n_past >= n_keep
                          and not slots[d].touched), None)
            if donor is not None:
                ctx.seq_cp(donor, s_i)
                ctx.seq_rm(s_i, n_keep)
                slot.touched = True
                chosen = w_i
                break
            if any(d != s_i for d in held):
                continue  # its prompt is being evaluated in another slot: wait for it
            ctx.seq_rm(s_i)
            n_keep, chosen = 0, w_i
            break
        if chosen is None:
            break  # nothing waiting can start this step
        job = waiting[chosen]
        del waiting[chosen]
        if slot.prompt is not None and slot.prompt is not job.prompt:
            holders[slot.prompt].remove(s_i)
        if s_i not in holders.setdefault(job.prompt, []):
            holders[job.prompt].append(s_i)
        slot.job, slot.prompt, slot.n_past = job, job.prompt, n_keep
        job.pending = job.prompt.tokens[n_keep:]
    if waiting:
        return
    # nothing waits: move the highest busy slots down into the holes
    while True:
        holes = [i for i, s in enumerate(slots) if s.job is None]
        busy = [i for i, s in enumerate(slots) if s.job is not None]
        if not holes or not busy or holes[0] > busy[-1]:
            return
        lo, hi = holes[0], busy[-1]
        src, dst = slots[hi], slots[lo]
        if src.touched:
            return
        ctx.seq_cp(hi, lo)
        ctx.seq_rm(hi)
        dst.job, dst.prompt, dst.n_past, dst.touched = src.job, src.prompt, src.n_past, True
        src.job, src.prompt, src.n_past = None, None, 0


def fill(ctx: Context, slots: list[Slot]) -> tuple[list[tuple[int, int, int, bool]], list[tuple[int, int]]]:
    """The next batch, in slot order: one token per running job plus prompt chunks.

    Returns the (seq, pos, token, wants_logits) entries and, for each job that gets logits,
    (batch row, slot index)."""
    busy = [(i, s) for i, s in enumerate(slots) if s.job is not None and s.job.pending]
    extra, cells = ctx.cap - len(busy), ctx.cells
    entries: list[tuple[int, int, int, bool]] = []
    outputs: list[tuple[int, int]] = []
    for s_i, slot in busy:
        job = slot.job
        assert job is not None
        take = 1 + min(len(job.pending) - 1, extra)
        extra -= take - 1
        chunk, job.pending = job.pending[:take], job.pending[take:]
        if slot.n_past + take > cells:
            raise BackendError(f"Internal error: sequence {s_i} would overflow its {cells} cells.")
        for k, t in enumerate(chunk):
            last = not job.pending and k == take - 1
            if last:
                outputs.append((len(entries), s_i))
            entries.append((s_i, slot.n_past + k, t, last))
        slot.n_past += take
    return entries, outputs
