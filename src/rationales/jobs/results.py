"""Typed results of the jobs. A job returns one of these and prints nothing; ``cli/`` renders it
as a table or as ``--json`` (``to_json()``: the keys scripts read), ``report/`` as HTML.

Fields marked ``json=False`` hold the records a report page needs (problems, rationales,
selections); they are not part of the JSON. A result also reads like the JSON mapping
(``result["strategies"]``), so code written against the old summary dicts keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..records import Problem, Rationale
    from ..score.brevity import ReducedPair
    from ..select.tree import Tree
    from ..select.vote import Selection
    from ..store import Store


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

    optional = ("report", "genprm", "backend", "mc_search")

    rationales: int
    steps: int
    checkers: list[str]
    rule: str
    consensus: dict[str, Any]
    verdicts: dict[str, dict[str, int]]
    genprm: dict[str, int] | None = None
    mc_search: dict[str, int] | None = None  # --mc-search binary: searched, rollouts, tokens, labels
    backend: str | None = None
    store: str = ""
    report: str | None = None
    #: the checked rationales and their problems by id (for tables and report/verify.py)
    records: dict[str, Any] = _records()


@dataclass(eq=False)
class ProcessBenchResult(JobResult):
    """``rationales processbench``: step-error detection scores (ProcessBench)."""

    optional = ("genprm", "calibration", "threshold")

    error_acc: float | None
    correct_acc: float | None
    f1: float | None
    n_error: int
    n_correct: int
    predicted: list[int]
    genprm: dict[str, int] | None = None
    detector: str = "tool"
    source: str = ""
    threshold: float | None = None
    calibration: dict[str, Any] | None = None


class PageResult(JobResult):
    """A result whose report page is ``report/<page>.py``: ``write_report(out, result.to_json(),
    **result.records)``. Its record fields (``_record``) are the page's keyword arguments."""

    #: the report page module (default: the result's ``method``)
    page: ClassVar[str] = ""

    @property
    def records(self) -> dict[str, Any]:
        return {f.metadata.get("arg") or f.name: getattr(self, f.name)
                for f in fields(self) if not f.metadata.get("json", True)}  # type: ignore[arg-type]


def _record(arg: str | None = None, default: Any = list) -> Any:
    """A record field of a page result (not in the JSON); ``arg``: the page's keyword when it
    differs from the field name (``problems`` is the count in the JSON)."""
    return field(default_factory=default, repr=False, metadata={"json": False, "arg": arg})


Strategies = dict[str, dict[str, Any]]


@dataclass(eq=False, kw_only=True)
class MethodResult(PageResult):
    """Base of the ``rationales run --method NAME`` results, one subclass per method below (a
    third-party method subclasses it too): what every method reports (``strategies``: name ->
    ``select.vote.strategy_row``; the counts of new and cached samples; all tokens), then the
    method's own fields and the records its report page shows."""

    method: str = ""
    strategies: Strategies
    samples_new: int
    samples_cached: int
    tokens_new: int
    tokens: int
    report: str | None = None


@dataclass(eq=False, kw_only=True)
class TrustResult(MethodResult):
    """A trust method: ``samples_per_problem`` CoT samples of each of ``problems`` problems, scored."""

    problems: int
    samples_per_problem: int
    problem_list: list[Problem] = _record("problems")


@dataclass(eq=False, kw_only=True)
class PromptingResult(MethodResult):
    """A prompting method: which task and model, and how long it took."""

    task: str
    backend: str
    model: str
    time_s: float


@dataclass(eq=False, kw_only=True)
class UtilityResult(TrustResult):
    """``--method utility``: reasoning utility of correct vs wrong rationales, utility-weighted vote."""

    method: str = "utility"
    utility: dict[str, Any]
    utility_own: dict[str, Any]
    logprob_calls: int
    utility_mean_correct: float | None
    utility_mean_wrong: float | None
    utility_auroc: float | None
    samples: list[list[Rationale]] = _record()


@dataclass(eq=False, kw_only=True)
class FaithfulnessResult(TrustResult):
    """``--method faithfulness``: counterfactual probes, consistency, filtered votes."""

    method: str = "faithfulness"
    rationales_probed: int
    faithful: int
    unfaithful: int
    mean_change_rate: float | None
    consistent: int
    inconsistent: int
    accuracy_faithful: float | None
    accuracy_unfaithful: float | None
    accuracy_consistent: float | None
    accuracy_inconsistent: float | None
    probes: int
    probes_new: int
    probe_tokens_new: int
    samples: list[list[Rationale]] = _record()
    store: Store | None = _record(default=lambda: None)


@dataclass(eq=False, kw_only=True)
class BrevityResult(TrustResult):
    """``--method brevity``: tokens saved and accuracy kept by verbosity-aware reduction."""

    method: str = "brevity"
    threshold: float
    reduced: int
    skipped_no_reasoning: int
    sentences: int
    sentences_dropped: int
    body_tokens: int
    body_tokens_saved: int
    body_tokens_saved_pct: float
    tokens_original: int
    tokens_reduced: int
    accuracy_original: float | None
    accuracy_reduced: float | None
    correct_kept: int
    correct_before: int
    accuracy_kept: float | None
    reanswer_samples_new: int
    pairs: list[list[ReducedPair]] = _record()


@dataclass(eq=False, kw_only=True)
class CalibrationResult(TrustResult):
    """``--method calibration``: ECE and reliability of vote share, sample agreement, verbal confidence."""

    method: str = "calibration"
    calibration: dict[str, dict[str, Any]]
    ece_vote: float | None
    ece_verbal: float | None
    verbal_parsed: int
    verbal_unparsed: int
    votes: list[Selection] = _record()
    verbal_rs: list[Rationale] = _record()


@dataclass(eq=False, kw_only=True)
class GroundedResult(MethodResult):
    """``--method grounded``: GroundedPRM trees, their tool- and MC-labelled steps, sibling pairs."""

    method: str = "grounded"
    trees: int
    paths: int
    paths_right: int
    steps_labelled: int
    steps_tool_right: int
    steps_tool_wrong: int
    steps_mc_positive: int
    sibling_pairs: int
    iterations: int = 0  # MCTS iterations over all trees, reused ones included
    iterations_reused: int = 0  # iterations taken from stored samples (no generation)
    tokens_reused: int = 0  # tokens of those stored samples
    trees_settled: int = 0  # trees stopped early: their first `settle` paths agreed
    tree_list: list[Tree] = _record("trees")


@dataclass(eq=False, kw_only=True)
class MistakesResult(PromptingResult):
    """``--method mistakes`` and ``--method cot_plus``: demonstrations of mistakes vs CoT on held-out problems."""

    page: ClassVar[str] = "mistakes"

    method: str = "mistakes"
    train_problems: int
    heldout_problems: int
    train_samples_per_problem: int
    train_sample_accuracy: dict[str, Any]
    demo_pool: int
    selection: str
    show: str
    shots: int
    explain: str | None
    variants: list[str]
    heldout: list[Problem] = _record()
    by_variant: dict[str, list[Rationale]] = _record(default=dict)
    example: dict[str, list[dict[str, str]]] = _record(default=dict)


@dataclass(eq=False, kw_only=True)
class FormatsResult(PromptingResult):
    """``--method formats``: accuracy per rationale format (answered from the rationale alone)."""

    method: str = "formats"
    problems: int
    formats: list[str]
    decomposed: bool
    answer_agrees_with_rationale: dict[str, float]
    problem_list: list[Problem] = _record("problems")
    by_format: dict[str, list[Rationale]] = _record(default=dict)


@dataclass(eq=False, kw_only=True)
class PatchMethodResult(PromptingResult):
    """``--method patch``: accuracy per format before and after feedback patches, patch success rates."""

    method: str = "patch"
    problems: int
    formats: list[str]
    feedback_source: str
    patch_success: dict[str, dict[str, Any]]
    patches: int
    #: the ``jobs.methods.patch.PatchResult`` of each patch
    results: list[Any] = _record()
    store: Store | None = _record(default=lambda: None)


@dataclass(eq=False, kw_only=True)
class EnsembleResult(PromptingResult):
    """``--method ensemble``: a vote across prompts vs a vote over one prompt's samples."""

    method: str = "ensemble"
    problems: int
    train_problems: int
    members: list[str]
    samples_per_member: dict[str, int]
    samples: int
    problem_list: list[Problem] = _record("problems")
    pooled: list[list[Rationale]] = _record()


@dataclass(eq=False, kw_only=True)
class PatchJobResult(PageResult):
    """``rationales patch FEEDBACK.jsonl``: patch success per format of the given feedback rows."""

    page: ClassVar[str] = "patch"

    feedback_file: str
    backend: str
    model: str
    patches: int
    patch_success: dict[str, dict[str, Any]]
    patch_ids: list[str]
    samples_new: int
    samples_cached: int
    tokens_new: int
    time_s: float
    report: str | None = None
    #: the ``jobs.methods.patch.PatchResult`` of each patch
    results: list[Any] = _record()
    store: Store | None = _record(default=lambda: None)
