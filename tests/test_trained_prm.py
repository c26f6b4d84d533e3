"""A trained PRM by path (``--prm DIR``) drives compare, verify and processbench end to end on the
fake backend: a tiny discriminative PRM, trained in seconds on steps where the rule
"a step is wrong iff its arithmetic is wrong" is visible in the text."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from rationales.cli import main  # noqa: E402
from rationales.records import Check, Problem, Rationale  # noqa: E402
from rationales.steps import segment  # noqa: E402
from rationales.store import Store  # noqa: E402


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


GOOD = ["12 - 5 = 7", "7 + 8 = 15", "The answer is 15."]
BAD = ["12 - 5 = 6", "6 + 8 = 14", "The answer is 14."]


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    """A tiny PRM trained with the CLI on tool labels of hand-made rationales."""
    from rationales.verify.arithmetic import check_rationale

    tmp = tmp_path_factory.mktemp("prm")
    store = Store(tmp / "train.sqlite")
    for i in range(10):
        p = Problem.make(f"Tom has 12 apples, eats 5, buys 8 ({i}). How many?", 15, source="hand")
        store.put_problems([p])
        for j, lines in enumerate([GOOD, BAD]):
            text = "\n".join(lines)
            r = Rationale(id=f"r{i}{j}", problem_id=p.id, prompt_id="x", model="m", text=text,
                          steps=segment(text, "lines"), answer=lines[-1][-3:-1], correct=j == 0)
            check_rationale(r)
            r.steps[-1].checks.append(Check(kind="tool", by="outcome", verdict=1 if j == 0 else -1))
            store.put_rationale(r)
    store.close()
    code = main(["train", "prm", "--kind", "discriminative", "--model", "tiny", "--data", str(tmp / "train.sqlite"),
                 "--label-source", "tool", "--output-dir", str(tmp / "prm"), "--epochs", "20", "--lr", "3e-3",
                 "--batch-size", "8", "--no-progress", "--val-fraction", "0", "--save-steps", "10", "--json"])
    assert code == 0
    return tmp / "prm"


def tom_script(prompt, seed, index):
    """Samples: even seeds write the right solution, odd seeds a wrong one."""
    tail = prompt.split("<|im_start|>assistant\n")[-1]
    if tail == "":
        return "\n".join(GOOD if seed % 2 == 0 else BAD)
    return "The answer is 15."


def test_compare_with_a_trained_prm_by_path(tmp_path, capsys, prm_dir, monkeypatch):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"*": ["\n".join(BAD), "\n".join(GOOD), "\n".join(BAD)]}))
    code, out, err = cli(capsys, "compare", "demo", "--backend", "fake", "--model", script, "--limit", "2",
                         "--strategies", "greedy,vote,best_of_n,weighted_vote", "--budget", "60",
                         "--prm", prm_dir, "--store", tmp_path / "s.sqlite", "--out", tmp_path / "out", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["prm"] == str(prm_dir)
    rows = summary["strategies"]
    assert set(rows) >= {"greedy", "vote", "best_of_n", "weighted_vote"}
    # the demo's first problems are not Tom's apples, so nothing is right; the rows exist and count tokens
    assert all(rows[k]["n"] == 2 and rows[k]["tokens"] > 0 for k in rows)
    # the PRM's rewards are stored as checks by its id
    with Store(tmp_path / "s.sqlite") as store:
        bys = {c.by for r in store.rationales() for s in r.steps for c in s.checks if c.kind == "prm"}
    assert any(b.startswith("trained-prm:") for b in bys)


def test_processbench_and_verify_with_a_trained_prm(tmp_path, capsys, prm_dir):
    from rationales.verify.processbench import Item, save_processbench

    items = [Item(problem="Tom has 12 apples, eats 5, buys 8. How many?", steps=GOOD, label=-1, answer="15"),
             Item(problem="Tom has 12 apples, eats 5, buys 8. How many?", steps=BAD, label=0, answer="15")]
    path = save_processbench(items, tmp_path / "pb.jsonl")
    code, out, err = cli(capsys, "processbench", path, "--detector", prm_dir, "--json")
    assert code == 0, err
    res = json.loads(out)
    scores = res.get("scores", res)
    assert scores["f1"] == 1.0  # the tiny PRM learnt the visible rule
    # --calibrate: the threshold is chosen on a file first (here the same items), then applied
    code, out, err = cli(capsys, "processbench", path, "--detector", prm_dir, "--calibrate", path, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["f1"] == 1.0 and res["calibration"] == {"file": str(path), "items": 2, "f1": 1.0}
    assert 0.0 < res["threshold"] < 1.0
    code, out, err = cli(capsys, "processbench", path, "--detector", prm_dir, "--calibrate", path)
    assert code == 0, err
    assert "chosen on 2 items" in out
    code, _, err = cli(capsys, "processbench", path, "--detector", prm_dir, "--calibrate", tmp_path / "nope.jsonl")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nope.jsonl" in err
    # verify: stored rationales re-scored by the trained PRM
    store = Store(tmp_path / "v.sqlite")
    p = Problem.make("Tom has 12 apples, eats 5, buys 8. How many?", 15, source="hand")
    store.put_problems([p])
    text = "\n".join(BAD)
    store.put_rationale(Rationale(id="v1", problem_id=p.id, prompt_id="x", model="m", text=text,
                                  steps=segment(text, "lines"), answer="14", correct=False))
    store.close()
    code, out, err = cli(capsys, "verify", "--store", tmp_path / "v.sqlite", "--checkers", f"tool,{prm_dir}",
                         "--backend", "fake", "--json")
    assert code == 0, err
    with Store(tmp_path / "v.sqlite") as store:
        r = store.get_rationale("v1")
    checks = [c for c in r.steps[0].checks if c.kind == "prm"]
    assert checks and checks[0].by.startswith("trained-prm:") and checks[0].score < 0.5


def test_bad_prm_path_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "notaprm").mkdir()
    code, out, err = cli(capsys, "compare", "demo", "--backend", "fake", "--limit", "1", "--strategies", "best_of_n",
                         "--prm", tmp_path / "notaprm", "--store", tmp_path / "s.sqlite", "--out", tmp_path / "o")
    assert code == 2 and err.startswith("error: ") and "not a trained PRM" in err
    assert len(err.strip().splitlines()) == 1  # refused before any work
