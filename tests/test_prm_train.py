"""PRM training: the per-step head and its loss on hand-made data, the probe head, a tiny
discriminative PRM trained in seconds and loaded back as a step scorer."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from rationales.records import Check, Problem, Rationale, Step  # noqa: E402
from rationales.store import Store  # noqa: E402
from rationales.train.prm import PRMConfig, encode_row, step_loss, targets  # noqa: E402


def test_step_loss_hard_is_cross_entropy_at_labelled_step_ends_only():
    # one sequence of 4 tokens; step ends at positions 1 (label +) and 3 (label -); position 2 unlabelled
    logits = torch.tensor([[[5.0, -5.0], [0.0, math.log(3.0)], [9.0, -9.0], [math.log(4.0), 0.0]]])
    hard = torch.tensor([[-1, 1, -1, 0]])
    soft = torch.zeros(1, 4)
    mask = torch.tensor([[0, 1, 0, 1]])
    # P(+) at pos 1 = 3/4 -> -log 0.75; P(-) at pos 3 = 4/5 -> -log 0.8
    want = (-math.log(0.75) - math.log(0.8)) / 2
    assert step_loss(logits, hard, soft, mask, use_soft=False).item() == pytest.approx(want, rel=1e-5)
    # soft: BCE of P(+) against s: s=0.25 at pos 1, s=1.0 at pos 3 (P(+) = 1/5)
    soft = torch.tensor([[0.0, 0.25, 0.0, 1.0]])
    want_soft = (-(0.25 * math.log(0.75) + 0.75 * math.log(0.25)) - math.log(0.2)) / 2
    assert step_loss(logits, hard, soft, mask, use_soft=True).item() == pytest.approx(want_soft, rel=1e-5)
    # nothing labelled: zero loss that still backpropagates
    z = step_loss(logits.requires_grad_(), hard, soft, torch.zeros(1, 4), use_soft=False)
    assert z.item() == 0.0 and z.requires_grad


def test_unlabelled_steps_are_ignored_never_true():
    row = {"prompt": "q", "completions": ["a\n", "b\n", "c"], "labels": [True, None, False],
           "soft_labels": [0.75, None, 0.0]}
    assert targets(row, soft=False) == [1.0, None, 0.0]
    assert targets(row, soft=True) == [0.75, None, 0.0]
    from rationales.train.models import tiny_tokenizer

    enc = encode_row(tiny_tokenizer(), row, soft=True, max_length=512)
    ends = [i for i, m in enumerate(enc["step_mask"]) if m]
    assert len(ends) == 2  # the None step has no label position
    assert [enc["hard"][i] for i in ends] == [1, 0] and [enc["soft"][i] for i in ends] == [0.75, 0.0]
    assert all(h == -1 for i, h in enumerate(enc["hard"]) if i not in ends)


def test_probe_head_separates_hand_made_features():
    import numpy as np

    from rationales.train.probe import fit_head
    from rationales.verify.trained_prm import ProbeHead

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = (x[:, 2] - 0.5 * x[:, 5] > 0).astype(float)
    head = ProbeHead(fit_head(x, y, steps=300, lr=0.05))
    acc = ((head.prob(x) >= 0.5) == (y >= 0.5)).mean()
    assert acc > 0.95
    mlp = ProbeHead(fit_head(x, y, hidden=16, steps=300, lr=0.02))
    assert ((mlp.prob(x) >= 0.5) == (y >= 0.5)).mean() > 0.95


def test_cross_val_rewards_score_each_problem_by_a_head_that_never_saw_it():
    import numpy as np

    from rationales.train.prm import PRMConfig, PRMData
    from rationales.train.probe import _row_key, cross_val_rewards

    rng = np.random.default_rng(0)
    cfg = PRMConfig(kind="probe", model="m", data="unused.sqlite", output_dir="unused", lr=0.05)
    rows, cache = [], {}
    for i in range(30):  # 30 problems, one rationale of 4 steps each; label = sign of feature 3
        x = rng.normal(size=(4, 6))
        labels = [bool(v > 0) for v in x[:, 3]]
        row = {"prompt": f"q{i}", "completions": [f"s{k} of {i}" for k in range(4)], "labels": labels,
               "soft_labels": None, "problem_id": f"p{i}", "rationale_id": f"r{i}"}
        rows.append(row)
        cache[_row_key(row, cfg.template, "m")] = x.astype(np.float32)
    data = PRMData(rows=rows, train=list(range(25)), val=list(range(25, 30)), problems={}, provenance={})
    rewards, metrics = cross_val_rewards(cfg, data, cache, "m", folds=5)
    assert set(rewards) == {f"r{i}" for i in range(30)} and all(len(v) == 4 for v in rewards.values())
    assert metrics["steps"] == 120 and metrics["auroc"] > 0.95
    # a row's reward does not depend on its own label: flipping it leaves the reward unchanged
    rows[0]["labels"] = [not v for v in rows[0]["labels"]]
    again, _ = cross_val_rewards(cfg, data, cache, "m", folds=5)
    assert np.allclose(again["r0"], rewards["r0"])


def test_cross_val_rewards_score_only_rows_are_read_out_of_fold_but_never_fitted():
    import numpy as np

    from rationales.train.prm import PRMConfig, PRMData
    from rationales.train.probe import _row_key, cross_val_rewards

    rng = np.random.default_rng(1)
    cfg = PRMConfig(kind="probe", model="m", data="unused.sqlite", output_dir="unused", lr=0.05)
    rows, cache = [], {}
    for i in range(40):  # 20 problems, each: one path to fit on, one sample whose labels lie
        x = rng.normal(size=(4, 6))
        honest = [bool(v > 0) for v in x[:, 3]]
        kind = "path" if i < 20 else "sample"
        row = {"prompt": f"q{i}", "completions": [f"s{k} of {i}" for k in range(4)],
               "labels": honest if kind == "path" else [not v for v in honest], "soft_labels": None,
               "problem_id": f"p{i % 20}", "rationale_id": f"{kind}{i % 20}"}
        rows.append(row)
        cache[_row_key(row, cfg.template, "m")] = x.astype(np.float32)
    data = PRMData(rows=rows, train=list(range(20)), val=[], problems={}, provenance={})
    rewards, metrics = cross_val_rewards(cfg, data, cache, "m", folds=5, score_only=list(range(20, 40)))
    assert set(rewards) == {f"path{i}" for i in range(20)} | {f"sample{i}" for i in range(20)}
    assert metrics["steps"] == 80 and metrics["auroc"] > 0.9  # metrics over the fitted rows only
    # the lying labels were never fitted: the samples' rewards follow the honest rule
    xs = np.concatenate([cache[_row_key(rows[i], cfg.template, "m")] for i in range(20, 40)])
    got = np.concatenate([rewards[f"sample{i}"] for i in range(20)])
    assert ((got >= 0.5) == (xs[:, 3] > 0)).mean() > 0.9
    plain, _ = cross_val_rewards(cfg, data, cache, "m", folds=5)
    assert all(np.allclose(plain[f"path{i}"], rewards[f"path{i}"]) for i in range(20))


def _store_with_labels(tmp_path) -> str:
    """Rationales whose step labels follow one visible rule: a step is wrong iff it says 'bad'."""
    store = Store(tmp_path / "s.sqlite")
    import random

    rng = random.Random(0)
    for i in range(12):
        p = Problem.make(f"problem {i}: add {i} and {i}", 2 * i, source="hand")
        store.put_problems([p])
        for j in range(3):
            words = [rng.choice(["good", "bad"]) for _ in range(3)]
            text = "\n".join(f"{w} step {k}" for k, w in enumerate(words))
            steps, pos = [], 0
            for k, line in enumerate(text.split("\n")):
                steps.append(Step(index=k, text=line, span=(pos, pos + len(line)),
                                  checks=[Check(kind="mc", by="math-shepherd", verdict=-1 if "bad" in line else 1,
                                                score=0.0 if "bad" in line else 1.0)]))
                pos += len(line) + 1
            store.put_rationale(Rationale(id=f"r{i}-{j}", problem_id=p.id, prompt_id="x", model="m", text=text,
                                          steps=steps))
    store.close()
    return str(tmp_path / "s.sqlite")


@pytest.fixture
def tiny_prm(tmp_path):
    from rationales.train.prm import train_prm

    data = _store_with_labels(tmp_path)
    cfg = PRMConfig(kind="discriminative", model="tiny", data=data, output_dir=str(tmp_path / "prm"), epochs=30,
                    lr=3e-3, batch_size=8, save_steps=20, logging_steps=50, progress=False, val_fraction=0.25,
                    max_length=256)
    res = train_prm(cfg)
    return res, tmp_path / "prm"


def test_tiny_discriminative_prm_learns_and_scores_by_path(tiny_prm):
    from rationales.verify.trained_prm import load_prm

    res, path = tiny_prm
    card = json.loads((path / "model_card.json").read_text())
    assert card["method"] == "prm" and card["prm"]["kind"] == "discriminative"
    assert card["data"]["label_source"] == "mc" and card["data"]["train_rows"] > 0 and card["data"]["val_rows"] > 0
    assert res.metrics["val"]["auroc"] > 0.9  # the rule is learnable from the step text
    assert (path / "checkpoint-20").is_dir() or any(p.name.startswith("checkpoint-") for p in path.iterdir())
    prm = load_prm(path)
    p = Problem.make("new problem", 1, source="hand")
    text = "good step 0\nbad step 1"
    r = Rationale(id="t", problem_id=p.id, prompt_id="x", model="m", text=text,
                  steps=[Step(index=0, text="good step 0", span=(0, 11)), Step(index=1, text="bad step 1", span=(12, 22))])
    (good, bad), = prm.score([p], [r])
    assert good > 0.5 > bad
    assert prm.name.startswith("trained-prm:")


def test_bad_prm_paths_get_one_line_errors(tmp_path, tiny_prm):
    from rationales.verify.trained_prm import TrainedPRMError, load_prm

    with pytest.raises(TrainedPRMError, match="does not exist"):
        load_prm(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainedPRMError, match="not a trained PRM"):
        load_prm(tmp_path / "empty")
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "model_card.json").write_text(json.dumps({"method": "sft"}))
    with pytest.raises(TrainedPRMError, match="not a PRM"):
        load_prm(tmp_path / "sft")
    # a PRM whose tokenizer was swapped for another one
    _, path = tiny_prm
    card = json.loads((path / "model_card.json").read_text())
    card["prm"]["tokenizer"] = "0" * 16
    (path / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(TrainedPRMError, match="another tokenizer"):
        load_prm(path)


def test_no_labelled_steps_is_a_one_line_error(tmp_path):
    from rationales.train.base import TrainDataError
    from rationales.train.prm import train_prm

    data = _store_with_labels(tmp_path)
    cfg = PRMConfig(kind="discriminative", model="tiny", data=data, label_source="tool",
                    output_dir=str(tmp_path / "o"), progress=False)
    with pytest.raises(TrainDataError, match="No labelled steps.*'tool'"):
        train_prm(cfg)
    with pytest.raises(Exception, match="Unknown PRM kind"):
        PRMConfig(kind="bogus", data=data)


def test_generative_prm_examples_are_groundedprm_format_and_train(tmp_path):
    from rationales.train.genprm import completion_text, genprm_examples
    from rationales.train.prm import load_prm_data, train_prm
    from rationales.verify.genprm import parse_verdict

    good = completion_text("So 3 * 4 = 12 apples.", True)
    bad = completion_text("Then 12 - 5 = 8.", False)
    assert "<verify>3 * 4" in good and "holds" in good and good.endswith("<output>\\boxed{+}</output>")
    assert "is wrong" in bad and parse_verdict(bad) == (-1, "boxed") and parse_verdict(good) == (1, "boxed")
    data = _store_with_labels(tmp_path)
    cfg = PRMConfig(kind="generative", model="tiny", data=data, output_dir=str(tmp_path / "gen"), max_steps=2,
                    batch_size=4, save_steps=1, progress=False, val_fraction=0.0, max_length=512)
    d = load_prm_data(cfg)
    ex = genprm_examples(d, d.train)
    assert len(ex) == d.provenance["labelled_steps"]
    assert ex[1]["prompt"][-1]["content"].count("Earlier steps") == 1
    res = train_prm(cfg)
    card = json.loads((tmp_path / "gen" / "model_card.json").read_text())
    assert card["prm"]["kind"] == "generative" and res.steps == 2
    from rationales.verify.trained_prm import load_prm

    prm = load_prm(tmp_path / "gen")
    assert prm.kind == "generative"
