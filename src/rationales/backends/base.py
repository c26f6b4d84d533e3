"""The backend protocol and its registry.

A backend does two things:

* ``generate(requests, on_sample=None)``: for each request, one completion per seed in
  ``request.seeds`` (n samples = n explicit seeds, so samples differ and reruns repeat).
  ``on_sample(request_index, completion)`` is called as each sample finishes, so callers can
  commit it to the store at once.
* ``logprobs(prompt, continuations)``: the log-probability of each continuation after the
  prompt (PRM P(+)/P(-), reasoning utility, faithfulness, verbosity reduction).

Backends are found by name: the built-ins below, plus any third-party package that declares an
entry point in the group ``rationales.backends``. Entry points are loaded only when a name is
looked up or the list is shown, never at import time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..registry import Registry

Messages = list[dict[str, str]]


@dataclass
class GenerationRequest:
    """What to generate. Either ``prompt`` (raw text) or ``messages`` (chat) is set."""

    prompt: str | None = None
    messages: Messages | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    stop: list[str] = field(default_factory=list)
    tag: Any = None  # the caller's key, passed through untouched

    @property
    def n(self) -> int:
        return len(self.seeds)

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("GenerationRequest needs exactly one of prompt= or messages=")
        if not self.seeds:
            raise ValueError("GenerationRequest needs at least one seed")


@dataclass
class Completion:
    text: str
    index: int  # position in request.seeds
    seed: int
    tokens: int
    finish_reason: str = "stop"  # "stop" | "length"
    logprobs: list[float] | None = None
    prompt_tokens: int = 0  # tokens of the prompt this sample continued


@dataclass
class GenerationResult:
    request: GenerationRequest
    completions: list[Completion]
    prompt_tokens: int = 0


@dataclass
class ContinuationScore:
    text: str
    logprob: float  # sum over the continuation's tokens
    token_logprobs: list[float]

    @property
    def tokens(self) -> int:
        return len(self.token_logprobs)


OnSample = Callable[[int, Completion], None]


class Backend(ABC):
    """Base class of every backend. Subclasses set ``name`` and ``model``."""

    name: ClassVar[str] = "base"
    model: str = ""
    #: True when the model expects chat messages (instruction models with a chat template).
    chat: bool = True

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest],
                 on_sample: OnSample | None = None) -> list[GenerationResult]:
        ...

    @abstractmethod
    def logprobs(self, prompt: str | Messages, continuations: Sequence[str]) -> list[ContinuationScore]:
        ...

    def render(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        """Chat messages -> the prompt text the model sees. Default: ChatML."""
        parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
        if add_generation_prompt:
            parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    def prompt_text(self, request: GenerationRequest) -> str:
        return request.prompt if request.prompt is not None else self.render(request.messages or [])

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model}

    def close(self) -> None:
        """Free resources (models, connections). Safe to call twice."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- registry

#: Backends by name: these built-ins, plus plugins in the entry-point group ``rationales.backends``.
BACKENDS: Registry[type[Backend]] = Registry("backend", "rationales.backends")
BACKENDS.register("llamacpp", "rationales.backends.llamacpp:LlamaCppBackend",
                  help="in-process llama.cpp, batched parallel sampling (default; offline, CPU)")
BACKENDS.register("openai", "rationales.backends.openai:OpenAIBackend",
                  help="any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, hosted APIs)")
BACKENDS.register("transformers", "rationales.backends.transformers:TransformersBackend",
                  help="local Hugging Face causal LMs, batched, GPU when present")
BACKENDS.register("fake", "rationales.backends.fake:FakeBackend", help="scripted outputs for tests")

#: name -> one-line description of the built-ins (``rationales backends`` shows "plugin" for the rest)
BACKEND_HELP: dict[str, str] = {name: e.help for name, e in BACKENDS.builtins().items()}


def available_backends() -> dict[str, str]:
    """name -> 'module:Class' for built-ins and installed plugins (nothing is imported)."""
    return {name: e.target for name, e in BACKENDS.entries().items()}


def backend_class(name: str) -> type[Backend]:
    return BACKENDS.get(name)


def get_backend(name: str = "llamacpp", **options: Any) -> Backend:
    """Instantiate a backend by registry name, e.g. ``get_backend("fake", script=[...])``."""
    return backend_class(name)(**options)
