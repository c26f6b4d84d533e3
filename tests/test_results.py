"""Every job returns a typed result (issue 10 item 2): each `run --method NAME` returns its own
dataclass, whose fields are its --json keys plus the records of its report page."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from rationales.jobs import results
from rationales.jobs.methods import METHODS, MethodContext, method_function
from rationales.report import write_report

REQUIRED = {"method", "strategies", "samples_new", "samples_cached", "tokens_new", "tokens", "report"}


@pytest.mark.parametrize("name", sorted(METHODS.names()))
def test_each_method_returns_its_own_dataclass(name):
    cls = typing.get_type_hints(method_function(name))["return"]
    assert dataclasses.is_dataclass(cls) and issubclass(cls, results.MethodResult), name
    json_fields = {f.name for f in dataclasses.fields(cls) if f.metadata.get("json", True)}
    assert REQUIRED <= json_fields, f"{cls.__name__} lacks {REQUIRED - json_fields}"


def test_a_method_result_is_its_json_and_records_its_page(tmp_path):
    from rationales.backends.fake import FakeBackend
    from rationales.store import Store
    from rationales.tasks import load_task

    problems = load_task("demo", limit=2)
    with Store(tmp_path / "s.sqlite") as st:
        ctx = MethodContext(problems=problems, backend=FakeBackend(script={"*": ["1 + 1 = 2. The answer is 2."]}),
                            store=st, out=tmp_path, task="demo", samples=2)
        result = method_function("calibration")(ctx)
        assert isinstance(result, results.CalibrationResult)
        assert result.problems == 2 and result["problems"] == 2 and "verbal_rs" not in result.to_json()
        assert [p.id for p in result.records["problems"]] == [p.id for p in problems]
        path = write_report(result, tmp_path)
    assert path.exists() and result.to_json()["report"] == str(path)
    assert json.loads(json.dumps(result.to_json()))["strategies"] == result.strategies
