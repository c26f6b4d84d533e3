"""A scripted backend for fast tests, shipped so users can test their own pipelines too.

Outputs come, in order of precedence, from:

1. the queue (``backend.queue("text", ...)``), consumed one completion at a time;
2. ``script``: a callable ``(prompt, seed, index) -> str``, or a dict mapping a substring of
   the prompt to a list of outputs (the sample with index i gets ``outputs[i % len]``), or a
   list of outputs used in turn;
3. a default that answers ``The answer is 0.``.

``logprob_fn(prompt, continuation) -> float`` scores continuations (default: a deterministic
pseudo-random value from a hash, spread over tokens = whitespace words). Every call is counted
in ``calls`` / ``samples_generated`` so tests can assert that caching really avoided work.

From the CLI: ``--backend fake --model script.json`` where the file holds the dict form.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import BackendError
from ..records import content_hash
from .base import Backend, Completion, ContinuationScore, GenerationRequest, GenerationResult, Messages, OnSample

Script = Callable[[str, int, int], str] | dict[str, list[str]] | list[str] | None


class FakeBackend(Backend):
    name = "fake"

    def __init__(self, script: Script = None, model: str | None = None,
                 logprob_fn: Callable[[str, str], float] | None = None, chat: bool = True,
                 fail_after: int | None = None, delay: float = 0.0, **_: Any):
        if model and script is None and Path(model).is_file():
            try:
                script = json.loads(Path(model).read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise BackendError(f"Fake script {model} is not valid JSON ({e}); "
                                   "write a JSON object mapping prompt substrings to lists of outputs.") from e
        self.script = script
        self.model = model or "fake"
        self.chat = chat
        self.logprob_fn = logprob_fn
        self.fail_after = fail_after
        self.delay = float(delay)
        self._queue: deque[str] = deque()
        self._turn = 0
        self.calls = 0
        self.samples_generated = 0
        self.logprob_calls = 0
        self.prompts: list[str] = []

    def queue(self, *texts: str) -> None:
        self._queue.extend(texts)

    def _output(self, prompt: str, seed: int, index: int) -> str:
        if self._queue:
            return self._queue.popleft()
        script = self.script
        if callable(script):
            return script(prompt, seed, index)
        if isinstance(script, dict):
            for key, outputs in script.items():
                if key in prompt:
                    return outputs[index % len(outputs)]
            default = script.get("*") or ["The answer is 0."]
            return default[index % len(default)]
        if isinstance(script, list) and script:
            out = script[self._turn % len(script)]
            self._turn += 1
            return out
        return "The answer is 0."

    def generate(self, requests: Sequence[GenerationRequest],
                 on_sample: OnSample | None = None) -> list[GenerationResult]:
        self.calls += 1
        results = []
        for r_i, req in enumerate(requests):
            prompt = self.prompt_text(req)
            self.prompts.append(prompt)
            completions = []
            for i, seed in enumerate(req.seeds):
                if self.fail_after is not None and self.samples_generated >= self.fail_after:
                    raise BackendError("Fake backend failure (fail_after reached).")
                text = self._output(prompt, seed, i)
                if self.delay:
                    time.sleep(self.delay)
                words = text.split()
                finish = "stop"
                if len(words) > req.max_tokens:
                    text, finish = " ".join(words[: req.max_tokens]), "length"
                for s in req.stop:
                    if s and s in text:
                        text = text[: text.index(s)]
                comp = Completion(text=text, index=i, seed=seed, tokens=max(1, len(text.split())),
                                  finish_reason=finish, prompt_tokens=len(prompt.split()))
                self.samples_generated += 1
                completions.append(comp)
                if on_sample:
                    on_sample(r_i, comp)
            results.append(GenerationResult(req, completions, prompt_tokens=len(prompt.split())))
        return results

    def logprobs(self, prompt: str | Messages, continuations: Sequence[str]) -> list[ContinuationScore]:
        self.logprob_calls += 1
        text = prompt if isinstance(prompt, str) else self.render(prompt)
        out = []
        for cont in continuations:
            if self.logprob_fn is not None:
                total = float(self.logprob_fn(text, cont))
            else:
                total = -(int(content_hash(text, cont), 16) % 1000) / 100.0
            n = max(1, len(cont.split()))
            out.append(ContinuationScore(cont, total, [total / n] * n))
        return out
