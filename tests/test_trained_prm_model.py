"""The probe PRM on the real small model: hidden states from llama.cpp at step ends, a head
trained on a handful of labelled steps, then scoring real rationales by path."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.model

from rationales.records import Check, Problem, Rationale  # noqa: E402
from rationales.steps import segment  # noqa: E402
from rationales.store import Store  # noqa: E402

RIGHT = ["2 + 3 = 5", "5 * 2 = 10", "The answer is 10."]
WRONG = ["2 + 3 = 6", "6 * 2 = 12", "The answer is 12."]


@pytest.fixture(scope="module")
def backend():
    from rationales.backends.base import get_backend

    return get_backend("llamacpp", model="smollm2-135m", n_ctx=1024)


def test_step_states_match_a_fresh_forward_pass_and_reuse_the_prompt(backend):
    import numpy as np

    from rationales.verify.trained_prm import StepStates

    st = StepStates(backend, n_ctx=1024)
    prompt = backend.render([{"role": "user", "content": "What is (2 + 3) * 2?"}])
    x1, rows = st.step_states(prompt, ["2 + 3 = 5\n", "5 * 2 = 10"])
    assert x1.shape == (2, st.n_embd) and rows == [0, 1] and np.isfinite(x1).all()
    used = st.tokens_evaluated
    x2, _ = st.step_states(prompt, ["2 + 3 = 5\n", "5 * 2 = 11"])  # shares prompt + first step
    assert st.tokens_evaluated - used < 8  # only the changed tail was evaluated
    assert np.allclose(x1[0], x2[0], atol=1e-3) and not np.allclose(x1[1], x2[1], atol=1e-3)
    fresh = StepStates(backend, n_ctx=1024)
    x3, _ = fresh.step_states(prompt, ["2 + 3 = 5\n", "5 * 2 = 11"])
    assert np.allclose(x2, x3, atol=1e-3)  # the cached prefix gives the same states as a fresh pass


def test_probe_prm_trains_on_a_few_steps_and_scores_real_rationales(tmp_path, backend):
    from rationales.train.prm import PRMConfig
    from rationales.train.probe import train_probe
    from rationales.verify.trained_prm import load_prm

    store = Store(tmp_path / "s.sqlite")
    for i in range(6):
        p = Problem.make(f"What is ({2 + i} + 3) * 2?", 2 * (5 + i), source="hand")
        store.put_problems([p])
        for j, lines in enumerate([RIGHT, WRONG]):
            text = "\n".join(lines)
            r = Rationale(id=f"r{i}{j}", problem_id=p.id, prompt_id="x", model="m", text=text,
                          steps=segment(text, "lines"))
            for s in r.steps:
                s.checks.append(Check(kind="tool", by="hand", verdict=1 if j == 0 else -1))
            store.put_rationale(r)
    store.close()
    cfg = PRMConfig(kind="probe", model="smollm2-135m", data=str(tmp_path / "s.sqlite"), label_source="tool",
                    output_dir=str(tmp_path / "probe"), lr=1e-2, progress=False, val_fraction=0.0, n_ctx=1024)
    res = train_probe(cfg, backend=backend)
    assert res.metrics["train"]["auroc"] > 0.9 and res.metrics["feature_tokens"] > 0
    card = json.loads((tmp_path / "probe" / "model_card.json").read_text())
    assert card["prm"]["kind"] == "probe" and card["prm"]["feature_model"] == backend.model
    prm = load_prm(tmp_path / "probe", backend=backend)
    p = Problem.make("What is (9 + 3) * 2?", 24, source="hand")
    good = "\n".join(["9 + 3 = 12", "12 * 2 = 24", "The answer is 24."])
    bad = "\n".join(["9 + 3 = 13", "13 * 2 = 26", "The answer is 26."])
    rs = [Rationale(id=k, problem_id=p.id, prompt_id="x", model="m", text=t, steps=segment(t, "lines"))
          for k, t in (("g", good), ("b", bad))]
    g, b = prm.score([p, p], rs)
    assert len(g) == 3 and all(0.0 <= x <= 1.0 for x in g + b)
    assert sum(g) > sum(b)  # unseen numbers, same kind of slip
