"""The llamacpp backend: a GGUF model in process, batched parallel sampling and prompt scoring.

All samples of one ``generate`` call are decoded as parallel sequences in ONE llama context
with a split KV cache (``kv_unified=False``: every sequence owns ``n_ctx_seq`` cells, which
keeps each sequence's arithmetic independent of its neighbours); see ``context`` for the
context, ``scheduler`` for which sample runs in which sequence, ``sampler`` for the draw of
each token (and grammars), ``logprobs`` for scoring. Every step is one ``llama_decode`` that
advances all running sequences (samples of all requests) by one token; logits are read per
row with ``llama_get_logits_ith``.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ...errors import BackendError
from ...models import DEFAULT_MODEL, model_id, resolve_model
from ..base import (Backend, BackendOptions, Completion, ContinuationScore, GenerationRequest, GenerationResult,
                    Messages, OnSample, PathStr)
from ..grammar import check_grammar
from .context import CELL_PAD, Context
from .logprobs import continuation_logprobs
from .sampler import TOKEN_DATA, Grammar, Sampler
from .scheduler import Job, Prompt, Slot, admit, fill


class LlamaCppOptions(BackendOptions):
    """Options of the llamacpp backend (``-o KEY=VALUE``)."""

    model: PathStr = Field(DEFAULT_MODEL, description="a model alias (rationales models) or a .gguf path")
    n_ctx: int = Field(4096, ge=16, le=1_048_576, description="tokens (prompt + completion) per sequence")
    n_threads: int = Field(2, ge=1, le=1024, description="CPU threads")
    n_parallel: int = Field(16, ge=1, le=256, description="sequences decoded together")
    flash_attn: bool = Field(False, description="flash attention for generation")
    verbose: bool = Field(False, description="llama.cpp's own log on stderr")
    ignore_eos: bool = Field(False, description="never sample end-of-generation tokens (benchmarks)")
    n_batch: int = Field(512, ge=32, le=65_536, description="tokens per llama_decode (at least n_parallel)")
    score_flash_attn: bool = Field(False, description="flash attention for logprobs too")


class LlamaCppBackend(Backend):
    """llama.cpp in process: batched parallel sampling and prompt scoring on a GGUF model."""

    name = "llamacpp"
    Options = LlamaCppOptions
    supports_grammar = True

    def __init__(self, model: Any = None, **options: Any):
        """Options: see :class:`LlamaCppOptions`. ``flash_attn`` is off by default: on our
        2-core CPU machine it made 32 parallel Qwen-0.5B sequences at ~600 tokens of context 30%
        slower, 43 vs 61 tok/s, and single-sequence decoding no faster; try ``-o flash_attn=true``
        on yours. ``score_flash_attn`` is off because llama.cpp's CPU flash attention accumulates
        in f16, which moved SmolLM2 token logprobs by up to 0.2 nats."""
        o: LlamaCppOptions = self.parse_options(**options, **({} if model is None else {"model": model}))
        self.options = o
        try:
            import llama_cpp
            from llama_cpp import Llama
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise BackendError("The llamacpp backend needs llama-cpp-python: pip install llama-cpp-python==0.3.36") from e
        self._ll = llama_cpp
        self.model_path: Path = resolve_model(o.model)
        self.model = model_id(o.model, self.model_path)
        self.n_threads = o.n_threads
        self.n_parallel = o.n_parallel
        self.flash_attn = o.flash_attn
        self.verbose = o.verbose
        self.ignore_eos = o.ignore_eos
        self.score_flash_attn = o.score_flash_attn
        self._n_batch_min = o.n_batch
        self._lock = threading.RLock()  # one call at a time; logprobs() may run inside on_sample
        self._generating = False
        self._gen: Context | None = None  # generation (flash attention as configured)
        self._score: Context | None = None  # logprobs
        self.llm: Any = None
        try:
            self.llm = Llama(model_path=str(self.model_path), n_ctx=o.n_ctx, n_batch=512, n_threads=self.n_threads,
                             n_threads_batch=self.n_threads, flash_attn=self.flash_attn, verbose=self.verbose)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"llama.cpp could not load {self.model_path} ({e}).") from e
        self._vocab = self.llm._model.vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.n_ctx = max(16, min(o.n_ctx, int(llama_cpp.llama_model_n_ctx_train(self.llm.model)) or o.n_ctx))
        self._bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab)) and self._bos >= 0
        self._eog: np.ndarray | None = None
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._sampler: Sampler | None = None
        self._grammar_scratch: np.ndarray | None = None
        self.chat_template: str | None = self.llm.metadata.get("tokenizer.chat_template") or None
        self.chat = self.chat_template is not None
        self._formatters: dict[bool, Any] = {}

    @property
    def samples_in_flight(self) -> int:
        return self.n_parallel

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

    def _context(self, kind: str, slots: int, cells: int) -> Context:
        """The generation or scoring context, with at least ``slots`` x ``cells`` (grown, never shrunk)."""
        cur: Context | None = getattr(self, kind)
        cells = -(-max(cells, 1) // CELL_PAD) * CELL_PAD
        if cur is not None:
            if cur.slots >= slots and cur.cells >= cells:
                return cur
            slots, cells = max(slots, cur.slots), max(cells, cur.cells)
            cur.free()
            setattr(self, kind, None)
        flash = self.flash_attn if kind == "_gen" else self.score_flash_attn
        ctx = Context(self._ll, self.llm.model, slots, cells, max(self._n_batch_min, slots), self.n_threads,
                      flash, self.n_vocab)
        setattr(self, kind, ctx)
        return ctx

    def sampler(self) -> Sampler:
        if self._sampler is None:
            self._sampler = Sampler(self.n_vocab, self._eog_ids() if self.ignore_eos else None)
        return self._sampler

    def _grammar(self, text: str) -> Grammar:
        if self._grammar_scratch is None:
            self._grammar_scratch = np.zeros(self.n_vocab, dtype=TOKEN_DATA)
        return Grammar(self._ll, self._vocab, text, self._grammar_scratch)

    # ------------------------------------------------------------ generate

    def _plan(self, requests: Sequence[GenerationRequest]) -> tuple[list[Job], list[int], int]:
        """Tokenize prompts (once per distinct text), size-check them, make one job per seed."""
        prompts: dict[str, Prompt] = {}
        jobs, prompt_tokens, need = [], [], 1
        for r, req in enumerate(requests):
            if req.grammar is not None:
                check_grammar(req.grammar)
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
                pr = prompts[text] = Prompt(toks)
            n_p = len(pr.tokens)
            room = self.n_ctx - n_p
            max_tokens = room if req.max_tokens <= 0 else min(int(req.max_tokens), room)
            need = max(need, n_p + max_tokens)
            prompt_tokens.append(n_p)
            for i, seed in enumerate(req.seeds):
                jobs.append(Job(r, i, int(seed), pr, req, max_tokens, np.random.default_rng(int(seed))))
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
        slots = [Slot() for _ in range(n_slots)]
        waiting = deque(jobs)
        stops = [[s for s in req.stop if s] for req in requests]
        sampler = self.sampler()
        try:
            while waiting or any(s.job for s in slots):
                admit(ctx, slots, waiting)
                entries, outputs = fill(ctx, slots)
                ctx.decode(entries)
                for s in slots:
                    s.touched = False
                for i, job_slot in outputs:
                    slot = slots[job_slot]
                    job = slot.job
                    assert job is not None
                    req = job.request
                    if req.grammar is not None and job.grammar is None:
                        job.grammar = self._grammar(req.grammar)
                    tok = sampler.sample(ctx.row(i), req.temperature, req.top_p, job.rng, job.grammar)
                    if tok is None:  # the grammar allows nothing more (and no end token)
                        comp = self._finish(job, "stop", prompt_tokens[job.r])
                    else:
                        comp = self._advance(job, tok, stops[job.r], prompt_tokens[job.r])
                    if comp is not None:
                        slot.job = None
                        done[job.r][job.index] = comp
                        if on_sample is not None:
                            on_sample(job.r, comp)
        except BaseException:
            ctx.clear()
            raise
        finally:
            for job in jobs:
                if job.grammar is not None:
                    job.grammar.free()
                    job.grammar = None
        return [GenerationResult(req, [c for c in comps if c is not None], prompt_tokens=pt)
                for req, comps, pt in zip(requests, done, prompt_tokens)]

    def _advance(self, job: Job, tok: int, stops: list[str], prompt_tokens: int) -> Completion | None:
        """Take one sampled token; a ``Completion`` when the sample is finished."""
        if not self.ignore_eos and self.is_eog(tok):
            return self._finish(job, "stop", prompt_tokens)
        if job.grammar is not None:
            job.grammar.accept(tok)
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
    def _finish(job: Job, reason: str, prompt_tokens: int) -> Completion:
        if job.decoder is not None:
            job.text += job.decoder.decode(b"", final=True)
        if job.grammar is not None:
            job.grammar.free()
            job.grammar = None
        return Completion(text=job.text, index=job.index, seed=job.seed, tokens=len(job.tokens),
                          finish_reason=reason, prompt_tokens=prompt_tokens)

    # ------------------------------------------------------------ logprobs

    def logprobs(self, prompt: str | Messages, continuations: Sequence[str]) -> list[ContinuationScore]:
        with self._lock:
            if self.llm is None:
                raise BackendError("The llamacpp backend is closed.")
            text = prompt if isinstance(prompt, str) else self.render(prompt)
            return continuation_logprobs(self, text, list(continuations))

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
