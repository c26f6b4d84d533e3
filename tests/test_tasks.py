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
    with pytest.raises(TaskError, match=r"bad.jsonl line 2: not valid JSON"):
        load_task(str(bad))
    nocol = tmp_path / "nocol.jsonl"
    nocol.write_text('{"prompt": "x", "answer": 1}\n')
    with pytest.raises(TaskError, match="no column 'question'.*--question-col"):
        load_task(str(nocol))
    with pytest.raises(TaskError, match="No such file"):
        load_task(str(tmp_path / "missing.jsonl"))
    with pytest.raises(UnknownNameError, match="Unknown task"):
        load_task("gsm8k")


@pytest.mark.parametrize("content,match", [
    ('{"question": "q", "answer": "1"}\n42\n', r"p.jsonl line 2: expected a JSON object, got a number"),
    ('[1, 2]\n', r"p.jsonl line 1: expected a JSON object, got an array"),
    ('null\n', r"p.jsonl line 1: expected a JSON object, got null"),
    ("[" * 100000 + "]" * 100000 + "\n", r"p.jsonl line 1: nests too deeply"),
    ('{"question": ' + "[" * 200 + "]" * 200 + ', "answer": 1}\n', r"nested deeper than 64"),
    ('{"question": "q", "answer": ' + "1" * 5000 + "}\n", r"integer too long to read.*write it as a string"),
    ('{"question": "q", "answer": "1"\n', r"p.jsonl line 1: not valid JSON"),
])
def test_bad_jsonl_lines_say_what_to_fix(tmp_path, content, match):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(TaskError, match=match):
        load_task(str(path))


def test_encoding_bom_surrogates_and_csv_quotes(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"question": "caf\xe9", "answer": "1"}\n'.encode("latin-1"))
    with pytest.raises(TaskError, match="not UTF-8 text.*re-save it as UTF-8"):
        load_task(str(bad))
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffquestion,answer\n2+2?,4\n".encode("utf-8"))
    assert [(p.question, p.gold) for p in load_task(str(bom))] == [("2+2?", "4")]
    quote = tmp_path / "quote.csv"
    quote.write_text('question,answer\n"what is 2+2,4\nwhat is 3+3,6\n')
    with pytest.raises(TaskError, match="never closed"):
        load_task(str(quote))
    sur = tmp_path / "sur.jsonl"
    sur.write_text('{"question": "a\\ud800b", "answer": "1"}\n')
    p = load_task(str(sur))[0]
    assert p.question == "a\ufffdb"
    from rationales.store import Store

    with Store(tmp_path / "s.sqlite") as st:  # a cleaned problem stores and reads back
        st.put_problems([p])
        assert st.get_problem(p.id).question == "a\ufffdb"


def test_task_names_that_are_not_tasks(tmp_path):
    for spec in ("", "   "):
        with pytest.raises(TaskError, match="No task given: a task is 'demo', reasoning_gym:NAME"):
            load_task(spec)
    with pytest.raises(TaskError, match="reasoning-gym task needs a name"):
        load_task("reasoning_gym:")
    with pytest.raises(TaskError, match="is a directory"):
        load_task(str(tmp_path))
    with pytest.raises(TaskError, match="size must be a whole number"):
        load_task("reasoning_gym:basic_arithmetic", size=0)
    with pytest.raises(TaskError, match="Unknown answer type 'bogus'"):
        load_task(str(_one_row(tmp_path)), answer_type="bogus")
    from rationales.errors import RationalesError

    for spec in ("x" * 5000 + ".jsonl", "a\x00b", "a\x00b.jsonl"):
        with pytest.raises(RationalesError):
            load_task(spec)


def _one_row(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"question": "q", "answer": "1"}\n')
    return path


def test_reasoning_gym_problems_are_the_same_in_every_process():
    """Some generators depend on the hash seed (polynomial_multiplication): problems are made in
    the sandbox worker with a fixed hash seed, so two runs see the same problems."""
    import subprocess
    import sys

    code = ("from rationales.tasks import load_task;"
            "print(load_task('reasoning_gym:polynomial_multiplication', size=2, seed=0)[0].id)")
    ids = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
           for _ in range(2)}
    assert len(ids) == 1
    p = load_task("reasoning_gym:polynomial_multiplication", size=2, seed=0)[0]
    assert ids == {p.id + "\n"} and check_answer_rg(p)


def check_answer_rg(p):
    from rationales.answers import check_answer

    return check_answer(p, p.gold) is True
