"""`rationales compare`: budget matching on hand-counted tokens, the JSON summary, the report,
sweeps, the scorers' token accounting and bad input (fake backend); one real-model run per
strategy."""

import json

import pytest

from rationales.backends.fake import FakeBackend
from rationales.cli import main
from rationales.jobs.compare import STRATEGIES, CompareConfig, Estimate, compare, parse_budgets, plan
from rationales.tasks import load_task
from rationales.report import write_report

ASSISTANT = "<|im_start|>assistant\n"
FULL = "12 - 5 = 7\n7 + 8 = 15\nThe answer is 15."  # 14 whitespace tokens, 3 steps


def tom_script(prompt, seed, index):
    """'Tom has 12 apples ...' (gold 15): every continuation carries on the right solution;
    generative-PRM prompts get a verdict."""
    if "<verify>" in prompt:
        return "<verify>7 + 8 = 15</verify> <judge>fine</judge> <output>\\boxed{+}</output>"
    tail = prompt.split(ASSISTANT)[-1]
    if tail == "":
        return FULL
    if tail.endswith("12 - 5 = 7\n"):
        return "7 + 8 = 15\nThe answer is 15."
    return "The answer is 15."


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err

#: the strategies these hand-checked budgets cover (judge_vote / judge_best_of_n: tests/test_judge*.py)
SAMPLE_STRATEGIES = [s for s in STRATEGIES if not s.startswith("judge_")]


def test_plan_sizes_fit_the_budget():
    est = Estimate(tokens_per_sample=50, steps_per_sample=5, greedy_tokens=48)
    sizes = {s: plan(s, 400, est) for s in SAMPLE_STRATEGIES}
    assert sizes == {"greedy": {}, "vote": {"n": 8}, "weighted_vote": {"n": 8}, "tool_vote": {"n": 8},
                     "best_of_n": {"n": 8}, "adaptive": {"max_samples": 8}, "step_search": {"n": 8},
                     "beam": {"beams": 2, "expand": 3},
                     "mcts": {"rollouts": 5, "children": 3}}  # 400 // (50 * (1 + 3/5)) = 5
    tiny = {s: plan(s, 30, est) for s in SAMPLE_STRATEGIES}  # below one sample: everything at its smallest
    assert tiny["vote"] == {"n": 1} and tiny["beam"] == {"beams": 1, "expand": 1}
    assert tiny["mcts"] == {"rollouts": 1, "children": 3}
    assert parse_budgets("1000, 500,500") == [500, 1000]


def test_compare_matches_budgets_on_counted_tokens(tmp_path, store):
    """Pilot: t = 14 tokens, L = 3 steps. Budget 56 -> k = 4:
    vote/tool_vote/weighted_vote/best_of_n/adaptive: 4 samples x 14 = 56 (adaptive: 2-0, 4-0 stop);
    step_search n=4: 4 x 5 + 4 x 5 + 4 x 4 = 56; beam (1 beam x 3): 15 + 15 + 12 = 42;
    mcts: 56 // (14 * 2) = 2 rollouts: 3 x 5 + rollout 9, then 3 x 5 + rollout 4 = 43; greedy 14."""
    problems = load_task("demo", limit=1)
    fake = FakeBackend(script=tom_script, logprob_fn=lambda p, c: -0.1 if c == "+" else -2.3)
    cfg = CompareConfig(strategies=SAMPLE_STRATEGIES, budgets=[56], prm="llm", out=str(tmp_path / "out"))
    s = compare(cfg, fake, store, problems)
    write_report(s, cfg.out)
    assert s["estimate"] == {"tokens_per_sample": 14.0, "steps_per_sample": 3.0, "greedy_tokens": 14.0}
    spent = {name: row["tokens"] for name, row in s["strategies"].items()}
    assert spent == {"greedy": 14, "vote": 56, "weighted_vote": 56, "tool_vote": 56, "best_of_n": 56,
                     "adaptive": 56, "step_search": 56, "beam": 42, "mcts": 43}
    assert all(row["tokens_per_problem"] <= 56 for row in s["strategies"].values())
    assert all(row["accuracy"] == 1.0 and row["ci_low"] == pytest.approx(0.2065, abs=1e-4)
               for row in s["strategies"].values())  # Wilson 95% for 1/1
    assert s["strategies"]["vote"]["accuracy_per_1k_tokens"] == pytest.approx(1000 / 56, abs=1e-3)
    assert s["strategies"]["step_search"]["size"] == {"n": 4}
    # samples: greedy + 4 cot samples + 3 step proposals' batches ... all counted once
    assert s["samples_new"] > 0 and s["tokens"] == sum(spent.values())
    html = (tmp_path / "out" / "compare.html").read_text()
    assert "accuracy vs tokens" in html and "<img" in html and "step_search" in html
    # everything again: nothing new is generated and the numbers do not move
    again = compare(cfg, FakeBackend(script=tom_script, logprob_fn=lambda p, c: -0.1 if c == "+" else -2.3),
                    store, problems)
    assert again["samples_new"] == 0 and again["strategies"] == s["strategies"]


def test_generative_prm_tokens_are_charged(tmp_path, store):
    """best_of_n with the generative PRM: 2 samples x 14 tokens + one judgement per distinct
    step (the two samples are the same text, so 3 judgements of 7 tokens: the fake cuts at
    '</output>')."""
    problems = load_task("demo", limit=1)
    cfg = CompareConfig(strategies=["best_of_n"], budgets=[28], prm="genprm", out=str(tmp_path / "o"))
    s = compare(cfg, FakeBackend(script=tom_script), store, problems)
    judgement = len("<verify>7 + 8 = 15</verify> <judge>fine</judge> <output>\\boxed{+}".split())
    assert judgement == 7 and s["strategies"]["best_of_n"]["tokens"] == 28 + 3 * judgement
    assert s["strategies"]["best_of_n"]["accuracy"] == 1.0


def test_cli_compare_json_sweep_and_report(tmp_path, capsys):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"Tom has 12": [FULL], "*": ["I do not know."]}))
    args = ["compare", "demo", "--backend", "fake", "--model", script, "-k", "2", "--strategies",
            "greedy,vote,tool_vote", "--budgets", "14,28", "--store", tmp_path / "s.sqlite", "--out", tmp_path / "o"]
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert {"strategies", "samples_new", "samples_cached", "tokens"} <= set(s)
    assert set(s["strategies"]) == {f"{n}@{b}" for n in ("greedy", "vote", "tool_vote") for b in (14, 28)}
    row = s["strategies"]["vote@28"]
    assert {"accuracy", "ci_low", "ci_high", "tokens"} <= set(row)
    # problem 1 (Tom): 15, right; problem 2: no answer ("I do not know." = 4 tokens)
    # pilot t = (14 + 4) / 2 = 9 -> budget 14: n = 1, budget 28: n = 3
    assert s["estimate"]["tokens_per_sample"] == 9.0
    assert s["strategies"]["vote@14"]["size"] == {"n": 1} and row["size"] == {"n": 3}
    assert row["tokens"] == 3 * 14 + 3 * 4 and row["accuracy"] == 0.5
    assert [r["budget"] for r in s["curves"]["vote"]] == [14, 28]
    assert s["strategies"]["greedy@28"]["tokens"] == 18  # greedy does not grow with the budget
    assert (tmp_path / "o" / "compare.html").exists()
    # table output, cached
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    assert "tool_vote@28" in out and "report:" in out


def test_reasoning_gym_numbers_in_latex_dress_count():
    """basic_arithmetic's scorer compares strings; "\\(-4\\)" or "-4.0" is the same number."""
    from rationales.answers import check_answer

    p = next(q for q in load_task("reasoning_gym:basic_arithmetic", size=20, seed=0) if q.gold == "-4")
    assert [check_answer(p, a) for a in ("-4", "\\(-4\\)", "$-4$", "-4.0", "\\boxed{-4}")] == [True] * 5
    assert [check_answer(p, a) for a in ("4", "\\(-5\\)", "-4 or 4", "")] == [False] * 4


def test_compare_needs_gold_and_sane_settings(tmp_path, store):
    from rationales.errors import RationalesError
    from rationales.records import Problem

    with pytest.raises(RationalesError, match="no gold"):
        compare(CompareConfig(out=str(tmp_path)), FakeBackend(), store, [Problem.make("What is 2 + 2?")])
    with pytest.raises(RationalesError, match="threshold"):
        compare(CompareConfig(threshold=0.0, out=str(tmp_path)), FakeBackend(), store, load_task("demo", limit=1))
    with pytest.raises(RationalesError, match="temperature"):
        compare(CompareConfig(temperature=0.0, out=str(tmp_path)), FakeBackend(), store, load_task("demo", limit=1))


@pytest.mark.parametrize("bad, message", [
    (["--strategies", "greedy,votes"], "Did you mean 'vote'"),
    (["--budgets", "100,abc"], "not a whole number"),
    (["--prm", "oracle"], "Unknown PRM"),
    (["--how", "median"], "Unknown PRM aggregate"),
    (["--strategies", ","], "--strategies is empty"),
])
def test_cli_compare_bad_input_is_one_line(tmp_path, capsys, bad, message):
    code, out, err = cli(capsys, "compare", "demo", "--backend", "fake", "--store", tmp_path / "s.sqlite", *bad)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ---------------------------------------------------------------- real model, one run per strategy


@pytest.mark.model
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_end_to_end_on_real_model(strategy, small_model, tmp_path, store):
    """SmolLM2-135M, one demo problem, ~2-3 samples' worth of tokens: every strategy runs,
    spends tokens, stores what it made and reports a row with a CI."""
    problems = load_task("demo", limit=1)
    cfg = CompareConfig(strategies=[strategy], budgets=[150], prm="llm", max_tokens=64, max_steps=3,
                        max_step_tokens=24, out=str(tmp_path / "o"))
    s = compare(cfg, small_model, store, problems)
    row = s["strategies"][strategy]
    assert row["n"] == 1 and row["tokens"] > 0 and 0.0 <= row["ci_low"] <= row["accuracy"] <= row["ci_high"]
    assert store.count("rationales") >= 2  # the pilot's greedy + sample, at least
    if strategy in ("step_search", "beam", "mcts"):
        assert store.rationales(method=strategy)
