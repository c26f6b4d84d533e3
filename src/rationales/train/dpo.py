"""Direct preference optimisation on rationale pairs with TRL's ``DPOTrainer``.

Pairs (``data.dpo``): correct vs wrong rationale of one problem, Step-Controlled DPO pairs (Lu
et al., 2024) and sibling steps of GroundedPRM trees. The reference model is passed explicitly
(a frozen copy of the starting model; TRL 1.16 cannot rebuild one for a model made in code); with
LoRA the reference is the base model with the adapters disabled, as TRL does for peft models.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .base import (DatasetTrainConfig, TrainConfigError, TrainResult, load_training_rows, opt, require_columns,
                   train_and_save)

DPO_COLUMNS = [("prompt", "chosen", "rejected")]


@dataclass
class DPOTrainConfig(DatasetTrainConfig):
    beta: float = opt(0.1, "DPO beta (strength of the KL anchor to the reference model).")
    pairs: list[str] = field(default_factory=lambda: ["outcome"],
                             metadata={"help": "Store data: pair sources, any of outcome, step_controlled, sibling."})
    max_pairs_per_problem: int = opt(4, "Store data: at most this many outcome pairs per problem.")
    correct_only: bool = opt(False, "Store data: (pairs take their wrong side from every candidate anyway).")

    def __post_init__(self) -> None:
        super().__post_init__()
        from ..data.dpo import SOURCES

        if not (self.beta > 0 and self.beta < 100):
            raise TrainConfigError(f"beta must be in (0, 100), got {self.beta}.")
        if isinstance(self.pairs, str):
            self.pairs = [p.strip() for p in self.pairs.split(",") if p.strip()]
        bad = [p for p in self.pairs if p not in SOURCES]
        if bad or not self.pairs:
            raise TrainConfigError(f"pairs must be a list of {', '.join(SOURCES)}; got {self.pairs}.")
        if self.max_pairs_per_problem < 1:
            raise TrainConfigError(f"max_pairs_per_problem must be >= 1, got {self.max_pairs_per_problem}.")


def train_dpo(cfg: DPOTrainConfig, *, callbacks: list[Any] | None = None) -> TrainResult:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from .models import apply_lora, load_base_model

    rows, held, prov = load_training_rows(cfg, "dpo", {"pair_sources": tuple(cfg.pairs),
                                                       "max_pairs_per_problem": cfg.max_pairs_per_problem})
    cols = require_columns(rows, DPO_COLUMNS, "dpo", cfg.data)
    model, tok, info = load_base_model(cfg.model, seed=cfg.seed)
    ref = None
    if cfg.lora:
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha)
    else:
        ref = copy.deepcopy(model)
        ref.eval()
    args = cfg.training_arguments(args_class=DPOConfig, beta=cfg.beta, max_length=cfg.max_length,
                                  eval_strategy="no", per_device_eval_batch_size=cfg.batch_size)
    keep = [{c: r[c] for c in cols} for r in rows]
    held_keep = [{c: r[c] for c in cols} for r in held if set(cols) <= set(r)]
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(keep),
                         eval_dataset=Dataset.from_list(held_keep) if held_keep else None, processing_class=tok,
                         callbacks=callbacks)
    return train_and_save(trainer, cfg, "dpo", tok, prov, info, examples=len(rows), evaluate=bool(held_keep),
                          extra_metrics={"held_out_pairs": len(held_keep), "pairs": prov.get("pairs")})
