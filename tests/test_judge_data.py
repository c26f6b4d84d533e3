"""Judge data and agreement: reasoning pairs from the store, self-rationalization preference
pairs from hand-made judgments, agreement statistics against hand-computed values, the judge
job and CLI on the fake backend (bad input included)."""

from __future__ import annotations

import json

import pytest

from rationales.backends.fake import FakeBackend
from rationales.errors import RationalesError
from rationales.records import Problem, Rationale
from rationales.verify.judge import (AbsoluteJudge, JudgeConfig, JudgeItem, JudgeSample, Judgment, PairItem,
                                     PairwiseJudge)


def _rat(p: Problem, i: int, text: str, correct: bool, model: str = "m") -> Rationale:
    return Rationale(id=f"{p.id}-{i}", problem_id=p.id, prompt_id="p", model=model, text=text,
                     answer="x", correct=correct, sample_index=i)


@pytest.fixture()
def filled(store):
    probs = [Problem.make(f"What is {k}+{k}?", str(2 * k), source="demo") for k in range(6)]
    store.put_problems(probs)
    rs = []
    for k, p in enumerate(probs):
        rs.append(_rat(p, 0, f"{k}+{k} = {2 * k}. The answer is {2 * k}.", True))
        if k % 3 != 2:  # problems 2 and 5: only right rationales -> no pair
            rs.append(_rat(p, 1, f"{k}+{k} = {2 * k + 1}. The answer is {2 * k + 1}.", False))
            rs.append(_rat(p, 2, f"{k}+{k} = {2 * k + 3}. The answer is {2 * k + 3}.", False))
    store.put_rationales(rs)
    return store, probs


# ------------------------------------------------------------------ store items


def test_reasoning_pairs_pair_a_right_and_a_wrong_rationale_of_one_problem(filled):
    from rationales.data.judge_pairs import reasoning_pairs

    store, probs = filled
    pairs = reasoning_pairs(store, per_problem=2)
    assert len(pairs) == 4  # 4 problems have both; one right rationale each -> 1 pair each
    for it in pairs:
        right = it.response_a if it.gold == "A" else it.response_b
        wrong = it.response_b if it.gold == "A" else it.response_a
        k = int(it.instruction.split()[2].split("+")[0])
        assert f"= {2 * k}." in right and f"= {2 * k}." not in wrong
        assert it.meta["problem_id"] in {p.id for p in probs}
    assert {it.gold for it in reasoning_pairs(store, seed=3)} <= {"A", "B"}
    assert [i.id for i in reasoning_pairs(store)] == [i.id for i in reasoning_pairs(store)]  # deterministic


def test_split_items_is_disjoint_by_problem_and_recorded(filled):
    from rationales.data.judge_pairs import absolute_items, split_items
    from rationales.data.splits import load_split

    store, _ = filled
    items = absolute_items(store)
    assert {it.gold for it in items} == {1.0, 5.0}
    train, test = split_items(store, items, name="j", test_fraction=0.5, seed=1)
    assert train and test
    assert not {it.meta["problem_id"] for it in train} & {it.meta["problem_id"] for it in test}
    assert load_split(store, "j") is not None


def _sample(value, text, order="", how="result"):
    return JudgeSample(text, value, how, "why", 0, order=order)


def test_judgment_pairs_chosen_matches_gold_rejected_does_not():
    from rationales.data.judge_pairs import judgment_pairs

    judge = PairwiseJudge(FakeBackend())
    item = PairItem("q", "right", "wrong", gold="A")
    j = Judgment(item.id, "pairwise", "A", "", "result", [
        _sample("A", "Feedback: a1 [RESULT] A", "AB"), _sample("B", "Feedback: a2 [RESULT] B", "AB"),
        _sample("A", "Feedback: b1 [RESULT] B", "BA"),  # swapped order: said B = the given A
        _sample(None, "no verdict", "BA", how="unparsed")])
    rows = judgment_pairs(judge, [item], [j])
    assert len(rows) == 2
    ab = next(r for r in rows if r["order"] == "AB")
    ba = next(r for r in rows if r["order"] == "BA")
    assert ab["chosen"][0]["content"] == "Feedback: a1 [RESULT] A"
    assert ab["rejected"][0]["content"] == "Feedback: a2 [RESULT] B"
    assert ba["chosen"][0]["content"] == "Feedback: b1 [RESULT] B" and ba["rejected"][0]["content"] == "no verdict"
    # each pair's prompt is the prompt its judgments answered (the swapped order shows B first)
    assert "###Response A:\nright" in ab["prompt"][-1]["content"]
    assert "###Response A:\nwrong" in ba["prompt"][-1]["content"]
    assert ab["reference"] == "gold"


def test_judgment_pairs_use_the_majority_without_gold_and_skip_unusable_items():
    from rationales.data.judge_pairs import judgment_pairs

    judge = AbsoluteJudge(FakeBackend())
    it = JudgeItem("q", "r")  # no gold
    j = Judgment(it.id, "absolute", 4, "", "result", [_sample(4, "[RESULT] 4 a"), _sample(4, "[RESULT] 4 b"),
                                                      _sample(2, "[RESULT] 2")])
    (row,) = judgment_pairs(judge, [it], [j])
    assert row["target"] == 4 and row["rejected_verdict"] == 2 and row["reference"] == "majority"
    tie = Judgment(it.id, "absolute", None, "", "tie", [_sample(4, "x"), _sample(2, "y")])
    assert judgment_pairs(judge, [it], [tie]) == []  # no majority, no gold: no pair
    same = Judgment(it.id, "absolute", 4, "", "result", [_sample(4, "x"), _sample(4, "y")])
    assert judgment_pairs(judge, [it], [same]) == []  # nothing to reject
    forced = Judgment(it.id, "absolute", 4, "", "result", [_sample(4, "no verdict", how="forced"), _sample(2, "z")])
    gold_it = JudgeItem("q", "r", gold=4.0)
    assert judgment_pairs(judge, [gold_it], [Judgment(gold_it.id, **{k: getattr(forced, k) for k in (
        "kind", "value", "rationale", "how", "samples")})]) == []  # a forced verdict is never chosen


# ------------------------------------------------------------------ agreement


def test_weighted_kappa_and_correlations_match_references():
    from rationales.score.judge import correlations, weighted_kappa

    pred = [1, 2, 3, 4, 5, 5, 3, 2]
    gold = [1, 2, 4, 4, 5, 3, 3, 1]
    sk = pytest.importorskip("sklearn.metrics")
    assert weighted_kappa(pred, gold, 1, 5) == pytest.approx(sk.cohen_kappa_score(pred, gold, weights="quadratic"))
    assert weighted_kappa([3, 3], [3, 3], 1, 5) is None
    c = correlations(pred, gold)
    import numpy as np

    assert c["pearson"] == pytest.approx(np.corrcoef(pred, gold)[0, 1])
    assert correlations([1, 1, 1], [1, 2, 3])["pearson"] is None


def test_numpy_spearman_equals_scipy():
    from rationales.score.judge import _pearson, _ranks

    import numpy as np

    x, y = np.array([1, 2, 2, 5, 3.0]), np.array([2, 1, 4, 5, 5.0])
    st = pytest.importorskip("scipy.stats")
    assert _pearson(_ranks(x), _ranks(y)) == pytest.approx(st.spearmanr(x, y)[0])


def test_pairwise_agreement_counts_ties_half_and_unparsed_as_wrong():
    from rationales.score.judge import mcnemar, pairwise_agreement

    items = [PairItem("q", "a", str(i), gold="A") for i in range(4)]
    js = [Judgment(items[0].id, "pairwise", "A", "", "result", [_sample("A", "", "AB"), _sample("A", "", "BA")],
                   consistent=True),
          Judgment(items[1].id, "pairwise", "B", "", "result", [_sample("B", "", "AB"), _sample("B", "", "BA")],
                   consistent=True),
          Judgment(items[2].id, "pairwise", None, "", "tie", [_sample("A", "", "AB"), _sample("B", "", "BA")],
                   consistent=False),
          Judgment(items[3].id, "pairwise", None, "", "unparsed", [_sample(None, "", "AB", "unparsed"),
                                                                   _sample(None, "", "BA", "unparsed")])]
    m = pairwise_agreement(js, items)
    assert m["accuracy"] == pytest.approx(1.5 / 4) and m["strict_accuracy"] == 0.25
    assert m["ties"] == 1 and m["unparsed_pairs"] == 1 and m["unparsed_judgments"] == 2
    assert m["position_bias"] == pytest.approx(1 / 3, abs=1e-4) and m["order_accuracy"] == pytest.approx(3 / 8, abs=1e-4)
    assert mcnemar([True, True, False, False], [False, True, True, True]) == {"b01": 2, "b10": 1, "p_value": 1.0}


def test_absolute_agreement_leaves_unparsed_out_of_correlations():
    from rationales.score.judge import absolute_agreement

    items = [JudgeItem("q", str(i), gold=g) for i, g in enumerate([5.0, 1.0, 5.0, 1.0])]
    vals = [5, 2, None, 1]
    js = [Judgment(it.id, "absolute", v, "", "result" if v else "unparsed", []) for it, v in zip(items, vals)]
    m = absolute_agreement(js, items)
    assert (m["n"], m["parsed"], m["unparsed"], m["accuracy"]) == (4, 3, 1, 0.5)
    assert m["mean_score_by_gold"] == {"1": 1.5, "5": 5.0}


def test_absolute_agreement_counts_forced_verdicts_as_unparsed_but_scores_them():
    from rationales.score.judge import absolute_agreement

    items = [JudgeItem("q", str(i), gold=g) for i, g in enumerate([5.0, 1.0, 5.0])]
    js = [Judgment(items[0].id, "absolute", 5, "", "result", []), Judgment(items[1].id, "absolute", 1, "", "forced", []),
          Judgment(items[2].id, "absolute", None, "", "unparsed", [])]
    m = absolute_agreement(js, items)
    assert (m["parsed"], m["unparsed"], m["forced"], m["no_verdict"]) == (1, 2, 1, 1)
    assert m["accuracy"] == pytest.approx(2 / 3, abs=1e-4)  # the forced verdict counts, the missing one is wrong


# ------------------------------------------------------------------ job and CLI


def test_judge_job_over_the_store_writes_judge_scores(filled):
    from rationales.jobs.judge import JudgeJobConfig, run_judge

    store, _ = filled

    def script(prompt, seed, index):  # a judge that checks the sum written in the response
        resp = prompt.split("###Response to evaluate:\n")[1].split("\n")[0]
        lhs, rhs = resp.split(" = ")
        a, b = lhs.split("+")
        ok = int(a) + int(b) == int(rhs.split(".")[0])
        return f"Feedback: the sum is {'right' if ok else 'wrong'}. [RESULT] {5 if ok else 1}"

    res = run_judge(JudgeJobConfig(mode="absolute"), FakeBackend(script=script, model="judge-m"), store)
    assert res.agreement["accuracy"] == 1.0 and res.agreement["kappa_quadratic"] == pytest.approx(1.0)
    r = store.rationales()[0]
    s = next(x for x in r.scores if x.kind == "judge")
    assert s.value == 5.0 and s.detail["rationale"] == "the sum is right."
    assert any(run["command"] == "judge" and run["summary"] for run in store.runs())

    res2 = run_judge(JudgeJobConfig(mode="pairwise"), FakeBackend(script=lambda p, s, i: "Feedback: x [RESULT] A"),
                     store)
    assert res2.agreement["position_bias"] == 1.0 and res2.agreement["accuracy"] == 0.5


def test_judge_job_bad_input(tmp_path, store):
    from rationales.jobs.judge import JudgeJobConfig, read_jsonl, run_judge

    with pytest.raises(RationalesError, match="Did you mean"):
        JudgeJobConfig(rubric="helpfullness")
    with pytest.raises(RationalesError, match="No items to judge"):
        run_judge(JudgeJobConfig(), FakeBackend(), store)
    f = tmp_path / "x.jsonl"
    f.write_text('{"instruction": "q", "response": "r"}\n{"instruction": "q"\n')
    with pytest.raises(RationalesError, match="line 2 is not valid JSON"):
        read_jsonl(f, "absolute")
    f.write_text('{"instruction": "q", "response": "r", "rubric": "nosuchrubric"}\n')
    with pytest.raises(RationalesError, match="Unknown rubric"):
        read_jsonl(f, "absolute")
    f.write_text("\n\n")
    with pytest.raises(RationalesError, match="no rows"):
        read_jsonl(f, "absolute")
    f.write_text('{"instruction": "q", "response_A": "a", "response_B": "b", "winner": "C"}\n')
    with pytest.raises(RationalesError, match="'A' or 'B'"):
        read_jsonl(f, "pairwise")
    with pytest.raises(RationalesError, match="does not exist"):
        read_jsonl(tmp_path / "none.jsonl", "absolute")


def test_cli_judge_jsonl_table_json_and_report(tmp_path):
    from rationales.cli import main

    rows = tmp_path / "rel.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in [
        {"instruction": "2+2?", "response_A": "4", "response_B": "5", "winner": "A", "rubric": "correctness"},
        {"instruction": "3+3?", "response_A": "7", "response_B": "6", "winner": "B"}]) + "\n")
    script = tmp_path / "fake.json"
    script.write_text(json.dumps({"###Response A:\n4": ["Feedback: A is right. [RESULT] A"],
                                  "###Response A:\n5": ["Feedback: B is right. [RESULT] B"],
                                  "###Response A:\n7": ["Feedback: B is right. [RESULT] B"],
                                  "###Response A:\n6": ["Feedback: A is right. [RESULT] A"]}))
    out = tmp_path / "out"
    args = [str(rows), "--mode", "pairwise", "--backend", "fake", "--model", str(script),
            "--store", str(tmp_path / "s.sqlite"), "--out", str(out)]
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["judge", *args, "--json"]) == 0
    data = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert data["agreement"]["accuracy"] == 1.0 and data["agreement"]["position_bias"] == 0.0
    assert data["judgments"][0]["rationale"] == "A is right."
    page = (out / "judge.html").read_text()
    assert "A is right." in page and "Response B" in page
    assert main(["judge", *args]) == 0
    assert main(["judge", str(rows), "--rubric", "nope", "--backend", "fake"]) == 2
    assert main(["judge", str(tmp_path / "missing.jsonl"), "--backend", "fake"]) == 2


def test_judge_vote_and_best_of_n_choose_by_the_judge_and_count_its_tokens(store):
    from rationales.jobs.judge import judge_selections

    p = Problem.make("What is 2+2?", "4", source="demo")
    store.put_problems([p])
    rs = [_rat(p, 0, "2+2 = 5. The answer is 5.", False), _rat(p, 1, "2+2 = 5. The answer is 5!", False),
          _rat(p, 2, "2+2 = 4. The answer is 4.", True)]
    for r, a in zip(rs, ["5", "5", "4"]):
        r.answer, r.tokens = a, 10
    store.put_rationales(rs)
    fake = FakeBackend(script={"= 4.": ["Feedback: right [RESULT] 5"], "*": ["Feedback: wrong [RESULT] 1"]})
    judge = AbsoluteJudge(fake, config=JudgeConfig(force=False, retries=0))
    (bo,) = judge_selections("judge_best_of_n", [p], [rs], judge, store)
    assert bo.answer == "4" and bo.correct and bo.tokens == 30 + 3 * 4  # samples + the judge's 3 judgments
    (v,) = judge_selections("judge_vote", [p], [rs], judge, store)
    assert v.answer == "4"  # 1.0 for "4" beats 0.0 + 0.0 for "5" (plain majority would pick 5)
    assert fake.samples_generated == 3  # judged once; the second strategy reads the stored scores
    stored = store.get_rationale(rs[2].id)
    assert next(s for s in stored.scores if s.kind == "judge").value == 5.0


# ------------------------------------------------------------------ property tests: user-text parsers

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json_values = st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=20),
                            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                            max_leaves=10)
_row = st.dictionaries(st.sampled_from(["instruction", "response", "response_A", "response_B", "rubric",
                                        "score_rubric", "score", "winner", "reference_answer", "responses",
                                        "ranking", "id"]), _json_values, max_size=7)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_row.map(json.dumps), st.text(max_size=40)), max_size=5),
       st.sampled_from(["absolute", "pairwise", "ranking"]))
def test_read_jsonl_never_crashes(tmp_path_factory, lines, mode):
    from rationales.jobs.judge import read_jsonl

    f = tmp_path_factory.mktemp("j") / "rows.jsonl"
    f.write_text("\n".join(l.replace("\n", " ") for l in lines), encoding="utf-8")
    try:
        items = read_jsonl(f, mode)
    except RationalesError:
        return
    assert items and all(it.instruction.strip() for it in items)
    assert len({it.id for it in items}) == len(items)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=60), st.dictionaries(st.text(max_size=20), _json_values, max_size=6)))
def test_load_rubric_never_crashes(spec):
    from rationales.verify.judge import Rubric, load_rubric

    try:
        r = load_rubric(spec)
    except RationalesError:
        return
    assert isinstance(r, Rubric) and r.low < r.high and r.text()


def test_step_mode_writes_judge_checks_and_compares_with_the_tool_check(store):
    from rationales.jobs.judge import JudgeJobConfig, run_judge
    from rationales.steps import segment

    p = Problem.make("What is 2+3+4?", "9", source="demo")
    store.put_problems([p])
    text = "2 + 3 = 5\n5 + 4 = 10\nThe answer is 10."
    r = Rationale(id="r", problem_id=p.id, prompt_id="", model="m", text=text, steps=segment(text), answer="10",
                  correct=False)
    store.put_rationales([r])

    def script(prompt, seed, index):  # right on the first step, wrong on the second
        step = prompt.split("(judge this one):\n")[1].split("\n")[0]
        return "Feedback: ok [RESULT] 5" if "= 5" in step else "Feedback: bad [RESULT] 1"

    res = run_judge(JudgeJobConfig(mode="step"), FakeBackend(script=script), store)
    assert res.agreement["tool_decided_steps"] == 2 and res.agreement["agreement_with_tool"] == 1.0
    stored = store.get_rationale("r")
    assert [s.verdict("judge") for s in stored.steps] == [1, -1, -1]
    with pytest.raises(RationalesError, match="drop the file"):
        JudgeJobConfig(mode="step", file="x.jsonl")


def test_compare_runs_the_judge_strategies_at_equal_budget(store):
    from rationales.jobs.compare import CompareConfig, compare, plan, Estimate

    ps = [Problem.make("What is 2+2?", "4", source="demo", answer_type="number"),
          Problem.make("What is 3+3?", "6", source="demo", answer_type="number")]

    def script(prompt, seed, index):
        if "###Response to evaluate" in prompt:  # the judge: right answers get 5
            resp = prompt.split("###Response to evaluate:\n")[1]
            return "Feedback: right [RESULT] 5" if ("is 4." in resp or "is 6." in resp) else "Feedback: no [RESULT] 1"
        right = "The answer is 4." if "2+2" in prompt else "The answer is 6."
        return ["The answer is 5.", "The answer is 5.", right][seed % 3]

    est = Estimate(tokens_per_sample=4.0, steps_per_sample=1.0, greedy_tokens=4.0)
    assert plan("judge_vote", 24, est) == {"n": 3} and plan("vote", 24, est) == {"n": 6}  # a judgment per sample
    cfg = CompareConfig(strategies=["vote", "judge_vote", "judge_best_of_n"], budgets=[24], out=str(store.path.parent))
    res = compare(cfg, FakeBackend(script=script), store, ps)
    rows = res.strategies
    # the same 48 tokens each: 6 samples, or 3 samples + 3 judgments; the majority answer (5) is wrong, the
    # judge finds the right sample where one was drawn (seeded, deterministic)
    assert {k: (v["accuracy"], v["tokens"]) for k, v in rows.items()} == {
        "vote": (0.0, 48), "judge_vote": (0.5, 48), "judge_best_of_n": (0.5, 48)}


def test_cli_judge_calibrate(tmp_path, capsys):
    from rationales.cli import main

    rows = tmp_path / "rel.jsonl"
    rows.write_text(json.dumps({"instruction": "2+2?", "response_A": "4", "response_B": "5", "winner": "A"}) + "\n")
    script = tmp_path / "fake.json"
    script.write_text(json.dumps(["Feedback: the first one. [RESULT] A"]))  # position-biased
    args = [str(rows), "--backend", "fake", "--model", str(script), "--store", str(tmp_path / "s.sqlite"),
            "--out", str(tmp_path / "out")]
    assert main(["judge", *args, "--mode", "pairwise", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plain["judgments"][0]["how"] == "tie" and "calibrated" not in plain["agreement"]
    assert main(["judge", *args, "--mode", "pairwise", "--calibrate", "--json"]) == 0
    cal = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cal["judgments"][0]["how"] == "calibrated" and cal["judgments"][0]["verdict"] in ("A", "B")
    assert cal["agreement"]["calibrated"] == 1 and 0.0 < cal["agreement"]["mean_p_first"] < 1.0
    assert main(["judge", *args, "--mode", "absolute", "--calibrate"]) == 2
    err = capsys.readouterr().err
    assert "--calibrate" in err and "--mode pairwise" in err
