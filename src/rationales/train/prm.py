"""``rationales train prm``: process reward models from stored step labels.

One config (``PRMConfig``) for three kinds:

* ``discriminative`` (this module): a causal LM with a per-step head, i.e. token
  classification read at each step's last token - the stepwise format of TRL's old
  ``PRMTrainer`` (TRL <= 1.13; 1.16 has none), written on ``transformers.Trainer``. Hard labels
  train a 2-way cross-entropy at step ends; soft labels (Math-Shepherd's fraction of rollouts
  reaching the gold answer, GroundedPRM's (Q+1)/2) train a binary cross-entropy on the soft
  target P(+) = s. Unlabelled steps are masked out of the loss (a separate mask: the -100
  ignore index is never turned into a label). LoRA (peft) or full fine-tuning.
* ``generative`` (``train/genprm.py``): GroundedPRM's generative format by SFT (TRL).
* ``probe`` (``train/probe.py``): a logistic head on the frozen llama.cpp model's hidden
  states at step ends; minutes on 2 CPU cores.

Data: a store (``--data rationales.sqlite``: stepwise rows built with the label source and
filters below; with ``--split NAME`` only that recorded split's training problems) or a
stepwise ``.jsonl``/``.parquet`` file (``rationales export --format stepwise``). A share of the
training *problems* (``val_fraction``) is held out for the metrics in the model card.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UnknownNameError
from ..records import Problem, content_hash
from .base import TrainConfig, TrainConfigError, TrainDataError, TrainResult, last_checkpoint, opt, write_model_card

KINDS = ("probe", "discriminative", "generative")


@dataclass
class PRMConfig(TrainConfig):
    """Options of ``rationales train prm`` (all kinds)."""

    kind: str = opt("probe", "PRM kind: probe (head on the frozen GGUF model's hidden states; minutes on a CPU), "
                             "discriminative (LM + per-step head, transformers), generative (GroundedPRM format, SFT).")
    label_source: str = opt("mc", "Step labels: tool | mc (Math-Shepherd) | mc_tool (mc plus tool-wrong steps) | "
                                  "grounded (GroundedPRM trees) | consensus "
                                  "(MC and tool/judge agree, Qwen2.5-Math-PRM) | human.")
    soft: bool = opt(False, "Train on soft labels (MC fraction, (Q+1)/2) instead of hard ones.")
    strict: bool = opt(False, "Consensus: also drop steps that have an MC verdict but no tool/judge verdict.")
    task: str = opt("", "Store filter: problems of this task only (e.g. reasoning_gym:gsm_symbolic).")
    data_model: str = opt("", "Store filter: rationales of this model only.")
    data_method: str = opt("", "Store filter: rationales of this method only (default: all but internal ones).")
    split: str = opt("", "Name of a split recorded in the store: train on its training problems only.")
    val_fraction: float = opt(0.15, "Share of training problems held out for the model card's metrics (0: none).")
    template: str = opt("cot", "Probe: the prompt template the rationales were written with.")
    probe_hidden: int = opt(0, "Probe: 0 = logistic regression, N > 0 = an MLP with N hidden units.")
    l2: float = opt(1e-3, "Probe: L2 penalty on the head's weights.")
    n_ctx: int = opt(2048, "Probe: tokens of context (prompt + rationale) for the hidden states.")
    threshold: float = opt(0.5, "Reward at or above which a step's verdict is +1.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in KINDS:
            raise UnknownNameError("PRM kind", self.kind, KINDS)
        from ..data.labels import SOURCES

        if self.label_source not in SOURCES:
            raise UnknownNameError("label source", self.label_source, SOURCES)
        if not (isinstance(self.val_fraction, (int, float)) and 0.0 <= self.val_fraction < 0.9):
            raise TrainConfigError(f"val_fraction must be in [0, 0.9), got {self.val_fraction!r}.")
        if not (isinstance(self.threshold, (int, float)) and 0.0 < self.threshold < 1.0):
            raise TrainConfigError(f"threshold must be in (0, 1), got {self.threshold!r}.")
        if not isinstance(self.probe_hidden, int) or self.probe_hidden < 0:
            raise TrainConfigError(f"probe_hidden must be 0 or a positive integer, got {self.probe_hidden!r}.")
        if not (isinstance(self.l2, (int, float)) and math.isfinite(self.l2) and self.l2 >= 0):
            raise TrainConfigError(f"l2 must be a finite number >= 0, got {self.l2!r}.")
        if not isinstance(self.n_ctx, int) or self.n_ctx < 64:
            raise TrainConfigError(f"n_ctx must be an integer >= 64, got {self.n_ctx!r}.")
        if not str(self.data).strip():
            raise TrainConfigError("data is empty: pass a store (.sqlite) or a stepwise .jsonl/.parquet file.")


# ------------------------------------------------------------------ data


@dataclass
class PRMData:
    rows: list[dict[str, Any]]
    problems: dict[str, Problem]
    provenance: dict[str, Any]
    train: list[int]
    val: list[int]


def _side(problem_id: str, fraction: float, seed: int) -> str:
    u = int(content_hash("prm-val", seed, problem_id), 16) / float(16 ** 16)
    return "val" if u < fraction else "train"


def load_prm_data(cfg: PRMConfig) -> PRMData:
    """Stepwise rows and their problems from the store or a file, split train/val by problem."""
    from ..data.labels import LabelError
    from ..data.stepwise import read_stepwise, stepwise_rows

    path = Path(cfg.data).expanduser()
    problems: dict[str, Problem] = {}
    prov: dict[str, Any] = {"data": str(path), "label_source": cfg.label_source, "soft": cfg.soft}
    if path.suffix.lower() in (".sqlite", ".db", ".sqlite3"):
        if not path.is_file():
            raise TrainDataError(f"Store {path} does not exist; pass the store your rationales are in.")
        from ..store import Store

        with Store(path) as store:
            ids = None
            if cfg.split:
                from ..data.splits import training_ids

                ids = training_ids(store, cfg.split)
                prov["split"] = {"name": cfg.split, "train_problems": len(ids)}
            counts: dict[str, Any] = {}
            try:
                rows = stepwise_rows(store, label_source=cfg.label_source, strict=cfg.strict, task=cfg.task or None,
                                     model=cfg.data_model or None, method=cfg.data_method or None,
                                     problem_ids=ids, counts=counts)
            except LabelError as e:
                raise TrainDataError(str(e)) from e
            for row in rows:
                if row["problem_id"] not in problems:
                    p = store.get_problem(row["problem_id"])
                    if p is not None:
                        problems[p.id] = p
        prov.update({"store": str(path.resolve()), "label_counts": counts,
                     "filters": {"task": cfg.task, "model": cfg.data_model, "method": cfg.data_method,
                                 "strict": cfg.strict}})
    else:
        rows = read_stepwise(path)
        prov["file"] = str(path.resolve())
    for row in rows:
        pid = row.get("problem_id") or content_hash("prompt", row["prompt"])
        row["problem_id"] = pid
        if pid not in problems:
            problems[pid] = Problem(id=pid, question=row["prompt"], gold=row.get("gold"))
    rows = [r for r in rows if any(lab is not None for lab in r["labels"])]
    if not rows:
        raise TrainDataError(f"No labelled steps in {path} for label source '{cfg.label_source}'; label steps first "
                             "(`rationales verify --checkers tool,mc`) or pick another --label-source.")
    sides = [_side(r["problem_id"], cfg.val_fraction, cfg.seed) if cfg.val_fraction > 0 else "train" for r in rows]
    train = [i for i, s in enumerate(sides) if s == "train"]
    val = [i for i, s in enumerate(sides) if s == "val"]
    if not train:
        train, val = val, []
    prov.update({"rows": len(rows), "train_rows": len(train), "val_rows": len(val),
                 "train_problems": len({rows[i]["problem_id"] for i in train}),
                 "val_problems": len({rows[i]["problem_id"] for i in val}),
                 "labelled_steps": sum(lab is not None for r in rows for lab in r["labels"])})
    return PRMData(rows, problems, prov, train, val)


def targets(row: dict[str, Any], soft: bool) -> list[float | None]:
    """Per-step training targets: hard 1.0/0.0 or the soft label; None = ignored. Never a cast
    of an ignore index: an unlabelled step stays None."""
    out: list[float | None] = []
    softs = row.get("soft_labels") or [None] * len(row["labels"])
    for lab, s in zip(row["labels"], softs):
        if lab is None:
            out.append(None)
        elif soft and s is not None:
            out.append(min(1.0, max(0.0, float(s))))
        else:
            out.append(1.0 if bool(lab) else 0.0)
    return out


def step_metrics(rewards: list[float], labels: list[bool], threshold: float = 0.5) -> dict[str, Any]:
    """AUROC, accuracy at the threshold, counts; on labelled steps only."""
    from ..verify.trained_prm import reward_auc

    n = len(labels)
    if not n:
        return {"steps": 0}
    acc = sum((r >= threshold) == y for r, y in zip(rewards, labels)) / n
    return {"steps": n, "positive": int(sum(labels)), "auroc": reward_auc(rewards, labels), "accuracy": round(acc, 4)}


# ------------------------------------------------------------------ the per-step head and its loss


def step_loss(logits: Any, hard: Any, soft: Any, mask: Any, use_soft: bool) -> Any:
    """The per-step loss on token-classification logits ``[B, T, 2]`` at the positions where
    ``mask`` is true (step ends with a label): cross-entropy on the hard labels (0/1 longs), or
    binary cross-entropy of P(+) against the soft targets. 0 when nothing is labelled."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    m = mask.bool()
    if not bool(m.any()):
        return logits.sum() * 0.0
    lp = logp[m]
    if use_soft:
        s = soft[m].float()
        return -(s * lp[:, 1] + (1.0 - s) * lp[:, 0]).mean()
    return torch.nn.functional.nll_loss(lp, hard[m].long())


def encode_row(tokenizer: Any, row: dict[str, Any], soft: bool, max_length: int) -> dict[str, Any]:
    """Token ids, and per token: the hard label (0/1, -1 elsewhere), the soft target and the
    mask of labelled step ends."""
    from ..verify.trained_prm import encode_steps

    ids, ends = encode_steps(tokenizer, row["prompt"], row["completions"], max_length)
    hard = [-1] * len(ids)
    softv = [0.0] * len(ids)
    mask = [0] * len(ids)
    for end, t, lab in zip(ends, targets(row, soft), row["labels"]):
        if end is None or t is None:
            continue
        hard[end] = 1 if bool(lab) else 0
        softv[end] = t
        mask[end] = 1
    return {"input_ids": ids, "hard": hard, "soft": softv, "step_mask": mask}


def _collate(pad_id: int) -> Any:
    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        out = {"input_ids": torch.full((len(batch), width), pad_id, dtype=torch.long),
               "attention_mask": torch.zeros((len(batch), width), dtype=torch.long),
               "hard": torch.full((len(batch), width), -1, dtype=torch.long),
               "soft": torch.zeros((len(batch), width), dtype=torch.float),
               "step_mask": torch.zeros((len(batch), width), dtype=torch.long)}
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            out["input_ids"][i, :n] = torch.tensor(b["input_ids"])
            out["attention_mask"][i, :n] = 1
            out["hard"][i, :n] = torch.tensor(b["hard"])
            out["soft"][i, :n] = torch.tensor(b["soft"])
            out["step_mask"][i, :n] = torch.tensor(b["step_mask"])
        return out

    return collate


def token_classifier(base: Any) -> Any:
    """A 2-label ``AutoModelForTokenClassification`` sharing the causal LM's backbone weights
    (its LM head is dropped; the step head starts fresh)."""
    from transformers import AutoModelForTokenClassification

    cfg = base.config
    cfg.num_labels = 2
    cfg.id2label = {0: "-", 1: "+"}
    cfg.label2id = {"-": 0, "+": 1}
    model = AutoModelForTokenClassification.from_config(cfg)
    prefix = base.base_model_prefix
    getattr(model, model.base_model_prefix).load_state_dict(getattr(base, prefix).state_dict())
    return model


def _trainer_class() -> Any:
    from transformers import Trainer

    class StepTrainer(Trainer):
        use_soft = False

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **_: Any) -> Any:
            hard, soft, mask = inputs.pop("hard"), inputs.pop("soft"), inputs.pop("step_mask")
            out = model(**inputs)
            loss = step_loss(out.logits, hard, soft, mask, self.use_soft)
            return (loss, out) if return_outputs else loss

    return StepTrainer


def train_discriminative(cfg: PRMConfig, data: PRMData | None = None) -> TrainResult:
    """Train the discriminative PRM; save it (merged), its tokenizer and the model card."""
    import torch

    from ..verify.trained_prm import DiscriminativePRM, hf_tokenizer_fingerprint, read_card
    from .models import load_base_model

    t0 = time.time()
    torch.manual_seed(cfg.seed)
    data = data or load_prm_data(cfg)
    base, tok, info = load_base_model(cfg.model, seed=cfg.seed)
    model = token_classifier(base)
    del base
    if cfg.lora:
        from peft import LoraConfig, get_peft_model

        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        targets_ = [t for t in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
                    if t in names]
        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=targets_,
                                                 lora_dropout=0.0, task_type="TOKEN_CLS", modules_to_save=["score"]))
    examples = [encode_row(tok, data.rows[i], cfg.soft, cfg.max_length) for i in data.train]
    examples = [e for e in examples if any(e["step_mask"])]
    if not examples:
        raise TrainDataError("No labelled step fits within max_length tokens; raise --max-length.")
    from datasets import Dataset

    args = cfg.training_arguments()
    trainer_cls = _trainer_class()
    trainer_cls.use_soft = cfg.soft
    trainer = trainer_cls(model=model, args=args, train_dataset=Dataset.from_list(examples),
                          data_collator=_collate(tok.pad_token_id if tok.pad_token_id is not None else 0))
    resume = last_checkpoint(cfg.output_dir) if cfg.resume else None
    out = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    final = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    final.save_pretrained(cfg.output_dir)
    tok.save_pretrained(cfg.output_dir)
    card_info = {"kind": "discriminative", "id": content_hash("prm", cfg.to_dict(), time.time(), length=10),
                 "tokenizer": hf_tokenizer_fingerprint(tok), "max_length": cfg.max_length,
                 "threshold": cfg.threshold, "label_source": cfg.label_source, "soft": cfg.soft}
    _write_card(cfg, data, {"train_loss": out.training_loss}, info, card_info)
    metrics = {"train_loss": out.training_loss}
    if data.val:
        prm = DiscriminativePRM(Path(cfg.output_dir), read_card(cfg.output_dir))
        metrics["val"] = _val_metrics(prm, data, cfg.threshold)
        _write_card(cfg, data, metrics, info, card_info)
    return TrainResult(output_dir=str(cfg.output_dir), method="prm", steps=int(out.global_step),
                       resumed_from=str(resume) if resume else None, train_loss=out.training_loss,
                       metrics=metrics, examples=len(examples), seconds=round(time.time() - t0, 1))


def _val_metrics(prm: Any, data: PRMData, threshold: float) -> dict[str, Any]:
    """Step-level metrics of a trained scorer on the held-out rows."""
    from ..records import Rationale, Step

    rewards, labels = [], []
    for i in data.val:
        row = data.rows[i]
        text, steps, pos = "", [], 0
        for k, piece in enumerate(row["completions"]):
            body = piece.rstrip()
            steps.append(Step(index=k, text=body.strip() or body, span=(pos, pos + len(body))))
            text += piece
            pos += len(piece)
        r = Rationale(id=content_hash("val", row.get("rationale_id"), i), problem_id=row["problem_id"], prompt_id="",
                      model="", text=text, steps=steps)
        got = prm.score([data.problems[row["problem_id"]]], [r])[0]
        for reward, lab in zip(got, row["labels"]):
            if lab is not None and reward is not None:
                rewards.append(reward)
                labels.append(bool(lab))
    return step_metrics(rewards, labels, threshold)


def _write_card(cfg: PRMConfig, data: PRMData, metrics: dict[str, Any], base_info: dict[str, Any],
                prm_info: dict[str, Any]) -> Path:
    import json

    path = write_model_card(cfg.output_dir, method="prm", config=cfg, provenance=data.provenance, metrics=metrics,
                            base_model=base_info)
    card = json.loads(path.read_text(encoding="utf-8"))
    card["prm"] = prm_info
    card["usage"] = f"rationales compare TASK --prm {cfg.output_dir}  |  rationales verify --prm {cfg.output_dir}"
    path.write_text(json.dumps(card, indent=2, default=str), encoding="utf-8")
    return path


def train_prm(cfg: PRMConfig) -> TrainResult:
    """Train a PRM of ``cfg.kind``."""
    if cfg.kind == "probe":
        from .probe import train_probe

        return train_probe(cfg)
    if cfg.kind == "generative":
        from .genprm import train_genprm

        return train_genprm(cfg)
    return train_discriminative(cfg)


__all__ = ["PRMConfig", "KINDS", "train_prm", "train_discriminative", "load_prm_data", "step_loss", "targets",
           "encode_row", "token_classifier", "step_metrics", "PRMData"]
