"""`rationales run` end to end on the real embedded model (SmolLM2-135M-Instruct, in process)."""

import json

import pytest

from rationales.cli import main
from rationales.jobs.run import RunConfig, run
from rationales.store import Store
from rationales.tasks import load_task
from rationales.report import write_report

pytestmark = pytest.mark.model


def test_pipeline_on_real_model_is_cached_on_rerun(small_model, tmp_path):
    problems = load_task("demo", limit=2)
    cfg = RunConfig(samples=3, max_tokens=96, out=str(tmp_path / "out"))
    with Store(tmp_path / "s.sqlite") as store:
        first = run(cfg, small_model, store, problems)
        write_report(first, cfg.out)
        assert first["samples_new"] == 8 and first["samples_cached"] == 0
        rs = store.rationales()
        assert len(rs) == 8 and all(r.model == small_model.model for r in rs)
        assert all(r.text.strip() for r in rs) and all(r.tokens > 0 for r in rs)
        sampled = [r for r in rs if r.sampling.temperature > 0]
        assert len({r.text for r in sampled}) > 1  # explicit distinct seeds -> different samples
        assert all(r.outcome in ("ok", "no_answer", "truncated") for r in rs)
        assert sum(first["outcomes"].values()) == 8
        second = run(cfg, small_model, store, problems)
        assert second["samples_new"] == 0 and second["samples_cached"] == 8
        assert second["strategies"] == first["strategies"]
    assert (tmp_path / "out" / "report.html").stat().st_size > 10_000


def test_cli_run_on_real_model(tmp_path, capsys):
    code = main(["run", "demo", "--model", "smollm2-135m", "-n", "2", "-k", "1", "--max-tokens", "64",
                 "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    s = json.loads(out)
    assert s["backend"] == "llamacpp" and s["samples_new"] == 3
    assert set(s["strategies"]) == {"greedy", "sample@1", "vote@2"}
    assert 0.0 <= s["strategies"]["vote@2"]["ci_low"] <= s["strategies"]["vote@2"]["ci_high"] <= 1.0
