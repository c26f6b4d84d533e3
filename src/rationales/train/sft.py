"""Supervised fine-tuning on stored rationales with TRL's ``SFTTrainer``.

Rationale distillation in its plain form (a student imitates a teacher's correct rationales;
Ho et al., 2023 "Large Language Models Are Reasoning Teachers"), and, with ``reduced=True``,
SFT on verbosity-reduced rationales (Jang et al., 2025, ``score.brevity``). From a store, rows
are ``prompt``/``completion`` (loss on the rationale only); an exported file is used unchanged
(``messages``, ``prompt``/``completion`` or ``text``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import (DatasetTrainConfig, TrainConfigError, TrainResult, load_training_rows, opt, require_columns,
                   train_and_save)

SFT_COLUMNS = [("prompt", "completion"), ("messages",), ("text",)]


@dataclass
class SFTTrainConfig(DatasetTrainConfig):
    layout: str = opt("prompt_completion", "Store data: prompt_completion (loss on the rationale only) or "
                                           "messages (loss on the whole conversation).")
    reduced: bool = opt(False, "Store data: train on the stored verbosity-reduced rationales (`run --method brevity`).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layout not in ("prompt_completion", "messages"):
            raise TrainConfigError(f"layout must be prompt_completion or messages, got '{self.layout}'.")


def _keep(rows: list[dict[str, Any]], cols: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{c: r[c] for c in cols} for r in rows]


def train_sft(cfg: SFTTrainConfig, *, callbacks: list[Any] | None = None) -> TrainResult:
    """Fine-tune ``cfg.model`` on ``cfg.data``; see the module doc. Resumes from the last checkpoint."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from .models import apply_lora, load_base_model

    rows, held, prov = load_training_rows(cfg, "sft", {"layout": cfg.layout, "reduced": cfg.reduced})
    cols = require_columns(rows, SFT_COLUMNS, "sft", cfg.data)
    model, tok, info = load_base_model(cfg.model, seed=cfg.seed)
    if cfg.lora:
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha)
    args = cfg.training_arguments(args_class=SFTConfig, max_length=cfg.max_length, packing=False,
                                  dataset_num_proc=None, eval_strategy="no",
                                  per_device_eval_batch_size=cfg.batch_size)
    train_ds = Dataset.from_list(_keep(rows, cols))
    eval_ds = Dataset.from_list(_keep(held, cols)) if held and all(set(cols) <= set(r) for r in held) else None
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tok,
                         callbacks=callbacks)
    extra = {"held_out_rows": len(held)}
    if "reduction" in prov:
        extra["reduction"] = prov["reduction"]
    return train_and_save(trainer, cfg, "sft", tok, prov, info, examples=len(rows), evaluate=eval_ds is not None,
                          extra_metrics=extra)
