"""kill -9 during `run`, `compare`, `verify` and `run --method grounded` on the fake backend
(with a per-sample delay), then resume: the store passes PRAGMA integrity_check after every
kill, no stored sample is lost (the count never goes down, every row reads back), and the
resume reaches the count of a run that was never killed. (20 kills per command:
benchmarks/killnine.py.)"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("rationales_killnine",
                                               Path(__file__).parent.parent / "benchmarks" / "killnine.py")
killnine = importlib.util.module_from_spec(_spec)
sys.modules["rationales_killnine"] = killnine
_spec.loader.exec_module(killnine)


@pytest.mark.parametrize("kind,kills", [("run", 3), ("compare", 1), ("verify", 1), ("grounded", 1)])
def test_kill9_then_resume_loses_nothing(tmp_path, kind, kills):
    r = killnine.scenario(kind, tmp_path, kills, random.Random(kind))
    assert r.kills >= 1, f"the command finished before any kill: {r.trace}"
    assert r.integrity_failures == 0 and r.lost == 0, r.trace
    assert r.reached_full, (r.final, r.full, r.trace)
    assert r.full > 0
