"""The ``processbench`` job: step-error detection scores (ProcessBench, Zheng et al., 2024) of
a detector on a ProcessBench-style file or on items built from reasoning-gym gsm_symbolic
(``verify/processbench.py``). Detectors are the step scorers of ``verify/scorers.py``: tool,
llm (old name prm), genprm."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..backends.base import Backend
from ..config import MAX_PROBLEMS, MAX_SEED, BackendConfig, ConfigError, setting
from ..errors import RationalesError
from ..verify.processbench import Item, build_from_gsm_symbolic, calibrate_threshold, evaluate_step_detector, \
    load_processbench, save_processbench
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
    calibrate: str | None = setting(None, help="Choose the threshold on this ProcessBench-style JSONL first (the "
                                               "F1-best cut; use items of training problems), then score.")
    limit: int | None = setting(None, lo=1, hi=10_000_000, help="Use the first K items.")
    seed: int = setting(0, lo=-MAX_SEED, hi=MAX_SEED, help="Seed of --build.")
    save: str | None = setting(None, help="Write the (built) items to this JSONL file.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.file is None) == (self.build is None):
            raise ConfigError("Give either a ProcessBench JSONL FILE or --build N (not both).")
        self.detector = checker_name(self.detector, scorers_only=True, what="step detector")
        if self.calibrate is not None and self.detector == "tool":
            raise ConfigError("--calibrate chooses a reward threshold; the tool detector has none (use a PRM).")
        if self.calibrate is not None and not Path(self.calibrate).is_file():
            raise ConfigError(f"Calibration file {self.calibrate} not found; pass a ProcessBench-style JSONL (e.g. "
                              "`rationales processbench --build N --seed S --save FILE` on training problems).")

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
    genprm = calibration = threshold = None
    if cfg.detector == "tool":
        scores = evaluate_step_detector(items, "tool")
    else:
        if backend is None:
            raise RationalesError(f"Detector {cfg.detector} needs a model backend.")
        scorer = make_step_scorer(cfg.detector, backend)
        threshold = cfg.threshold
        if cfg.calibrate is not None:
            threshold, cal = calibrate_threshold(load_processbench(cfg.calibrate), scorer)
            calibration = {"file": cfg.calibrate, "items": cal["n_error"] + cal["n_correct"], "f1": cal["f1"]}
        scores = evaluate_step_detector(items, scorer, threshold=threshold)
        if cfg.detector == "genprm":
            genprm = dict(scorer.stats)
    return ProcessBenchResult(**scores, genprm=genprm, detector=cfg.detector, source=cfg.source, threshold=threshold,
                              calibration=calibration)
