"""Step-level tree search, shared by GroundedPRM data construction (``score/grounded.py``) and
MCTS at inference (``search/mcts.py``): one node type, one UCT, one discounted backup, one
MCTS driver. The two callers differ only in how a finished root-to-terminal path is valued.

A node is one reasoning step: the model's text up to the next newline, sampled as a
continuation of the steps above it (``generate.SampleSpec(raw_prompt=continuation_prompt(...),
stop=["\\n"])``), so every proposal is stored and cached like any other sample.

The maths (hand-checked in ``tests/test_grounded.py``):

* UCT (Kocsis & Szepesvari, 2006): ``UCT(child) = Q(child) + c * sqrt(ln N(parent) / N(child))``
  with ``Q = value_sum / visits``; an unvisited child has UCT = +inf, ties go to the earlier
  child (deterministic).
* Backup with discount: a simulation started at node ``s_d`` (depth d) that returns reward R
  adds ``gamma**(d - k) * R`` to ``value_sum`` and 1 to ``visits`` of every node ``s_k`` on the
  path root..s_d (the simulated node itself gets R undiscounted).
* One MCTS iteration: select a leaf by UCT from the root; expand it into ``children`` candidate
  next steps if it is the root or was visited before (a fresh leaf is first simulated as it
  is: standard UCT, one rollout per new node before it branches), unless it is terminal or at
  ``max_depth``; simulate: a rollout from the node to the end of the rationale (one sample with
  no stop), or nothing when the node is terminal; value the finished path; back up.
* A node is terminal when its step states a final answer (``step_answer``). A node whose
  proposals are all empty or layout-only ("\\[", "```": the model wanted to stop, or to open
  display maths on a line of its own) gets no children and is valued by rollouts only.
  Identical proposals of one node are merged (their tokens still count as spent).

Trees of many problems advance in lockstep, so each iteration is one batched ``generate`` call
for all expansions and one for all rollouts (llama.cpp decodes them as parallel sequences).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend
from ..config import MAX_SAMPLES, MAX_SEED, MAX_TEMPERATURE, MAX_TOKENS, Config, setting
from ..errors import RationalesError
from ..generate import GenerationStats, SampleSpec, continuation_prompt, finish_rationale, generate, steps_prefix
from ..prompts import RenderedPrompt, render
from ..records import Check, Problem, Rationale, Sampling, Score, Step, content_hash
from ..store import Store
from ..answers import extract_answer
from ..steps import is_layout

StepChecker = Callable[[Step], "Check | None"]
#: values finished paths in batch: [(tree, node the simulation started from, finished path)] -> rewards
PathEvaluator = Callable[[Sequence[tuple["Tree", "Node", Rationale]]], list[float]]

# A step states a final answer only with an explicit marker; the looser whole-rationale
# extraction ("... answer ...") would end a path at "To answer this, ...".
_FINAL = re.compile(r"\\boxed\{|\\fbox\{|####|\b(?:final answer|the answer is|answer\s*:|answer\s*=)", re.IGNORECASE)


def step_answer(text: str) -> str | None:
    """The final answer a single step states, or None when the step states none."""
    if not _FINAL.search(text):
        return None
    return extract_answer(text)


def first_line(text: str) -> str:
    """A proposal's step text: its first non-empty line, stripped (backends that ignore the
    newline stop still give one step)."""
    for line in text.split("\n"):
        if line.strip():
            return line.strip()
    return ""


_CONTENT = re.compile(r"[^\W_]")  # a letter or digit


def split_first_step(text: str) -> tuple[str, str] | None:
    """A whole continuation as (its first step, the rest after that line), or None when its
    first non-empty line is no step (no letter or digit, or layout only: ``distinct_steps``)."""
    lines = text.split("\n")
    k = next((i for i, line in enumerate(lines) if line.strip()), None)
    if k is None:
        return None
    step = lines[k].strip()
    if not _CONTENT.search(step) or is_layout(step):
        return None
    return step, "\n".join(lines[k + 1:])


def distinct_steps(samples: Sequence[Rationale]) -> dict[str, Rationale]:
    """Step text -> the first proposal that wrote it, for the distinct proposals with content.
    Empty lines and layout-only lines (``steps.is_layout``: "\\[", "\\]", "```", "---") are not steps: small models
    put display maths on lines of their own, and a search that keeps such a line has spent a
    step on nothing a verifier can judge."""
    out: dict[str, Rationale] = {}
    for s in samples:
        text = first_line(s.text)
        if _CONTENT.search(text) and not is_layout(text) and text not in out:
            out[text] = s
    return out


def problem_prompt(problem: Problem, template: str = "cot", examples: list[dict] | None = None) -> RenderedPrompt:
    return render(template, question=problem.question, context=problem.context, examples=examples or [])


# ---------------------------------------------------------------- nodes and the maths


@dataclass(eq=False)
class Node:
    """One step of a search tree (the root has no text)."""

    id: int
    text: str = ""
    parent: "Node | None" = field(default=None, repr=False)
    depth: int = 0
    children: list["Node"] = field(default_factory=list, repr=False)
    visits: int = 0
    value_sum: float = 0.0
    tokens: int = 0  # tokens the model spent writing this step
    terminal: bool = False
    answer: str | None = None
    check: Check | None = None  # tool check of this step (None: nothing checkable / no checker)
    sample_id: str | None = None  # the stored proposal this step came from
    expanded: bool = False
    drawn: int = 0  # proposals sampled at this node so far (``MCTSConfig.lazy_children``)
    rollouts: list[dict[str, Any]] = field(default_factory=list)  # simulations started here
    #: rollouts already sampled for this node (the rest of the whole continuation that proposed
    #: it, ``MCTSConfig.whole_expansions``), used before generating new ones
    pending: list[tuple[Rationale, str, int]] = field(default_factory=list, repr=False)

    @property
    def q(self) -> float:
        """Mean backed-up value (0 while unvisited)."""
        return self.value_sum / self.visits if self.visits else 0.0

    @property
    def verdict(self) -> int | None:
        return self.check.verdict if self.check is not None else None

    def path(self) -> list["Node"]:
        """Nodes from the first step down to this one (the root excluded)."""
        out, node = [], self
        while node is not None and node.parent is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def step_texts(self) -> list[str]:
        return [n.text for n in self.path()]


def uct(child: Node, parent_visits: int, c: float = 1.414) -> float:
    """Q(child) + c * sqrt(ln N(parent) / N(child)); +inf for an unvisited child."""
    if child.visits == 0:
        return math.inf
    return child.q + c * math.sqrt(math.log(max(parent_visits, 1)) / child.visits)


def select_child(node: Node, c: float = 1.414) -> Node:
    """The child with the highest UCT (ties: the earlier child)."""
    best, best_u = node.children[0], -math.inf
    for child in node.children:
        u = uct(child, node.visits, c)
        if u > best_u:
            best, best_u = child, u
    return best


def select_leaf(root: Node, c: float = 1.414, lazy_children: int = 0) -> Node:
    """Descend by UCT while the node has children and is not terminal.

    ``lazy_children=k``: a node that has drawn fewer than k proposals still has an unvisited
    child (UCT +inf) that is not sampled yet, so the descent stops there to draw it."""
    node = root
    while node.children and not node.terminal:
        if lazy_children and node.expanded and node.drawn < lazy_children:
            break
        node = select_child(node, c)
    return node


def backup(node: Node, reward: float, gamma: float = 0.9) -> None:
    """Add gamma**k * reward to the node k levels above ``node`` (k = 0 for itself), and one visit."""
    k = 0
    while node is not None:
        node.visits += 1
        node.value_sum += (gamma ** k) * reward
        k += 1
        node = node.parent


# ---------------------------------------------------------------- trees


@dataclass
class PathRecord:
    """A finished root-to-terminal path: the tree node its simulation started from, the
    rollout text after that node ("" when the node was terminal) and the path's reward."""

    node: int
    rollout: str
    rollout_tokens: int
    rationale: Rationale
    reward: float
    visits: int = 1


@dataclass(eq=False)
class Tree:
    """The search tree of one problem plus everything needed to rebuild its rationales."""

    problem: Problem
    prompt: RenderedPrompt
    method: str
    config: dict[str, Any] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    tokens: int = 0  # every generated token: all proposals (duplicates included) and rollouts
    scorer_tokens: int = 0  # tokens a generative scorer spent valuing paths
    paths: dict[str, PathRecord] = field(default_factory=dict)  # finished path id -> record
    rationales: list[Rationale] = field(default_factory=list)
    iterations: int = 0  # MCTS iterations run (reused samples included)
    reused: int = 0  # iterations taken from stored samples instead of generated (``seeds``)
    reused_tokens: int = 0  # tokens of those samples (spent before, not by this tree)
    stopped: str | None = None  # why the tree stopped before ``rollouts`` iterations ("settled")

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes.append(Node(id=0))

    @property
    def root(self) -> Node:
        return self.nodes[0]

    @property
    def key(self) -> str:
        return f"{self.method}:{self.problem.id}:{content_hash(self.prompt.id, self.config, length=12)}"

    def add_child(self, parent: Node, text: str, *, tokens: int = 0, sample_id: str | None = None,
                  check: Check | None = None) -> Node:
        answer = step_answer(text)
        node = Node(id=len(self.nodes), text=text, parent=parent, depth=parent.depth + 1, tokens=tokens,
                    terminal=answer is not None, answer=answer, check=check, sample_id=sample_id)
        parent.children.append(node)
        self.nodes.append(node)
        return node

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``store.put_blob(tree.key, "mcts_tree", tree.to_dict())``)."""
        return {
            "key": self.key, "method": self.method, "problem_id": self.problem.id,
            "question": self.problem.question, "gold": self.problem.gold, "prompt_id": self.prompt.id,
            "config": self.config, "tokens": self.tokens, "scorer_tokens": self.scorer_tokens,
            "iterations": self.iterations, "reused": self.reused, "reused_tokens": self.reused_tokens,
            "stopped": self.stopped,
            "nodes": [{
                "id": n.id, "parent": n.parent.id if n.parent is not None else None, "depth": n.depth,
                "text": n.text, "visits": n.visits, "value_sum": n.value_sum, "q": n.q, "tokens": n.tokens,
                "terminal": n.terminal, "answer": n.answer, "expanded": n.expanded, "drawn": n.drawn,
                "sample_id": n.sample_id,
                "check": n.check.model_dump() if n.check is not None else None, "rollouts": n.rollouts,
            } for n in self.nodes],
            "paths": [{"id": pid, "node": p.node, "reward": p.reward, "visits": p.visits,
                       "answer": p.rationale.answer, "correct": p.rationale.correct}
                      for pid, p in self.paths.items()],
            "rationales": [r.id for r in self.rationales],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], problem: Problem | None = None) -> "Tree":
        """Rebuild the node structure of a saved tree (paths and rationales stay in the store)."""
        problem = problem or Problem(id=data["problem_id"], question=data.get("question", ""), gold=data.get("gold"))
        tree = cls(problem=problem, prompt=RenderedPrompt([], ""), method=data.get("method", ""),
                   config=data.get("config", {}), nodes=[], tokens=data.get("tokens", 0),
                   scorer_tokens=data.get("scorer_tokens", 0), iterations=data.get("iterations", 0),
                   reused=data.get("reused", 0), reused_tokens=data.get("reused_tokens", 0),
                   stopped=data.get("stopped"))
        tree.nodes.clear()  # drop the fresh root: the saved one comes first
        for d in data["nodes"]:
            parent = tree.nodes[d["parent"]] if d["parent"] is not None else None
            node = Node(id=d["id"], text=d["text"], parent=parent, depth=d["depth"], visits=d["visits"],
                        value_sum=d["value_sum"], tokens=d.get("tokens", 0), terminal=d["terminal"],
                        answer=d.get("answer"), expanded=d.get("expanded", False), drawn=d.get("drawn", 0),
                        sample_id=d.get("sample_id"),
                        check=Check.model_validate(d["check"]) if d.get("check") else None,
                        rollouts=d.get("rollouts", []))
            if parent is not None:
                parent.children.append(node)
            tree.nodes.append(node)
        return tree


# ---------------------------------------------------------------- generation helpers


def propose_steps(items: Sequence[tuple[Problem, RenderedPrompt, Sequence[str], int, int]], backend: Backend,
                  store: Store, *, temperature: float = 0.7, max_step_tokens: int = 128, method: str = "step",
                  stop: Sequence[str] = ("\n",), stats: GenerationStats | None = None) -> list[list[Rationale]]:
    """For each (problem, prompt, prior step texts, n, seed): n sampled next steps, one line
    each, as stored samples (``first_line(sample.text)`` is the step). One batched call.
    ``stop=()`` samples whole continuations instead (MCTS ``whole_expansions``)."""
    if temperature <= 0:
        raise RationalesError("Step proposals need a temperature above 0 (n different candidates); "
                              "pass --temperature 0.7 or so.")
    specs = [SampleSpec(problem=p, prompt=prompt, n=n, temperature=temperature, top_p=1.0,
                        max_tokens=max_step_tokens, stop=list(stop), seed=seed, method=method,
                        raw_prompt=continuation_prompt(backend, prompt, steps_prefix(prior)))
             for p, prompt, prior, n, seed in items]
    return generate(specs, backend, store, stats=stats, segment_mode="lines") if specs else []


def complete_paths(items: Sequence[tuple[Problem, RenderedPrompt, Sequence[str], int]], backend: Backend,
                   store: Store, *, temperature: float = 0.7, max_tokens: int = 512, method: str = "rollout",
                   stats: GenerationStats | None = None) -> list[Rationale]:
    """For each (problem, prompt, prior step texts, seed): one continuation to the end of the
    rationale (a rollout). One batched call; each result's text is the continuation only."""
    specs = [SampleSpec(problem=p, prompt=prompt, n=1, temperature=temperature, top_p=1.0,
                        max_tokens=max_tokens, seed=seed, method=method,
                        raw_prompt=continuation_prompt(backend, prompt, steps_prefix(prior)))
             for p, prompt, prior, seed in items]
    return [rs[0] for rs in generate(specs, backend, store, stats=stats, segment_mode="lines")] if specs else []


def path_rationale(problem: Problem, prompt: RenderedPrompt, model: str, method: str, step_texts: Sequence[str],
                   rollout: str = "", *, tokens: int = 0, finish_reason: str = "stop",
                   sampling: Sampling | None = None, check: StepChecker | None = None,
                   meta: dict[str, Any] | None = None) -> Rationale:
    """A finished path as a ``Rationale``: one step per line, answer extracted and checked,
    every step tool-checked when ``check`` is given. The id is a hash of the text, so the same
    path found twice is one record."""
    text = steps_prefix(step_texts) + rollout.lstrip("\n")
    text = text.rstrip("\n")
    rid = content_hash("path", problem.id, prompt.id, model, method, text)
    r = finish_rationale(problem, text, rid=rid, prompt_id=prompt.id, model=model,
                         sampling=sampling or Sampling(), index=0, tokens=tokens, finish_reason=finish_reason,
                         method=method, meta=meta, segment_mode="lines")
    if check is not None:
        for step in r.steps:
            ch = check(step)
            if ch is not None:
                step.checks.append(ch)
    return r


# ---------------------------------------------------------------- the MCTS driver


@dataclass
class MCTSConfig(Config):
    """Parameters of one MCTS run (defaults: GroundedPRM, papers.md section 5), validated on
    construction with the bounds of ``config.py``. The sampling fields keep their own names
    (``rollout_tokens``, no ``top_p``) because the dict of this config is the tree's cache key."""

    rollouts: int = setting(10, lo=1, hi=MAX_SAMPLES, help="MCTS iterations (simulations) per problem.")
    children: int = setting(3, lo=1, hi=16, help="Candidate steps per expansion.")
    c: float = setting(1.414, lo=0.0, hi=100.0, help="UCT exploration constant.")
    max_depth: int = setting(7, lo=1, hi=256, help="Tree steps below the root; deeper nodes are valued by rollouts.")
    gamma: float = setting(0.9, lo=0.0, hi=1.0, lo_open=True, help="Discount per level in the backup.")
    temperature: float = setting(0.7, lo=0.0, hi=MAX_TEMPERATURE, help="Temperature of steps and rollouts.")
    max_step_tokens: int = setting(128, lo=1, hi=MAX_TOKENS, help="Max new tokens of one proposed step.")
    rollout_tokens: int = setting(512, lo=1, hi=MAX_TOKENS, help="Max new tokens of a rollout.")
    seed: int = setting(0, lo=-MAX_SEED, hi=MAX_SEED, help="Base seed.")
    whole_expansions: bool = setting(False, help="Expand with whole continuations: a child's rest is its first rollout.")
    budget_children: bool = setting(False, help="With whole expansions, propose no more children than iterations "
                                                "are left (an unvisited child costs a whole continuation).")
    lazy_children: bool = setting(False, help="With whole expansions, draw a node's proposals one at a time, when "
                                              "UCT first visits an unvisited child: none is left unvisited.")
    template: str = "cot"
    method: str = "mcts"
    extra: dict[str, Any] = field(default_factory=dict)  # caller settings that change results (tree key)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def seed_from_samples(tree: Tree, samples: Sequence[Rationale], cfg: MCTSConfig, model: str,
                      sampling: Sampling, check: StepChecker | None = None) -> list[tuple[Tree, Node, Rationale, str]]:
    """Take the tree's first iterations from stored full samples instead of generating them.

    Standard UCT's first ``children`` iterations expand the root into ``children`` proposals and
    roll each one out once. A stored sample of the same prompt is exactly such a pair: its first
    line is a proposal and the rest of it a rollout from there. So each sample with a new first
    line becomes a root child plus one finished path, until the root has ``children`` children
    (samples repeating a first line are skipped: in UCT that child would be expanded next, not
    rolled out again). Returns the finished paths to value and back up; the caller does that."""
    finished: list[tuple[Tree, Node, Rationale, str]] = []
    root = tree.root
    for s in samples:
        if len(root.children) >= cfg.children or tree.iterations >= cfg.rollouts:
            break
        split = split_first_step(s.text)
        if split is None or any(c.text == split[0] for c in root.children):
            continue
        text, rest = split
        share = round(s.tokens * len(text) / max(len(s.text), 1))  # the step's part of the sample's tokens
        step = Step(index=0, text=text, span=(0, len(text)))
        node = tree.add_child(root, text, tokens=share, sample_id=s.id, check=check(step) if check else None)
        root.expanded = True
        rollout = "" if node.terminal else rest
        r = path_rationale(tree.problem, tree.prompt, model, cfg.method, [text], rollout, tokens=s.tokens,
                           finish_reason=s.finish_reason, sampling=sampling, check=check,
                           meta={"tree": tree.key, "node": node.id, "rollout": s.id, "reused": True})
        node.rollouts.append({"sample_id": s.id, "tokens": s.tokens - share, "path": r.id, "reused": True})
        tree.iterations += 1
        tree.reused += 1
        tree.reused_tokens += s.tokens
        finished.append((tree, node, r, rollout))
    if root.expanded:
        root.drawn = cfg.children  # like an eager root seeded from samples: it draws no more children
    return finished


def _value_and_backup(finished: Sequence[tuple[Tree, Node, Rationale, str]], evaluate: PathEvaluator,
                      gamma: float) -> None:
    """Value the finished paths (a path seen before keeps its reward) and back them up."""
    fresh = [(t, node, r) for t, node, r, _ in finished if r.id not in t.paths]
    rewards: dict[tuple[int, str], float] = {}
    if fresh:
        unique: dict[tuple[int, str], tuple[Tree, Node, Rationale]] = {}
        for t, node, r in fresh:
            unique.setdefault((id(t), r.id), (t, node, r))
        rewards = dict(zip(unique.keys(), evaluate(list(unique.values()))))
    for t, node, r, rollout in finished:
        if r.id in t.paths:  # the same path again: same reward; credit its deepest tree node
            rec = t.paths[r.id]
            rec.visits += 1
            if node.depth > t.nodes[rec.node].depth:
                rec.node = node.id
        else:
            rec = PathRecord(node=node.id, rollout=rollout,
                             rollout_tokens=r.tokens - sum(n.tokens for n in node.path()),
                             rationale=r, reward=float(rewards[(id(t), r.id)]))
            t.paths[r.id] = rec
        backup(node, rec.reward, gamma)


def run_mcts(problems: Sequence[Problem], backend: Backend, store: Store, evaluate: PathEvaluator,
             config: MCTSConfig, *, check: StepChecker | None = None, stats: GenerationStats | None = None,
             examples: list[dict] | None = None, on_iteration: Callable[[int], None] | None = None,
             seeds: Mapping[str, Sequence[Rationale]] | None = None,
             settled: Callable[[Tree], bool] | None = None) -> list[Tree]:
    """Run ``config.rollouts`` MCTS iterations on every problem (in lockstep, batched) and
    return the trees with their finished paths (``tree.paths``). Nothing is stored here except
    the proposals and rollouts themselves (by ``generate``); callers store rationales/trees.

    ``seeds`` (problem id -> stored full samples of the same prompt and model) supplies the
    first iterations for free (``seed_from_samples``). ``settled(tree)``, asked after every
    iteration, stops a tree early (``tree.stopped = "settled"``); the others go on batched."""
    cfg = config
    if cfg.rollouts < 1 or cfg.children < 1 or cfg.max_depth < 1:
        raise RationalesError("MCTS needs rollouts >= 1, children >= 1 and max_depth >= 1.")
    if not 0 < cfg.gamma <= 1:
        raise RationalesError(f"MCTS discount gamma must be in (0, 1], got {cfg.gamma}.")
    stats = stats if stats is not None else GenerationStats()
    sampling = Sampling(temperature=cfg.temperature, top_p=1.0, max_tokens=cfg.rollout_tokens, seed=cfg.seed)
    trees = [Tree(problem=p, prompt=problem_prompt(p, cfg.template, examples), method=cfg.method,
                  config=cfg.as_dict()) for p in problems]

    def go_on(t: Tree) -> bool:
        if t.iterations >= cfg.rollouts:
            return False
        if settled is not None and t.paths and settled(t):
            t.stopped = "settled"
            return False
        return True

    if seeds:
        _value_and_backup([f for t in trees for f in seed_from_samples(t, seeds.get(t.problem.id, ()), cfg,
                                                                        backend.model, sampling, check)],
                          evaluate, cfg.gamma)
    lazy = cfg.children if cfg.lazy_children and cfg.whole_expansions else 0
    active = [t for t in trees if go_on(t)]
    it = 0
    while active:
        # 1. selection
        plans: list[list[Any]] = []  # [tree, node, action]
        for t in active:
            leaf = select_leaf(t.root, cfg.c, lazy)
            if leaf.terminal:
                action = "terminal"
            elif (leaf is t.root or leaf.visits > 0) and not leaf.expanded and leaf.depth < cfg.max_depth:
                action = "expand"
            elif lazy and leaf.expanded and leaf.drawn < lazy:
                action = "expand"  # draw its next proposal: the unvisited child UCT picked
            else:
                action = "rollout"
            plans.append([t, leaf, action])

        # 2. expansion: `children` proposals for every leaf to expand (lazy: the next one), in one call
        todo = [p for p in plans if p[2] == "expand"]
        proposals = propose_steps(
            [(t.problem, t.prompt, leaf.step_texts(), leaf.drawn + 1 if lazy else _children(cfg, t), cfg.seed)
             for t, leaf, _ in todo],
            backend, store, temperature=cfg.temperature,
            max_step_tokens=cfg.rollout_tokens if cfg.whole_expansions else cfg.max_step_tokens,
            stop=[] if cfg.whole_expansions else ["\n"], method=f"{cfg.method}_step", stats=stats)
        for plan, samples in zip(todo, proposals):
            t, leaf, _ = plan
            leaf.expanded = True
            if lazy:  # proposals 0..drawn-1 are cached from earlier iterations: only the last one is new
                _draw_lazily(t, leaf, samples[leaf.drawn:], plan, check)
                continue
            t.tokens += sum(s.tokens for s in samples)
            kids: dict[str, Node] = {}
            for s in samples:
                split = split_first_step(s.text)
                if split is None:
                    continue
                text, rest = split
                share = round(s.tokens * len(text) / max(len(s.text), 1)) if cfg.whole_expansions else s.tokens
                if text not in kids:
                    step = Step(index=leaf.depth, text=text, span=(0, len(text)))
                    kids[text] = t.add_child(leaf, text, tokens=share, sample_id=s.id,
                                             check=check(step) if check else None)
                if cfg.whole_expansions:
                    kids[text].pending.append((s, rest, s.tokens - share))
            if leaf.children:
                plan[1] = leaf.children[0]
                plan[2] = "terminal" if plan[1].terminal else "rollout"
            else:
                plan[2] = "rollout"

        # 3. simulation: one rollout per non-terminal node, in one call
        todo = [p for p in plans if p[2] == "rollout"]
        ready = [p for p in todo if p[1].pending]
        todo = [p for p in todo if not p[1].pending]
        outs = complete_paths(
            [(t.problem, t.prompt, node.step_texts(), cfg.seed + 1000 * len(node.rollouts)) for t, node, _ in todo],
            backend, store, temperature=cfg.temperature, max_tokens=cfg.rollout_tokens,
            method=f"{cfg.method}_rollout", stats=stats)
        finished: list[tuple[Tree, Node, Rationale, str]] = []
        sims = [(t, node, out, out.text, out.tokens, True) for (t, node, _), out in zip(todo, outs)]
        for t, node, _ in ready:  # the rest of the whole continuation that proposed the node
            out, rest, n_tok = node.pending.pop(0)
            sims.append((t, node, out, rest, n_tok, False))
        for t, node, out, text, n_tok, fresh in sims:
            if fresh:
                t.tokens += n_tok  # a pending rollout's tokens were counted with its expansion
            r = path_rationale(t.problem, t.prompt, backend.model, cfg.method, node.step_texts(), text,
                               tokens=sum(n.tokens for n in node.path()) + n_tok,
                               finish_reason=out.finish_reason, sampling=sampling, check=check,
                               meta={"tree": t.key, "node": node.id, "rollout": out.id})
            node.rollouts.append({"sample_id": out.id, "tokens": n_tok, "path": r.id})
            finished.append((t, node, r, text))
        for t, node, _ in (p for p in plans if p[2] == "terminal"):
            r = path_rationale(t.problem, t.prompt, backend.model, cfg.method, node.step_texts(),
                               tokens=sum(n.tokens for n in node.path()), sampling=sampling, check=check,
                               meta={"tree": t.key, "node": node.id})
            finished.append((t, node, r, ""))

        # 4. value the finished paths and back up
        _value_and_backup(finished, evaluate, cfg.gamma)
        for t in active:
            t.iterations += 1
        active = [t for t in active if go_on(t)]
        if on_iteration:
            on_iteration(it)
        it += 1
    return trees


def _draw_lazily(tree: Tree, leaf: Node, samples: Sequence[Rationale], plan: list[Any],
                 check: StepChecker | None) -> None:
    """``lazy_children``: the leaf's next proposal (a whole continuation) becomes a new child, or
    one more rollout of the child whose step it repeats; its rest is that child's rollout. A
    proposal with no usable first step is a rollout of the leaf itself. Same distribution as
    sampling ``children`` proposals at once and visiting them in turn, minus the ones never visited."""
    leaf.drawn += len(samples)
    for s in samples:
        tree.tokens += s.tokens
        split = split_first_step(s.text)
        if split is None:
            leaf.pending.append((s, s.text, s.tokens))
            plan[1], plan[2] = leaf, "rollout"
            continue
        text, rest = split
        share = round(s.tokens * len(text) / max(len(s.text), 1))
        child = next((c for c in leaf.children if c.text == text), None)
        if child is None:
            step = Step(index=leaf.depth, text=text, span=(0, len(text)))
            child = tree.add_child(leaf, text, tokens=share, sample_id=s.id, check=check(step) if check else None)
        if not child.terminal:
            child.pending.append((s, rest, s.tokens - share))
        plan[1], plan[2] = child, "terminal" if child.terminal else "rollout"


def _children(cfg: MCTSConfig, tree: Tree) -> int:
    """Proposals for this expansion: ``children``, or with ``budget_children`` (and whole
    expansions) no more than the iterations the tree has left, since each proposal is a whole
    continuation and one never visited by the end is never labelled. The first k proposals are
    the same samples (seeds by index) as with all ``children``."""
    if cfg.budget_children and cfg.whole_expansions:
        return max(1, min(cfg.children, cfg.rollouts - tree.iterations))
    return cfg.children


def _sign(x: float) -> int | None:
    return 1 if x > 0 else (-1 if x < 0 else None)


def label_paths(tree: Tree, by: str, score_kind: str) -> list[Rationale]:
    """The tree's finished paths as rationales whose steps carry
    ``Check(kind="mc", by=by, score=Q, verdict=sign(Q))``: Q is the node's mean backed-up value
    for steps in the tree (``detail["in_tree"]``), and the path's own reward for rollout steps
    below the tree (one-sample estimates). The path reward is kept as ``Score(score_kind)``."""
    out = []
    for rec in tree.paths.values():
        r = rec.rationale.model_copy(deep=True)
        nodes = tree.nodes[rec.node].path()
        for i, step in enumerate(r.steps):
            step.checks = [c for c in step.checks if not (c.kind == "mc" and c.by == by)]
            if i < len(nodes):
                n = nodes[i]
                step.checks.append(Check(kind="mc", by=by, score=n.q, verdict=_sign(n.q),
                                         detail={"in_tree": True, "node": n.id, "visits": n.visits}))
            else:
                step.checks.append(Check(kind="mc", by=by, score=rec.reward, verdict=_sign(rec.reward),
                                         detail={"in_tree": False, "visits": rec.visits}))
        r.set_score(Score(kind=score_kind, value=rec.reward, by=by, detail={"visits": rec.visits, "tree": tree.key}))
        out.append(r)
    return out
