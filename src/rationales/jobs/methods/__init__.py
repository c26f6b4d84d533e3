"""Prompting and trust methods usable from Python and from ``rationales run --method NAME``.

Each method is a module with a ``run(ctx: MethodContext) -> MethodResult`` entry point; the
result is the method's own dataclass in ``jobs/results.py`` (``UtilityResult``, ...): its
``--json`` fields (at least ``strategies``: name -> accuracy row from
``select.vote.strategy_row``, plus ``samples_new``/``samples_cached``/``tokens``) and the records
of its report page, which ``report.write_report(result, out)`` writes; a method prints and
writes no report itself.
Register a method with ``METHODS.register(name, "module:run", help=...)`` or an entry point; its
module's ``OPTIONS`` (a :class:`~rationales.config.MethodOptions`) declares its ``-O`` options.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...backends.base import Backend
from ...config import MAX_PROBLEMS, MAX_SAMPLES, ConfigError, MethodOptions, SamplingConfig, setting
from ...registry import Registry
from ...records import Problem, Rationale
from ...store import Store
from ..results import MethodResult

if TYPE_CHECKING:
    from ...generate import GenerationStats, SampleSpec

#: the methods of ``rationales run --method NAME`` (third-party ones: entry point group
#: ``rationales.methods``, a ``run(ctx) -> MethodResult`` function whose module may define ``OPTIONS``)
METHODS: Registry[Callable[["MethodContext"], MethodResult]] = Registry("method", hints=["cot"])
for _name, _target, _help in (
    # trust methods (compute in score/): utility, faithfulness, brevity, calibration; GroundedPRM data
    ("utility", "rationales.jobs.methods.utility:run",
     "reasoning utility: log-prob gain of the gold answer from each rationale, per step; utility-weighted vote"),
    ("faithfulness", "rationales.jobs.methods.faithfulness:run",
     "PINTO counterfactuals (mask 30% / replace numbers, re-answer) and answer-rationale consistency"),
    ("brevity", "rationales.jobs.methods.brevity:run",
     "verbosity-aware reduction: drop sentences the answer does not need; tokens saved vs accuracy kept"),
    ("calibration", "rationales.jobs.methods.calibration:run",
     "confidence from sample agreement and verbal 'Confidence: N%'; ECE and reliability diagram"),
    ("grounded", "rationales.jobs.methods.grounded:run",
     "GroundedPRM data: MCTS over steps (-n rollouts), tool-checked steps, hybrid reward; step labels, "
     "trees, sibling pairs"),
    # prompting methods: mistakes in context, rationale formats, feedback patching, ensembles
    ("mistakes", "rationales.jobs.methods.mistakes:run",
     "implicit learning from mistakes: Question / wrong answer / correct answer demonstrations vs CoT"),
    ("cot_plus", "rationales.jobs.methods.mistakes:run_cot_plus",
     "CoT+: the same demonstrations plus an explanation of the mistake, vs CoT"),
    ("formats", "rationales.jobs.methods.formats:run",
     "five rationale formats answered from the rationale alone (decomposed QA); accuracy per format"),
    ("patch", "rationales.jobs.methods.patch:run",
     "natural-language feedback patching of wrong rationales; patch success rate per format"),
    ("ensemble", "rationales.jobs.methods.ensemble:run",
     "rationale-augmented ensemble: vote across prompts/formats/demonstrations x samples vs one prompt"),
):
    METHODS.register(_name, _target, help=_help)


@dataclass(kw_only=True)
class MethodContext(SamplingConfig):
    """What a method runs on: problems, backend, store, and this run's settings (the sampling
    settings, ``samples`` per problem, the CoT ``template``; ``options`` = the ``-O`` options,
    read by the method's own ``OPTIONS`` class)."""

    problems: list[Problem]
    backend: Backend
    store: Store
    out: Path = Path("rationales-out")
    task: str = ""
    samples: int = setting(8, lo=1, hi=MAX_SAMPLES, flag="--samples")
    size: int = setting(50, lo=1, hi=MAX_PROBLEMS, flag="--size")
    template: str = setting("cot", help="CoT prompt template of the sampled rationales.")
    options: dict[str, Any] = field(default_factory=dict)
    on_progress: Callable[[int], None] | None = None

    def cot_specs(self, template: str | None = None) -> list[SampleSpec]:
        """``samples`` CoT rationales per problem with this run's sampling settings (method
        "cot"): the samples the trust methods start from, shared through the store with
        ``rationales run`` and with each other."""
        from ...generate import cot_specs

        return cot_specs(self.problems, template=template or self.template, n=self.samples,
                         temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=self.seed,
                         method="cot")

    def sample(self, specs: Sequence[SampleSpec]) -> tuple[list[list[Rationale]], GenerationStats]:
        """The rationales of ``specs`` (generated or read from the store, with this run's
        progress callback) and the counts of new and cached samples."""
        from ...generate import GenerationStats, generate

        stats = GenerationStats()
        return generate(list(specs), self.backend, self.store, on_progress=self.on_progress, stats=stats), stats


def method_function(name: str) -> Callable[[MethodContext], MethodResult]:
    """The ``run`` function of method ``name`` (unknown names: a did-you-mean error)."""
    return METHODS.get(name)


def method_options(name: str) -> type[MethodOptions]:
    """The options class of method ``name`` (its module's ``OPTIONS``; none: no options)."""
    fn = method_function(name)
    return getattr(sys.modules[fn.__module__], "OPTIONS", MethodOptions)


def check_method(name: str, options: Mapping[str, Any] | None, *, template: str = "cot") -> MethodOptions:
    """Validate ``-O`` options (and ``--template``) of method ``name`` before anything runs."""
    cls = method_options(name)
    opts = cls.from_options(options)
    if template != "cot" and not getattr(cls, "uses_template", False):
        raise ConfigError(f"--template does not apply to --method {name} (it writes its own prompts); "
                          "drop --template or use a method that samples CoT rationales.")
    return opts


def run_method(name: str, ctx: MethodContext) -> MethodResult:
    """Run method ``name`` on ``ctx``; its summary is recorded as a run of the store."""
    fn = method_function(name)
    run_id = ctx.store.start_run(f"run --method {name}", {"task": ctx.task, "method": name, "samples": ctx.samples})
    result = fn(ctx)
    if not result.method:
        result.method = name
    ctx.store.finish_run(run_id, result.to_json())
    return result
