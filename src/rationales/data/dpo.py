"""Preference datasets (TRL ``DPOTrainer`` columns ``prompt``/``chosen``/``rejected``).

Pair sources (``source=``):

* ``outcome``: a correct and a wrong rationale of the same problem (the selection's kept
  rationales are the correct side when ``correct_only``; the wrong side comes from every
  candidate of that problem with a wrong answer). Up to ``max_pairs_per_problem`` pairs, each
  rationale used at most once per side, in store order.
* ``step_controlled``: Step-Controlled DPO pairs stored by ``data.pairs.mine_step_controlled``
  (Lu et al., 2024): chosen = the correct rationale, rejected = its first k steps + a
  continuation that ends in a wrong answer.
* ``sibling``: two sibling steps of a stored GroundedPRM / MCTS tree (``select.grounded``,
  blob kind ``mcts_tree``): same prefix, the higher-valued next step is chosen.

All answers include their shared prefix (the prefix's log-probabilities are identical under the
policy and the reference, so they cancel in DPO's log-ratio difference): every pair is then an
ordinary (prompt, chosen, rejected) triple with the problem's own prompt, in either style.
Each row also carries ``problem_id``, ``pair_source`` and the ids behind the pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import UnknownNameError
from ..generate import steps_prefix
from ..records import Problem
from ..select.grounded import sibling_pairs
from ..store import Store
from .common import answer_value, check_style, finish_rows, problem_prompt, prompt_value, to_dataset
from .filters import DataFilter, select
from .splits import record_split

SOURCES = ("outcome", "step_controlled", "sibling")
SCDPO_METHOD = "scdpo"


def _row(problem: Problem, template: str, style: str, chosen: str, rejected: str, source: str,
         **ids: Any) -> dict[str, Any]:
    prompt = problem_prompt(problem, template)
    return {"prompt": prompt_value(prompt, style), "chosen": answer_value(chosen, style),
            "rejected": answer_value(rejected, style), "problem_id": problem.id, "pair_source": source,
            **{k: v for k, v in ids.items()}}


def outcome_pairs(store: Store, f: DataFilter, *, style: str = "conversational", max_pairs_per_problem: int = 4,
                  provenance: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """(correct, wrong) rationale pairs of one problem."""
    sel = select(store, f)
    rows = []
    for g in sel.groups:
        good = [r for r in g.rationales if r.correct is True]
        seen = {r.text.strip() for r in good}
        bad = [r for r in g.candidates if r.correct is False and r.text.strip() and r.text.strip() not in seen]
        for c, w in list(zip(good, bad))[:max_pairs_per_problem]:
            rows.append(_row(g.problem, f.template, style, c.text, w.text, "outcome", chosen_id=c.id, rejected_id=w.id))
    if provenance is not None:
        provenance.update(sel.provenance)
    return rows


def step_controlled_rows(store: Store, f: DataFilter, *, style: str = "conversational",
                         provenance: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Pairs from stored step-controlled continuations (method ``scdpo``)."""
    sel = select(store, f)
    rows = []
    for g in sel.groups:
        for r in g.rationales:
            for cont in store.rationales(parent_id=r.id):
                if cont.method != SCDPO_METHOD or cont.correct is not False:
                    continue
                k = int(cont.meta.get("prefix_steps", 0))
                prefix = steps_prefix([s.text for s in r.steps[:k]])
                rows.append(_row(g.problem, f.template, style, r.text, prefix + cont.text, "step_controlled",
                                 chosen_id=r.id, rejected_id=cont.id, prefix_steps=k))
    if provenance is not None:
        provenance.update(sel.provenance)
    return rows


def sibling_rows(store: Store, f: DataFilter, *, style: str = "conversational", min_margin: float = 0.0,
                 provenance: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Pairs of sibling steps from every stored search tree whose problem passes the filters."""
    rows, trees = [], 0
    problems: dict[str, Problem | None] = {}
    pids: list[str] = []
    for key, tree in store.blobs("mcts_tree"):
        pid = tree.get("problem_id")
        if pid not in problems:
            problems[pid] = store.get_problem(pid)
            pids.append(pid)
    split = record_split(store, [p for p in pids if problems[p] is not None], name=f.split_name,
                         test_fraction=f.test_fraction, seed=f.split_seed)
    sides = {pid: "train" for pid in split.train} | {pid: "test" for pid in split.test}
    for key, tree in store.blobs("mcts_tree"):
        p = problems.get(tree.get("problem_id"))
        if p is None or (f.task is not None and p.source != f.task):
            continue
        if f.split != "all" and sides.get(p.id) != f.split:
            continue
        trees += 1
        for pair in sibling_pairs(tree, min_margin=min_margin):
            rows.append(_row(p, f.template, style, pair.prefix + pair.chosen.rstrip("\n") + "\n",
                             pair.prefix + pair.rejected.rstrip("\n") + "\n", "sibling", tree=key))
    if provenance is not None:
        provenance.update({"store": str(store.path), "filters": f.as_dict(), "split": split.summary(),
                           "trees": trees, "counts": {"trees": trees}})
    return rows


def dpo_rows(store: Store, f: DataFilter | None = None, *, sources: Iterable[str] = ("outcome",),
             style: str = "conversational", max_pairs_per_problem: int = 4, min_margin: float = 0.0,
             provenance: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """DPO rows from one or more pair sources (see the module doc)."""
    f = f or DataFilter()
    check_style(style)
    sources = list(sources)
    for s in sources:
        if s not in SOURCES:
            raise UnknownNameError("pair source", s, SOURCES)
    rows: list[dict[str, Any]] = []
    prov: dict[str, Any] = {"format": "dpo", "style": style, "pair_sources": sources, "pairs": {}}
    for s in sources:
        sub: dict[str, Any] = {}
        if s == "outcome":
            got = outcome_pairs(store, f, style=style, max_pairs_per_problem=max_pairs_per_problem, provenance=sub)
        elif s == "step_controlled":
            got = step_controlled_rows(store, f, style=style, provenance=sub)
        else:
            got = sibling_rows(store, f, style=style, min_margin=min_margin, provenance=sub)
        prov["pairs"][s] = len(got)
        for k in ("store", "filters", "split"):
            prov.setdefault(k, sub.get(k))
        prov.setdefault("counts", {}).update({f"{s}_{k}": v for k, v in sub.get("counts", {}).items()})
        rows.extend(got)
    prov["rows"] = len(rows)
    return finish_rows(rows, "DPO pair", prov, provenance,
                       "A pair needs a correct and a wrong rationale of one problem (sample more with `rationales run "
                       "-n 8`), step-controlled continuations (`rationales train pairs`), or a GroundedPRM tree (`run --method "
                       "grounded`).")


def dpo_dataset(store: Store, f: DataFilter | None = None, **kwargs: Any) -> Any:
    return to_dataset(dpo_rows(store, f, **kwargs))
