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

from ..backends.base import Backend
from ..errors import UnknownNameError
from ..records import Problem, Rationale
from ..store import Store

if TYPE_CHECKING:
    from ..generate import GenerationStats, SampleSpec

#: name -> ("module:function", one-line description)
METHODS: dict[str, tuple[str, str]] = {}
METHODS.update({  # trust methods (score/): utility, faithfulness, brevity, calibration
    "utility": ("rationales.score.utility:run",
                "reasoning utility: log-prob gain of the gold answer from each rationale, per step; utility-weighted vote"),
    "faithfulness": ("rationales.score.faithfulness:run",
                     "PINTO counterfactuals (mask 30% / replace numbers, re-answer) and answer-rationale consistency"),
    "brevity": ("rationales.score.brevity:run",
                "verbosity-aware reduction: drop sentences the answer does not need; tokens saved vs accuracy kept"),
    "calibration": ("rationales.score.calibration:run",
                    "confidence from sample agreement and verbal 'Confidence: N%'; ECE and reliability diagram"),
    "grounded": ("rationales.score.grounded:run",
                 "GroundedPRM data: MCTS over steps (-n rollouts), tool-checked steps, hybrid reward; step labels, "
                 "trees, sibling pairs"),
})

METHODS.update({  # prompting methods: mistakes in context, rationale formats, feedback patching, ensembles
    "mistakes": ("rationales.methods.mistakes:run",
                 "implicit learning from mistakes: Question / wrong answer / correct answer demonstrations vs CoT"),
    "cot_plus": ("rationales.methods.mistakes:run_cot_plus",
                 "CoT+: the same demonstrations plus an explanation of the mistake, vs CoT"),
    "formats": ("rationales.methods.formats:run",
                "five rationale formats answered from the rationale alone (decomposed QA); accuracy per format"),
    "patch": ("rationales.methods.patch:run",
              "natural-language feedback patching of wrong rationales; patch success rate per format"),
    "ensemble": ("rationales.methods.ensemble:run",
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
        from ..generate import cot_specs

        return cot_specs(self.problems, template=template, n=self.samples, temperature=self.temperature,
                         top_p=self.top_p, max_tokens=self.max_tokens, seed=self.seed, method="cot")

    def sample(self, specs: Sequence[SampleSpec]) -> tuple[list[list[Rationale]], GenerationStats]:
        """The rationales of ``specs`` (generated or read from the store, with this run's
        progress callback) and the counts of new and cached samples."""
        from ..generate import GenerationStats, generate

        stats = GenerationStats()
        return generate(list(specs), self.backend, self.store, on_progress=self.on_progress, stats=stats), stats


def method_function(name: str) -> Callable[[MethodContext], dict[str, Any]]:
    if name not in METHODS:
        raise UnknownNameError("method", name, ["cot", *METHODS])
    module_name, _, attr = METHODS[name][0].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def run_method(name: str, *, task: str, backend: str, model: str | None, samples: int, limit: int | None,
               size: int, seed: int, temperature: float, max_tokens: int, store: str, out: str,
               base_url: str | None, json_out: bool, options: dict[str, Any] | None = None,
               backend_options: dict[str, Any] | None = None, task_options: dict[str, Any] | None = None) -> None:
    """CLI entry for ``rationales run --method NAME`` (loads task, backend, store; prints summary)."""
    from ..cli.common import err_console, make_backend, open_store, out_console, print_json, strategies_table
    from ..tasks import load_task

    fn = method_function(name)
    problems = load_task(task, size=size, seed=seed, limit=limit, **(task_options or {}))
    with open_store(store) as st:
        be = make_backend(backend, model, base_url, **(backend_options or {}))
        try:
            if not json_out:
                err_console.print(f"[bold]rationales run --method {name}[/] {task}: {len(problems)} problems on "
                                  f"{be.name}:{be.model}")
            ctx = MethodContext(problems=problems, backend=be, store=st, out=Path(out), task=task, samples=samples,
                                temperature=temperature, max_tokens=max_tokens, seed=seed, size=size,
                                options=options or {})
            run_id = st.start_run(f"run --method {name}", {"task": task, "method": name, "samples": samples})
            summary = fn(ctx)
            summary.setdefault("method", name)
            st.finish_run(run_id, summary)
        finally:
            be.close()
    if json_out:
        print_json(summary)
        return
    if summary.get("strategies"):
        out_console.print(strategies_table(f"{task} · method {name}", summary["strategies"]))
    for key, value in summary.items():
        if key not in ("strategies", "curve") and not isinstance(value, (list, dict)):
            out_console.print(f"{key}: {value}")
