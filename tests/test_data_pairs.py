"""Step-controlled pair mining (SCDPO) on the fake backend: rising temperature, attempts counted,
samples stored and cached, pairs usable as DPO rows."""

from __future__ import annotations

import pytest
from test_data_builders import rat

from rationales.backends.fake import FakeBackend
from rationales.data.filters import DataFilter
from rationales.data.pairs import StepControlledConfig, mine_step_controlled, prefix_lengths
from rationales.errors import RationalesError
from rationales.records import Problem


def test_prefix_lengths_and_temperature_schedule():
    assert prefix_lengths(1, 2) == [] and prefix_lengths(2, 2) == [1]
    assert prefix_lengths(5, 2) == [1, 4] and prefix_lengths(5, 3) == [1, 3, 4] and prefix_lengths(3, 5) == [1, 2]
    cfg = StepControlledConfig()
    assert [cfg.temperature(j) for j in range(8)] == [1.1, 1.15, 1.2, 1.25, 1.3, 1.35, 1.4, 1.4]
    with pytest.raises(RationalesError):
        StepControlledConfig(max_temperature=1.0)


def test_mining_finds_wrong_continuations_counts_attempts_and_caches(store):
    p = Problem.make("What is 2 + 3 + 4?", 9, source="toy", answer_type="number")
    good = rat(p, "2 + 3 = 5.\n5 + 4 = 9.\nThe answer is 9.", "9", True, 0)
    store.put_problems([p])
    store.put_rationales([good])
    seen: dict[str, int] = {}

    def script(prompt: str, seed: int, index: int) -> str:
        seen[prompt] = seen.get(prompt, 0) + 1
        if prompt.rstrip().endswith("5 + 4 = 9."):  # k = 2: attempt 0 stays right, attempt 1 goes wrong
            return "The answer is 9." if seen[prompt] == 1 else "The answer is 10."
        if prompt.rstrip().endswith("2 + 3 = 5."):  # k = 1: a wrong second step, then a wrong answer
            return "5 + 4 = 10."
        return "The answer is 10."

    be = FakeBackend(script=script)
    cfg = StepControlledConfig(max_attempts=3, prefixes_per_rationale=2)
    res = mine_step_controlled([p], [[good]], be, store, cfg)
    assert res.items == 2 and res.pairs == 2 and res.pairs_by_k == {1: 1, 2: 1}
    assert res.attempts == 3 and res.still_correct == 1 and res.attempts_per_pair == 1.5
    conts = store.rationales(method="scdpo")
    assert len(conts) == 3 and sum(c.correct is False for c in conts) == 2
    k1 = next(c for c in conts if c.meta["prefix_steps"] == 1)
    assert k1.text == "5 + 4 = 10.\nThe answer is 10.\n" and k1.meta["temperatures"] == [1.1, 1.15]
    steps = store.rationales(method="scdpo_step")
    assert {s.sampling.temperature for s in steps} == {1.1, 1.15}
    # a rerun draws nothing new: every step sample and assembled continuation is in the store
    n = be.samples_generated
    again = mine_step_controlled([p], [[good]], be, store, cfg)
    assert be.samples_generated == n and again.pairs == 2 and again.attempts == 3
    # and the pairs are DPO rows: chosen = the correct rationale, rejected = its prefix + the wrong rest
    from rationales.data.dpo import dpo_rows

    rows = dpo_rows(store, DataFilter(split="all"), sources=["step_controlled"], style="standard")
    assert sorted(r["rejected"] for r in rows) == [" 2 + 3 = 5.\n5 + 4 = 10.\nThe answer is 10.",
                                                   " 2 + 3 = 5.\n5 + 4 = 9.\nThe answer is 10."]
    assert all(r["chosen"] == " " + good.text for r in rows)


def test_train_pairs_cli_mines_into_the_store(tmp_path, capsys):
    import json

    from test_data_builders import make_training_store

    from rationales.cli import main
    from rationales.store import Store

    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        make_training_store(st)
        before = len(st.rationales(method="scdpo"))
    assert main(["train", "pairs", str(path), "--backend", "fake", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["pairs"] == res["items"] > 0 and res["attempts"] == res["items"]  # the fake answer 0 is always wrong
    with Store(path) as st:
        assert len(st.rationales(method="scdpo")) == before + res["pairs"]
    assert main(["train", "pairs", str(tmp_path / "missing.sqlite"), "--backend", "fake"]) == 2
