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

import difflib
import os
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from ..errors import BackendError
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
    #: GBNF grammar (root rule ``root``) the output must follow, e.g. ``root ::= "Score: " [1-5]``
    #: for a verdict: llamacpp constrains sampling with it, openai sends it to the server
    #: (``-o grammar_mode``), fake checks and records it; the transformers backend refuses it.
    grammar: str | None = None
    #: the sample index of each seed (``generate`` asks only for the samples its store lacks, e.g.
    #: index 2 alone); the seed alone decides a real backend's sample, a fake script may key on it.
    #: None: 0..n-1
    indices: list[int] | None = None

    @property
    def n(self) -> int:
        return len(self.seeds)

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("GenerationRequest needs exactly one of prompt= or messages=")
        if not self.seeds:
            raise ValueError("GenerationRequest needs at least one seed")
        if self.indices is not None and len(self.indices) != len(self.seeds):
            raise ValueError("GenerationRequest needs one index per seed")
        if self.grammar is not None and not isinstance(self.grammar, str):
            raise ValueError("GenerationRequest.grammar must be GBNF text or None")


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


# ---------------------------------------------------------------- options

class BackendOptionError(BackendError):
    """A backend option (``-o KEY=VALUE``) that the backend does not take, or a bad value."""


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


#: A text option that also takes a ``pathlib.Path``.
PathStr = Annotated[str, BeforeValidator(_fspath)]


class BackendOptions(BaseModel):
    """The options of one backend, as typed fields (``-o KEY=VALUE`` on the CLI, keywords in
    Python). Subclasses add fields; unknown keys and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True,
                              validate_assignment=True)


O = TypeVar("O", bound=BackendOptions)

_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a text",
               "dict": "a JSON object", "list": "a JSON list", "Any": "any value"}


def _expected(annotation: Any) -> str:
    """A field's type in words: ``int | None`` -> 'an integer or null'."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(dict.fromkeys(_expected(a) for a in get_args(annotation)))
    if origin is Literal:
        return "one of " + ", ".join(str(v) for v in get_args(annotation))
    if annotation is type(None):
        return "null"
    name = getattr(origin or annotation, "__name__", str(annotation))
    return _TYPE_WORDS.get(name, name)


def parse_options(options_cls: type[O], backend: str, raw: Mapping[str, Any]) -> O:
    """Validate ``raw`` against a backend's options; a one-line :class:`BackendOptionError` if
    a key is unknown (listing the valid ones) or a value has the wrong type or range."""
    valid = sorted(options_cls.model_fields)
    unknown = [k for k in raw if k not in options_cls.model_fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), valid, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise BackendOptionError(f"The {backend} backend has no option '{key}'.{hint} "
                                 f"Valid options: {', '.join(valid)}.")
    try:
        return options_cls(**raw)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        key = str(err["loc"][0]) if err.get("loc") else "?"
        field_info = options_cls.model_fields.get(key)
        expected = f" (expected {_expected(field_info.annotation)})" if field_info is not None else ""
        value = err.get("input")
        shown = repr(value) if not isinstance(value, str) else value
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        msg = str(err.get("msg", "invalid value")).rstrip(".")
        more = len(e.errors()) - 1
        extra = f" ({more} more invalid option{'s' if more > 1 else ''})" if more > 0 else ""
        raise BackendOptionError(f"Backend option {key}={shown} is invalid for the {backend} backend: "
                                 f"{msg}{expected}.{extra}") from None


class Backend(ABC):
    """Base class of every backend. Subclasses set ``name`` and ``model``."""

    name: ClassVar[str] = "base"
    #: The backend's options (typed fields, ``extra="forbid"``); ``self.options`` holds the parsed ones.
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    model: str = ""
    #: True when the model expects chat messages (instruction models with a chat template).
    chat: bool = True
    #: True when ``GenerationRequest.grammar`` is honoured (else such a request is refused).
    supports_grammar: bool = False
    #: Samples the backend decodes at once (llama.cpp's sequences, a transformers batch, HTTP
    #: requests in flight): ``generate`` gives each call at least twice as many, so a call of
    #: one-sample requests keeps the backend full while its longest samples finish.
    samples_in_flight: int = 1

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest],
                 on_sample: OnSample | None = None) -> list[GenerationResult]:
        ...

    @abstractmethod
    def logprobs(self, prompt: str | Messages, continuations: Sequence[str]) -> list[ContinuationScore]:
        ...

    @classmethod
    def parse_options(cls, **raw: Any) -> Any:
        """``raw`` checked against ``cls.Options``; one-line BackendOptionError when it does not fit."""
        return parse_options(cls.Options, cls.name, raw)

    @classmethod
    def option_names(cls) -> list[str]:
        return sorted(cls.Options.model_fields)

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
