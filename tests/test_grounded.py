"""GroundedPRM data construction: hybrid reward, UCT, discounted backup and a whole MCTS run on
scripted step outputs, every number worked out by hand (c = 1.414, gamma = 0.9)."""

import math

import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.records import Problem
from rationales.select.grounded import StepPair, grounded_mcts, sibling_pairs
from rationales.verify.grounded import hybrid_reward
from rationales.select.tree import Node, Tree, backup, select_child, select_leaf, step_answer, uct

ASSISTANT = "<|im_start|>assistant\n"


# ---------------------------------------------------------------- the maths


def test_hybrid_reward_hand_checked():
    # N=3: 1/3*1*3/3 + 1/3*(-1)*2/3 + 0 + F/N = 1/3 - 2/9 + 1/3 = 4/9
    assert hybrid_reward([1, -1, 0], 1) == pytest.approx(4 / 9)
    # N=1: 1*1*1 + 1 = 2 (the largest reward a path can get)
    assert hybrid_reward([1], 1) == pytest.approx(2.0)
    # N=2, all wrong: -1/2*2/2 - 1/2*1/2 - 1/2 = -1.25
    assert hybrid_reward([-1, -1], -1) == pytest.approx(-1.25)
    # earlier steps weigh more: a wrong first step costs more than a wrong last step
    assert hybrid_reward([-1, 1], 1) == pytest.approx(-0.5 + 0.25 + 0.5)
    assert hybrid_reward([1, -1], 1) == pytest.approx(0.5 - 0.25 + 0.5)
    # None (nothing checkable) counts as 0; no steps -> the outcome alone
    assert hybrid_reward([None, 1], 1) == pytest.approx(0.25 + 0.5)
    assert hybrid_reward([], -1) == -1.0
    with pytest.raises(RationalesError):
        hybrid_reward([2], 1)
    with pytest.raises(RationalesError):
        hybrid_reward([1], 5)


def test_uct_values_and_exploration_constant():
    parent = Node(id=0, visits=10)
    child = Node(id=1, parent=parent, visits=2, value_sum=1.0)
    # 0.5 + 1.414 * sqrt(ln 10 / 2) = 0.5 + 1.414 * 1.072983
    assert uct(child, 10) == pytest.approx(2.017198, abs=1e-5)
    assert uct(Node(id=2), 10) == math.inf
    root = Node(id=0, visits=4)
    a = Node(id=1, parent=root, visits=3, value_sum=2.4)  # Q = 0.8
    b = Node(id=2, parent=root, visits=1, value_sum=0.0)  # Q = 0
    root.children = [a, b]
    # c = 1.414: A = 0.8 + 1.414*sqrt(ln4/3) = 1.761206 > B = 1.414*sqrt(ln4) = 1.664858
    assert uct(a, 4) == pytest.approx(1.761206, abs=1e-5) and uct(b, 4) == pytest.approx(1.664858, abs=1e-5)
    assert select_child(root, 1.414) is a
    # c = 2: A = 0.8 + 2*0.679778 = 2.159556 < B = 2*1.177410 = 2.354820: exploration wins
    assert select_child(root, 2.0) is b
    # an unvisited child is tried first; ties go to the earlier child
    root.children.append(Node(id=3, parent=root))
    assert select_child(root) is root.children[2]
    assert select_leaf(root) is root.children[2]


def test_backup_discounts_per_level():
    root = Node(id=0)
    a = Node(id=1, parent=root, depth=1)
    b = Node(id=2, parent=a, depth=2)
    backup(b, 0.75, gamma=0.9)
    assert (b.visits, b.value_sum) == (1, pytest.approx(0.75))
    assert (a.visits, a.value_sum) == (1, pytest.approx(0.675))
    assert (root.visits, root.value_sum) == (1, pytest.approx(0.6075))
    backup(a, -1.0, gamma=0.9)
    assert a.visits == 2 and a.q == pytest.approx((0.675 - 1.0) / 2)
    assert root.visits == 2 and root.value_sum == pytest.approx(0.6075 - 0.9)
    assert b.visits == 1  # below the simulated node: untouched


def test_step_answer_needs_an_explicit_marker():
    assert step_answer("The answer is 14.") == "14"
    assert step_answer("So the final answer: \\boxed{14}") == "14"
    assert step_answer("To answer this, we compute 3 * 4 = 12") is None
    assert step_answer("3 * 4 = 12") is None


# ---------------------------------------------------------------- a whole search


def arithmetic_script(prompt: str, seed: int, index: int) -> str:
    """Continuations keyed by the partial rationale after the assistant turn opens."""
    tail = prompt.split(ASSISTANT)[-1]
    if tail == "":
        return ["3 * 4 = 12\n2 + 12 = 14\nThe answer is 14.", "3 * 4 = 13\n2 + 13 = 15\nThe answer is 15."][index % 2]
    if tail.endswith("3 * 4 = 12\n"):
        return ["2 + 12 = 14\nThe answer is 14.", "2 + 12 = 15\nThe answer is 15."][index % 2]
    if tail.endswith("3 * 4 = 13\n"):
        return "2 + 13 = 15\nThe answer is 15."
    if tail.endswith("= 14\n"):
        return "The answer is 14."
    if tail.endswith("= 15\n"):
        return "The answer is 15."
    return "I am lost."


@pytest.fixture()
def problem():
    return Problem.make("What is 2 + 3 * 4?", 14, answer_type="number")


def test_grounded_mcts_hand_checked_tree(problem, store):
    """rollouts=4, children=2 (trace in the comments; tool verdicts from the real checker):
    it1: expand root -> A '3 * 4 = 12' (+1), B '3 * 4 = 13' (-1); rollout from A gives the path
         [+1, +1, 0], F=+1: R = 1/3 + 2/9 + 1/3 = 8/9. A: 8/9; root: 0.9 * 8/9 = 0.8
    it2: B unvisited -> rollout from B: [-1, +1, 0], F=-1: R = -1/3 + 2/9 - 1/3 = -4/9.
         B: -4/9; root: 0.8 - 0.4 = 0.4
    it3: UCT(A) = 8/9 + 1.414 sqrt(ln 2) = 2.066 > UCT(B) = 0.733 -> A, visited: expand ->
         A1 '2 + 12 = 14' (+1), A2 '2 + 12 = 15' (-1); rollout from A1 ends like it1: the same
         path, R = 8/9. A1: 8/9; A: 8/9 + 0.8 = 1.68889; root: 0.4 + 0.72 = 1.12
    it4: UCT(A) = 0.84444 + 1.414 sqrt(ln3/2) = 1.892 > UCT(B) = 1.038 -> A -> A2 (unvisited):
         rollout [+1, -1, 0], F=-1: R = 1/3 - 2/9 - 1/3 = -2/9. A2: -2/9; A: 1.48889;
         root: 1.12 - 0.18 = 0.94."""
    fake = FakeBackend(script=arithmetic_script)
    tree = grounded_mcts(problem, fake, store, rollouts=4, children=2)
    root, a, b, a1, a2 = tree.nodes
    assert [n.text for n in (a, b, a1, a2)] == ["3 * 4 = 12", "3 * 4 = 13", "2 + 12 = 14", "2 + 12 = 15"]
    assert [n.verdict for n in (a, b, a1, a2)] == [1, -1, 1, -1]
    assert a1.parent is a and a2.parent is a and not b.children
    assert [n.visits for n in tree.nodes] == [4, 3, 1, 1, 1]
    assert root.value_sum == pytest.approx(0.94)
    assert a.value_sum == pytest.approx(1.488889, abs=1e-6) and a.q == pytest.approx(0.496296, abs=1e-6)
    assert b.q == pytest.approx(-4 / 9) and a1.q == pytest.approx(8 / 9) and a2.q == pytest.approx(-2 / 9)
    # tokens (fake: whitespace words): 2 expansions x (5 + 5) + rollouts 9 + 9 + 4 + 4
    assert tree.tokens == 46

    # three distinct finished paths, stored as step-labelled rationales
    rs = {r.answer: r for r in tree.rationales}
    stored = store.rationales(method="grounded_mcts")
    assert len(tree.rationales) == 3 and {r.id for r in stored} == {r.id for r in tree.rationales}
    rewards = sorted(r.score("hybrid_reward") for r in tree.rationales)
    assert rewards == pytest.approx([-4 / 9, -2 / 9, 8 / 9])
    good = next(r for r in tree.rationales if r.score("hybrid_reward") > 0)
    assert good.correct is True and good.text == "3 * 4 = 12\n2 + 12 = 14\nThe answer is 14."
    mc = [next(c for c in s.checks if c.kind == "mc") for s in good.steps]
    # found twice (from A, then from A1): the deepest tree node is credited
    assert [c.score for c in mc] == pytest.approx([a.q, a1.q, 8 / 9])
    assert [c.detail["in_tree"] for c in mc] == [True, True, False] and [c.verdict for c in mc] == [1, 1, 1]
    assert [s.verdict("tool") for s in good.steps] == [1, 1, None]
    bad = next(r for r in tree.rationales if r.score("hybrid_reward") == pytest.approx(-4 / 9))
    assert [s.verdict("tool") for s in bad.steps] == [-1, 1, None] and bad.steps[0].verdict("mc") == -1
    assert "15" in rs and rs["15"].correct is False

    # the tree is saved; sibling pairs come out the same from the saved copy
    (key, saved), = store.blobs("mcts_tree")
    assert key == tree.key and saved["nodes"][1]["visits"] == 3
    pairs = sibling_pairs(tree)
    assert pairs == [StepPair("", "3 * 4 = 12", "3 * 4 = 13"),
                     StepPair("3 * 4 = 12\n", "2 + 12 = 14", "2 + 12 = 15")]
    assert sibling_pairs(saved) == pairs
    # margins: root pair 0.4963 + 0.4444 = 0.94 < 1; A pair 8/9 + 2/9 = 1.11 > 1
    assert sibling_pairs(saved, min_margin=1.0) == pairs[1:]


def test_grounded_mcts_is_cached_and_reproducible(problem, store):
    first = grounded_mcts(problem, FakeBackend(script=arithmetic_script), store, rollouts=4, children=2)
    again_backend = FakeBackend(script=arithmetic_script)
    second = grounded_mcts(problem, again_backend, store, rollouts=4, children=2)
    assert again_backend.samples_generated == 0  # every proposal and rollout came from the store
    assert [n.value_sum for n in second.nodes] == [n.value_sum for n in first.nodes]
    assert second.tokens == first.tokens  # spent tokens count cached samples too


def test_terminal_node_is_revalued_without_generating(store):
    """A proposal that states the answer is terminal: re-selecting it costs no tokens.
    it1: expand root -> T 'The answer is 14.' (terminal), B '3 * 4 = 12'; T's path [0], F=+1
    gives R = 1. it2: rollout from B: [+1, +1, 0], F=+1 -> 8/9. it3: UCT(T) = 1 + 1.177 >
    UCT(B) = 0.889 + 1.177 -> T again: no generation, same reward."""
    p = Problem.make("What is 2 + 3 * 4?", 14, answer_type="number")

    def script(prompt, seed, index):
        tail = prompt.split(ASSISTANT)[-1]
        if tail == "":
            return ["The answer is 14.", "3 * 4 = 12\n2 + 12 = 14\nThe answer is 14."][index % 2]
        return arithmetic_script(prompt, seed, index)

    two = FakeBackend(script=script)
    grounded_mcts(p, two, store, rollouts=2, children=2)
    three = FakeBackend(script=script)
    tree = grounded_mcts(p, three, store, rollouts=3, children=2)
    assert three.samples_generated == 0  # it1 and it2 cached, it3 generated nothing
    t, b = tree.nodes[1], tree.nodes[2]
    assert t.terminal and t.answer == "14" and not t.children
    assert (t.visits, t.value_sum) == (2, pytest.approx(2.0))
    assert (b.visits, b.value_sum) == (1, pytest.approx(8 / 9))
    assert tree.root.value_sum == pytest.approx(0.9 + 0.8 + 0.9)


def test_duplicate_and_empty_proposals(store):
    """Line proposals (``whole_expansions=False``): identical proposals are merged (tokens
    still count); a node whose proposals are all empty gets no children and is valued by
    rollouts. Whole continuations read past the blank line: the next line is the step."""
    p = Problem.make("What is 2 + 3 * 4?", 14, answer_type="number")

    def script(prompt, seed, index):
        tail = prompt.split(ASSISTANT)[-1]
        if tail == "":
            return "3 * 4 = 12\n2 + 12 = 14\nThe answer is 14."  # same first line for every index
        if tail.endswith("3 * 4 = 12\n"):
            return "\nThe answer is 14."  # a blank line first: empty step proposals
        return "The answer is 14."

    tree = grounded_mcts(p, FakeBackend(script=script), store, rollouts=3, children=3, whole_expansions=False)
    root, a = tree.nodes[0], tree.nodes[1]
    assert len(root.children) == 1 and len(tree.nodes) == 2
    # it1 rollout from A; it2 expands A (nothing) and rolls out again; it3 rolls out again,
    # each with its own seed. Path [+1, 0], F=+1: R = 1/2 + 1/2 = 1 each time.
    assert a.expanded and not a.children and len(a.rollouts) == 3
    assert len({x["sample_id"] for x in a.rollouts}) == 3 and a.value_sum == pytest.approx(3.0)
    # 3 x 5 (root proposals) + 3 x 1 (an empty proposal counts 1 token) + 3 rollouts x 4
    assert tree.tokens == 15 + 3 + 12

    whole = grounded_mcts(p, FakeBackend(script=script), store, rollouts=3, children=3, lazy_children=False)
    a = whole.nodes[1]
    assert [n.text for n in a.children] == ["The answer is 14."] and a.children[0].terminal
    # lazy children: each root draw repeats A's step, so it is one more rollout of A (3 visits), not a child
    lazy_fake = FakeBackend(script=script)
    lazy = grounded_mcts(p, lazy_fake, store, rollouts=3, children=3, seed=1)
    root, a = lazy.nodes
    assert root.drawn == 3 and [n.text for n in root.children] == ["3 * 4 = 12"] and a.visits == 3
    assert len({x["sample_id"] for x in a.rollouts}) == 3 and lazy_fake.samples_generated == 3


def test_lockstep_trees_equal_separate_runs(problem, tmp_path):
    """Two problems' trees advance together (one batched call per phase) yet each ends exactly
    as when searched alone."""
    from rationales.select.grounded import grounded_trees
    from rationales.store import Store

    other = Problem.make("What is 4 + 3 * 4?", 16, answer_type="number")
    together_fake = FakeBackend(script=arithmetic_script)
    with Store(tmp_path / "a.sqlite") as st:
        together = grounded_trees([problem, other], together_fake, st, rollouts=4, children=2)
    with Store(tmp_path / "b.sqlite") as st:
        alone = [grounded_mcts(p, FakeBackend(script=arithmetic_script), st, rollouts=4, children=2)
                 for p in (problem, other)]
    for t, a in zip(together, alone):
        assert [(n.text, n.visits, n.value_sum) for n in t.nodes] == [(n.text, n.visits, n.value_sum) for n in a.nodes]
        assert t.tokens == a.tokens
    assert together[1].rationales[0].problem_id == other.id
    # 4 iterations x (at most one expansion call + one rollout call), not one call per tree
    assert together_fake.calls <= 8


def test_grounded_needs_gold(store):
    p = Problem.make("What is 2 + 2?")
    with pytest.raises(RationalesError, match="gold"):
        grounded_mcts(p, FakeBackend(), store, rollouts=1)


def test_tree_from_dict_round_trip(problem, store):
    tree = grounded_mcts(problem, FakeBackend(script=arithmetic_script), store, rollouts=4, children=2)
    back = Tree.from_dict(tree.to_dict())
    assert [(n.id, n.text, n.visits, n.value_sum, n.depth) for n in back.nodes] == \
           [(n.id, n.text, n.visits, n.value_sum, n.depth) for n in tree.nodes]
    assert back.nodes[3].step_texts() == ["3 * 4 = 12", "2 + 12 = 14"]


def test_run_method_grounded_cli(tmp_path, capsys):
    """`rationales run --method grounded`: trees for 1 problem, 3 rollouts, report written."""
    import json

    from rationales.cli import main
    from rationales.store import Store

    script = tmp_path / "script.json"
    script.write_text(json.dumps({"Tom has 12": ["12 - 5 = 7\n7 + 8 = 15\nThe answer is 15.",
                                                 "12 - 5 = 8\n8 + 8 = 16\nThe answer is 16."]}))
    code = main(["run", "demo", "--method", "grounded", "--backend", "fake", "--model", str(script), "-n", "3",
                 "-k", "1", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    s = json.loads(out)
    assert s["trees"] == 1 and s["paths"] == s["strategies"]["finished paths (share right)"]["n"]
    assert s["steps_tool_wrong"] >= 1 and s["samples_new"] > 0
    assert (tmp_path / "o" / "grounded.html").exists()
    with Store(tmp_path / "s.sqlite") as st:
        assert len(st.rationales(method="grounded_mcts")) == s["paths"] and st.blobs("mcts_tree")
    assert s["iterations"] == 3 and s["iterations_reused"] == 0 and s["trees_settled"] == 0

    # the `run` samples of the same prompt are reused; settle=2 stops once 2 paths agree
    assert main(["run", "demo", "--backend", "fake", "--model", str(script), "-n", "2", "-k", "1",
                 "--store", str(tmp_path / "s2.sqlite"), "--out", str(tmp_path / "o2"), "--json"]) == 0
    capsys.readouterr()
    code = main(["run", "demo", "--method", "grounded", "--backend", "fake", "--model", str(script), "-n", "3",
                 "-k", "1", "-O", "settle=2", "--store", str(tmp_path / "s2.sqlite"), "--out", str(tmp_path / "o2"),
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    s = json.loads(out)
    assert s["iterations_reused"] >= 1 and s["tokens_reused"] > 0
    code = main(["run", "demo", "--method", "grounded", "--backend", "fake", "--model", str(script), "-n", "3",
                 "-k", "1", "-O", "reuse=maybe", "--store", str(tmp_path / "s2.sqlite"), "--out", str(tmp_path / "o2")])
    out, err = capsys.readouterr()
    assert code != 0 and "reuse" in err and "Traceback" not in err


@pytest.mark.model
def test_grounded_mcts_on_real_model(small_model, store):
    """SmolLM2-135M: a tiny tree; structure and bookkeeping, not accuracy."""
    p = Problem.make("What is 7 * 8 - 6?", 50, answer_type="number")
    tree = grounded_mcts(p, small_model, store, rollouts=3, children=2, max_step_tokens=32, rollout_tokens=96)
    assert tree.root.visits == 3 and len(tree.root.children) >= 1
    assert tree.tokens > 0 and tree.rationales
    assert all(r.method == "grounded_mcts" and r.steps for r in tree.rationales)
    assert all(any(c.kind == "mc" for c in s.checks) for r in tree.rationales for s in r.steps)
    assert store.blobs("mcts_tree")[0][0] == tree.key
    assert all(r.score("hybrid_reward") is not None for r in tree.rationales)


# ---------------------------------------------------------------- cost: whole expansions, reuse, settle


def _shape(tree):
    return [(n.text, n.visits, round(n.value_sum, 9)) for n in tree.nodes]


def _tree_off_and_on(problem, tmp_path, flag, **kwargs):
    """The scripted tree with ``flag`` False and True, each in a fresh store: [(tree, fake)] x 2."""
    from rationales.store import Store

    out = []
    for on in (False, True):
        fake = FakeBackend(script=arithmetic_script)
        with Store(tmp_path / f"{flag}-{on}.sqlite") as st:
            out.append((grounded_mcts(problem, fake, st, **{flag: on}, **kwargs), fake))
    return out


def test_whole_expansions_give_the_same_tree_for_fewer_calls(problem, tmp_path):
    """A child's first rollout is the rest of the continuation that proposed it: on the script
    the tree is the hand-checked one either way, but 2 calls and 4 samples replace 6 and 8."""
    (line, line_fake), (whole, whole_fake) = _tree_off_and_on(problem, tmp_path, "whole_expansions",
                                                              rollouts=4, children=2, lazy_children=False)
    assert _shape(whole) == _shape(line)
    assert whole.root.value_sum == pytest.approx(0.94)
    assert (line_fake.calls, line_fake.samples_generated) == (6, 8)
    assert (whole_fake.calls, whole_fake.samples_generated) == (2, 4)
    # every generated token is counted once: 2 x 14 (root) + 9 + 9 (A's continuations) = 46
    assert whole.tokens == 46 and {r.id for r in whole.rationales} == {r.id for r in line.rationales}


def test_budget_children_skip_proposals_no_iteration_can_visit(problem, tmp_path):
    """rollouts=3, children=2, whole expansions: the 3rd iteration expands A with one
    iteration left, so it proposes 1 continuation, not 2. The same samples (seeds by index)
    make the same labelled paths; only the never-visited sibling is not generated."""
    from rationales.store import Store

    (full, full_fake), (lean, lean_fake) = _tree_off_and_on(problem, tmp_path, "budget_children",
                                                            rollouts=3, children=2, lazy_children=False)
    assert (full_fake.samples_generated, lean_fake.samples_generated) == (4, 3)
    assert [r.id for r in lean.rationales] == [r.id for r in full.rationales]
    assert sum(rec.visits for rec in lean.paths.values()) == 3 == lean.root.visits
    a = lean.root.children[0]
    assert [len(n.children) for n in (lean.root, a)] == [2, 1] and len(full.root.children[0].children) == 2
    assert lean.tokens < full.tokens and lean.key != full.key  # the setting is part of the tree's key
    # with fewer iterations left than children, even the root proposes only that many
    with Store(tmp_path / "one.sqlite") as st:
        one = grounded_mcts(problem, FakeBackend(script=arithmetic_script), st, rollouts=1, children=3,
                            lazy_children=False)
    assert len(one.root.children) == 1 and one.iterations == 1


def test_lazy_children_visit_every_proposal(problem, tmp_path):
    """``lazy_children`` (the default): a node draws its next proposal only when UCT picks its
    unvisited child, so every generated proposal becomes a visited path. Eager (``children``
    at once, even with ``budget_children``) leaves some unvisited on the script; lazily no more
    samples are generated (fewer at 6 iterations, 3 children), and the hand-checked 4-iteration
    tree comes out identical (the same samples: seeds by index)."""
    from rationales.store import Store

    for rollouts, children in ((4, 2), (5, 3), (6, 3)):
        (eager, eager_fake), (lazy, lazy_fake) = _tree_off_and_on(problem, tmp_path / f"{rollouts}{children}",
                                                                  "lazy_children", rollouts=rollouts,
                                                                  children=children)
        with Store(tmp_path / f"{rollouts}{children}" / "lazy_children-True.sqlite") as st:
            proposals = list(st.rationales(method="grounded_mcts_step"))
        visited = {x["sample_id"] for n in lazy.nodes for x in n.rollouts} | {n.sample_id for n in lazy.nodes}
        assert proposals and {r.id for r in proposals} <= visited
        assert sum(n.drawn for n in lazy.nodes) == len(proposals) == lazy_fake.samples_generated
        assert lazy_fake.samples_generated <= eager_fake.samples_generated
        assert sum(rec.visits for rec in lazy.paths.values()) == rollouts == lazy.root.visits
        assert lazy.key != eager.key  # the setting is part of the tree's key
        if (rollouts, children) == (4, 2):
            assert _shape(lazy) == _shape(eager) and lazy.root.value_sum == pytest.approx(0.94)
    assert lazy_fake.samples_generated < eager_fake.samples_generated  # (6, 3): eager left some unvisited
    assert Tree.from_dict(lazy.to_dict()).nodes[0].drawn == lazy.root.drawn


def test_reused_samples_stand_in_for_the_first_iterations(problem, store):
    """Stored `cot` samples of the same prompt are the root's proposals and their rollouts: the
    tree is the hand-checked one, and only A's expansion is generated."""
    from rationales.generate import cot_specs, generate

    generate(cot_specs([problem], n=2), FakeBackend(script=arithmetic_script), store)
    fake = FakeBackend(script=arithmetic_script)
    tree = grounded_mcts(problem, fake, store, rollouts=4, children=2)
    assert [n.text for n in tree.root.children] == ["3 * 4 = 12", "3 * 4 = 13"]
    assert tree.reused == 2 and tree.reused_tokens == 28 and tree.iterations == 4
    assert [n.visits for n in tree.nodes] == [4, 3, 1, 1, 1] and tree.root.value_sum == pytest.approx(0.94)
    assert fake.samples_generated == 2 and tree.tokens == 18  # A's two whole continuations only
    assert all(x.get("reused") for x in tree.root.children[0].rollouts[:1])
    # reuse off: the root's proposals are generated (A's expansion comes from the store's cache)
    off = FakeBackend(script=arithmetic_script)
    again = grounded_mcts(problem, off, store, rollouts=4, children=2, reuse=False)
    assert off.samples_generated == 2 and again.reused == 0 and _shape(again) == _shape(tree)


def test_settled_tree_stops_early(store):
    """Every path wrong: after 4 agreeing paths the tree stops (settle=4); settle=0 runs all 8.
    A tree with right and wrong paths never settles."""
    p = Problem.make("Compute 2 + 3 * 4.", 14, answer_type="number")  # its own cache (not `problem`'s)

    def wrong(prompt, seed, index):
        return ["3 * 4 = 13\nThe answer is 15.", "3 * 4 = 11\nThe answer is 13.", "2 + 3 = 6\nThe answer is 24."][index % 3]

    tree = grounded_mcts(p, FakeBackend(script=wrong), store, rollouts=8, children=3)
    assert (tree.iterations, tree.stopped) == (4, "settled") and tree.root.visits == 4
    full = grounded_mcts(p, FakeBackend(script=wrong), store, rollouts=8, children=3, settle=0)
    assert (full.iterations, full.stopped) == (8, None) and full.root.visits == 8
    mixed = grounded_mcts(Problem.make("What is 2 + 3 * 4?", 14, answer_type="number"),
                          FakeBackend(script=arithmetic_script), store, rollouts=6, children=2)
    assert (mixed.iterations, mixed.stopped) == (6, None)
    back = Tree.from_dict(tree.to_dict())
    assert (back.iterations, back.stopped, back.reused) == (4, "settled", 0)
    with pytest.raises(RationalesError, match="settle"):
        grounded_mcts(p, FakeBackend(script=wrong), store, rollouts=2, settle=-1)


def test_stored_samples_that_agree_settle_a_tree_before_any_generation(store):
    """4 stored samples, all wrong: the 3 with distinct first lines seed the root, and the 4
    agreeing verdicts settle the tree at once: nothing is generated."""
    from rationales.generate import cot_specs, generate

    p = Problem.make("Compute 2 + 3 * 4.", 14, answer_type="number")

    def wrong(prompt, seed, index):
        return ["3 * 4 = 13\nThe answer is 15.", "3 * 4 = 11\nThe answer is 13.", "2 + 3 = 6\nThe answer is 24."][index % 3]

    generate(cot_specs([p], n=4), FakeBackend(script=wrong), store)
    fake = FakeBackend(script=wrong)
    tree = grounded_mcts(p, fake, store, rollouts=8, children=3)
    assert (tree.iterations, tree.reused, tree.stopped) == (3, 3, "settled") and fake.samples_generated == 0
    assert len(tree.rationales) == 3 and all(r.correct is False for r in tree.rationales)
    # a problem whose samples disagree is searched to the end
    q = Problem.make("What is 2 + 3 * 4?", 14, answer_type="number")
    generate(cot_specs([q], n=2), FakeBackend(script=arithmetic_script), store)
    mixed = grounded_mcts(q, FakeBackend(script=arithmetic_script), store, rollouts=6, children=2)
    assert (mixed.iterations, mixed.reused, mixed.stopped) == (6, 2, None)
