"""One vocabulary of step checkers, shared by ``verify --checkers``, ``compare --prm``,
``processbench --detector`` and the Python API.

========  ==========================================================  ===================
name      what                                                        usable as a PRM
========  ==========================================================  ===================
tool      the arithmetic tool check (verify/arithmetic): 1 right,     yes (compare,
          0 wrong, 0.5 nothing checkable; no model                    processbench)
mc        Math-Shepherd Monte-Carlo rollouts from each step           verify only
llm       the model as PRM: P(+)/(P(+)+P(-)) (verify/prm.py)          yes
genprm    GroundedPRM-format generative judge (verify/genprm.py)      yes
========  ==========================================================  ===================

``prm`` is accepted as the old name of ``llm``. Third-party step scorers register through the
entry-point group ``rationales.checkers``: a factory ``(backend, *, store, rel_tol, seed) ->
StepScorer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backends.base import Backend
from ..errors import RationalesError, UnknownNameError
from ..records import Problem, Rationale
from ..registry import Registry

#: checker name -> a step-scorer factory ``(backend, *, store, rel_tol, seed)``
CHECKERS: Registry[Any] = Registry("checker")
CHECKERS.register("tool", "rationales.verify.scorers:tool_scorer",
                  help="arithmetic tool check: 1 right, 0 wrong, 0.5 no checkable claim (no model)")
CHECKERS.register("mc", "rationales.verify.mc:mc_labels",
                  help="Math-Shepherd rollouts: share of rollouts from a step that reach the gold answer")
CHECKERS.register("llm", "rationales.verify.scorers:llm_scorer",
                  help="the model as PRM: P(+)/(P(+)+P(-)) from log-probabilities (no generated tokens)")
CHECKERS.register("genprm", "rationales.verify.scorers:genprm_scorer",
                  help="generative PRM (GroundedPRM format); its generated tokens count")

#: old names still accepted
ALIASES = {"prm": "llm"}
#: checkers that are not step scorers (they attach checks their own way)
NOT_SCORERS = ("mc",)


def checker_name(name: str, *, scorers_only: bool = False, what: str = "checker") -> str:
    """The canonical name of checker ``name`` (aliases resolved); unknown names fail with a
    did-you-mean over every accepted name."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    known = [n for n in CHECKERS.names() if not (scorers_only and n in NOT_SCORERS)]
    if key not in known:
        from .trained_prm import is_prm_path, read_card

        if is_prm_path(str(name).strip()):  # a trained PRM directory (`rationales train prm`)
            read_card(str(name).strip())  # not one: a one-line error now, before any work
            return str(name).strip()
        raise UnknownNameError(what, str(name), [*known, *ALIASES, "<trained PRM directory>"])
    return key


def parse_checkers(spec: str | Sequence[str]) -> list[str]:
    """"tool,prm" -> ["tool", "llm"] (canonical, deduplicated)."""
    names = [c for c in (spec.split(",") if isinstance(spec, str) else spec) if str(c).strip()]
    if not names:
        raise RationalesError("--checkers is empty; name one or more of "
                              + ", ".join(CHECKERS.names()) + " (comma-separated).")
    return list(dict.fromkeys(checker_name(c) for c in names))


def tool_scorer(backend: Backend | None = None, *, store: Any = None, rel_tol: float = 1e-6, seed: int = 0) -> Any:
    """The arithmetic tool check as a step scorer: 1.0 right, 0.0 wrong, 0.5 nothing checkable."""
    from .arithmetic import check_step
    from .prm import FunctionPRM

    def fn(problems: Sequence[Problem], rationales: Sequence[Rationale]) -> list[list[float]]:
        out = []
        for r in rationales:
            row = []
            for step in r.steps:
                check = check_step(step, rel_tol=rel_tol)
                row.append(0.5 if check is None or check.verdict is None else (1.0 if check.verdict > 0 else 0.0))
            out.append(row)
        return out

    return FunctionPRM(fn, name="tool-prm")


def llm_scorer(backend: Backend, *, store: Any = None, rel_tol: float = 1e-6, seed: int = 0) -> Any:
    from .prm import LLMPRM

    return LLMPRM(backend)


def genprm_scorer(backend: Backend, *, store: Any = None, rel_tol: float = 1e-6, seed: int = 0) -> Any:
    from .genprm import GenerativePRM

    return GenerativePRM(backend, store=store, seed=seed)


def make_step_scorer(name: str, backend: Backend | None, *, store: Any = None, rel_tol: float = 1e-6,
                     seed: int = 0) -> Any:
    """A fresh step scorer (``score(problems, rationales) -> rewards``) for checker ``name``."""
    key = checker_name(name, scorers_only=True, what="step scorer")
    from .trained_prm import is_prm_path

    if key not in CHECKERS.names() and is_prm_path(key):
        from .trained_prm import load_prm

        return load_prm(key, backend=backend)
    if key != "tool" and backend is None:
        raise RationalesError(f"The {key} step scorer needs a model backend.")
    return CHECKERS.get(key)(backend, store=store, rel_tol=rel_tol, seed=seed)
