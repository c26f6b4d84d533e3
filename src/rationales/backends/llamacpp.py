"""In-process llama.cpp backend (llama-cpp-python 0.3.36) with batched parallel sampling.

All samples of one ``generate`` call are decoded as parallel sequences in ONE llama context
with a split KV cache (``kv_unified=False``: every sequence owns ``n_ctx_seq`` cells, which
keeps each sequence's arithmetic independent of its neighbours):

* each distinct prompt is evaluated once; the other samples of that prompt get a copy of its
  KV cache (``llama_memory_seq_cp``) and re-decode only the prompt's last token;
* every step is one ``llama_decode`` that advances all running sequences (samples of all
  requests) by one token; logits are read per row with ``llama_get_logits_ith``;
* when a sequence finishes, its slot is refilled from the waiting samples (continuous
  batching); when nothing waits, the running sequences are moved down so the busy slots stay
  contiguous (llama.cpp splits a batch into one micro-batch per run of consecutive sequence
  ids, and each micro-batch costs a full pass over the weights);
* each sample draws from ``numpy.random.default_rng(seed)`` (one uniform per token), so the
  same seed gives the same text on a rerun and different seeds give different samples; the
  rows do not depend on which other sequences share the batch, so the schedule
  (``n_parallel``) does not change the samples either.

``logprobs`` evaluates the prompt once (slot 0, kept for the next call with the same prefix),
copies it to one slot per continuation and reads logits only at continuation positions. It
runs in a second context without flash attention by default (llama.cpp's CPU flash attention
accumulates in f16).

Sizes are checked in Python before every llama.cpp call: overfilling a sequence's cells or a
batch aborts the whole process inside llama.cpp.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendError
from ..models import DEFAULT_MODEL, model_id, resolve_model
from .base import (Backend, Completion, ContinuationScore, GenerationRequest, GenerationResult, Messages,
                   OnSample)

_CELL_PAD = 256  # llama.cpp pads n_ctx_seq to a multiple of this
_BLOCK = 1024  # sampling sums probabilities in blocks, then searches one block


@dataclass(eq=False)
class _Prompt:
    tokens: list[int]


@dataclass(eq=False)
class _Job:
    """One sample being generated."""

    r: int
    index: int
    seed: int
    prompt: _Prompt
    request: GenerationRequest
    max_tokens: int
    rng: np.random.Generator
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    pending: list[int] = field(default_factory=list)
    decoder: Any = None


@dataclass(eq=False)
class _Slot:
    """One sequence id of the context: the job in it and what its KV cells hold."""

    job: _Job | None = None
    prompt: _Prompt | None = None  # cells [0, n_past) start with this prompt's tokens
    n_past: int = 0
    touched: bool = False  # a KV copy into this slot is pending (applied at the next decode)


class _Context:
    """A llama context with a split KV cache (``slots`` sequences x ``cells`` cells) and its batch."""

    def __init__(self, ll: Any, model: Any, slots: int, cells: int, n_batch: int, n_threads: int,
                 flash_attn: bool, n_vocab: int):
        p = ll.llama_context_default_params()
        p.n_ctx = slots * cells
        p.n_batch = n_batch
        p.n_ubatch = min(512, n_batch)
        p.n_seq_max = slots
        p.kv_unified = False  # split: reproducible rows, and faster at 16+ sequences
        p.n_threads = n_threads
        p.n_threads_batch = n_threads
        p.no_perf = True
        p.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ptr = ll.llama_init_from_model(model, p)
        if not ptr:
            raise BackendError(f"llama.cpp could not create a context of {slots} x {cells} cells "
                               "(out of memory?); lower n_parallel or n_ctx.")
        got = int(ll.llama_n_ctx_seq(ptr))
        if got < cells or int(ll.llama_n_seq_max(ptr)) < slots:
            ll.llama_free(ptr)
            raise BackendError(f"llama.cpp made {got} cells per sequence, {cells} were asked for.")
        self.ll, self.ptr, self.slots, self.cells, self.n_vocab = ll, ptr, slots, got, n_vocab
        self.mem = ll.llama_get_memory(ptr)
        self.batch = ll.llama_batch_init(n_batch, 0, 1)
        self.cap = n_batch
        self.prefix: list[int] = []  # scoring: the tokens slot 0 holds, reused by the next call

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One ``llama_decode`` of (seq, pos, token, wants_logits) entries, already size-checked."""
        n = len(entries)
        if not 0 < n <= self.cap:
            raise BackendError(f"Internal error: a batch of {n} tokens (capacity {self.cap}).")
        b = self.batch
        tok, pos, nseq, sid, out = b.token, b.pos, b.n_seq_id, b.seq_id, b.logits
        for i, (s, p, t, o) in enumerate(entries):
            tok[i] = t
            pos[i] = p
            nseq[i] = 1
            sid[i][0] = s
            out[i] = o
        b.n_tokens = n
        rc = self.ll.llama_decode(self.ptr, b)
        if rc != 0:
            self.clear()
            raise BackendError(f"llama_decode failed (code {rc}); the batch was dropped.")

    def row(self, i: int) -> np.ndarray:
        """The logits of batch entry ``i`` (a view into llama.cpp's buffer)."""
        ptr = self.ll.llama_get_logits_ith(self.ptr, i)
        if not ptr:
            raise BackendError(f"llama.cpp returned no logits for batch row {i}.")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def seq_rm(self, seq: int, p0: int = -1) -> None:
        self.ll.llama_memory_seq_rm(self.mem, seq, p0, -1)

    def seq_cp(self, src: int, dst: int) -> None:
        self.ll.llama_memory_seq_cp(self.mem, src, dst, -1, -1)  # whole stream: partial ranges abort

    def clear(self) -> None:
        self.ll.llama_memory_clear(self.mem, False)
        self.prefix = []

    def free(self) -> None:
        if self.batch is not None:
            self.ll.llama_batch_free(self.batch)
            self.batch = None
        if self.ptr is not None:
            self.ll.llama_free(self.ptr)
            self.ptr = None


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class LlamaCppBackend(Backend):
    """llama.cpp in process: batched parallel sampling and prompt scoring on a GGUF model."""

    name = "llamacpp"

    def __init__(self, model: str = DEFAULT_MODEL, n_ctx: int = 4096, n_threads: int = 2, n_parallel: int = 16,
                 flash_attn: bool = False, verbose: bool = False, ignore_eos: bool = False, n_batch: int = 512,
                 score_flash_attn: bool = False, **_: Any):
        """``n_ctx``: tokens (prompt + completion) per sequence; ``n_parallel``: sequences decoded
        together; ``ignore_eos``: never sample end-of-generation tokens (benchmarks);
        ``flash_attn``: flash attention for generation (off by default: on our 2-core CPU machine
        it made 32 parallel Qwen-0.5B sequences at ~600 tokens of context 30% slower, 43 vs 61
        tok/s, and single-sequence decoding no faster; try ``-o flash_attn=true`` on yours);
        ``score_flash_attn``: flash attention for ``logprobs`` too (off: llama.cpp's CPU flash
        attention accumulates in f16, which moved SmolLM2 token logprobs by up to 0.2 nats)."""
        try:
            import llama_cpp
            from llama_cpp import Llama
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise BackendError("The llamacpp backend needs llama-cpp-python: pip install llama-cpp-python==0.3.36") from e
        self._ll = llama_cpp
        self.model_path: Path = resolve_model(model)
        self.model = model_id(model, self.model_path)
        self.n_threads = max(1, int(n_threads))
        self.n_parallel = max(1, min(int(n_parallel), 256))
        self.flash_attn = bool(flash_attn)
        self.verbose = bool(verbose)
        self.ignore_eos = bool(ignore_eos)
        self.score_flash_attn = bool(score_flash_attn)
        self._n_batch_min = max(32, int(n_batch))
        self._lock = threading.RLock()  # one call at a time; logprobs() may run inside on_sample
        self._generating = False
        self._gen: _Context | None = None  # generation (flash attention as configured)
        self._score: _Context | None = None  # logprobs
        self.llm: Any = None
        try:
            self.llm = Llama(model_path=str(self.model_path), n_ctx=int(n_ctx), n_batch=512, n_threads=self.n_threads,
                             n_threads_batch=self.n_threads, flash_attn=self.flash_attn, verbose=self.verbose)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"llama.cpp could not load {self.model_path} ({e}).") from e
        self._vocab = self.llm._model.vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.n_ctx = max(16, min(int(n_ctx), int(llama_cpp.llama_model_n_ctx_train(self.llm.model)) or int(n_ctx)))
        self._bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab)) and self._bos >= 0
        self._eog: np.ndarray | None = None
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._sbuf = np.zeros(-(-self.n_vocab // _BLOCK) * _BLOCK, dtype=np.float32)
        self.chat_template: str | None = self.llm.metadata.get("tokenizer.chat_template") or None
        self.chat = self.chat_template is not None
        self._formatters: dict[bool, Any] = {}

    # ------------------------------------------------------------ text <-> tokens

    def tokenize(self, text: str) -> list[int]:
        """Tokens of a prompt exactly as ``Llama.create_completion`` makes them (special tokens
        parsed, BOS added when the model asks for it, never twice)."""
        toks = list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else []
        if self._add_bos and (not toks or toks[0] != self._bos):
            toks.insert(0, self._bos)
        return toks

    def _piece(self, tok: int) -> bytes:
        piece = self._pieces.get(tok)
        if piece is None:
            buf = self._piece_buf
            n = self._ll.llama_token_to_piece(self._vocab, tok, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._ll.llama_token_to_piece(self._vocab, tok, buf, len(buf), 0, False)
            piece = bytes(buf.raw[:max(n, 0)])
            self._pieces[tok] = piece
        return piece

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", errors="ignore")

    def is_eog(self, tok: int) -> bool:
        return bool(self._ll.llama_vocab_is_eog(self._vocab, tok))

    def _eog_ids(self) -> np.ndarray:
        if self._eog is None:
            self._eog = np.array([t for t in range(self.n_vocab) if self.is_eog(t)], dtype=np.int64)
        return self._eog

    def render(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        """The GGUF's own chat template (``tokenizer.chat_template``); ChatML when it has none."""
        if not self.chat_template:
            return super().render(messages, add_generation_prompt)
        fmt = self._formatters.get(add_generation_prompt)
        if fmt is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def text(tok: int) -> str:
                return self._ll.llama_vocab_get_text(self._vocab, tok).decode("utf-8", "ignore") if tok >= 0 else ""

            fmt = Jinja2ChatFormatter(self.chat_template, eos_token=text(int(self._ll.llama_vocab_eos(self._vocab))),
                                      bos_token=text(self._bos), add_generation_prompt=add_generation_prompt)
            self._formatters[add_generation_prompt] = fmt
        try:
            return fmt(messages=list(messages)).prompt
        except Exception as e:  # noqa: BLE001 - jinja raises many kinds; the message is what matters
            raise BackendError(f"The chat template of {self.model} failed on these messages ({e}).") from e

    # ------------------------------------------------------------ contexts

    def _context(self, kind: str, slots: int, cells: int) -> _Context:
        """The generation or scoring context, with at least ``slots`` x ``cells`` (grown, never shrunk)."""
        cur: _Context | None = getattr(self, kind)
        cells = -(-max(cells, 1) // _CELL_PAD) * _CELL_PAD
        if cur is not None:
            if cur.slots >= slots and cur.cells >= cells:
                return cur
            slots, cells = max(slots, cur.slots), max(cells, cur.cells)
            cur.free()
            setattr(self, kind, None)
        flash = self.flash_attn if kind == "_gen" else self.score_flash_attn
        ctx = _Context(self._ll, self.llm.model, slots, cells, max(self._n_batch_min, slots), self.n_threads,
                       flash, self.n_vocab)
        setattr(self, kind, ctx)
        return ctx

    # ------------------------------------------------------------ sampling

    def _sample(self, row: np.ndarray, job: _Job) -> int:
        """One token from a logits row: argmax at temperature <= 0, else exact inverse-CDF
        sampling with one uniform draw from the job's own generator."""
        req = job.request
        if self.ignore_eos:
            row[self._eog_ids()] = -np.inf
        if req.temperature <= 0:
            return int(row.argmax())
        n, blk = self.n_vocab, _BLOCK
        buf = self._sbuf  # [n_vocab probabilities | zero padding to whole blocks]
        z = buf[:n]
        np.subtract(row, row.max(), out=z)
        z *= np.float32(1.0 / req.temperature)
        np.exp(z, out=z)
        if req.top_p < 1.0:
            return self._sample_top_p(z, float(req.top_p), job.rng)
        csum = np.cumsum(buf.reshape(-1, blk).sum(axis=1, dtype=np.float64))
        u = job.rng.random() * csum[-1]
        b = min(int(np.searchsorted(csum, u, side="right")), len(csum) - 1)
        if b:
            u -= csum[b - 1]
        block = buf[b * blk:(b + 1) * blk]
        k = min(int(np.searchsorted(np.cumsum(block, dtype=np.float64), u, side="right")), blk - 1)
        if block[k] <= 0:  # rounding ran past the block's last token: take the last one with mass
            live = np.flatnonzero(block[:k + 1] > 0)
            if not len(live):
                return int(z.argmax())
            k = int(live[-1])
        return b * blk + k

    @staticmethod
    def _sample_top_p(p: np.ndarray, top_p: float, rng: np.random.Generator) -> int:
        """Nucleus sampling: the smallest set of most likely tokens holding ``top_p`` of the mass."""
        target = max(top_p, 0.0) * float(p.sum(dtype=np.float64))
        k = 256
        while True:
            if k >= len(p):
                idx = np.argsort(-p, kind="stable")
            else:
                idx = np.argpartition(-p, k)[:k]
                idx = idx[np.argsort(-p[idx], kind="stable")]
            c = np.cumsum(p[idx], dtype=np.float64)
            if c[-1] >= target or k >= len(p):
                break
            k *= 4
        keep = min(int(np.searchsorted(c, target, side="left")) + 1, len(c))
        j = int(np.searchsorted(c[:keep], rng.random() * c[keep - 1], side="right"))
        return int(idx[min(j, keep - 1)])

    # ------------------------------------------------------------ generate

    def _plan(self, requests: Sequence[GenerationRequest]) -> tuple[list[_Job], list[int], int]:
        """Tokenize prompts (once per distinct text), size-check them, make one job per seed."""
        prompts: dict[str, _Prompt] = {}
        jobs, prompt_tokens, need = [], [], 1
        for r, req in enumerate(requests):
            text = self.prompt_text(req)
            pr = prompts.get(text)
            if pr is None:
                toks = self.tokenize(text)
                if not toks:
                    raise BackendError(f"Request {r} has an empty prompt and {self.model} has no BOS token to "
                                       "start from; give it a prompt.")
                if len(toks) >= self.n_ctx:
                    raise BackendError(f"Request {r}'s prompt has {len(toks)} tokens, but the llamacpp backend holds "
                                       f"n_ctx={self.n_ctx} tokens per sequence (prompt + completion); shorten the "
                                       "prompt or pass a larger n_ctx.")
                pr = prompts[text] = _Prompt(toks)
            n_p = len(pr.tokens)
            room = self.n_ctx - n_p
            max_tokens = room if req.max_tokens <= 0 else min(int(req.max_tokens), room)
            need = max(need, n_p + max_tokens)
            prompt_tokens.append(n_p)
            for i, seed in enumerate(req.seeds):
                jobs.append(_Job(r, i, int(seed), pr, req, max_tokens, np.random.default_rng(int(seed))))
        return jobs, prompt_tokens, need

    def generate(self, requests: Sequence[GenerationRequest],
                 on_sample: OnSample | None = None) -> list[GenerationResult]:
        with self._lock:
            if self._generating:
                raise BackendError("LlamaCppBackend.generate() was called from inside its own on_sample callback; "
                                   "collect the samples and call it again afterwards.")
            self._generating = True
            try:
                return self._generate(list(requests), on_sample)
            finally:
                self._generating = False

    def _generate(self, requests: list[GenerationRequest], on_sample: OnSample | None) -> list[GenerationResult]:
        if self.llm is None:
            raise BackendError("The llamacpp backend is closed.")
        done: list[list[Completion | None]] = [[None] * req.n for req in requests]
        jobs, prompt_tokens, need = self._plan(requests)
        if not jobs:
            return []
        n_slots = min(self.n_parallel, len(jobs))
        ctx = self._context("_gen", n_slots, need)
        ctx.clear()
        slots = [_Slot() for _ in range(n_slots)]
        waiting = deque(jobs)
        stops = [[s for s in req.stop if s] for req in requests]
        try:
            while waiting or any(s.job for s in slots):
                self._admit(ctx, slots, waiting)
                entries, outputs = self._fill(ctx, slots)
                ctx.decode(entries)
                for s in slots:
                    s.touched = False
                for i, job_slot in outputs:
                    slot = slots[job_slot]
                    job = slot.job
                    assert job is not None
                    tok = self._sample(ctx.row(i), job)
                    comp = self._advance(job, tok, stops[job.r], prompt_tokens[job.r])
                    if comp is not None:
                        slot.job = None
                        done[job.r][job.index] = comp
                        if on_sample is not None:
                            on_sample(job.r, comp)
        except BaseException:
            ctx.clear()
            raise
        return [GenerationResult(req, [c for c in comps if c is not None], prompt_tokens=pt)
                for req, comps, pt in zip(requests, done, prompt_tokens)]

    @staticmethod
    def _admit(ctx: _Context, slots: list[_Slot], waiting: deque[_Job]) -> None:
        """Fill free slots from the queue (sharing prompt KV), then keep busy slots contiguous.

        A job whose prompt some slot holds gets a copy of that slot's cells minus the prompt's
        last token (re-decoded for fresh logits); a job whose prompt is still being evaluated
        waits; otherwise it evaluates its prompt itself."""
        holders: dict[_Prompt, list[int]] = {}
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

    @staticmethod
    def _fill(ctx: _Context, slots: list[_Slot]) -> tuple[list[tuple[int, int, int, bool]], list[tuple[int, int]]]:
        """The next batch, in slot order: one token per running job plus prompt chunks."""
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

    def _advance(self, job: _Job, tok: int, stops: list[str], prompt_tokens: int) -> Completion | None:
        """Take one sampled token; a ``Completion`` when the sample is finished."""
        if not self.ignore_eos and self.is_eog(tok):
            return self._finish(job, "stop", prompt_tokens)
        job.tokens.append(tok)
        if job.decoder is None:
            job.decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        old = len(job.text)
        job.text += job.decoder.decode(self._piece(tok))
        if stops and len(job.text) > old:
            hits = [h for h in (job.text.find(s, max(0, old - len(s) + 1)) for s in stops) if h >= 0]
            if hits:
                job.text = job.text[:min(hits)]
                job.decoder = None
                return self._finish(job, "stop", prompt_tokens)
        if len(job.tokens) >= job.max_tokens:
            return self._finish(job, "length", prompt_tokens)
        job.pending = [tok]
        return None

    @staticmethod
    def _finish(job: _Job, reason: str, prompt_tokens: int) -> Completion:
        if job.decoder is not None:
            job.text += job.decoder.decode(b"", final=True)
        return Completion(text=job.text, index=job.index, seed=job.seed, tokens=len(job.tokens),
                          finish_reason=reason, prompt_tokens=prompt_tokens)

    # ------------------------------------------------------------ logprobs

    def logprobs(self, prompt: str | Messages, continuations: Sequence[str]) -> list[ContinuationScore]:
        with self._lock:
            return self._logprobs(prompt, list(continuations))

    def _logprobs(self, prompt: str | Messages, continuations: list[str]) -> list[ContinuationScore]:
        if self.llm is None:
            raise BackendError("The llamacpp backend is closed.")
        text = prompt if isinstance(prompt, str) else self.render(prompt)
        base = self.tokenize(text)
        fulls = [self.tokenize(text + c) for c in continuations]
        starts = [_common_prefix(base, f) for f in fulls]  # continuation tokens: f[start:]
        if not continuations:
            return []
        m = min([len(base), *starts])
        if any(s < len(f) for s, f in zip(starts, fulls)) and m == 0:
            raise BackendError("logprobs() needs a non-empty prompt: the first token has nothing to be "
                               f"predicted from ({self.model} adds no BOS token).")
        longest = max(len(f) for f in fulls)
        if longest > self.n_ctx:
            raise BackendError(f"Prompt + continuation is {longest} tokens, but the llamacpp backend holds "
                               f"n_ctx={self.n_ctx} tokens per sequence; shorten it or pass a larger n_ctx.")
        shared = base[:max(m - 1, 0)]  # held by slot 0; every continuation re-decodes from position m-1
        todo = sorted((i for i, (s, f) in enumerate(zip(starts, fulls)) if s < len(f)),
                      key=lambda i: -(len(fulls[i]) - len(shared)))
        if not todo:  # only empty continuations
            return [ContinuationScore(cont, 0.0, []) for cont in continuations]
        ctx = self._context("_score", min(self.n_parallel, len(todo)) + 1, longest)
        keep = _common_prefix(ctx.prefix, shared)
        ctx.seq_rm(0, keep)
        for s in range(1, ctx.slots):
            ctx.seq_rm(s)
        ctx.prefix = shared[:keep]
        scores: dict[int, list[float]] = {i: [] for i in range(len(continuations))}
        cap = ctx.cap
        try:
            rest = shared[keep:]
            for c in range(0, len(rest), cap):  # the shared prompt, no logits
                ctx.decode([(0, keep + c + k, t, False) for k, t in enumerate(rest[c:c + cap])])
            ctx.prefix = list(shared)
            width = ctx.slots - 1
            for w in range(0, len(todo), width):
                wave = todo[w:w + width]
                for s in range(1, len(wave) + 1):
                    ctx.seq_rm(s)
                    if shared:
                        ctx.seq_cp(0, s)
                feed: list[tuple[int, int, int, bool, int]] = []  # seq, pos, token, logits, target
                for s, i in enumerate(wave, start=1):
                    f = fulls[i]
                    for pos in range(len(shared), len(f) - 1):
                        want = pos >= starts[i] - 1
                        feed.append((s, pos, f[pos], want, f[pos + 1] if want else -1))
                owner = {s: i for s, i in enumerate(wave, start=1)}
                for c in range(0, len(feed), cap):
                    part = feed[c:c + cap]
                    ctx.decode([e[:4] for e in part])
                    for k, (s, _, _, want, target) in enumerate(part):
                        if want:
                            row = ctx.row(k)
                            top = float(row.max())
                            lse = top + float(np.log(np.exp(row - top, dtype=np.float64).sum()))
                            scores[owner[s]].append(float(row[target]) - lse)
        except BaseException:
            ctx.clear()
            raise
        return [ContinuationScore(cont, float(sum(scores[i])), scores[i]) for i, cont in enumerate(continuations)]

    # ------------------------------------------------------------ lifecycle

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "n_ctx": self.n_ctx, "n_parallel": self.n_parallel}

    def close(self) -> None:
        """Free the context, the batch and the model. Safe to call twice."""
        with self._lock:
            for kind in ("_gen", "_score"):
                ctx = getattr(self, kind, None)
                if ctx is not None:
                    ctx.free()
                    setattr(self, kind, None)
            llm, self.llm = getattr(self, "llm", None), None
            if llm is not None:
                llm.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
