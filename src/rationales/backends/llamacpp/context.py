"""A llama.cpp context with a split KV cache and its token batch (ctypes, llama-cpp-python 0.3.36).

Sizes are checked here before every llama.cpp call: overfilling a sequence's cells or a batch
aborts the whole process inside llama.cpp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import BackendError

CELL_PAD = 256  # llama.cpp pads n_ctx_seq to a multiple of this


class Context:
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


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
