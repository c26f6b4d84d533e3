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

From the CLI: ``--backend fake --model script.json`` where the file holds the dict form (or a
list of outputs); a malformed file is a one-line error that shows the expected format
(:func:`parse_script`). A request's ``grammar`` is checked with llama.cpp's GBNF parser and
recorded in ``grammars``; the scripted text is not forced to match it.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from ..errors import BackendError
from ..records import content_hash
from .base import (Backend, BackendOptions, Completion, ContinuationScore, GenerationRequest, GenerationResult,
                   Messages, OnSample)
from .grammar import check_grammar

Script = Callable[[str, int, int], str] | dict[str, list[str]] | list[str] | None

#: Largest script file read (bytes).
MAX_SCRIPT_BYTES = 64 * 1024 * 1024

SCRIPT_FORMAT = ('a JSON object mapping a prompt substring to a list of output strings, '
                 'e.g. {"apples": ["The answer is 5."], "*": ["The answer is 0."]} ("*" is the default), '
                 'or a JSON list of output strings used in turn')


def _script_error(source: str, problem: str) -> BackendError:
    return BackendError(f"Fake script {source} {problem}; expected {SCRIPT_FORMAT}.")


def _outputs(value: Any, where: str, source: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _script_error(source, f"has {where} = {_short(value)}, not a non-empty list of strings")
    for k, item in enumerate(value):
        if not isinstance(item, str):
            raise _script_error(source, f"has {where}[{k}] = {_short(item)}, not a string")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise _script_error(source, f"has {where}[{k}] with a lone surrogate (\\ud800-\\udfff), not text") from None
    return list(value)


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {"str": "string", "dict": "object", "list": "list"}.get(type(value).__name__, type(value).__name__)


def validate_script(script: Any, source: str = "(given in Python)") -> Script:
    """A script in its checked form (dict of lists / list of strings / callable / None), or a
    one-line BackendError saying what the expected format is."""
    if script is None or callable(script):
        return script
    if isinstance(script, dict):
        out: dict[str, list[str]] = {}
        for key, value in script.items():
            if not isinstance(key, str):
                raise _script_error(source, f"has a key {_short(key)} that is not a string")
            out[key] = _outputs(value, f"[{_short(key)}]", source)
        return out
    if isinstance(script, list):
        if not script:
            raise _script_error(source, "is an empty list")
        return _outputs(script, "the list", source)
    raise _script_error(source, f"is a {type(script).__name__} ({_short(script)})")


def parse_script(data: bytes | str, source: str = "(text)") -> Script:
    """A fake script from a file's bytes: UTF-8 JSON in the format :data:`SCRIPT_FORMAT`.
    Every malformed input (not UTF-8, not JSON, too deep, wrong types) is one BackendError."""
    if isinstance(data, bytes):
        if len(data) > MAX_SCRIPT_BYTES:
            raise _script_error(source, f"is {len(data)} bytes (at most {MAX_SCRIPT_BYTES})")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise _script_error(source, f"is not UTF-8 text (byte {e.start})") from None
    try:
        script = json.loads(data)
    except json.JSONDecodeError as e:
        raise _script_error(source, f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise _script_error(source, "is nested too deeply to read") from None
    if isinstance(script, (dict, list)):
        return validate_script(script, source)
    raise _script_error(source, f"holds a JSON {_json_type(script)} ({_short(script)})")


class FakeOptions(BackendOptions):
    """Options of the fake backend."""

    script: Any = Field(None, description="outputs: dict prompt-substring -> list, list, or callable(prompt, seed, index)")
    model: str | None = Field(None, description="a JSON script file (CLI: --model script.json), else a label")
    logprob_fn: Any = Field(None, description="callable(prompt, continuation) -> float (Python only)")
    chat: bool = True
    fail_after: int | None = Field(None, ge=0, description="raise BackendError after this many samples")
    delay: float = Field(0.0, ge=0.0, le=3600.0, description="seconds to sleep per sample")


class FakeBackend(Backend):
    name = "fake"
    Options = FakeOptions
    supports_grammar = True  # checked and recorded; the scripted text is not forced to match

    def __init__(self, model: Any = None, **options: Any):
        o: FakeOptions = self.parse_options(**options, **({} if model is None else {"model": model}))
        self.options = o
        script, model = o.script, o.model
        if o.logprob_fn is not None and not callable(o.logprob_fn):
            raise BackendError("The fake backend's logprob_fn must be a callable (prompt, continuation) -> float.")
        if model and script is None and (Path(model).is_file() or model.endswith(".json")):
            path = Path(model)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise BackendError(f"Cannot read the fake script {model} ({e.strerror or e}); "
                                   f"give a file holding {SCRIPT_FORMAT}.") from None
            script = parse_script(data, model)
        else:
            script = validate_script(script)
        self.script = script
        self.model = model or "fake"
        self.chat = o.chat
        self.logprob_fn = o.logprob_fn
        self.fail_after = o.fail_after
        self.delay = float(o.delay)
        self._queue: deque[str] = deque()
        self._turn = 0
        self.calls = 0
        self.samples_generated = 0
        self.logprob_calls = 0
        self.prompts: list[str] = []
        #: the grammar of every request generated, in order (None where a request had none)
        self.grammars: list[str | None] = []

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
            if req.grammar is not None:
                check_grammar(req.grammar)
            self.prompts.append(prompt)
            self.grammars.append(req.grammar)
            completions = []
            for i, seed in enumerate(req.seeds):
                if self.fail_after is not None and self.samples_generated >= self.fail_after:
                    raise BackendError("Fake backend failure (fail_after reached).")
                text = self._output(prompt, seed, req.indices[i] if req.indices is not None else i)
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
