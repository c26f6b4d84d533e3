"""The ``processbench`` job: step-error detection scores (ProcessBench, Zheng et al., 2024) of
a detector on a ProcessBench-style file or on items built from reasoning-gym gsm_symbolic
(``verify/processbench.py``). Detectors are the step scorers of ``verify/scorers.py``: tool,
llm (old name prm), genprm."""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.base import Backend
from ..config import MAX_PROBLEMS, MAX_SEED, BackendConfig, ConfigError, setting
from ..errors import RationalesError
from ..verify.processbench import Item, build_from_gsm_symbolic, evaluate_step_detector, load_processbench, \
    save_processbench
from ..verify.scorers import checker_name, make_step_scorer
from .results import ProcessBenchResult


@dataclass
class ProcessBenchConfig(BackendConfig):
    """Settings of ``rationales processbench``."""

    file: str | None = setting(None, help="ProcessBench-style JSONL (problem, steps, label).")
    build: int | None = setting(None, lo=1, hi=MAX_PROBLEMS,
                                help="Build N items from reasoning-gym gsm_symbolic (half corrupted).")
    detector: str = setting("tool", help="Step scorer: tool (arithmetic checker) | llm (old name prm) | genprm.")
    threshold: float = setting(0.5, lo=0.0, hi=1.0, help="A step with reward below this is an error.")
    limit: int | None = setting(None, lo=1, hi=10_000_000, help="Use the first K items.")
    seed: int = setting(0, lo=-MAX_SEED, hi=MAX_SEED, help="Seed of --build.")
    save: str | None = setting(None, help="Write the (built) items to this JSONL file.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.file is None) == (self.build is None):
            raise ConfigError("Give either a ProcessBench JSONL FILE or --build N (not both).")
        self.detector = checker_name(self.detector, scorers_only=True, what="step detector")

    @property
    def source(self) -> str:
        return self.file if self.file is not None else f"gsm_symbolic build {self.build} seed {self.seed}"


def load_items(cfg: ProcessBenchConfig) -> list[Item]:
    """The items to score: from ``cfg.file`` or built, the first ``cfg.limit``, written to
    ``cfg.save`` when given."""
    items = load_processbench(cfg.file) if cfg.file is not None else build_from_gsm_symbolic(cfg.build or 0,
                                                                                             seed=cfg.seed)
    if cfg.limit is not None:
        items = items[:cfg.limit]
    if cfg.save:
        save_processbench(items, cfg.save)
    return items


def processbench(items: list[Item], cfg: ProcessBenchConfig, backend: Backend | None = None) -> ProcessBenchResult:
    """Scores of ``cfg.detector`` on ``items``: error_acc, correct_acc, f1, counts, predictions."""
    genprm = None
    if cfg.detector == "tool":
        scores = evaluate_step_detector(items, "tool")
    else:
        if backend is None:
            raise RationalesError(f"Detector {cfg.detector} needs a model backend.")
        scorer = make_step_scorer(cfg.detector, backend)
        scores = evaluate_step_detector(items, scorer, threshold=cfg.threshold)
        if cfg.detector == "genprm":
            genprm = dict(scorer.stats)
    return ProcessBenchResult(**scores, genprm=genprm, detector=cfg.detector, source=cfg.source)
