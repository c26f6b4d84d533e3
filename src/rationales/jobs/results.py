"""Typed results of the jobs. A job returns one of these and prints nothing; ``cli/`` renders it
as a table or as ``--json`` (``to_json()``: the keys scripts read), ``report/`` as HTML.

Fields marked ``json=False`` hold the records a report page needs (problems, rationales,
selections); they are not part of the JSON. A result also reads like the JSON mapping
(``result["strategies"]``), so code written against the old summary dicts keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any


def _records(default: Any = None) -> Any:
    """A field that is kept out of the JSON (records for the report)."""
    return field(default_factory=lambda: default if default is not None else {}, repr=False,
                 metadata={"json": False})


class JobResult(Mapping[str, Any]):
    """Base of the job results: ``to_json()`` is the command's ``--json`` object."""

    #: keys left out of the JSON when their value is None (optional parts of a summary)
    optional: tuple[str, ...] = ("report",)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            if not f.metadata.get("json", True):
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self.optional:
                continue
            out[f.metadata.get("key", f.name)] = value
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


@dataclass(eq=False, kw_only=True)
class SamplingRunResult(JobResult):
    """What every job that samples and records a run reports: the run, the model, the counts of
    new and cached samples and the tokens they cost."""

    run_id: str
    task: str
    backend: str
    model: str
    problems: int
    strategies: dict[str, dict[str, Any]]
    samples_new: int
    samples_cached: int
    tokens: int
    tokens_new: int
    time_s: float
    store: str
    report: str | None = None
    #: the records the report page shows (kept out of the JSON)
    records: dict[str, Any] = _records()


@dataclass(eq=False, kw_only=True)
class RunResult(SamplingRunResult):
    """``rationales run``: greedy vs sample@1 vs vote@N, with the vote curve and calibration
    (records: problems, greedy rationales, samples, vote selections)."""

    samples_per_problem: int
    outcomes: dict[str, int]
    curve: list[dict[str, float]]
    calibration: dict[str, Any]


@dataclass(eq=False, kw_only=True)
class CompareResult(SamplingRunResult):
    """``rationales compare``: strategies at equal token budgets (records: problems, each
    strategy's selections)."""

    budgets: list[int]
    prm: str
    how: str
    estimate: dict[str, float]
    curves: dict[str, list[dict[str, Any]]]


@dataclass(eq=False)
class VerifyResult(JobResult):
    """``rationales verify``: per-checker verdict counts, agreement and consensus labels."""

    optional = ("report", "genprm", "backend")

    rationales: int
    steps: int
    checkers: list[str]
    rule: str
    consensus: dict[str, Any]
    verdicts: dict[str, dict[str, int]]
    genprm: dict[str, int] | None = None
    backend: str | None = None
    store: str = ""
    report: str | None = None
    #: the checked rationales and their problems by id (for tables and report/verify.py)
    records: dict[str, Any] = _records()


@dataclass(eq=False)
class ProcessBenchResult(JobResult):
    """``rationales processbench``: step-error detection scores (ProcessBench)."""

    optional = ("genprm",)

    error_acc: float | None
    correct_acc: float | None
    f1: float | None
    n_error: int
    n_correct: int
    predicted: list[int]
    genprm: dict[str, int] | None = None
    detector: str = "tool"
    source: str = ""


@dataclass(eq=False)
class MethodResult(JobResult):
    """``rationales run --method NAME``: the method's summary (at least ``strategies``,
    ``samples_new``, ``samples_cached``, ``tokens``; the rest is the method's own) and the
    records its report page (``report/<page>.py``) shows."""

    method: str
    summary: dict[str, Any]
    page: str = ""
    records: dict[str, Any] = _records()

    def to_json(self) -> dict[str, Any]:
        return dict(self.summary)

    @property
    def report(self) -> str | None:
        return self.summary.get("report")

    @report.setter
    def report(self, path: str) -> None:
        self.summary["report"] = path
