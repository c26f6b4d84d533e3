"""Drawing one token from a logits row, and the GBNF grammar that may constrain it.

Each sample draws from ``numpy.random.default_rng(seed)`` (one uniform per token), so the same
seed gives the same text on a rerun and different seeds give different samples; a row does not
depend on which other sequences share the batch, so the schedule (``n_parallel``) does not
change the samples either.

A request's ``grammar`` is applied with llama.cpp's own grammar sampler
(``llama_sampler_init_grammar``) on that sample's rows. Checking the whole vocabulary against a
grammar costs far more than sampling, so at ``top_p == 1`` a token is first drawn from the
unconstrained distribution and kept when the grammar allows it; otherwise the row is masked and
drawn again. That is exact: a token t the grammar allows comes out with probability
p(t) + (1 - Z) p(t) / Z = p(t) / Z, the constrained distribution (Z: the allowed mass). With
``top_p < 1`` the nucleus is taken over the masked row (as llama.cpp's samplers do).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ...errors import BackendError
from ..grammar import check_grammar

BLOCK = 1024  # sampling sums probabilities in blocks, then searches one block

#: numpy twin of ``llama_token_data`` (id: int32, logit: float, p: float)
TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


class Sampler:
    """Exact temperature / top-p sampling over ``n_vocab`` logits with a per-sample generator."""

    def __init__(self, n_vocab: int, banned: np.ndarray | None = None):
        self.n_vocab = n_vocab
        self.banned = banned  # token ids never sampled (ignore_eos)
        self._buf = np.zeros(-(-n_vocab // BLOCK) * BLOCK, dtype=np.float32)

    def sample(self, row: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator,
               grammar: Grammar | None = None) -> int | None:
        """One token from a logits row (modified in place): argmax at temperature <= 0, else exact
        inverse-CDF sampling with one uniform draw from ``rng``. None when a grammar allows no
        token at all."""
        if self.banned is not None:
            row[self.banned] = -np.inf
        if grammar is not None:
            if temperature <= 0 or top_p >= 1.0:
                tok = self._draw(row, temperature, top_p, rng)
                if grammar.allows(tok):
                    return tok
            if not grammar.mask(row):
                return None
            tok = self._draw(row, temperature, top_p, rng)
            # never hand llama.cpp a token its grammar forbids (accepting one aborts the process)
            return tok if np.isfinite(row[tok]) else int(row.argmax())
        return self._draw(row, temperature, top_p, rng)

    def _draw(self, row: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
        if temperature <= 0:
            return int(row.argmax())
        n, blk = self.n_vocab, BLOCK
        buf = self._buf  # [n_vocab probabilities | zero padding to whole blocks]
        z = buf[:n]
        np.subtract(row, row.max(), out=z)
        z *= np.float32(1.0 / temperature)
        np.exp(z, out=z)
        if top_p < 1.0:
            return self.sample_top_p(z, float(top_p), rng)
        csum = np.cumsum(buf.reshape(-1, blk).sum(axis=1, dtype=np.float64))
        u = rng.random() * csum[-1]
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
    def sample_top_p(p: np.ndarray, top_p: float, rng: np.random.Generator) -> int:
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


class Grammar:
    """llama.cpp's grammar sampler for one sample: which tokens may come next, and its state.

    ``scratch`` is a :data:`TOKEN_DATA` array of ``n_vocab`` entries shared by the grammars of
    one backend (one sample is masked at a time)."""

    def __init__(self, ll: Any, vocab: Any, text: str, scratch: np.ndarray):
        check_grammar(text)
        self.ll = ll
        self.ptr = ll.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
        if not self.ptr:
            raise BackendError("llama.cpp refused the grammar for this model's vocabulary.")
        self.scratch = scratch
        self._one = np.zeros(1, dtype=TOKEN_DATA)

    def _apply(self, data: np.ndarray) -> None:
        arr = self.ll.llama_token_data_array(
            data=ctypes.cast(data.ctypes.data, self.ll.llama_token_data_p), size=len(data), selected=-1,
            sorted=False)
        self.ll.llama_sampler_apply(self.ptr, ctypes.byref(arr))

    def allows(self, tok: int) -> bool:
        one = self._one
        one["id"], one["logit"], one["p"] = tok, 0.0, 0.0
        self._apply(one)
        return bool(np.isfinite(one["logit"][0]))

    def mask(self, row: np.ndarray) -> bool:
        """Set the logits of tokens the grammar forbids to -inf; False when none is allowed."""
        data = self.scratch
        data["id"] = np.arange(len(data), dtype=np.int32)
        data["logit"] = row
        data["p"] = 0.0
        self._apply(data)
        row[:] = data["logit"]
        return bool(np.isfinite(row).any())

    def accept(self, tok: int) -> None:
        self.ll.llama_sampler_accept(self.ptr, int(tok))

    def free(self) -> None:
        if self.ptr:
            self.ll.llama_sampler_free(self.ptr)
            self.ptr = None

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
