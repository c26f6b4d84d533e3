"""Training datasets from a hand-made store: filters, the recorded split, SFT/DPO/contrastive rows."""

from __future__ import annotations

import json

import pytest

from rationales.data.filters import DataFilter, select
from rationales.data.splits import SplitError, heldout_ids, load_split, record_split, side_of
from rationales.records import Check, Problem, Rationale, Sampling, Score
from rationales.steps import segment


def rat(p: Problem, text: str, answer: str | None, correct: bool | None, i: int, *, model: str = "teacher",
        method: str = "cot", parent_id: str | None = None, meta: dict | None = None, tokens: int = 10) -> Rationale:
    s = Sampling(temperature=0.7, seed=i)
    rid = Rationale.make_id(p.id, "prompt", model, s, i, method, parent_id)
    return Rationale(id=rid, problem_id=p.id, prompt_id="prompt", model=model, method=method, sampling=s,
                     sample_index=i, text=text, steps=segment(text), answer=answer, correct=correct,
                     parent_id=parent_id, meta=meta or {}, tokens=tokens)


def make_training_store(store, n_problems: int = 6):
    """Problems 'a+b' with, per problem: 3 correct rationales (one a duplicate), 1 wrong, so
    self-consistency agrees with gold; problem 0 also has a step-controlled continuation, a
    reduced rationale and a search tree."""
    from rationales.prompts import RenderedPrompt
    from rationales.select.tree import Tree

    problems, rationales = [], []
    for k in range(n_problems):
        a, b = k + 2, 3 * k + 1
        p = Problem.make(f"What is {a} + {b}?", a + b, source="toy", answer_type="number")
        problems.append(p)
        good = f"First, {a} + {b} = {a + b}.\nThe answer is {a + b}."
        good2 = f"We add {a} and {b}.\n{a} + {b} = {a + b}.\nThe answer is {a + b}."
        bad = f"{a} + {b} = {a + b + 1}.\nThe answer is {a + b + 1}."
        rationales += [rat(p, good, str(a + b), True, 0), rat(p, good2, str(a + b), True, 1),
                       rat(p, "  " + good.replace("\n", " \n"), str(a + b), True, 2),  # duplicate up to spaces
                       rat(p, bad, str(a + b + 1), False, 3)]
    for r in rationales:  # Math-Shepherd-style MC labels on every step
        for st in r.steps:
            st.checks.append(Check(kind="mc", verdict=1 if r.correct else -1, score=1.0 if r.correct else 0.0))
    store.put_problems(problems)
    store.put_rationales(rationales)
    p0, r0 = problems[0], rationales[1]
    cont = rat(p0, "2 + 1 = 4.\nThe answer is 4.", "4", False, 0, method="scdpo", parent_id=r0.id,
               meta={"prefix_steps": 1})
    red = rat(p0, "2 + 1 = 3.\nThe answer is 3.", "3", True, 0, method="reduced", parent_id=r0.id,
              meta={"assembled": True, "body_tokens": 12, "reduced_body_tokens": 5}, tokens=6)
    red.set_score(Score(kind="reduction", value=1.0))
    store.put_rationales([cont, red])
    tree = Tree(problem=p0, prompt=RenderedPrompt([{"role": "user", "content": p0.question}], "cot"), method="grounded_mcts")
    good_step = tree.add_child(tree.root, "2 + 1 = 3", check=Check(kind="tool", verdict=1))
    bad_step = tree.add_child(tree.root, "2 + 1 = 5", check=Check(kind="tool", verdict=-1))
    good_step.visits, good_step.value_sum = 2, 1.6
    bad_step.visits, bad_step.value_sum = 2, -1.0
    tree.root.visits = 4
    store.put_blob(tree.key, "mcts_tree", tree.to_dict())
    return problems, rationales


def test_split_is_by_problem_recorded_and_stable(store):
    ids = [f"p{i}" for i in range(200)]
    s = record_split(store, ids[:100], name="x", test_fraction=0.3, seed=1)
    assert set(s.train).isdisjoint(s.test) and len(s.train) + len(s.test) == 100
    assert 15 <= len(s.test) <= 45
    s2 = record_split(store, ids, name="x", test_fraction=0.3, seed=1)  # more problems: old ones keep their side
    assert set(s.test) <= set(s2.test) and set(s.train) <= set(s2.train)
    assert heldout_ids(store, "x") == set(s2.test)
    assert all(side_of(pid, 0.3, 1) == "test" for pid in s2.test)
    assert load_split(store, "x").summary()["test_problems"] == len(s2.test)
    with pytest.raises(SplitError, match="test_fraction=0.3"):
        record_split(store, ids, name="x", test_fraction=0.5, seed=1)


def test_filters(store):
    problems, _ = make_training_store(store)
    allp = select(store, DataFilter(split="all"))
    assert len(allp.groups) == 6
    # primary rationales only: the scdpo and reduced children are not rows
    assert all(r.method == "cot" for r in allp.rationales)
    # dedupe drops the whitespace copy; correct_only drops the wrong one
    assert {len(g.rationales) for g in select(store, DataFilter(split="all", correct_only=True)).groups} == {2}
    assert {len(g.rationales) for g in select(store, DataFilter(split="all", dedupe=False)).groups} == {4}
    sc = select(store, DataFilter(split="all", agree_sc=True))
    assert all(g.sc_answer == g.problem.gold for g in sc.groups)
    assert all(r.correct for r in sc.rationales)
    assert sc.provenance["counts"]["dropped_disagree_sc"] == 6
    assert {len(g.rationales) for g in select(store, DataFilter(split="all", max_per_problem=1)).groups} == {1}
    assert select(store, DataFilter(split="all", task="other")).groups == []
    # the split: train and test sides partition the problems
    f = DataFilter(test_fraction=0.5, split_name="half")
    train = {g.problem.id for g in select(store, f).groups}
    test = {g.problem.id for g in select(store, DataFilter(test_fraction=0.5, split_name="half", split="test")).groups}
    assert train.isdisjoint(test) and train | test == {p.id for p in problems}
    assert test == heldout_ids(store, "half")


def test_sft_rows_layouts(store):
    from rationales.data.sft import sft_rows

    make_training_store(store)
    prov: dict = {}
    rows = sft_rows(store, DataFilter(split="all", correct_only=True), provenance=prov)
    assert len(rows) == 12 and prov["rows"] == 12
    m = rows[0]["messages"]
    assert [x["role"] for x in m] == ["system", "user", "assistant"]
    assert m[1]["content"] == "What is 2 + 1?" and m[2]["content"].endswith("The answer is 3.")
    pc = sft_rows(store, DataFilter(split="all"), layout="prompt_completion", style="standard")
    assert pc[0]["prompt"].endswith("Answer:") and pc[0]["completion"].startswith(" First")
    conv = sft_rows(store, DataFilter(split="all"), layout="prompt_completion")
    assert conv[0]["completion"][0]["role"] == "assistant" and conv[0]["prompt"][-1]["role"] == "user"


def test_sft_on_reduced_rationales_reports_tokens_saved(store):
    from rationales.data.sft import sft_rows

    problems, rs = make_training_store(store)
    prov: dict = {}
    rows = sft_rows(store, DataFilter(split="all", correct_only=True), reduced=True, provenance=prov)
    assert len(rows) == 1 and rows[0]["messages"][-1]["content"] == "2 + 1 = 3.\nThe answer is 3."
    red = prov["reduction"]
    assert red["replaced"] == 1 and red["no_reduction"] == 11
    assert red["tokens_saved"] == 4 and red["body_tokens_saved"] == 7 and red["accuracy_kept"] == 1.0


def test_dpo_pairs_three_sources(store):
    from rationales.data.dpo import dpo_rows

    make_training_store(store)
    f = DataFilter(split="all", correct_only=True)
    outcome = dpo_rows(store, f, sources=["outcome"])
    assert len(outcome) == 6  # one wrong rationale per problem -> one pair each
    assert all("The answer is" in r["chosen"][0]["content"] and r["chosen"] != r["rejected"] for r in outcome)
    sc = dpo_rows(store, f, sources=["step_controlled"], style="standard")
    assert len(sc) == 1
    assert sc[0]["chosen"].startswith(" We add 2 and 1.\n2 + 1 = 3.")
    assert sc[0]["rejected"] == " We add 2 and 1.\n2 + 1 = 4.\nThe answer is 4."  # prefix of 1 step + wrong rest
    sib = dpo_rows(store, f, sources=["sibling"])
    assert len(sib) == 1 and sib[0]["chosen"][0]["content"] == "2 + 1 = 3\n"
    assert sib[0]["rejected"][0]["content"] == "2 + 1 = 5\n"
    both = dpo_rows(store, f, sources=["outcome", "sibling"])
    assert len(both) == 7


def test_no_pairs_is_a_one_line_error(store):
    from rationales.data.common import EmptyDatasetError
    from rationales.data.dpo import dpo_rows

    p = Problem.make("1+1?", 2, source="toy", answer_type="number")
    store.put_problems([p])
    store.put_rationales([rat(p, "1+1=2. The answer is 2.", "2", True, 0)])
    with pytest.raises(EmptyDatasetError, match="No DPO pair rows") as e:
        dpo_rows(store, DataFilter(split="all"))
    assert "\n" not in str(e.value) and "rationales run" in str(e.value)


def test_contrastive_rows(store):
    from rationales.data.contrastive import contrastive_rows

    make_training_store(store)
    rows = contrastive_rows(store, DataFilter(split="all"))
    assert len(rows) == 6
    r = rows[0]
    assert len(r["positives"]) == 2 and len(r["negatives"]) == 1  # duplicate dropped, wrong one negative
    assert r["positive_weights"] == [0.75, 0.75]  # 3 of 4 answered rationales say the SC answer
    assert r["negative_weights"] == [0.75]  # 1 - 1/4
    assert r["sc_answer"] == "3"


def test_has_reasoning():
    from rationales.data.contrastive import has_reasoning

    assert not has_reasoning("The answer is -9.")
    assert not has_reasoning("Therefore, the final answer is \\(\\boxed{61}\\).")
    assert not has_reasoning("  ")
    assert has_reasoning("-3 - 6 = -9\nThe answer is -9.")
    assert has_reasoning("First, 2 + 1 = 3.\nThe answer is 3.")
    assert has_reasoning("2 + 1 = 3, so the answer is 3.")  # the calculation before the marker counts


def test_contrastive_positives_are_rationales_not_bare_answers(store):
    """A teacher sample that is only "The answer is N." agrees with self-consistency but is no
    rationale: it is not a positive (counted), unless need_reasoning=False; the K cut applies
    after it, so it does not take a real rationale's place."""
    from rationales.data.contrastive import contrastive_rows

    make_training_store(store)
    p = store.get_problem(contrastive_rows(store, DataFilter(split="all"))[0]["problem_id"])
    bare = f"The answer is {p.gold}."
    store.put_rationales([rat(p, bare, p.gold, True, 9)])
    kept = contrastive_rows(store, DataFilter(split="all"), max_positives=5, need_reasoning=False)
    assert bare in next(r for r in kept if r["problem_id"] == p.id)["positives"]
    prov: dict = {}
    rows = contrastive_rows(store, DataFilter(split="all"), max_positives=5, provenance=prov)
    r0 = next(r for r in rows if r["problem_id"] == p.id)
    assert len(r0["positives"]) == 2 and bare not in r0["positives"]
    assert bare not in r0["negatives"]  # it agrees with self-consistency: not a negative either
    assert prov["positives_without_reasoning"] == 1 and prov["filters"]["max_per_problem"] == 5
    one: dict = {}
    assert all(len(r["positives"]) == 1 for r in contrastive_rows(store, DataFilter(split="all"), max_positives=1,
                                                                  provenance=one))
    assert one["positives_over_k"] == 6 and one["positives"] == 6


def test_export_files_and_dataset(store, tmp_path):
    from datasets import load_dataset

    from rationales.data.common import read_provenance
    from rationales.data.export import build_dataset, export_dataset

    make_training_store(store)
    for fmt, cols in (("sft", {"messages"}), ("dpo", {"prompt", "chosen", "rejected"}),
                      ("contrastive", {"prompt", "positives", "negatives", "positive_weights"}),
                      ("stepwise", {"prompt", "completions", "labels", "soft_labels"})):
        for suffix, loader in ((".jsonl", "json"), (".parquet", "parquet")):
            path = tmp_path / f"{fmt}{suffix}"
            n, prov = export_dataset(store, path, fmt, DataFilter(split="all"))
            ds = load_dataset(loader, data_files=str(path), split="train")
            assert len(ds) == n > 0 and cols <= set(ds.column_names)
            assert read_provenance(path)["split"]["name"] == "default"
        ds = build_dataset(store, fmt, DataFilter(split="all"))
        assert cols <= set(ds.column_names)
        assert json.loads(ds.info.description)["format"] == fmt
