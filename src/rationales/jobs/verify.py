"""The ``verify`` job: re-score stored rationales step by step and combine the verdicts.

Checkers (``verify/scorers.py``, one vocabulary with ``compare --prm`` and ``processbench``):
``tool`` (the arithmetic check, no model), ``mc`` (Math-Shepherd rollouts), ``llm`` (the model
as PRM, P(+)/P(-); old name ``prm``), ``genprm`` (GroundedPRM-format generative judge). The
``verdicts`` of the result are keyed by check kind: tool, mc, prm (LLM and other PRMs), genprm,
consensus. The checks are saved on the stored rationales; ``verify/consensus.py`` combines them
into one label per step. Returns a :class:`VerifyResult`; the CLI renders it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..backends.base import Backend
from ..config import MAX_SAMPLES, MAX_TOKENS, BackendConfig, OutputConfig, SamplingConfig, setting
from ..errors import RationalesError
from ..verify.consensus import RULES as CONSENSUS_RULES
from ..verify.scorers import parse_checkers
from ..records import Problem, Rationale, Step
from ..store import Store
from .results import VerifyResult

#: stored samples that are by-products of other stages (rollouts, judgements, probes, search
#: fragments), not rationales to check; ``--method`` still selects any of them explicitly
INTERNAL_METHODS = ("mc_rollout", "genprm", "faithfulness_probe", "answer_from_rationale", "feedback",
                    "mistake_explanation")
INTERNAL_SUFFIXES = ("_step", "_rollout", "_finish")


def is_internal(method: str) -> bool:
    return method in INTERNAL_METHODS or method.endswith(INTERNAL_SUFFIXES)


def column_checks(step: Step, column: str) -> list[Any]:
    """The checks shown in a column: ``prm`` holds LLM/function PRMs, ``genprm`` the generative
    PRM (both are ``Check(kind="prm")``)."""
    if column == "genprm":
        return [c for c in step.checks if c.kind == "prm" and c.by.startswith("genprm")]
    if column == "prm":
        return [c for c in step.checks if c.kind == "prm" and not c.by.startswith("genprm")]
    return [c for c in step.checks if c.kind == column]


def verdict_cell(step: Step, column: str) -> str:
    """One verdict: '+', '-', '?' (checked, undecided) or '' (not checked), with its score."""
    checks = column_checks(step, column)
    if not checks:
        return ""
    c = checks[-1]
    mark = "?" if c.verdict is None else ("+" if c.verdict > 0 else "-")
    if c.score is not None and column in ("mc", "prm", "genprm"):
        return f"{mark}{c.score:.2f}"
    return mark


def verdict_columns(rationales: Sequence[Rationale]) -> list[str]:
    has_gen = any(column_checks(s, "genprm") for r in rationales for s in r.steps)
    return ["tool", "mc", "prm", *(["genprm"] if has_gen else []), "consensus"]


@dataclass
class VerifyInput:
    """The stored rationales to verify and their problems (by id)."""

    rationales: list[Rationale]
    problems: dict[str, Problem]

    @property
    def steps(self) -> int:
        return sum(len(r.steps) for r in self.rationales)


def load_rationales(store: Store, method: str | None = None, limit: int | None = None) -> VerifyInput:
    """The rationales ``verify`` checks: those of ``method``, or all but by-products."""
    rationales = [r for r in store.rationales(method=method) if method is not None or not is_internal(r.method)]
    if not rationales:
        what = f" with method '{method}'" if method else ""
        raise RationalesError(f"No stored rationales{what} in {store.path}; sample some first, e.g. "
                              f"`rationales run demo --store {store.path}`.")
    if limit is not None:
        rationales = rationales[:limit]
    problems: dict[str, Problem] = {}
    kept = []
    for r in rationales:
        if r.problem_id not in problems:
            p = store.get_problem(r.problem_id)
            if p is None and ("problems", r.problem_id) in store.skipped:
                continue  # an unreadable problem row: reported by the store, its rationales skipped
            if p is None:
                raise RationalesError(f"Rationale {r.id} refers to problem {r.problem_id}, which {store.path} does "
                                      "not hold; the store is incomplete - re-run `rationales run`.")
            problems[r.problem_id] = p
        kept.append(r)
    return VerifyInput(kept, problems)


def mc_rollouts(rationales: Sequence[Rationale], mc_samples: int) -> int:
    """How many MC rollouts ``verify --checkers mc`` runs (for a progress bar)."""
    return sum(max(len(r.steps) - 1, 0) for r in rationales) * mc_samples


def verify_summary(rationales: Sequence[Rationale], checkers: list[str], counts: dict[str, Any],
                   rule: str) -> dict[str, Any]:
    verdicts: dict[str, dict[str, int]] = {}
    for column in verdict_columns(rationales):
        c: Counter = Counter()
        for r in rationales:
            for s in r.steps:
                checks = column_checks(s, column)
                v = checks[-1].verdict if checks else "unchecked"
                c["unchecked" if v == "unchecked" else ("undecided" if v is None else ("+1" if v > 0 else "-1"))] += 1
        verdicts[column] = {key: c.get(key, 0) for key in ("+1", "-1", "undecided", "unchecked")}
    return {"rationales": len(rationales), "steps": sum(len(r.steps) for r in rationales), "checkers": checkers,
            "rule": rule, "consensus": counts, "verdicts": verdicts}


MC_SEARCHES = ("every", "binary")


@dataclass
class VerifyConfig(OutputConfig, BackendConfig, SamplingConfig):
    """Settings of ``rationales verify`` (temperature and seed: of the MC rollouts)."""

    checkers: list[str] = setting(default_factory=lambda: ["tool", "llm"],
                                  help="Comma-separated checkers: tool (arithmetic, no model), mc (Math-Shepherd "
                                       "rollouts), llm (the model as PRM, P(+)/P(-); old name prm), genprm "
                                       "(GroundedPRM-format judge).")
    method: str | None = setting(None, help="Only rationales of this method (default: all but by-products).")
    limit: int | None = setting(None, lo=1, hi=10_000_000, help="Verify only the first K rationales.")
    mc_samples: int = setting(8, lo=1, hi=MAX_SAMPLES, help="MC rollouts per step (Math-Shepherd N).")
    mc_max_tokens: int = setting(256, lo=1, hi=MAX_TOKENS, help="Max new tokens per MC rollout.")
    mc_search: str = setting("every", choices=MC_SEARCHES, what="MC search",
                             help="mc: every = --mc-samples rollouts from every step (Math-Shepherd); binary = free "
                                  "labels (a right rationale's steps +1, a wrong one's last step -1) and a binary "
                                  "search for a wrong rationale's first error, a probe stopping at its first "
                                  "success (OmegaPRM): a fraction of the rollouts.")
    mc_wrong_per_problem: int | None = setting(None, lo=1, hi=MAX_SAMPLES,
                                               help="mc binary: search at most K wrong rationales per problem "
                                                    "(the others keep their free labels).")
    mc_solved_only: bool = setting(False, help="mc binary: search only problems that one of the rationales solves "
                                               "(on the others every rollout fails: full cost, all steps -1).")
    threshold: float = setting(0.5, lo=0.0, hi=1.0, help="PRM reward at or above which a step is +1.")
    rel_tol: float = setting(1e-6, lo=0.0, hi=1.0, help="Relative tolerance of the arithmetic check.")
    rule: str = setting("agree", choices=CONSENSUS_RULES, what="consensus rule", help="Consensus rule: agree | majority | tool_first.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.checkers = parse_checkers(self.checkers)

    @property
    def needs_model(self) -> bool:
        return any(c != "tool" for c in self.checkers)


def verify(items: VerifyInput, store: Store, backend: Backend | None, config: VerifyConfig | None = None,
           on_progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Attach the checks of ``config.checkers`` to ``items`` (saved to ``store``) and summarise
    them. ``backend`` is needed for every checker but ``tool``."""
    from ..verify.consensus import consensus_labels

    cfg = config or VerifyConfig()
    names = cfg.checkers
    rationales, problems = items.rationales, items.problems
    info: dict[str, Any] = {}
    if cfg.needs_model and backend is None:
        raise RationalesError(f"Checkers {', '.join(c for c in names if c != 'tool')} need a model backend.")
    probs = [problems[r.problem_id] for r in rationales]
    for name in names:
        if name == "tool":
            from ..verify.arithmetic import check_rationale

            for r in rationales:
                try:
                    check_rationale(r, rel_tol=cfg.rel_tol)
                except Exception as e:  # one rationale the checker cannot handle must not stop verify
                    r.outcome = "error"
                    r.meta["error"] = f"tool check failed: {type(e).__name__}: {e}"[:500]
        elif name == "mc" and cfg.mc_search == "binary":
            from ..verify.mc import mc_search_labels

            st: dict[str, Any] = {}
            mc_search_labels(probs, rationales, backend, store, n=cfg.mc_samples, temperature=cfg.temperature,
                             max_tokens=cfg.mc_max_tokens, seed=cfg.seed,
                             max_wrong_per_problem=cfg.mc_wrong_per_problem, solved_only=cfg.mc_solved_only, stats=st)
            info["mc_search"] = {k: st[k] for k in ("searched", "skipped_unsolved", "probes", "rollouts", "tokens",
                                                    "free_positive", "free_negative", "steps_labelled")}
        elif name == "mc":
            from ..verify.mc import mc_labels

            mc_labels(probs, rationales, backend, store, n=cfg.mc_samples, temperature=cfg.temperature,
                      max_tokens=cfg.mc_max_tokens, seed=cfg.seed, on_progress=on_progress)
        else:  # a step scorer: llm, genprm, or a plugin's
            from ..verify.prm import prm_checks
            from ..verify.scorers import make_step_scorer

            scorer = make_step_scorer(name, backend, store=store, rel_tol=cfg.rel_tol, seed=cfg.seed)
            prm_checks(scorer, probs, rationales, threshold=cfg.threshold)
            if name == "genprm":
                info["genprm"] = dict(scorer.stats)
    if backend is not None and cfg.needs_model:
        info["backend"] = f"{backend.name}:{backend.model}"
    _, counts = consensus_labels(rationales, rule=cfg.rule)
    store.put_rationales(rationales)
    return VerifyResult(**verify_summary(rationales, names, counts, cfg.rule), **info, store=str(store.path),
                        records={"rationales": rationales, "problems": problems})
