"""Generative PRM in GroundedPRM's format, trained by SFT (Zhang et al., 2025).

Each labelled step becomes one conversational prompt/completion example: the prompt is the
``prm_generative`` template (problem, earlier steps, the step to check), the completion

    <verify>what the tool computes for the step's arithmetic</verify>
    <judge>one sentence: right and on the way to the answer, or not</judge>
    <output>\\boxed{+}</output>        (or \\boxed{-})

The ``<verify>`` text is grounded in the arithmetic tool check run on the step itself
(``verify.arithmetic.check_step``: the claim, its exact value, holds or not), the paper's
"tool-grounded verification"; the label in ``\\boxed{}`` is the chosen label source's
(``--label-source``). Trained with TRL's ``SFTTrainer`` (loss on the completion only),
LoRA or full. At inference the trained model runs through ``verify.genprm.GenerativePRM`` on
the transformers backend (``verify.trained_prm.load_prm``); the reward is 1 for ``+``, 0 for
``-``, None (counted) when no verdict can be read.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..records import Step, content_hash
from .base import TrainDataError, TrainResult, last_checkpoint
from .prm import PRMConfig, PRMData, _write_card, load_prm_data

TEMPLATE = "prm_generative"


def verify_text(step_text: str) -> str:
    """The ``<verify>`` part: the tool's reading of the step's arithmetic."""
    from ..verify.arithmetic import check_step

    check = check_step(Step(index=0, text=step_text, span=(0, len(step_text))))
    if check is None:
        return "The step states no arithmetic to recompute."
    parts = []
    for c in check.detail.get("claims", [])[:3]:
        value = c.get("value")
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{c.get('expression')}: the value is {shown}, so the claim "
                     f"{'holds' if c.get('ok') else 'is wrong'}.")
    return " ".join(parts) or "The step states no arithmetic to recompute."


def completion_text(step_text: str, good: bool) -> str:
    judge = ("The step is correct and follows from the problem and the earlier steps." if good else
             "The step is wrong or does not lead to the correct answer.")
    return (f"<verify>{verify_text(step_text)}</verify>\n<judge>{judge}</judge>\n"
            f"<output>\\boxed{{{'+' if good else '-'}}}</output>")


def genprm_examples(data: PRMData, idx: list[int], template: str = TEMPLATE) -> list[dict[str, Any]]:
    """Conversational prompt/completion rows, one per labelled step."""
    from ..prompts import render

    out = []
    for i in idx:
        row = data.rows[i]
        p = data.problems[row["problem_id"]]
        texts = [c.strip() for c in row["completions"]]
        for k, lab in enumerate(row["labels"]):
            if lab is None or not texts[k]:
                continue
            prompt = render(template, question=p.question, context=p.context, previous=texts[:k], step=texts[k],
                            index=k)
            out.append({"prompt": prompt.messages,
                        "completion": [{"role": "assistant", "content": completion_text(texts[k], bool(lab))}]})
    return out


def train_genprm(cfg: PRMConfig, data: PRMData | None = None) -> TrainResult:
    """SFT the generative PRM; save the merged model, its tokenizer and the model card."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ..verify.trained_prm import hf_tokenizer_fingerprint
    from .models import apply_lora, load_base_model, save_trained

    t0 = time.time()
    data = data or load_prm_data(cfg)
    examples = genprm_examples(data, data.train)
    if not examples:
        raise TrainDataError("No labelled step with text to train the generative PRM on.")
    model, tok, info = load_base_model(cfg.model, seed=cfg.seed)
    if cfg.lora:
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha)
    args = cfg.training_arguments(args_class=SFTConfig, max_length=cfg.max_length, packing=False,
                                  dataset_num_proc=None, eval_strategy="no")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tok)
    ckpt = last_checkpoint(cfg.output_dir) if cfg.resume else None
    out = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    save_trained(trainer.model, tok, cfg.output_dir)
    metrics: dict[str, Any] = {"train_loss": float(out.training_loss), "examples": len(examples),
                               "global_step": int(trainer.state.global_step)}
    prm_info = {"kind": "generative", "id": content_hash("genprm", cfg.to_dict(), time.time(), length=10),
                "template": TEMPLATE, "max_new_tokens": 128, "tokenizer": hf_tokenizer_fingerprint(tok),
                "threshold": cfg.threshold, "label_source": cfg.label_source, "format": "GroundedPRM"}
    _write_card(cfg, data, metrics, info, prm_info)
    if data.val:
        from ..verify.trained_prm import load_prm
        from .prm import _val_metrics

        metrics["val"] = _val_metrics(load_prm(Path(cfg.output_dir)), data, cfg.threshold)
        _write_card(cfg, data, metrics, info, prm_info)
    return TrainResult(output_dir=str(cfg.output_dir), method="prm", steps=int(trainer.state.global_step),
                       resumed_from=str(ckpt) if ckpt else None, train_loss=metrics["train_loss"], metrics=metrics,
                       examples=len(examples), seconds=round(time.time() - t0, 1))


__all__ = ["train_genprm", "genprm_examples", "completion_text", "verify_text"]
