"""The self-rationalizing judge loop: one real DPO iteration on a tiny model made in code
(seconds), with judgments scripted on the fake backend so the pairs are known."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("trl")

from rationales.backends.fake import FakeBackend  # noqa: E402
from rationales.errors import RationalesError  # noqa: E402
from rationales.verify.judge import PairItem  # noqa: E402


def _items():
    train = [PairItem(f"What is {k}+1?", f"{k}+1 = {k + 1}", f"{k}+1 = {k + 2}", gold="A") for k in range(3)]
    test = [PairItem(f"What is {k}+2?", f"{k}+2 = {k + 3}", f"{k}+2 = {k + 2}", gold="B") for k in range(2)]
    return train, test


def _script(prompt, seed, index):
    # sample j has seed base + 7919 j: even seeds pick the first shown response, odd the second,
    # so with n=2 every item and order has one judgment matching gold and one not
    return f"Feedback: seed {seed} [RESULT] " + ("A" if seed % 2 == 0 else "B")


def test_one_dpo_iteration_on_a_tiny_model(tmp_path, store):
    import torch

    from rationales.train.judge import JudgeTrainConfig, train_judge
    from rationales.train.models import tiny_model

    torch.set_num_threads(1)
    model, tok = tiny_model(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    backends = []

    def factory(m, t, model_id):
        b = FakeBackend(script=_script, model=model_id)
        backends.append(b)
        return b

    cfg = JudgeTrainConfig(model="tiny", data=str(store.path), output_dir=str(tmp_path / "judge"), iterations=1,
                           n=2, eval_n=2, max_length=512, batch_size=2, lr=1e-3, progress=False, logging_steps=1,
                           free_eval=True, calibrate=True)
    train, test = _items()
    res = train_judge(cfg, store=store, train_items=train, test_items=test, model_and_tokenizer=(model, tok),
                      backend_factory=factory)
    it1 = res.iterations[1]
    # 3 items x 2 orders, each with one judgment matching gold and one not
    assert it1.pairs == 6 and it1.train_loss is not None and it1.metrics["dpo_steps"] >= 1
    assert len(it1.dpo_log) == it1.metrics["dpo_steps"] and all("rewards/margins" in r for r in it1.dpo_log)
    assert any(not torch.equal(before[k], v) for k, v in res_model_state(tmp_path / "judge").items())
    # baselines and every iteration are evaluated on the held-out items
    assert set(res.table()) == {"untrained", "untrained (calibrated)", "self-consistency@2", "best-of-2",
                                "iteration 1", "iteration 1 (calibrated)"}
    # calibrated: the same greedy judgments, decided by the verdict probabilities after each feedback
    for name in ("untrained", "iteration 1"):
        cal, plain = res.table()[f"{name} (calibrated)"], res.table()[name]
        assert cal["judgments"] == plain["judgments"] == 4 and cal["with_probs"] == 2
        assert 0.0 < cal["mean_p_first"] < 1.0 and "mean_p_first" not in plain
    assert res.table()["untrained"]["n"] == 2
    # the same judges without the grammar (free_eval), and the grammar sent to the sampling backend
    assert set(res.free) == {"untrained", "iteration 1"} and res.table()["untrained"]["constrained"]
    assert not res.free["untrained"]["constrained"]
    # judgments and pairs of the iteration are kept in the store
    (key, rows), = [(k, v) for k, v in store.blobs("judge_train_pairs")]
    assert len(rows) == 6 and {r["order"] for r in rows} == {"AB", "BA"}
    assert all(r["chosen_verdict"] == "A" for r in rows)
    assert store.blobs("judge_train_judgments")
    # the saved judge loads as a transformers backend model directory
    from rationales.backends.transformers import TransformersBackend

    b = TransformersBackend(model=str(tmp_path / "judge"))
    assert b.generate  # loads without error
    assert (tmp_path / "judge" / "model_card.json").is_file() and (tmp_path / "judge" / "iter-1").is_dir()

    # a second run resumes: the finished iteration's model is loaded, judgments come from the store
    n_before = sum(x.samples_generated for x in backends)
    res2 = train_judge(cfg, store=store, train_items=train, test_items=test, model_and_tokenizer=tiny_model(seed=0),
                       backend_factory=factory)
    assert sum(x.samples_generated for x in backends) == n_before
    assert res2.iterations[1].pairs == 6
    # ... and reports the loss and steps its DPO pass had
    assert (res2.iterations[1].train_loss, res2.iterations[1].metrics["dpo_steps"]) == (it1.train_loss,
                                                                                        it1.metrics["dpo_steps"])


def res_model_state(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).state_dict()


def test_no_pairs_is_a_clear_error(tmp_path, store):
    from rationales.train.judge import JudgeTrainConfig, train_judge
    from rationales.train.models import tiny_model

    cfg = JudgeTrainConfig(model="tiny", data=str(store.path), output_dir=str(tmp_path / "j"), iterations=1, n=2,
                           eval_n=0, progress=False)
    train, test = _items()
    with pytest.raises(RationalesError, match="no preference pairs"):
        train_judge(cfg, store=store, train_items=train, test_items=test, model_and_tokenizer=tiny_model(),
                    backend_factory=lambda m, t, mid: FakeBackend(script=["Feedback: same [RESULT] A"], model=mid))


def test_config_and_store_errors(tmp_path, store):
    from rationales.train.judge import JudgeTrainConfig, train_judge

    with pytest.raises(RationalesError):
        JudgeTrainConfig(n=1)
    with pytest.raises(RationalesError):
        JudgeTrainConfig(mode="ranking")
    with pytest.raises(RationalesError, match="Unknown rubric"):
        JudgeTrainConfig(rubric="nope")
    with pytest.raises(RationalesError, match="temperature"):
        JudgeTrainConfig(temperature=0.0)
    with pytest.raises(RationalesError, match="no problems with both"):
        train_judge(JudgeTrainConfig(model="tiny", data=str(store.path), output_dir=str(tmp_path / "x")), store=store)
    missing = tmp_path / "missing.sqlite"
    with pytest.raises(RationalesError, match="No store at"):
        train_judge(JudgeTrainConfig(model="tiny", data=str(missing), output_dir=str(tmp_path / "y")))
    assert not missing.exists()  # not created as an empty store


def test_cli_train_judge_bad_input(tmp_path):
    from rationales.cli import main

    assert main(["train", "judge", "--data", str(tmp_path / "empty.sqlite"), "--model", "tiny",
                 "--output-dir", str(tmp_path / "o")]) == 2
    assert main(["train", "judge", "--n", "1"]) == 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
