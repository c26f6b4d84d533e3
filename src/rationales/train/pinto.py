"""PINTO's counterfactual regularisation (Wang et al., 2023; papers.md "Recurring").

The reasoner is fine-tuned to answer from question + rationale (cross-entropy of the answer
statement given the intact rationale), plus a term that raises the entropy of its answer
distribution when the rationale is perturbed (masked or number-replaced, ``data.counterfactual``):

    loss = CE(answer | q, r)  -  beta * mean_k H(answer | q, r~_k)

H is the mean, over the answer statement's token positions (teacher-forced), of the entropy of
the next-token distribution; so a model that still states the same answer confidently from a
damaged rationale pays for it. ``beta`` = 0.1 by default (the paper's counterfactual weight is
a tuned hyper-parameter; the entropy term is bounded by log |V|).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .base import (DatasetTrainConfig, TrainConfigError, TrainResult, load_training_rows, opt, require_columns,
                   train_and_save)

PINTO_COLUMNS = [("prompt", "completion", "perturbed_prompts")]


def token_entropy(logits: Any) -> Any:
    """Entropy (nats) of softmax(logits) along the last axis."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def answer_entropy(logits: Any, labels: Any) -> Any:
    """Per sequence: mean entropy of the predictive distribution at the positions that predict a
    labelled token (causal shift), e.g. log V for uniform logits."""
    ent = token_entropy(logits[:, :-1, :])
    mask = (labels[:, 1:] != -100).float()
    return (ent * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def pinto_loss(ce: Any, perturbed_entropy: Any, beta: float = 0.1) -> Any:
    """CE(answer | intact) - beta * mean(H(answer | perturbed)). Hand-checked in the tests:
    ce 2.0, entropies (1.0, 3.0), beta 0.5 -> 2.0 - 0.5 * 2.0 = 1.0."""
    if perturbed_entropy.numel() == 0:
        return ce
    return ce - beta * perturbed_entropy.mean()


@dataclass
class PINTOTrainConfig(DatasetTrainConfig):
    beta: float = opt(0.1, "Weight of the counterfactual entropy term.")
    mask_ratio: float = opt(0.3, "Store data without probes: share of rationale tokens masked per perturbation.")
    n_masks: int = opt(2, "Store data without probes: masked copies per rationale.")
    max_perturbed: int = opt(3, "At most this many perturbed rationales per example.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not math.isfinite(self.beta) or self.beta < 0:
            raise TrainConfigError(f"beta must be a finite number >= 0, got {self.beta}.")
        if not 0 < self.mask_ratio < 1:
            raise TrainConfigError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}.")
        if self.n_masks < 0 or self.max_perturbed < 1:
            raise TrainConfigError("n_masks must be >= 0 and max_perturbed >= 1.")


class PINTOCollator:
    def __init__(self, tok: Any, max_length: int, max_perturbed: int):
        self.tok, self.max_length, self.max_perturbed = tok, max_length, max_perturbed

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        from .qcrd import encode

        seqs, group, intact = [], [], []
        for g, row in enumerate(rows):
            completion = row["completion"]
            text = completion[0]["content"] if isinstance(completion, list) else str(completion)
            for k, prompt in enumerate([row["prompt"]] + list(row["perturbed_prompts"])[:self.max_perturbed]):
                seqs.append(encode(self.tok, prompt, text, self.max_length))
                group.append(g), intact.append(k == 0)
        width = max(len(ids) for ids, _ in seqs)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (ids, lab) in enumerate(seqs):
            input_ids[i, :len(ids)], labels[i, :len(lab)], attn[i, :len(ids)] = (torch.tensor(ids),
                                                                                  torch.tensor(lab), 1)
        return {"input_ids": input_ids, "attention_mask": attn, "labels": labels, "group": torch.tensor(group),
                "intact": torch.tensor(intact)}


def evaluate_pinto(model: Any, tok: Any, rows: list[dict[str, Any]], max_length: int, max_perturbed: int,
                   batch_size: int = 2) -> dict[str, Any]:
    """Held-out metrics: answer CE from intact rationales, answer entropy from intact and from
    perturbed ones (PINTO wants the second entropy above the first)."""
    import torch

    from .qcrd import sequence_ce

    if not rows:
        return {}
    coll = PINTOCollator(tok, max_length, max_perturbed)
    ce_i, ent_i, ent_p = [], [], []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            b = coll(rows[i:i + batch_size])
            out = model(input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device))
            labels = b["labels"].to(device)
            ce, ent = sequence_ce(out.logits, labels).cpu(), answer_entropy(out.logits, labels).cpu()
            ce_i += ce[b["intact"]].tolist()
            ent_i += ent[b["intact"]].tolist()
            ent_p += ent[~b["intact"]].tolist()
    if was_training:
        model.train()
    m = {"eval_rows": len(rows), "eval_answer_ce": round(sum(ce_i) / len(ce_i), 4),
         "eval_entropy_intact": round(sum(ent_i) / len(ent_i), 4)}
    if ent_p:
        m["eval_entropy_perturbed"] = round(sum(ent_p) / len(ent_p), 4)
        m["eval_entropy_gap"] = round(m["eval_entropy_perturbed"] - m["eval_entropy_intact"], 4)
    return m


def _trainer_class() -> Any:
    from transformers import Trainer

    class PINTOTrainer(Trainer):
        def __init__(self, *a: Any, beta: float, **kw: Any):
            super().__init__(*a, **kw)
            self.beta = beta

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **_: Any) -> Any:
            import torch

            from .qcrd import sequence_ce

            group, intact, labels = inputs.pop("group"), inputs.pop("intact"), inputs.pop("labels")
            out = model(**inputs)
            ce = sequence_ce(out.logits, labels)
            ent = answer_entropy(out.logits, labels)
            losses = [pinto_loss(ce[(group == g) & intact].mean(), ent[(group == g) & ~intact], self.beta)
                      for g in torch.unique(group)]
            loss = torch.stack(losses).mean()
            return (loss, out) if return_outputs else loss

    return PINTOTrainer


def train_pinto(cfg: PINTOTrainConfig, *, callbacks: list[Any] | None = None) -> TrainResult:
    from datasets import Dataset

    from .models import apply_lora, load_base_model

    rows, held, prov = load_training_rows(cfg, "pinto", {"ratio": cfg.mask_ratio, "n_masks": cfg.n_masks})
    require_columns(rows, PINTO_COLUMNS, "pinto", cfg.data)
    model, tok, info = load_base_model(cfg.model, seed=cfg.seed)
    if cfg.lora:
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha)
    keep = ("prompt", "completion", "perturbed_prompts")
    args = cfg.training_arguments(remove_unused_columns=False)
    trainer = _trainer_class()(model=model, args=args, train_dataset=Dataset.from_list([{k: r[k] for k in keep}
                                                                                        for r in rows]),
                               data_collator=PINTOCollator(tok, cfg.max_length, cfg.max_perturbed), beta=cfg.beta,
                               callbacks=callbacks)
    held = [{k: r[k] for k in keep} for r in held if all(k in r for k in keep)]

    extra: dict[str, Any] = {"held_out_rows": len(held)}
    from transformers import TrainerCallback

    class EvalAtEnd(TrainerCallback):  # evaluated after training, on the held-out problems
        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            extra.update(evaluate_pinto(model, tok, held, cfg.max_length, cfg.max_perturbed))

    trainer.add_callback(EvalAtEnd())
    return train_and_save(trainer, cfg, "pinto", tok, prov, info, examples=len(rows), extra_metrics=extra)
