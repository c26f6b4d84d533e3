"""MCTS at inference: search over reasoning steps, valued by a PRM and/or the tool check.

Monte Carlo tree search over steps as in reasoning-as-planning work (Hao et al., 2023, RAP;
Zhang et al., 2025, GroundedPRM, papers.md section 5), with no gold answer: a finished path is
valued by

* ``prm``: its step rewards from a step scorer (``score.prm``), aggregated by ``how`` (default
  ``min``; a path with no usable reward scores 0.5) and mapped to [-1, 1] as 2 * score - 1;
* ``tool``: the GroundedPRM hybrid reward of its tool verdicts with the outcome term left out
  (F = 0, the answer is unknown at inference);
* ``prm+tool``: the PRM value, but -1 when any step has a tool-checked wrong claim.

The tree machinery (nodes, UCT with c = 1.414, 3 children per expansion, discounted backup
gamma = 0.9, lockstep batching across problems) is ``search.tree``, the same code GroundedPRM
data construction runs. After ``rollouts`` iterations the answer is that of the finished path
with the highest value (ties: more visits, then found first); confidence = (value + 1) / 2.
Tokens: every proposed step and rollout, plus the scorer's generated tokens. Finished paths are
stored (method ``mcts``) with per-step ``Check(kind="mc")`` from the tree statistics, and the
tree is saved as blob ``tree.key`` (kind ``mcts_tree``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backends.base import Backend
from ..errors import RationalesError
from ..generate import GenerationStats
from ..records import Problem, Rationale
from ..store import Store
from ..answers import check_answer, normalize
from .best_of_n import rationale_score
from ..verify.prm import scorer_name
from .step_search import scorer_tokens
from .tree import MCTSConfig, Node, Tree, label_paths, run_mcts
from .vote import Selection

VALUES = ("prm", "tool", "prm+tool")
METHOD = "mcts"


def _tool_checker(rel_tol: float):
    from ..verify.arithmetic import check_step

    return lambda step: check_step(step, rel_tol=rel_tol)


def best_path(tree: Tree) -> tuple[str, float] | None:
    """(rationale id, value) of the finished path with the highest value (ties: more visits,
    then the one found first)."""
    best = None
    for pid, rec in tree.paths.items():
        if best is None or (rec.reward, rec.visits) > (tree.paths[best].reward, tree.paths[best].visits):
            best = pid
    return None if best is None else (best, tree.paths[best].reward)


def mcts_search(problems: Sequence[Problem], backend: Backend, store: Store, scorer: Any = None, *,
                rollouts: int = 8, children: int = 3, c: float = 1.414, max_depth: int = 7, gamma: float = 0.9,
                temperature: float = 0.7, max_step_tokens: int = 128, rollout_tokens: int = 512,
                value: str = "prm", how: str = "min", rel_tol: float = 1e-6, seed: int = 0,
                template: str = "cot", stats: GenerationStats | None = None) -> list[Selection]:
    """MCTS over steps for each problem (trees in lockstep); one ``Selection`` per problem."""
    if value not in VALUES:
        raise RationalesError(f"Unknown MCTS value '{value}'; use one of {', '.join(VALUES)}.")
    if "prm" in value and scorer is None:
        raise RationalesError(f"MCTS value '{value}' needs a step scorer (--prm llm|genprm|tool).")
    rationale_score([], how)  # an unknown aggregate fails here, before any generation
    uses_tool = "tool" in value
    check = _tool_checker(rel_tol) if uses_tool else None

    def evaluate(items: Sequence[tuple[Tree, Node, Rationale]]) -> list[float]:
        from ..verify.grounded import hybrid_reward

        values: list[float] = [0.0] * len(items)
        if "prm" in value:
            before = scorer_tokens(scorer)
            rewards = scorer.score([t.problem for t, _, _ in items], [r for _, _, r in items])
            spent = scorer_tokens(scorer) - before
            for i, rw in enumerate(rewards):
                values[i] = 2.0 * rationale_score(rw, how) - 1.0
            for k, (t, _, _) in enumerate(items):  # share the scorer's tokens among the paths it scored
                t.scorer_tokens += spent // len(items) + (1 if k < spent % len(items) else 0)
        for i, (_, _, r) in enumerate(items):
            verdicts = [s.verdict("tool") for s in r.steps]
            if value == "tool":
                values[i] = hybrid_reward(verdicts, 0)
            elif value == "prm+tool" and any(v is not None and v < 0 for v in verdicts):
                values[i] = -1.0
        return values

    cfg = MCTSConfig(rollouts=rollouts, children=children, c=c, max_depth=max_depth, gamma=gamma,
                     temperature=temperature, max_step_tokens=max_step_tokens, rollout_tokens=rollout_tokens,
                     seed=seed, template=template, method=METHOD,
                     extra={"value": value, "how": how, "scorer": scorer_name(scorer) if scorer is not None else None,
                            **({"rel_tol": rel_tol} if uses_tool else {})})
    trees = run_mcts(problems, backend, store, evaluate, cfg, check=check, stats=stats)
    sels = []
    for t in trees:
        t.rationales = label_paths(t, by=METHOD, score_kind="mcts_value")
        store.put_rationales(t.rationales)
        store.put_blob(t.key, "mcts_tree", t.to_dict())
        tokens = t.tokens + t.scorer_tokens
        found = best_path(t)
        meta = {"rollouts": rollouts, "children": children, "paths": len(t.paths), "nodes": len(t.nodes),
                "tree": t.key, "value": value}
        if found is None:  # cannot happen with rollouts >= 1, kept for safety
            sels.append(Selection(t.problem.id, None, check_answer(t.problem, None), 0.0, tokens, None,
                                  strategy="mcts", meta=meta))
            continue
        pid, v = found
        r = t.paths[pid].rationale
        votes: dict[str, float] = {}
        for rec in t.paths.values():
            key = normalize(rec.rationale.answer)
            if key is not None:
                votes[key] = max(votes.get(key, -1.0), rec.reward)
        sels.append(Selection(t.problem.id, r.answer, check_answer(t.problem, r.answer), (v + 1) / 2, tokens,
                              r.id, votes, "mcts", meta=meta))
    return sels
