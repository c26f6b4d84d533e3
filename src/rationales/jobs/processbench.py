"""The ``processbench`` job: step-error detection scores (ProcessBench, Zheng et al., 2024) of
a detector (``tool``, ``prm``, ``genprm``) on a ProcessBench-style file or on items built from
reasoning-gym gsm_symbolic (``verify/processbench.py``)."""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend
from ..errors import RationalesError, UnknownNameError
from ..verify.processbench import Item, build_from_gsm_symbolic, evaluate_step_detector, load_processbench, \
    save_processbench

DETECTORS = ("tool", "prm", "genprm")


def load_items(file: str | None, build: int | None, *, seed: int = 0, limit: int | None = None,
               save: str | None = None) -> list[Item]:
    """The items to score: from ``file`` or built (``build`` of them), the first ``limit``,
    written to ``save`` when given."""
    if (file is None) == (build is None):
        raise RationalesError("Give either a ProcessBench JSONL FILE or --build N (not both).")
    items = load_processbench(file) if file is not None else build_from_gsm_symbolic(build or 0, seed=seed)
    if limit is not None:
        items = items[:limit]
    if save:
        save_processbench(items, save)
    return items


def check_detector(detector: str) -> str:
    if detector not in DETECTORS:
        raise UnknownNameError("step detector", detector, DETECTORS)
    return detector


def processbench(items: list[Item], detector: str, backend: Backend | None = None, *,
                 threshold: float = 0.5, source: str = "") -> dict[str, Any]:
    """Scores of ``detector`` on ``items``: error_acc, correct_acc, f1, counts."""
    check_detector(detector)
    if detector == "tool":
        scores = evaluate_step_detector(items, "tool")
    else:
        if backend is None:
            raise RationalesError(f"Detector {detector} needs a model backend.")
        from ..verify.genprm import GenerativePRM
        from ..verify.prm import LLMPRM

        scorer = LLMPRM(backend) if detector == "prm" else GenerativePRM(backend)
        scores = evaluate_step_detector(items, scorer, threshold=threshold)
        if detector == "genprm":
            scores["genprm"] = dict(scorer.stats)  # type: ignore[attr-defined]
    scores["detector"] = detector
    scores["source"] = source
    return scores
