"""Report stage: every HTML page and plot. One module per page type (``run``, ``compare``,
``verify``, one per ``--method``); ``html.py`` holds the shared components. A page takes a
job's typed result (``jobs/results.py``) and writes one file under ``out``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any


def write_report(result: Any, out: str | Path) -> Path:
    """Write the HTML page of a job result under ``out``; returns its path and records it as
    ``result.report``."""
    from ..jobs.results import CompareResult, PageResult, RunResult, VerifyResult

    out = Path(out)
    if isinstance(result, RunResult):
        from .run import write_run_report

        r = result.records
        path = write_run_report(out, result.to_json(), r["problems"], r["greedy_rs"], r["samples"], r["votes"])
    elif isinstance(result, CompareResult):
        from .compare import write_compare_report

        path = write_compare_report(out, result.to_json(), result.records["problems"], result.records["selections"])
    elif isinstance(result, VerifyResult):
        from .verify import write_verify_report

        path = write_verify_report(out, result)
    elif isinstance(result, PageResult):
        page = importlib.import_module(f"{__name__}.{result.page or result.method}")
        path = page.write_report(out, result.to_json(), **result.records)
    else:
        raise TypeError(f"no report page for {type(result).__name__}")
    result.report = str(path)
    return path
