"""The training losses on hand-made numbers, and the config validation."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from rationales.train.base import TrainConfigError  # noqa: E402


def t(*xs):
    return torch.tensor(xs, dtype=torch.float32)


def test_qcrd_loss_hand_checked():
    from rationales.train.qcrd import qcrd_loss

    # positives: w*CE = (0.5*2, 0.9*1) = (1.0, 0.9) -> min 0.9
    # negatives: hinge = (3-1, max(0, 3-4)) = (2, 0); w*hinge = (1.6, 0) -> mean 0.8
    loss = qcrd_loss(t(2.0, 1.0), t(0.5, 0.9), t(1.0, 4.0), t(0.8, 0.5))
    assert loss.item() == pytest.approx(0.5 * 0.9 + 0.5 * 0.8)  # 0.85
    # the negative weight decays: iteration 3 scales it by 0.9**2 = 0.81
    loss3 = qcrd_loss(t(2.0, 1.0), t(0.5, 0.9), t(1.0, 4.0), t(0.8, 0.5), neg_scale=0.9 ** 2)
    assert loss3.item() == pytest.approx(0.45 + 0.5 * 0.81 * 0.8)
    # no negatives: the imitation term alone; other alphas and margin
    assert qcrd_loss(t(2.0, 1.0), t(0.5, 0.9)).item() == pytest.approx(0.45)
    assert qcrd_loss(t(2.0), t(1.0), t(0.5), t(1.0), alpha1=1.0, alpha2=2.0, delta=1.0).item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        qcrd_loss(t(), t())


def test_qcrd_loss_gradients_push_negatives_up_and_positive_down():
    from rationales.train.qcrd import qcrd_loss

    pos = t(2.0, 1.0).requires_grad_()
    neg = t(1.0, 4.0).requires_grad_()
    qcrd_loss(pos, t(0.5, 0.9), neg, t(0.8, 0.5)).backward()
    assert pos.grad.tolist() == pytest.approx([0.0, 0.45])  # only the min positive gets gradient (0.5 * 0.9)
    assert neg.grad.tolist() == pytest.approx([-0.2, 0.0])  # -0.5 * 0.8 / 2; the negative past the margin: none


def test_sequence_ce_and_entropy_hand_checked():
    from rationales.train.pinto import answer_entropy, pinto_loss, token_entropy
    from rationales.train.qcrd import sequence_ce

    V = 4
    logits = torch.zeros(1, 3, V)  # uniform everywhere: CE = entropy = log 4 at every position
    labels = torch.tensor([[-100, 1, 2]])
    assert sequence_ce(logits, labels).item() == pytest.approx(math.log(4))
    assert answer_entropy(logits, labels).item() == pytest.approx(math.log(4))
    peaked = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, 100.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    # position 1 predicts label 2 (shift) with a peaked distribution on token 1: CE large, entropy ~0
    lab = torch.tensor([[-100, -100, 2]])
    assert sequence_ce(peaked, lab).item() == pytest.approx(100.0, abs=1e-3)
    assert answer_entropy(peaked, lab).item() == pytest.approx(0.0, abs=1e-6)
    assert token_entropy(torch.log(t(0.5, 0.5))).item() == pytest.approx(math.log(2))
    # PINTO: 2.0 - 0.5 * mean(1, 3) = 1.0
    assert pinto_loss(t(2.0)[0], t(1.0, 3.0), beta=0.5).item() == pytest.approx(1.0)
    assert pinto_loss(t(2.0)[0], t(), beta=0.5).item() == pytest.approx(2.0)


def test_discriminator_learns_quality_online():
    from rationales.train.qcrd import Discriminator

    g = torch.Generator().manual_seed(0)
    d = Discriminator(8, lr=1.0)
    good = torch.nn.functional.normalize(torch.randn(16, 8, generator=g) + 2.0, dim=-1)
    bad = torch.nn.functional.normalize(torch.randn(16, 8, generator=g) - 2.0, dim=-1)
    assert d.score(good).mean().item() == pytest.approx(0.5)
    feats, labels = torch.cat([good, bad]), torch.cat([torch.ones(16), torch.zeros(16)])
    for _ in range(50):
        d.update(feats, labels)
    assert d.score(good).min().item() > 0.7 and d.score(bad).max().item() < 0.3
    e = Discriminator(8, lr=1.0)
    e.load(d.state())
    assert torch.equal(e.score(good), d.score(good)) and e.updates == 50


@pytest.mark.parametrize("kwargs, needle", [
    ({"lr": 0.0}, "lr"), ({"lr": float("nan")}, "lr"), ({"batch_size": 0}, "batch_size"),
    ({"max_steps": 0}, "max_steps"), ({"epochs": -1.0}, "epochs"), ({"save_steps": 0}, "save_steps"),
    ({"data": ""}, "data"), ({"style": "chat"}, "style"), ({"test_fraction": 1.0}, "test_fraction"),
])
def test_configs_reject_bad_values(kwargs, needle):
    from rationales.train.sft import SFTTrainConfig

    base = {"data": "x.sqlite"}
    with pytest.raises(TrainConfigError, match=needle):
        SFTTrainConfig(**{**base, **kwargs})


def test_method_configs_validate_their_own_fields():
    from rationales.train.dpo import DPOTrainConfig
    from rationales.train.pinto import PINTOTrainConfig
    from rationales.train.qcrd import QCRDTrainConfig

    assert DPOTrainConfig(data="x", pairs="outcome,sibling").pairs == ["outcome", "sibling"]
    with pytest.raises(TrainConfigError, match="pairs"):
        DPOTrainConfig(data="x", pairs=["outcomes"])
    with pytest.raises(TrainConfigError, match="beta"):
        DPOTrainConfig(data="x", beta=0)
    q = QCRDTrainConfig(data="x")
    assert (q.alpha1, q.alpha2, q.delta, q.neg_decay, q.lag, q.student_temperature, q.max_positives) == \
        (0.5, 0.5, 3.0, 0.9, 5, 1.5, 5)
    with pytest.raises(TrainConfigError, match="neg_decay"):
        QCRDTrainConfig(data="x", neg_decay=1.5)
    with pytest.raises(TrainConfigError, match="mask_ratio"):
        PINTOTrainConfig(data="x", mask_ratio=1.0)


def test_cli_options_are_the_config_fields():
    """One source of truth: every config field is a CLI option with the field's default."""
    import dataclasses

    from rationales.cli.train_sft import config_parameters
    from rationales.train.dpo import DPOTrainConfig
    from rationales.train.pinto import PINTOTrainConfig
    from rationales.train.qcrd import QCRDTrainConfig
    from rationales.train.sft import SFTTrainConfig

    for cls in (SFTTrainConfig, DPOTrainConfig, QCRDTrainConfig, PINTOTrainConfig):
        params = {p.name: p for p in config_parameters(cls)}
        names = {f.name for f in dataclasses.fields(cls)} - {"progress"}
        assert set(params) == names | {"json_out"}
        for f in dataclasses.fields(cls):
            if f.name in ("progress", "data"):
                continue
            default = f.default if f.default is not dataclasses.MISSING else ",".join(f.default_factory())
            assert params[f.name].default.default == default, (cls.__name__, f.name)
            assert params[f.name].default.help.startswith(f.metadata["help"][:20])


def test_drop_bare_positives_keeps_weights_aligned():
    from rationales.train.qcrd import drop_bare_positives

    rows = [{"prompt": "q", "positives": ["The answer is 4.", "2 + 2 = 4.\nThe answer is 4.", "\\boxed{4}"],
             "positive_weights": [0.9, 0.6, 0.3], "negatives": ["The answer is 5."], "negative_weights": [0.1]},
            {"prompt": "r", "positives": ["The answer is 1."], "negatives": []}]
    out, dropped = drop_bare_positives(rows)
    assert dropped == 3
    assert out[0]["positives"] == ["2 + 2 = 4.\nThe answer is 4."] and out[0]["positive_weights"] == [0.6]
    assert out[0]["negatives"] == ["The answer is 5."]  # negatives are untouched
    assert out[1]["positives"] == [] and rows[0]["positives"][0] == "The answer is 4."  # input not mutated


def test_qcrd_min_over_positives_puts_all_imitation_on_the_lowest_ce_one():
    """Why a bare answer among the positives matters: the imitation term's gradient goes to the
    argmin positive only. Hand-checked: CE (1.23 bare, 1.70, 1.55), w 0.5 each -> loss 0.5 * 0.5 *
    1.23 = 0.3075, gradient (0.25, 0, 0)."""
    import torch

    from rationales.train.qcrd import qcrd_loss

    ce = torch.tensor([1.23, 1.70, 1.55], requires_grad=True)
    loss = qcrd_loss(ce, torch.full((3,), 0.5))
    loss.backward()
    assert loss.item() == pytest.approx(0.3075)
    assert ce.grad.tolist() == pytest.approx([0.25, 0.0, 0.0])
