import csv
import json

import pytest

from rationales.errors import TaskError, UnknownNameError
from rationales.tasks import list_tasks, load_task


def test_demo_task_is_bundled_and_checked():
    probs = load_task("demo")
    assert len(probs) == 20
    assert probs[0].gold == "15" and probs[0].answer_type == "number"
    assert len(load_task("demo", limit=3)) == 3


def test_reasoning_gym_by_name_size_seed():
    a = load_task("reasoning_gym:basic_arithmetic", size=4, seed=3)
    b = load_task("reasoning_gym:basic_arithmetic", size=4, seed=3)
    c = load_task("reasoning_gym:basic_arithmetic", size=4, seed=4)
    assert len(a) == 4 and [p.id for p in a] == [p.id for p in b] and a[0].id != c[0].id
    assert a[0].meta["entry"]["answer"] == a[0].gold
    with pytest.raises(UnknownNameError, match="Did you mean 'basic_arithmetic'"):
        load_task("reasoning_gym:basic_arithmetc")
    assert any(name == "reasoning_gym:gsm_symbolic" for name, _ in list_tasks())


def test_files_jsonl_csv_parquet_with_mapping(tmp_path):
    rows = [{"q": "1+1?", "a": "2", "ctx": "math"}, {"q": "2+2?", "a": "4", "ctx": "math"}]
    jl = tmp_path / "p.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows))
    cs = tmp_path / "p.csv"
    with cs.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["q", "a", "ctx"])
        w.writeheader()
        w.writerows(rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pa_path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows), pa_path)
    for path in (jl, cs, pa_path):
        probs = load_task(str(path), question_col="q", answer_col="a", context_col="ctx")
        assert [p.question for p in probs] == ["1+1?", "2+2?"]
        assert [p.gold for p in probs] == ["2", "4"] and probs[0].context == "math"


def test_saved_hf_dataset(tmp_path):
    datasets = pytest.importorskip("datasets", reason="datasets is in the [hf] extra")
    d = tmp_path / "ds"
    datasets.Dataset.from_list([{"question": "3*3?", "answer": "9"}]).save_to_disk(str(d))
    probs = load_task(str(d))
    assert probs[0].question == "3*3?" and probs[0].gold == "9"
    dd = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"question": "a", "answer": "1"}]),
                          "test": datasets.Dataset.from_list([{"question": "b", "answer": "2"}])}).save_to_disk(str(dd))
    assert load_task(f"hf:{dd}")[0].question == "b"


def test_bad_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok", "answer": 1}\n{not json\n')
    with pytest.raises(TaskError, match=r"bad.jsonl:2 is not valid JSON"):
        load_task(str(bad))
    nocol = tmp_path / "nocol.jsonl"
    nocol.write_text('{"prompt": "x", "answer": 1}\n')
    with pytest.raises(TaskError, match="no column 'question'.*--question-col"):
        load_task(str(nocol))
    with pytest.raises(TaskError, match="No such file"):
        load_task(str(tmp_path / "missing.jsonl"))
    with pytest.raises(UnknownNameError, match="Unknown task"):
        load_task("gsm8k")
