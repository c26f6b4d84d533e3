"""Consensus of tool, MC and PRM verdicts: each rule on hand-built steps."""

from __future__ import annotations

import pytest

from rationales.errors import RationalesError
from rationales.records import Check, Rationale, Step
from rationales.verify.consensus import combine, consensus_labels


def step(i: int, **verdicts: int | None) -> Step:
    return Step(index=i, text=f"step {i}", span=(0, 1),
                checks=[Check(kind=k, verdict=v) for k, v in verdicts.items()])


def rationale() -> Rationale:
    steps = [
        step(0, tool=1, mc=1, prm=1),      # all agree +1
        step(1, tool=-1, mc=1, prm=1),     # tool says wrong, the others right
        step(2, mc=-1, prm=-1),            # agree -1
        step(3, prm=1),                    # single
        step(4),                           # none
        step(5, tool=1, mc=-1, prm=-1),    # tool +1 against two -1
        step(6, tool=1, mc=1, prm=-1),     # 2 vs 1
        step(7, tool=None, mc=-1),         # a None verdict does not count: single
        step(8, tool=1, prm=-1),           # tie
    ]
    return Rationale(id="r", problem_id="p", prompt_id="x", model="m", steps=steps)


@pytest.mark.parametrize("rule, expected", [
    ("agree", [1, None, -1, 1, None, None, None, -1, None]),
    ("majority", [1, 1, -1, 1, None, -1, 1, -1, None]),
    ("tool_first", [1, -1, -1, 1, None, -1, 1, -1, -1]),
])
def test_rules(rule, expected):
    r = rationale()
    _, counts = consensus_labels([r], rule=rule)
    assert [s.verdict("consensus") for s in r.steps] == expected
    assert counts["labels"] == {"+1": expected.count(1), "-1": expected.count(-1), "none": expected.count(None)}


def test_counts_are_independent_of_the_rule():
    r = rationale()
    _, counts = consensus_labels([r], rule="agree")
    assert {k: counts[k] for k in ("agree", "disagree", "single", "none")} == {
        "agree": 2, "disagree": 4, "single": 2, "none": 1}
    # pairs: steps 0,1,5,6 have tool+mc; 0,1,5,6,8 tool+prm; 0,1,2,5,6 mc+prm
    assert counts["pairs"] == {"tool/mc": {"agree": 2, "disagree": 2}, "tool/prm": {"agree": 1, "disagree": 4},
                               "mc/prm": {"agree": 4, "disagree": 1}}


def test_consensus_check_records_sources_and_is_replaced():
    r = rationale()
    consensus_labels([r], rule="agree")
    consensus_labels([r], rule="majority")
    checks = [c for c in r.steps[1].checks if c.kind == "consensus"]
    assert len(checks) == 1 and checks[0].by == "majority"
    assert checks[0].detail == {"rule": "majority", "sources": {"tool": -1, "mc": 1, "prm": 1}}


def test_latest_decided_verdict_of_a_kind_is_used():
    s = Step(index=0, text="x", span=(0, 1), checks=[Check(kind="prm", by="llm-prm:m", verdict=1),
                                                      Check(kind="prm", by="genprm:m", verdict=None),
                                                      Check(kind="mc", verdict=1)])
    r = Rationale(id="r", problem_id="p", prompt_id="x", model="m", steps=[s])
    _, counts = consensus_labels([r])
    assert counts["agree"] == 1 and s.verdict("consensus") == 1


def test_unknown_rule():
    with pytest.raises(RationalesError, match="Did you mean 'majority'"):
        consensus_labels([rationale()], rule="majorty")
    assert combine({}, "agree") is None
