"""CLI fuzzing, quick subset (the full run is benchmarks/fuzz.py): hostile inputs to every
command on the fake backend end in exit 0 or a clean exit 2 (one ``error:`` line or a usage
error), never the catch-all internal error or a traceback; inputs that are wrong must fail."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("rationales_fuzz", Path(__file__).parent.parent / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
sys.modules["rationales_fuzz"] = fuzz  # dataclasses look their module up
_spec.loader.exec_module(fuzz)


@pytest.fixture()
def in_tmp(tmp_path):
    old = os.getcwd()
    os.chdir(tmp_path)  # commands defaulting to ./rationales.sqlite write here
    yield tmp_path
    os.chdir(old)


def test_quick_fuzz_subset_has_no_internal_errors(in_tmp):
    tally = fuzz.run_all(fuzz.cases(in_tmp, quick=True), fuzz.Tally())
    assert tally.tried >= 40
    assert tally.failures == [], "\n".join(tally.failures)
    assert tally.internal == 0 and tally.crash == 0
    assert not (in_tmp / "pwned").exists()


def test_classifier_tells_clean_from_internal():
    """The fuzz harness itself: a RationalesError is clean, a bug is internal, a usage error clean."""
    assert fuzz.run_case(fuzz.Case("unknown", ["run", "nope-task", "--backend", "fake"]))[0] == "clean"
    assert fuzz.run_case(fuzz.Case("usage", ["run", "--samples", "abc"]))[0] == "clean"
    assert fuzz.run_case(fuzz.Case("help", ["--help"]))[0] == "ok"
