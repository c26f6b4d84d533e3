"""Step checks end to end on the real embedded model (SmolLM2-135M-Instruct, in process):
tool + Monte-Carlo + LLM-PRM + generative PRM on real rationales, `rationales verify`, and a
PRM as ProcessBench detector. Small limits: each test runs in seconds on 2 cores."""

from __future__ import annotations

import json
import math

import pytest

from rationales.generate import cot_specs, generate
from rationales.prompts import render
from rationales.verify.consensus import consensus_labels
from rationales.verify.mc import mc_labels
from rationales.verify.genprm import GenerativePRM
from rationales.verify.prm import LLMPRM, prm_checks, prompt_text
from rationales.store import Store
from rationales.tasks import load_task
from rationales.verify.arithmetic import Context, check_rationale, find_claims
from rationales.verify.processbench import build_from_gsm_symbolic, evaluate_step_detector

pytestmark = pytest.mark.model


def real_rationales(backend, store, n=2, max_tokens=96):
    problems = load_task("demo", limit=1)
    rs = generate(cot_specs(problems, n=n, max_tokens=max_tokens), backend, store)[0]
    return problems, rs


def test_tool_mc_prm_on_real_rationales(small_model, tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        problems, rs = real_rationales(small_model, store)
        assert all(r.steps for r in rs)
        for r in rs:
            check_rationale(r)
            ctx = Context()  # named quantities carry from step to step, as in check_rationale
            for s in r.steps:  # a tool verdict exactly where the step has a readable claim
                claims = find_claims(s.text, context=ctx)
                ctx.next_step()
                assert (s.verdict("tool") is None) == (not claims)
                assert not any(t.strip() in ("\\[", "\\]", "$$", "```") for t in s.text.split("\n")[:1])
                if claims:
                    assert s.verdict("tool") == (1 if all(c.ok for c in claims) else -1)
                    assert s.checks[-1].detail["why"]

        mc_labels(problems, rs, small_model, store, n=2, max_tokens=48)
        rollouts = store.rationales(method="mc_rollout")
        assert len(rollouts) == sum(2 * (len(r.steps) - 1) for r in rs)
        assert {x.parent_id for x in rollouts} <= {r.id for r in rs}  # linked to their rationale
        for r in rs:
            for s in r.steps:
                mc = [c for c in s.checks if c.kind == "mc"][-1]
                assert mc.score in (0.0, 0.5, 1.0) and mc.verdict == (1 if mc.score > 0 else -1)
            assert r.steps[-1].verdict("mc") == (1 if r.correct else -1)
        n_rows = store.count()
        mc_labels(problems, rs, small_model, store, n=2, max_tokens=48)
        assert store.count() == n_rows  # second pass: all from the store

        prm = LLMPRM(small_model)
        prm_checks(prm, problems, rs)
        r = rs[0]
        # the reward really is P(+)/(P(+)+P(-)) of the model on the judge prompt
        text = prompt_text(small_model, render("prm_judge", question=problems[0].question, previous=[],
                                               step=r.steps[0].text, index=0))
        plus, minus = small_model.logprobs(text, ["+", "-"])
        expected = math.exp(plus.logprob) / (math.exp(plus.logprob) + math.exp(minus.logprob))
        got = [c for c in r.steps[0].checks if c.kind == "prm"][-1]
        assert got.score == pytest.approx(expected, rel=1e-6) and 0.0 < got.score < 1.0
        assert got.verdict == (1 if got.score >= 0.5 else -1)

        gen = GenerativePRM(small_model, store=store, max_tokens=48)
        prm_checks(gen, problems, rs[:1])
        assert gen.stats["parsed"] + gen.stats["failed"] == len(rs[0].steps)
        for s in rs[0].steps:
            c = [c for c in s.checks if c.by.startswith("genprm")][-1]
            assert (c.score is None) == ("failure" in c.detail) and c.score in (None, 0.0, 1.0)

        _, counts = consensus_labels(rs)
        assert counts["agree"] + counts["disagree"] + counts["single"] + counts["none"] == sum(len(r.steps) for r in rs)
        store.put_rationales(rs)
        assert store.conn.execute("SELECT COUNT(*) FROM checks WHERE kind='consensus'").fetchone()[0] == \
            sum(len(r.steps) for r in rs)


def test_verify_cli_on_real_model(small_model, tmp_path, capsys):
    from rationales.cli import main

    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        real_rationales(small_model, store, n=1, max_tokens=64)
    code = main(["verify", "--store", str(path), "--model", "smollm2-135m", "--checkers", "tool,prm",
                 "--out", str(tmp_path / "out"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    s = json.loads(out)
    assert s["backend"] == "llamacpp:smollm2-135m" and s["rationales"] == 1
    assert s["verdicts"]["prm"]["unchecked"] == 0 and s["verdicts"]["prm"]["undecided"] == 0
    assert (tmp_path / "out" / "verify.html").stat().st_size > 1000


def test_llm_prm_as_processbench_detector(small_model):
    items = build_from_gsm_symbolic(4, seed=1)
    scores = evaluate_step_detector(items, LLMPRM(small_model), threshold=0.5)
    assert (scores["n_error"], scores["n_correct"]) == (2, 2)
    assert all(-1 <= p < len(it.steps) for p, it in zip(scores["predicted"], items))
    assert scores["f1"] is None or 0.0 <= scores["f1"] <= 1.0
