"""The llamacpp backend's sampler on synthetic logits (no model needed)."""

from __future__ import annotations

import numpy as np

from rationales.backends.base import GenerationRequest
from rationales.backends.llamacpp.sampler import Sampler
from rationales.backends.llamacpp.scheduler import Job, Prompt


class _Backend:
    """The sampling step of the backend's loop: the job's request settings and generator."""

    def __init__(self, n_vocab: int):
        self.sampler = Sampler(n_vocab)

    def _sample(self, row: np.ndarray, job: Job) -> int:
        return self.sampler.sample(row, job.request.temperature, job.request.top_p, job.rng)


def _sampler(n_vocab: int) -> _Backend:
    return _Backend(n_vocab)


def _job(seed: int, temperature: float, top_p: float = 1.0) -> Job:
    req = GenerationRequest(prompt="x", seeds=[seed], temperature=temperature, top_p=top_p)
    return Job(0, 0, seed, Prompt([1]), req, 10, np.random.default_rng(seed))


def _logits(n: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    row = rng.standard_normal(n).astype(np.float32) * 2
    row[[7, 1500, n - 1]] = [9.0, 8.5, 8.0]  # mass in several blocks, incl. the last partial one
    return row


def test_sampling_follows_the_tempered_softmax():
    n, t = 3000, 0.7
    b, row = _sampler(n), _logits(n)
    p = np.exp((row.astype(np.float64) - row.max()) / t)
    p /= p.sum()
    job = _job(3, t)
    draws = np.bincount([b._sample(row.copy(), job) for _ in range(20000)], minlength=n)
    assert draws.sum() == 20000 and len(draws) == n
    for tok in np.argsort(-p)[:5]:
        assert abs(draws[tok] / 20000 - p[tok]) < 4 * np.sqrt(p[tok] / 20000) + 1e-3


def test_same_seed_same_tokens_and_greedy_is_argmax():
    n = 3000
    b, row = _sampler(n), _logits(n)
    a = [b._sample(row.copy(), job) for job in [_job(5, 1.0)] for _ in range(50)]
    c = [b._sample(row.copy(), job) for job in [_job(5, 1.0)] for _ in range(50)]
    d = [b._sample(row.copy(), job) for job in [_job(6, 1.0)] for _ in range(50)]
    assert a == c and a != d
    assert b._sample(row.copy(), _job(0, 0.0)) == int(row.argmax()) == 7


def test_top_p_keeps_the_smallest_nucleus():
    n = 2000
    b = _sampler(n)
    row = np.full(n, -30.0, dtype=np.float32)
    row[[10, 20, 30]] = [np.log(0.5), np.log(0.3), np.log(0.2)]  # ~all the mass, in three tokens
    job = _job(1, 1.0, top_p=0.75)
    seen = {b._sample(row.copy(), job) for _ in range(400)}
    assert seen == {10, 20}
    job = _job(1, 1.0, top_p=0.4)
    assert {b._sample(row.copy(), job) for _ in range(50)} == {10}


def test_banned_tokens_are_never_drawn():
    n = 3000
    row = _logits(n)
    s = Sampler(n, banned=np.array([7, 1500]))
    rng = np.random.default_rng(0)
    draws = {s.sample(row.copy(), 1.0, 1.0, rng) for _ in range(300)}
    assert 7 not in draws and 1500 not in draws and n - 1 in draws
    assert s.sample(row.copy(), 0.0, 1.0, rng) == n - 1  # greedy takes the best allowed one
