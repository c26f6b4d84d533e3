"""GroundedPRM data construction: tool-grounded step labels from Monte Carlo tree search.

Zhang et al., 2025, "GroundedPRM: Tree-Guided and Fidelity-Aware Process Reward Modeling for
Step-Level Reasoning" (papers.md section 5). MCTS over reasoning steps (UCT c = 1.414, 3
children per expansion, 8-12 rollouts, depth limit, discount gamma = 0.9); every step is
checked by a tool (here: ``verify.arithmetic.check_step``, which evaluates the step's
arithmetic claims with sympy, never ``eval``), final answers are verified against the gold,
and each finished path of N steps gets the hybrid reward

    R = sum_{i=1..N} (1/N) * v_i * (N - i + 1)/N  +  F/N

with v_i the tool verdict of step i and F = +1/-1 the final-answer verdict (earlier steps
weigh more). Hand-checked: v = (+1, -1, 0), F = +1 gives 1/3 - 2/9 + 0 + 1/3 = 4/9.

Outputs: every finished root-to-terminal path becomes a stored ``Rationale``
(method ``grounded_mcts``) whose steps carry their ``Check(kind="tool")`` and a
``Check(kind="mc", by="grounded_mcts", score=Q, verdict=sign(Q))``: Q is the node's mean
backed-up value for steps in the tree, and the path's own reward for rollout steps below the
tree (one-sample estimates; ``detail["in_tree"]`` tells them apart). The tree itself is saved
with ``store.put_blob(tree.key, "mcts_tree", tree.to_dict())`` so step-level preference pairs
can be mined from sibling nodes later (``sibling_pairs``).

Choices where the paper is silent or does not fit this setting (recorded here on purpose):

* N counts every step of the root-to-terminal path (tree steps and rollout steps, the
  answer line included); the reference code values only the rollout part, which leaves the
  simulated node's own verdict out of its value.
* A step with no checkable claim gets v = 0 (the paper's Wolfram Alpha answers every step; our
  arithmetic checker abstains on prose), so it neither helps nor hurts.
* A path with no steps at all (N = 0) gets R = F.
* A path with no final answer has F = -1, like a wrong one. Problems need a gold answer.
* Tool tolerance: ``rel_tol`` defaults to 1e-6. The paper accepts a 10% relative error
  (``rel_tol=0.1`` reproduces it), which would pass "3 * 4 = 13" on integer arithmetic.
* Steps are single lines (``stop=["\\n"]``); identical proposals are merged; the default
  ``max_depth`` is 7 (the paper's range is 5-9); rollouts use the same temperature (0.7).

Cost (issue 11: labels for a few hundred problems on 2 CPU cores). On a CPU a prompt token
costs about as much as a generated one (Qwen 0.5B, one core: 65 prompt tok/s, 40 tok/s decoding
16 sequences), and plain MCTS evaluates the problem and its prefix twice per iteration (one
expansion, one rollout). Savings the paper does not make, all in the tree's config (its key):

* ``whole_expansions=True``: an expansion samples ``children`` whole continuations of the leaf
  (one prompt evaluation, its KV cache shared) instead of ``children`` single lines; a child's
  first rollout is the rest of the continuation that proposed it. That is the same distribution
  as rolling it out later (the model is autoregressive), so UCT's next visits to the unvisited
  siblings cost nothing; the price is the rest of children never visited.

* ``reuse=True``: stored samples of the same prompt and model (``rationales run`` writes them,
  method ``cot``) supply the first ``children`` iterations: a sample's first line is a root
  proposal and its rest a rollout (``tree.seed_from_samples``). Those samples were drawn with
  the run's own top-p (0.95 by default) where the tree samples with top-p 1.0.
* ``settle=4``: a tree stops once ``settle`` final-answer verdicts all agree (all right or all
  wrong), counting its finished paths and the problem's stored samples (``reuse``): a problem
  every sample gets wrong (most of them, for a 0.5B model on grade-school problems) keeps the
  labelled paths it has and spends nothing more; the search goes to the problems with both
  outcomes, the only ones on which a PRM's choice among samples matters
  (``tree.stopped == "settled"``). ``settle=0`` runs every tree to ``rollouts``, as the paper.
* ``budget_children=True`` (with whole expansions): an expansion proposes no more children than
  the tree has iterations left. A proposal is a whole continuation here, and one that is never
  visited never becomes a labelled path. The first k proposals are the same samples as with all
  ``children`` (seeds by index), so only never-visited ones are gone: on 32 gsm_symbolic
  training problems with 4 stored samples each, 4% fewer new tokens (25153 -> 24121) for the
  same labelled steps (1673 -> 1672).
* ``lazy_children=True`` (with whole expansions): a node draws its proposals one at a time,
  when UCT first picks its unvisited child (standard UCT visits every unvisited child before
  any visited one, so drawing it then is the same distribution as drawing all ``children`` at
  once); a proposal that repeats a child's step is one more rollout of that child. No proposal
  is ever left unvisited, where eagerly (even with ``budget_children``) half of them were: on 32
  gsm_symbolic training problems with 4 stored samples each, 164 -> 79 proposals, 37953 ->
  17238 new tokens (-55%) for 1811 -> 1777 labelled steps, 796 -> 538 s on 2 cores.

All trees advance in lockstep, one proposal per unsettled tree per iteration, and ``generate``
gives every backend call at least 64 samples (``SAMPLES_PER_CALL``, twice the backend's
sequences when it holds more): cut 8 requests to a call as before, one-sample proposals decoded
8 sequences at a time and every call waited for its longest one (trees at 42 tok/s where
sampling ran at 71; 65.7 after, 1085 -> 684 s for the same 96 problems).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ..backends.base import Backend
from ..errors import RationalesError
from ..generate import GenerationStats, steps_prefix
from ..records import Problem, Rationale
from .tree import MCTSConfig, Node, StepChecker, Tree, label_paths, problem_prompt, run_mcts
from ..store import Store
from ..verify.grounded import path_reward

METHOD = "grounded_mcts"


def _default_checker(rel_tol: float) -> StepChecker:
    try:
        from ..verify.arithmetic import check_step
    except ImportError as e:  # pragma: no cover - the tool checker ships with the package
        raise RationalesError("GroundedPRM needs the arithmetic tool checker (rationales.verify.arithmetic).") from e
    return lambda step: check_step(step, rel_tol=rel_tol)


def stored_samples(store: Store, problems: Sequence[Problem], model: str, template: str = "cot",
                   method: str = "cot") -> dict[str, list[Rationale]]:
    """Problem id -> its stored sampled rationales of this prompt and model (temperature > 0,
    scored without error, sample order): the samples a tree can reuse (``seed_from_samples``)."""
    out: dict[str, list[Rationale]] = {}
    for p in problems:
        prompt_id = problem_prompt(p, template).id
        rs = [r for r in store.rationales(problem_id=p.id, model=model, method=method)
              if r.prompt_id == prompt_id and r.sampling.temperature > 0 and r.outcome == "ok" and r.text.strip()]
        if rs:
            out[p.id] = sorted(rs, key=lambda r: (r.sample_index, r.sampling.seed, r.id))
    return out


def settled_after(k: int, prior: dict[str, list[Rationale]] | None = None) -> Callable[[Tree], bool]:
    """A tree is settled once at least ``k`` final-answer verdicts, all the same, are known:
    its finished paths (repeats counted) plus the problem's stored samples in ``prior`` (a
    reused sample is counted once, as a sample)."""
    prior_verdicts = {pid: [bool(r.correct) for r in rs] for pid, rs in (prior or {}).items()}

    def settled(tree: Tree) -> bool:
        verdicts = list(prior_verdicts.get(tree.problem.id, ()))
        for rec in tree.paths.values():
            verdicts += [bool(rec.rationale.correct)] * (rec.visits - (1 if rec.rationale.meta.get("reused") else 0))
        return len(verdicts) >= k and len(set(verdicts)) == 1
    return settled


def grounded_trees(problems: Sequence[Problem], backend: Backend, store: Store, *, rollouts: int = 10,
                   children: int = 3, c: float = 1.414, max_depth: int = 7, gamma: float = 0.9,
                   temperature: float = 0.7, max_step_tokens: int = 128, rollout_tokens: int = 512,
                   seed: int = 0, rel_tol: float = 1e-6, template: str = "cot", check: StepChecker | None = None,
                   reuse: bool = True, settle: int = 4, whole_expansions: bool = True,
                   budget_children: bool = True, lazy_children: bool = True,
                   stats: GenerationStats | None = None) -> list[Tree]:
    """``grounded_mcts`` for many problems, their trees advancing in lockstep (batched); with
    ``reuse`` stored samples stand in for the first iterations, with ``settle`` > 0 a tree stops
    once that many finished paths agree on the outcome (module docstring, "Cost")."""
    for p in problems:
        if p.gold is None and p.answer_type != "reasoning_gym":
            raise RationalesError(f"GroundedPRM verifies final answers against gold, but problem {p.id} has "
                                  "none; use a task with answers (e.g. --answer-col).")
    if settle < 0:
        raise RationalesError(f"GroundedPRM settle must be 0 (off) or a number of agreeing paths, got {settle}.")
    extra: dict[str, Any] = {"rel_tol": rel_tol} if check is None else {"check": getattr(check, "__name__", "custom")}
    extra.update(reuse=bool(reuse), settle=settle)
    cfg = MCTSConfig(rollouts=rollouts, children=children, c=c, max_depth=max_depth, gamma=gamma,
                     temperature=temperature, max_step_tokens=max_step_tokens, rollout_tokens=rollout_tokens,
                     seed=seed, whole_expansions=whole_expansions, budget_children=budget_children,
                     lazy_children=lazy_children, template=template, method=METHOD, extra=extra)
    checker = check if check is not None else _default_checker(rel_tol)
    seeds = stored_samples(store, problems, backend.model, template) if reuse else None
    trees = run_mcts(problems, backend, store, lambda items: [path_reward(r) for _, _, r in items], cfg,
                     check=checker, stats=stats, seeds=seeds, settled=settled_after(settle, seeds) if settle else None)
    for t in trees:
        t.rationales = label_paths(t, by=METHOD, score_kind="hybrid_reward")
        store.put_rationales(t.rationales)
        store.put_blob(t.key, "mcts_tree", t.to_dict())
    return trees


def grounded_mcts(problem: Problem, backend: Backend, store: Store, *, rollouts: int = 10, children: int = 3,
                  c: float = 1.414, max_depth: int = 7, gamma: float = 0.9, temperature: float = 0.7,
                  max_step_tokens: int = 128, seed: int = 0, **kwargs: Any) -> Tree:
    """Build one problem's GroundedPRM tree; its labelled paths are stored (``tree.rationales``)
    and the tree is saved as blob ``tree.key`` of kind ``mcts_tree``."""
    return grounded_trees([problem], backend, store, rollouts=rollouts, children=children, c=c,
                          max_depth=max_depth, gamma=gamma, temperature=temperature,
                          max_step_tokens=max_step_tokens, seed=seed, **kwargs)[0]


class StepPair(NamedTuple):
    """A step-level preference pair from two siblings: same prefix, better and worse next step."""

    prefix: str
    chosen: str
    rejected: str


def sibling_pairs(tree: Tree | dict[str, Any], min_margin: float = 0.0) -> list[StepPair]:
    """(prefix, chosen_step, rejected_step) for every two visited siblings whose mean values
    differ by more than ``min_margin`` (chosen = higher Q). Accepts a ``Tree`` or its saved
    dict (``store.get_blob(key)``). Unvisited siblings have no value and are skipped."""
    t = Tree.from_dict(tree) if isinstance(tree, dict) else tree
    pairs: list[StepPair] = []
    for node in t.nodes:
        kids: list[Node] = sorted((k for k in node.children if k.visits > 0), key=lambda k: (-k.q, k.id))
        prefix = steps_prefix(node.step_texts())
        for i, a in enumerate(kids):
            for b in kids[i + 1:]:
                if a.q - b.q > min_margin:
                    pairs.append(StepPair(prefix, a.text, b.text))
    return pairs


# ---------------------------------------------------------------- `rationales run --method grounded`


