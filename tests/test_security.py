"""Model text is never executed: code-shaped answers through every reasoning-gym task the product
lists, math-verify and every answer checker, watched by an audit hook in this process (and the
payload's side effect checked on disk, which also covers the scoring worker)."""

from __future__ import annotations

import functools
import sys
import time
import types

import pytest

from rationales.answers import check_answer, extract_answer, grade_answers, normalize
from rationales.records import Problem
from rationales.tasks import list_tasks, load_task
from rationales.tasks.sandbox import Sandbox, SandboxLimits, run_jobs


def payloads(path: str) -> list[str]:
    return [
        f'__import__("os").system("touch {path}")',
        f"__import__('subprocess').call(['touch', '{path}'])",
        f'os.system("touch {path}")',
        f'(lambda: __import__("os").system("touch {path}"))()',
        f'(lambda f: f("{path}", "w"))(open)',
        f'[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "Popen"][0](["touch", "{path}"])',
        f'().__class__.__base__.__subclasses__()',
        f'open("{path}", "w").write("pwned")',
        f'exec("open(\'{path}\', \'w\')")',
        f'getattr(__builtins__, "open")("{path}", "w")',
        f'[1, 2, open("{path}", "w")]',
        f'\\boxed{{__import__("os").system("touch {path}")}}',
    ]


class Recorder:
    """An audit hook that records anything in this process touching the payload."""

    def __init__(self, path: str):
        self.path = path
        self.events: list[tuple[str, str]] = []
        self.active = False

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        if event == "open" and args and isinstance(args[0], str) and self.path in args[0]:
            self.events.append((event, args[0]))
        elif event in ("os.system", "os.posix_spawn", "os.exec", "os.spawn") and self.path in repr(args):
            self.events.append((event, repr(args)[:200]))
        elif event == "subprocess.Popen" and ("touch" in repr(args) or self.path in repr(args)):
            self.events.append((event, repr(args)[:200]))
        elif event == "compile" and args and isinstance(args[0], (str, bytes)) and (
                self.path in str(args[0]) or "__subclasses__" in str(args[0])):
            self.events.append((event, str(args[0])[:200]))
        elif event == "exec" and args and isinstance(args[0], types.CodeType) and args[0].co_filename.startswith("<"):
            names = set(args[0].co_names)
            if names & {"system", "__import__", "__subclasses__", "__class__", "open"}:
                self.events.append((event, str(sorted(names))[:200]))


_RECORDER: Recorder | None = None


@pytest.fixture
def recorder(tmp_path):
    """One hook per test process (audit hooks cannot be removed); re-pointed per test."""
    global _RECORDER
    target = str(tmp_path / "pwned")
    if _RECORDER is None:
        _RECORDER = Recorder(target)
        sys.addaudithook(_RECORDER)
    _RECORDER.path, _RECORDER.events = target, []
    _RECORDER.active = True
    yield _RECORDER
    _RECORDER.active = False


@functools.cache
def rg_problems() -> tuple[list[Problem], list[str]]:
    names = [n.split(":", 1)[1] for n, _ in list_tasks() if n.startswith("reasoning_gym:") and n != "reasoning_gym:*"]
    probs, unloadable = [], []
    for n in names:
        try:
            probs.append(load_task(f"reasoning_gym:{n}", size=1, seed=0)[0])
        except Exception:
            unloadable.append(n)
    return probs, unloadable


def test_code_shaped_answers_never_execute(recorder, tmp_path):
    target = tmp_path / "pwned"
    probs, unloadable = rg_problems()
    assert len(probs) >= 100, len(probs)
    assert unloadable == ["composite"]  # needs a config; it never scores anything
    others = [Problem.make("q", "2", answer_type=t) for t in ("auto", "number", "math", "exact")]
    others += [Problem.make("q", "x^2+1", answer_type="math"), Problem.make("q", "\\frac{1}{2}"),
               Problem.make("q", "B", answer_type="choice", choices=["1", "2", "3"])]
    items = [(p, a) for p in probs + others for a in payloads(str(target))]
    t0 = time.perf_counter()
    grades = grade_answers(items)
    took = time.perf_counter() - t0
    assert len(grades) == len(items)
    # (some scorers are lenient: game_of_life_halting accepts any text for gold "True", math-verify
    # reads the last number of "[1, 2, open(...)]"; right or wrong, nothing may run)
    assert sum(g.correct is True for g in grades) < len(grades) // 20
    for p in others:  # the single-answer paths too, and answer extraction from a whole rationale
        for a in payloads(str(target)):
            check_answer(p, extract_answer(f"Step 1: think.\nThe answer is {a}"))
            normalize(a)
    from rationales.generate import finish_rationale
    from rationales.records import Sampling
    from rationales.verify.arithmetic import check_rationale

    for p in [probs[0], *others]:  # the generate stage's path: extract, segment, grade; then the tool checker
        for a in payloads(str(target)):
            r = finish_rationale(p, f"We compute 2 + 2 = 4.\n{a} = 5\nThe answer is {a}", rid="r", prompt_id="p",
                                 model="m", sampling=Sampling(), index=0)
            check_rationale(r)
    assert recorder.events == []
    assert not target.exists()
    assert took < 120, took


def test_the_worker_refuses_the_payloads_that_scorers_evaluate(tmp_path):
    """spiral_matrix ``eval``s the answer with full builtins: the worker's audit hook must be
    what stopped it (not a parse error), and nothing is written."""
    target = tmp_path / "pwned"
    p = load_task("reasoning_gym:spiral_matrix", size=1, seed=0)[0]
    rg = {k: p.meta["rg"].get(k) for k in ("name", "size", "seed", "index", "config")}
    jobs = [{"kind": "rg", "rg": rg, "entry": p.meta["entry"], "answer": a} for a in payloads(str(target))[:6]]
    res = run_jobs(jobs)
    assert all(r.error is None and r.value == 0.0 for r in res), res
    refused = [x for r in res for x in r.refused if not x.startswith("(setup)")]
    assert any("__import__" in x for x in refused) and any("function definition" in x for x in refused)
    assert not target.exists()
    gold = run_jobs([{"kind": "rg", "rg": rg, "entry": p.meta["entry"], "answer": p.gold}])[0]
    assert gold.value == 1.0 and not [x for x in gold.refused if not x.startswith("(setup)")]


def test_gold_answers_still_score_in_the_sandbox():
    """The lock-down must not turn right answers wrong: every task's own gold answer scores as
    it does in reasoning-gym (1.0 where the task has a gold)."""
    probs, _ = rg_problems()
    with_gold = [p for p in probs if p.gold not in (None, "")]
    grades = grade_answers([(p, p.gold) for p in with_gold])
    wrong = [(p.source, g) for p, g in zip(with_gold, grades) if g.correct is not True]
    assert wrong == []


def test_runaway_scoring_is_killed_and_the_batch_goes_on():
    """CPU limit (SIGXCPU), wall-clock limit (killed by the parent): that answer gets an error,
    the worker is replaced, the next answers are still scored. (The answer is a power tower that
    the pre-screen in answers.py would refuse; sent to the worker directly it must be stopped.)"""
    bomb = {"kind": "math", "gold": "\\frac{1}{2}", "answer": "9^{9^{9^{9}}}"}
    fine = {"kind": "math", "gold": "2", "answer": "\\frac{4}{2}"}
    for limits, reason in ((SandboxLimits(cpu_s=1, wall_s=60, math_timeout_s=600), "CPU time limit"),
                           (SandboxLimits(cpu_s=60, wall_s=1, math_timeout_s=600), "longer than 1 s")):
        box = Sandbox(limits, max_workers=1)
        try:
            t0 = time.perf_counter()
            res = box.run([fine, bomb, fine])
            assert time.perf_counter() - t0 < 30
            assert res[0].value is True and res[2].value is True
            assert res[1].error is not None and reason in res[1].error, res[1]
            assert box.restarts == 1
        finally:
            box.close()


def test_power_towers_and_huge_numbers_are_refused_fast():
    math_gold = Problem.make("q", "\\frac{1}{2}", answer_type="math")
    rg = load_task("reasoning_gym:countdown", size=1, seed=0)[0]
    t0 = time.perf_counter()
    for ans in ("9^{9^{9^{9}}}", "9**9**9**9", "2^{99999999}", "10^{10^{10}}", "99999999!", "1" * 5000):
        g = grade_answers([(math_gold, ans)])[0]
        assert g.correct is None and g.error, (ans, g)
    assert grade_answers([(rg, "9**9**9**9")])[0].error
    assert time.perf_counter() - t0 < 2  # refused before any scorer runs
    # ordinary powers still go through
    assert check_answer(Problem.make("q", "1024", answer_type="math"), "2^{10}") is True
    assert check_answer(Problem.make("q", "e^{x^2}", answer_type="math"), "e^{x^{2}}") is True


def test_the_issue_reproduction_from_the_cli(tmp_path, capsys):
    """`rationales run reasoning_gym:spiral_matrix --backend fake --model script.json -n 1 -k 1`
    with a model that answers with code created the file (issue 9); and poison answers (400
    digits, a power tower) are stored as outcomes and never stop the run or its rerun."""
    import json

    from rationales.cli import main
    from rationales.store import Store

    target = tmp_path / "pwned"
    for task in ("spiral_matrix", "countdown", "puzzle24", "polynomial_multiplication", "n_queens",
                 "string_insertion", "binary_matrix"):
        script = tmp_path / "s.json"
        script.write_text(json.dumps({"*": [f'The answer is __import__("os").system("touch {target}")']}))
        args = ["run", f"reasoning_gym:{task}", "--backend", "fake", "--model", str(script), "-n", "1", "-k", "1",
                "--store", str(tmp_path / "rg.sqlite"), "--out", str(tmp_path / "out"), "--json"]
        assert main(args) == 0, capsys.readouterr().err
    assert not target.exists()
    script = tmp_path / "poison.json"
    script.write_text(json.dumps({"apples": ["The answer is " + "9" * 400], "*": ["So \\boxed{9^{9^{9^{9}}}}"]}))
    task = tmp_path / "t.jsonl"
    task.write_text(json.dumps({"question": "How many apples?", "answer": "12"}) + "\n"
                    + json.dumps({"question": "Half of one?", "answer": "\\frac{1}{2}"}) + "\n")
    args = ["run", str(task), "--backend", "fake", "--model", str(script), "-n", "2", "-k", "3",
            "--store", str(tmp_path / "p.sqlite"), "--out", str(tmp_path / "out"), "--json"]
    t0 = time.perf_counter()
    assert main(args) == 0 and main(args) == 0, capsys.readouterr().err
    assert time.perf_counter() - t0 < 60
    with Store(tmp_path / "p.sqlite") as s:
        rs = s.rationales()
    assert {r.outcome for r in rs} <= {"ok", "error"} and any(r.outcome == "error" for r in rs)
    assert all("power" in r.meta["error"] for r in rs if r.outcome == "error")
    assert any(r.answer == "9" * 400 and r.correct is False for r in rs)
