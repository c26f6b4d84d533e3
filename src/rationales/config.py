"""One config system: a shared :class:`SamplingConfig`, and one config dataclass per job and per
method built on :class:`Config` (as TRL does: ``DPOConfig`` on a shared base, validated on
construction).

A field declares its bounds with :func:`setting` (``lo``/``hi``, ``choices``, ``help``); every
config checks them in ``__post_init__``: numbers must be finite and in range, names must be
known, and a value out of range is a one-line :class:`ConfigError` naming the option, before
any model is loaded or anything is written. The upper bounds are documented on each field;
they exist so that a typo (``--samples 1000000000``) fails at once instead of running for days.

Method options (``run --method NAME -O KEY=VALUE``) are parsed one way:
:meth:`Config.from_options` converts strings (``"3"``, ``"true"``, ``"a,b"``) to each field's
type and refuses unknown keys, listing the valid ones.
"""

from __future__ import annotations

import functools
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from .errors import RationalesError

C = TypeVar("C", bound="Config")

# documented upper bounds (per problem / per call); raise them here when a real use needs more
MAX_SAMPLES = 1024          #: sampled rationales per problem
MAX_PROBLEMS = 100_000      #: problems generated (--size) or used (--limit) by one command
MAX_TOKENS = 32_768         #: new tokens of one generation
MAX_TEMPERATURE = 5.0
MAX_BUDGET = 1_000_000      #: compare: generated tokens per problem
MAX_SEED = 2 ** 63 - 1
#: answer checkers of file tasks (tasks/files.py checks the same list)
ANSWER_TYPES = ("auto", "number", "math", "exact", "choice", "reasoning_gym")


class ConfigError(RationalesError):
    """An option out of range, of the wrong type, or unknown."""


def setting(default: Any = MISSING, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
            choices: Sequence[str] | None = None, what: str | None = None, help: str = "", flag: str | None = None,
            aliases: Sequence[str] = (), default_factory: Any = MISSING) -> Any:
    """A config field with its bounds and help (read by validation, ``from_options`` and the
    CLI consistency test); ``what`` names a choice in errors ("consensus rule")."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": tuple(choices) if choices else None,
            "what": what, "help": help, "flag": flag, "aliases": tuple(aliases)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_of(cls: type, name: str) -> Any:
    return _hints(cls).get(name, Any)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the type without ``| None``, whether None is allowed)."""
    args = typing.get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return tp, False


@dataclass
class Config:
    """Base of every job, method and stage config: validated on construction."""

    #: how an option is named in errors: "--" for command-line flags, "-O " for method options
    option_style: ClassVar[str] = "--"

    def __post_init__(self) -> None:
        for f in fields(self):
            self._check(f, getattr(self, f.name))

    # ------------------------------------------------------------ validation

    @classmethod
    def option_label(cls, name: str) -> str:
        f = {f.name: f for f in fields(cls)}.get(name)
        flag = f.metadata.get("flag") if f is not None else None
        if flag:
            return flag
        return f"-O {name}" if cls.option_style == "-O " else "--" + name.replace("_", "-")

    def _check(self, f: Any, value: Any) -> None:
        meta = f.metadata
        if not meta:
            return
        label = self.option_label(f.name)
        tp, nullable = _base_type(_type_of(type(self), f.name))
        if value is None:
            if nullable or f.default is None:
                return
            raise ConfigError(f"{label} needs a value.")
        if tp is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{label} must be true or false, got {value!r}.")
            return
        if tp in (int, float) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{label} must be a number, got {str(value)[:40]!r}.")
            if tp is int and not isinstance(value, int):
                raise ConfigError(f"{label} must be a whole number, got {value!r}.")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{label} must be a finite number, got {value}.")
            lo, hi = meta.get("lo"), meta.get("hi")
            if lo is not None and (value <= lo if meta.get("lo_open") else value < lo):
                raise ConfigError(f"{label} must be {'above' if meta.get('lo_open') else 'at least'} {lo}, "
                                  f"got {value}.")
            if hi is not None and value > hi:
                raise ConfigError(f"{label} must be at most {hi} (got {value}); the bound is documented in "
                                  "rationales/config.py.")
        choices = meta.get("choices")
        if choices:
            items = value.split(",") if isinstance(value, str) and tp is not str else (
                list(value) if isinstance(value, (list, tuple)) else [value])
            for item in items:
                if item not in choices:
                    from .errors import UnknownNameError

                    raise UnknownNameError(meta.get("what") or label.lstrip("-").replace("O ", "option "), str(item),
                                           choices)

    # ------------------------------------------------------------ building

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.init]

    @classmethod
    def from_options(cls: type[C], options: Mapping[str, Any] | None, /, **given: Any) -> C:
        """A config from ``KEY=VALUE`` options (strings or typed values) over ``given``:
        unknown keys are an error listing the valid ones; values convert to the field type."""
        by_name: dict[str, Any] = {}
        for f in fields(cls):
            if f.init:
                by_name[f.name] = f
                for alias in f.metadata.get("aliases", ()):
                    by_name[alias] = f
        kwargs = dict(given)
        for key, raw in (options or {}).items():
            f = by_name.get(str(key).strip())
            if f is None:
                valid = ", ".join(cls.option_names()) or "none"
                raise ConfigError(f"Unknown option {cls.option_label(str(key)) if cls.option_style == '-O ' else key!s}"
                                  f" for {cls.describe()}; valid keys: {valid}.")
            kwargs[f.name] = cls.convert(f.name, raw)
        return cls(**kwargs)

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or cls.__name__).strip().splitlines()[0].rstrip(".")

    @classmethod
    def convert(cls, name: str, raw: Any) -> Any:
        """``raw`` (a command-line string or a Python value) as the type of field ``name``."""
        tp, nullable = _base_type(_type_of(cls, name))
        label = cls.option_label(name)
        if not isinstance(raw, str):
            if tp is float and isinstance(raw, int) and not isinstance(raw, bool):
                return float(raw)
            if tp is int and isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if typing.get_origin(tp) is tuple and isinstance(raw, list):
                return tuple(raw)
            return raw
        text = raw.strip()
        if nullable and text.lower() in ("", "none", "null"):
            return None
        try:
            if tp is bool:
                low = text.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if tp is int:
                if len(text) > 30:
                    raise ValueError(text)
                return int(text)
            if tp is float:
                if len(text) > 60:
                    raise ValueError(text)
                return float(text)
            if typing.get_origin(tp) is tuple:
                return tuple(s.strip() for s in text.split(",") if s.strip())
        except ValueError:
            kind = {bool: "true or false", int: "a whole number", float: "a number"}.get(tp, str(tp))
            raise ConfigError(f"{label} must be {kind}, got {text[:40]!r}.") from None
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SamplingConfig(Config):
    """Sampling settings shared by every job that generates."""

    temperature: float = setting(0.7, lo=0.0, hi=MAX_TEMPERATURE, help="Sampling temperature of the samples.")
    top_p: float = setting(0.95, lo=0.0, hi=1.0, help="Nucleus sampling: keep the top-p probability mass.")
    max_tokens: int = setting(512, lo=1, hi=MAX_TOKENS, help="Max new tokens per rationale.")
    seed: int = setting(0, lo=-MAX_SEED, hi=MAX_SEED, help="Base seed; every sample derives its own seed from it.")

    def sampling(self) -> SamplingConfig:
        """Just the sampling part (of a job config that extends this one)."""
        return SamplingConfig(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                              seed=self.seed)


@dataclass
class TaskConfig(Config):
    """Which problems: the task and, for file tasks, its columns."""

    task: str = setting("demo", help="Task: demo, reasoning_gym:NAME, a .jsonl/.csv/.parquet file, or a dataset dir.")
    limit: int | None = setting(10, lo=1, hi=MAX_PROBLEMS, help="Use the first K problems.")
    size: int = setting(50, lo=1, hi=MAX_PROBLEMS, help="reasoning-gym: how many problems to generate.")
    seed: int = setting(0, lo=-MAX_SEED, hi=MAX_SEED, help="Base seed; every sample derives its own seed from it.")
    question_col: str = setting("question", help="File tasks: question column.")
    answer_col: str = setting("answer", help="File tasks: gold answer column.")
    context_col: str | None = setting(None, help="File tasks: context column.")
    answer_type: str = setting("auto", choices=ANSWER_TYPES, what="answer type", help="File tasks: auto | number | math | exact | choice.")

    def task_options(self) -> dict[str, str]:
        """The file-task column options as ``load_task`` keywords."""
        m = {"question_col": self.question_col, "answer_col": self.answer_col, "answer_type": self.answer_type}
        if self.context_col:
            m["context_col"] = self.context_col
        return m


@dataclass
class BackendConfig(Config):
    """Which model: the backend, its model and its options (checked by the backend itself)."""

    backend: str = setting("llamacpp", help="Backend name (see `rationales backends`).")
    model: str | None = setting(None, help="Model: alias, GGUF path, HF model, or server model name.")
    base_url: str | None = setting(None, help="OpenAI-compatible server URL (openai backend).")
    backend_options: dict[str, Any] = setting(default_factory=dict, flag="--backend-opt",
                                              help="Extra backend options KEY=VALUE.")
    ray: str | None = setting(None, help="Run the backend as a pool of Ray actors: --ray alone starts a local Ray, "
                                         "--ray ADDRESS joins a cluster (auto, ray://host:10001).")
    ray_actors: int = setting(2, lo=1, hi=4096, help="With --ray: actors, one backend (model) each.")


@dataclass
class OutputConfig(Config):
    """Where results go."""

    store: str = setting("rationales.sqlite", help="SQLite store file (created if missing).")
    out: str = setting("rationales-out", help="Directory for the HTML report and other outputs.")


@dataclass
class MethodOptions(Config):
    """Base of a method's ``-O KEY=VALUE`` options."""

    option_style: ClassVar[str] = "-O "


__all__ = ["Config", "ConfigError", "SamplingConfig", "TaskConfig", "BackendConfig", "OutputConfig", "MethodOptions",
           "setting", "ANSWER_TYPES", "MAX_SAMPLES", "MAX_PROBLEMS", "MAX_TOKENS", "MAX_TEMPERATURE", "MAX_BUDGET",
           "MAX_SEED"]
