"""Prompting and trust methods usable from Python and from ``rationales run --method NAME``.

Each method is a module with a ``run(ctx: MethodContext) -> dict`` entry point returning a
summary (at least ``strategies``: name -> accuracy row from ``pipeline.strategy_row``, plus
``samples_new``/``samples_cached``/``tokens``) and writing its report under ``ctx.out``.
Register a method by adding it to ``METHODS`` (name -> "module:function", description).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...backends.base import Backend
from ...errors import RationalesError, UnknownNameError
from ...records import Problem, Rationale
from ...store import Store

if TYPE_CHECKING:
    from ...generate import GenerationStats, SampleSpec

#: name -> ("module:function", one-line description)
METHODS: dict[str, tuple[str, str]] = {}
METHODS.update({  # trust methods (score/): utility, faithfulness, brevity, calibration
    "utility": ("rationales.jobs.methods.utility:run",
                "reasoning utility: log-prob gain of the gold answer from each rationale, per step; utility-weighted vote"),
    "faithfulness": ("rationales.jobs.methods.faithfulness:run",
                     "PINTO counterfactuals (mask 30% / replace numbers, re-answer) and answer-rationale consistency"),
    "brevity": ("rationales.jobs.methods.brevity:run",
                "verbosity-aware reduction: drop sentences the answer does not need; tokens saved vs accuracy kept"),
    "calibration": ("rationales.jobs.methods.calibration:run",
                    "confidence from sample agreement and verbal 'Confidence: N%'; ECE and reliability diagram"),
    "grounded": ("rationales.jobs.methods.grounded:run",
                 "GroundedPRM data: MCTS over steps (-n rollouts), tool-checked steps, hybrid reward; step labels, "
                 "trees, sibling pairs"),
})

METHODS.update({  # prompting methods: mistakes in context, rationale formats, feedback patching, ensembles
    "mistakes": ("rationales.jobs.methods.mistakes:run",
                 "implicit learning from mistakes: Question / wrong answer / correct answer demonstrations vs CoT"),
    "cot_plus": ("rationales.jobs.methods.mistakes:run_cot_plus",
                 "CoT+: the same demonstrations plus an explanation of the mistake, vs CoT"),
    "formats": ("rationales.jobs.methods.formats:run",
                "five rationale formats answered from the rationale alone (decomposed QA); accuracy per format"),
    "patch": ("rationales.jobs.methods.patch:run",
              "natural-language feedback patching of wrong rationales; patch success rate per format"),
    "ensemble": ("rationales.jobs.methods.ensemble:run",
                 "rationale-augmented ensemble: vote across prompts/formats/demonstrations x samples vs one prompt"),
})


@dataclass
class MethodContext:
    problems: list[Problem]
    backend: Backend
    store: Store
    out: Path
    task: str = ""
    samples: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int = 0
    size: int = 50
    options: dict[str, Any] = field(default_factory=dict)
    on_progress: Callable[[int], None] | None = None

    def cot_specs(self, template: str = "cot") -> list[SampleSpec]:
        """``samples`` CoT rationales per problem with this run's sampling settings (method
        "cot"): the samples the trust methods start from, shared through the store with
        ``rationales run`` and with each other."""
        from ...generate import cot_specs

        return cot_specs(self.problems, template=template, n=self.samples, temperature=self.temperature,
                         top_p=self.top_p, max_tokens=self.max_tokens, seed=self.seed, method="cot")

    def sample(self, specs: Sequence[SampleSpec]) -> tuple[list[list[Rationale]], GenerationStats]:
        """The rationales of ``specs`` (generated or read from the store, with this run's
        progress callback) and the counts of new and cached samples."""
        from ...generate import GenerationStats, generate

        stats = GenerationStats()
        return generate(list(specs), self.backend, self.store, on_progress=self.on_progress, stats=stats), stats


def method_function(name: str) -> Callable[[MethodContext], dict[str, Any]]:
    if name not in METHODS:
        raise UnknownNameError("method", name, ["cot", *METHODS])
    module_name, _, attr = METHODS[name][0].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def run_method(name: str, ctx: MethodContext) -> dict[str, Any]:
    """Run method ``name`` on ``ctx``; the summary is recorded as a run of the store."""
    fn = method_function(name)
    run_id = ctx.store.start_run(f"run --method {name}", {"task": ctx.task, "method": name, "samples": ctx.samples})
    summary = fn(ctx)
    summary.setdefault("method", name)
    ctx.store.finish_run(run_id, summary)
    return summary


def option(opts: dict[str, Any], key: str, default: Any) -> Any:
    """``opts[key]`` converted to the type of ``default`` (strings from a command line too);
    a value that does not convert is a one-line error naming the option."""
    value = opts.get(key, default)
    if value is None or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.strip().lower() in ("1", "true", "yes", "on"):
                    return True
                if value.strip().lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        return type(default)(value)
    except (TypeError, ValueError):
        raise RationalesError(f"Option {key}={value!r} should be a {type(default).__name__} "
                              f"(default {default!r}).") from None
