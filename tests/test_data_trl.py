"""The exported files work unchanged with TRL: load each with ``datasets.load_dataset`` and run one
optimisation step of TRL's own SFTTrainer / DPOTrainer on a tiny model made in code."""

from __future__ import annotations

import copy

import pytest

pytest.importorskip("trl")

from test_data_builders import make_training_store  # noqa: E402

from rationales.data.export import export_dataset  # noqa: E402
from rationales.data.filters import DataFilter  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _step_changes_weights(trainer, model) -> bool:
    before = [p.detach().clone() for p in model.parameters()]
    out = trainer.train()
    assert trainer.state.global_step == 1 and out.training_loss == out.training_loss  # one step, finite loss
    return any(not (a == b.detach()).all() for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("layout, style", [("messages", "conversational"), ("prompt_completion", "conversational"),
                                           ("prompt_completion", "standard")])
def test_sft_file_trains_with_trl_sfttrainer(store, tmp_path, layout, style):
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    from rationales.train.models import tiny_model

    make_training_store(store)
    path = tmp_path / "sft.jsonl"
    export_dataset(store, path, "sft", DataFilter(split="all", correct_only=True), layout=layout, style=style)
    ds = load_dataset("json", data_files=str(path), split="train")
    model, tok = tiny_model()
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                     use_cpu=True, save_strategy="no", disable_tqdm=True, max_length=256, learning_rate=1e-2)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    assert _step_changes_weights(trainer, model)


@pytest.mark.parametrize("suffix, loader", [(".jsonl", "json"), (".parquet", "parquet")])
def test_dpo_file_trains_with_trl_dpotrainer(store, tmp_path, suffix, loader):
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer

    from rationales.train.models import tiny_model

    make_training_store(store)
    path = tmp_path / f"dpo{suffix}"
    n, _ = export_dataset(store, path, "dpo", DataFilter(split="all"),
                          pair_sources=("outcome", "step_controlled", "sibling"))
    ds = load_dataset(loader, data_files=str(path), split="train")
    assert len(ds) == n == 8
    model, tok = tiny_model()
    args = DPOConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                     use_cpu=True, save_strategy="no", disable_tqdm=True, max_length=256, learning_rate=1e-2)
    trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=ds,
                         processing_class=tok)
    assert _step_changes_weights(trainer, model)
