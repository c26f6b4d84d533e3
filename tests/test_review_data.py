"""Store builder shared by the review tests (no tests here).

Rationales are generated through the real pipeline (``generate`` with the scripted fake
backend, real step segmentation, real answer checking) and tool-checked by the real
arithmetic checker; MC / PRM checks, a judge score, a search tree blob and a rationale full of
XSS payloads are added the way their producers store them.
"""

from __future__ import annotations

from pathlib import Path

from rationales.backends.fake import FakeBackend
from rationales.generate import cot_specs, generate
from rationales.records import Check, Problem, Rationale, Sampling, Score, content_hash
from rationales.steps import segment
from rationales.store import Store
from rationales.verify.arithmetic import check_rationale

XSS = ('<script>window.__pwned=1;alert("xss")</script>\n'
       '<img src=x onerror="window.__pwned=2;alert(2)">\n'
       '[click](javascript:alert(3)) <a href="javascript:window.__pwned=3">link</a>\n'
       '</textarea><script>window.__pwned=4</script>\n'
       '$\\text{<img src=y onerror=alert(5)>}$ and \\(x^2\\)\n'
       'The answer is <u>7</u>.')

APPLES = "Tom has 7 apples and buys 8 more. How many apples does he have?"
PENS = "A pen costs $3. How much do 4 pens cost?"
SQUARE = "What is $x^2$ when x = 3?"

OUTPUTS = {
    APPLES: ["1. Tom starts with 7 apples.\n2. He buys 8 more: 7 + 8 = 15.\n3. The answer is 15.",
             "1. Tom starts with 7 apples.\n2. He buys 8 more: 7 + 8 = 16.\n3. The answer is 16.",
             "1. 7 apples.\n2. 7 - 8 = -1.\n3. The answer is -1."],
    PENS: ["1. One pen costs $3.\n2. Four pens cost 4 x $3 = $12.\n3. The answer is 12.",
           "1. One pen costs $3.\n2. Four pens: 4 x 3 = 13.\n3. The answer is 13."],
    SQUARE: ["1. We compute \\(x^2 = 3^2\\).\n2. $3^2 = 9$ so \\[\\frac{18}{2} = 9\\]\n3. The answer is \\boxed{9}."],
}


def script(prompt: str, seed: int, index: int) -> str:
    for question, outs in OUTPUTS.items():
        if question in prompt:
            return outs[index % len(outs)]
    return "The answer is 0."


def build_store(path: Path) -> dict:
    """A store with 3 task problems (6 sampled rationales), one XSS rationale and a tree."""
    store = Store(path)
    problems = [Problem.make(APPLES, 15, source="demo"), Problem.make(PENS, 12, source="demo"),
                Problem.make(SQUARE, 9, source="maths")]
    store.put_problems(problems)
    specs = cot_specs(problems[:2], n=3, temperature=0.7) + cot_specs(problems[2:], n=1, temperature=0.0)
    out = generate(specs, FakeBackend(script=script, model="fake-model"), store)
    rationales = [r for rs in out for r in rs]
    for k, r in enumerate(rationales):
        check_rationale(r)
        if r.steps:
            last = r.steps[-1]
            last.checks.append(Check(kind="mc", by="math_shepherd", verdict=1 if r.correct else -1,
                                     score=1.0 if r.correct else 0.0))
            first = r.steps[0]
            first.checks.append(Check(kind="prm", by="fake-prm", verdict=1, score=0.9 - 0.1 * k))
        r.set_score(Score(kind="judge", value=float(1 + k % 5), by="fake-judge"))
    tree_key = "grounded_mcts:" + problems[0].id
    # the first sample is a path of the saved tree (nodes 1, 2, 4), labelled as select/tree.py does
    for step, node in zip(rationales[0].steps, (1, 2, 4)):
        step.checks.append(Check(kind="mc", by="grounded_mcts", verdict=1, score=0.5,
                                 detail={"in_tree": True, "node": node, "visits": 2}))
    rationales[0].set_score(Score(kind="grounded_reward", value=0.8, by="grounded_mcts", detail={"tree": tree_key}))
    store.put_rationales(rationales)
    run_id = store.start_run("run", {"task": "demo", "model": "fake-model", "samples": 3})
    store.finish_run(run_id, {"task": "demo", "model": "fake-model", "strategies": {"greedy": {"accuracy": 0.5}}})

    xp = Problem.make("Repeat the HTML <script>alert(0)</script> back", "7", source="xss")
    store.put_problems([xp])
    xr = Rationale(id=content_hash("xss", XSS), problem_id=xp.id, prompt_id="p", model="evil-model", method="cot",
                   sampling=Sampling(temperature=0.0), text=XSS, steps=segment(XSS), answer="<u>7</u>",
                   correct=False, tokens=40)
    check_rationale(xr)
    store.put_rationale(xr)

    tree_rs = [r for r in rationales if r.problem_id == problems[0].id][:2]
    tree = {"key": tree_key, "method": "grounded_mcts", "problem_id": problems[0].id,
            "question": APPLES, "gold": "15", "tokens": 99, "config": {}, "paths": [],
            "rationales": [r.id for r in tree_rs],
            "nodes": [{"id": 0, "parent": None, "depth": 0, "text": "", "visits": 4, "q": 0.2, "terminal": False},
                      {"id": 1, "parent": 0, "depth": 1, "text": "Tom starts with 7 apples.", "visits": 3,
                       "q": 0.5, "terminal": False, "check": None},
                      {"id": 2, "parent": 1, "depth": 2, "text": "He buys 8 more: 7 + 8 = 15.", "visits": 2,
                       "q": 1.0, "terminal": False,
                       "check": {"kind": "tool", "verdict": 1, "detail": {"expression": "7 + 8 = 15"}}},
                      {"id": 3, "parent": 1, "depth": 2, "text": "He buys 8 more: 7 + 8 = 16.", "visits": 1,
                       "q": -1.0, "terminal": False,
                       "check": {"kind": "tool", "verdict": -1, "detail": {"expression": "7 + 8 = 16"}}},
                      {"id": 4, "parent": 2, "depth": 3, "text": "The answer is 15.", "visits": 2, "q": 1.0,
                       "terminal": True, "answer": "15"},
                      {"id": 5, "parent": 0, "depth": 1, "text": "7 - 8 = -1 <script>x</script>", "visits": 1,
                       "q": -0.5, "terminal": False}]}
    store.put_blob(tree["key"], "mcts_tree", tree)
    store.close()
    by_problem = {}
    for r in rationales:
        by_problem.setdefault(r.problem_id, []).append(r.id)
    return {"problems": problems, "rationales": [r.id for r in rationales], "xss": xr.id,
            "by_problem": by_problem, "tree": tree["key"]}
