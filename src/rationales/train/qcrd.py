"""QCRD: quality-guided contrastive rationale distillation (Wang et al., 2024; seeds/003,
papers.md section 4).

Per question, a positive set (the teacher's T=0.7 samples, 5 per question, deduplicated, agreeing
with the self-consistency answer) and a negative set (rationales failing self-consistency, plus
the student's *own* samples at T=1.5 from the checkpoint ``lag`` = 5 iterations earlier: the
self-adversarial negatives). A discriminator scores each rationale's quality s in [0, 1];
w_pos = s, w_neg = 1 - s, and

    loss = alpha1 * min_i (w_i * CE(pos_i))  +  alpha2 * mean_j (w_j * max(0, delta - CE(neg_j)))

with delta = 3, alpha1 = alpha2 = 0.5, and the negative weight decaying x0.9 per iteration.

Choices where the paper leaves room (recorded on purpose):

* CE is the *mean per-token* cross-entropy of the rationale given the prompt (so delta = 3 nats
  per token is a margin that does not depend on length); the hinge over negatives is averaged.
* The discriminator is online logistic regression on the student's own mean last-layer hidden
  state over the rationale's tokens (detached, L2-normalised), updated by one SGD step per
  training step on positives (label 1) and negatives (label 0); it starts at s = 0.5 for all.
  Its state is saved with every checkpoint (``qcrd_discriminator.pt``) so a resumed run
  continues with it. ``discriminator=False`` uses the dataset's prior weights instead
  (``data.contrastive``: the vote share of the rationale's answer).
* An *iteration* is one round over the training data (``epochs`` each). Round r (1-based) draws
  its self-adversarial negatives from the model after round max(0, r - lag) (round 0 = the base
  student), through ``rationales.generate`` on the transformers backend, so they are stored and
  cached like any sample (in the data store, or ``OUTPUT/qcrd.sqlite`` for file data); samples
  that reach the self-consistency answer are not used as negatives. The negative weight of
  round r is scaled by ``neg_decay ** (r - 1)``.
* Positives are rationales (``positives_need_reasoning``, default on): a teacher sample that is
  only an answer statement ("The answer is -9.") agrees with self-consistency but has no
  reasoning, and it is exactly what the min over positives picks (the lowest token-mean CE of
  the set). Measured on Qwen2.5-Coder-0.5B's samples (``benchmarks/qcrd_terms.py``): 7 of 80 were
  bare answers, in 3 of 16 questions; on one of them a step on the imitation term lowers the
  bare answer's CE 2.7x as much as the positives'. Kept, they taught a SmolLM2-135M student to
  drop its rationales (held-out outputs of 6.8 tokens). The loss itself is the paper's.
* Rounds are resumable: a finished round leaves ``OUTPUT/round-R/model``; an unfinished one
  resumes from its last checkpoint in ``OUTPUT/round-R``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import Problem, content_hash
from .base import (DatasetTrainConfig, TrainConfigError, TrainDataError, TrainResult, last_checkpoint,
                   load_training_rows, opt, quiet, require_columns, run_loss, train_or_restore,
                   write_model_card)

CONTRASTIVE_COLUMNS = [("prompt", "positives", "negatives")]
NEGATIVE_METHOD = "qcrd_negative"


def qcrd_loss(pos_ce: Any, pos_w: Any, neg_ce: Any | None = None, neg_w: Any | None = None, *, alpha1: float = 0.5,
              alpha2: float = 0.5, delta: float = 3.0, neg_scale: float = 1.0) -> Any:
    """QCRD's loss for one question (torch tensors, 1-D).

    alpha1 * min_i(w_i * CE_i) + alpha2 * mean_j(neg_scale * w_j * max(0, delta - CE_j)); the
    second term is 0 when there are no negatives. Hand-checked (see tests):
    pos CE (2, 1), w (0.5, 0.9) -> min(1.0, 0.9) = 0.9; neg CE (1, 4), w (0.8, 0.5), delta 3 ->
    hinge (2, 0) -> weighted (1.6, 0) -> mean 0.8; loss = 0.5 * 0.9 + 0.5 * 0.8 = 0.85.
    """
    import torch

    if pos_ce.numel() == 0:
        raise ValueError("qcrd_loss needs at least one positive")
    pos_term = (pos_w * pos_ce).min()
    if neg_ce is None or neg_ce.numel() == 0:
        return alpha1 * pos_term
    hinge = torch.clamp(delta - neg_ce, min=0.0)
    return alpha1 * pos_term + alpha2 * (neg_scale * neg_w * hinge).mean()


@dataclass
class QCRDTrainConfig(DatasetTrainConfig):
    alpha1: float = opt(0.5, "Weight of the positive (imitation) term.")
    alpha2: float = opt(0.5, "Weight of the negative (hinge) term.")
    delta: float = opt(3.0, "Hinge margin: negatives are pushed until their mean token CE exceeds delta.")
    neg_decay: float = opt(0.9, "Negative weight multiplier per iteration.")
    iterations: int = opt(2, "Distillation rounds; each draws fresh self-adversarial negatives.")
    lag: int = opt(5, "Self-adversarial negatives come from the student checkpoint this many rounds earlier.")
    student_samples: int = opt(1, "Self-adversarial samples per question per round (0: none).")
    student_temperature: float = opt(1.5, "Sampling temperature of the self-adversarial negatives.")
    student_max_tokens: int = opt(128, "Max new tokens of a self-adversarial negative.")
    max_positives: int = opt(5, "Store data: at most this many positives per question.")
    max_negatives: int = opt(5, "Store data: at most this many stored negatives per question.")
    discriminator: bool = opt(True, "Weight rationales by the online discriminator (else by the data's weights).")
    discriminator_lr: float = opt(0.5, "Learning rate of the online discriminator.")
    correct_only: bool = opt(False, "Store data: (QCRD selects positives by self-consistency, not by gold).")
    positives_need_reasoning: bool = opt(True, "Positives must be rationales: drop bare answer statements "
                                               "('The answer is 7.') from the positive set.")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("alpha1", "alpha2", "delta", "discriminator_lr"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise TrainConfigError(f"{name} must be a finite number >= 0, got {v!r}.")
        if not 0 < self.neg_decay <= 1:
            raise TrainConfigError(f"neg_decay must be in (0, 1], got {self.neg_decay}.")
        for name in ("iterations", "lag", "max_positives"):
            if getattr(self, name) < 1:
                raise TrainConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.student_samples < 0 or self.max_negatives < 0 or self.student_max_tokens < 1:
            raise TrainConfigError("student_samples and max_negatives must be >= 0, student_max_tokens >= 1.")
        if not math.isfinite(self.student_temperature) or self.student_temperature <= 0:
            raise TrainConfigError(f"student_temperature must be > 0, got {self.student_temperature}.")


def drop_bare_positives(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Rows without the positives that are only an answer statement (no reasoning), and how many
    were dropped. QCRD's min over positives picks the positive with the lowest CE, and a bare
    "The answer is 7." has the lowest token-mean CE of all: kept, it makes the imitation term
    teach the student to answer without a rationale (measured: ``benchmarks/qcrd_terms.py``)."""
    from ..data.contrastive import has_reasoning

    out, dropped = [], 0
    for row in rows:
        pos = list(row.get("positives") or [])
        pw = list(row.get("positive_weights") or [1.0] * len(pos))
        keep = [i for i, t in enumerate(pos) if has_reasoning(t)]
        dropped += len(pos) - len(keep)
        out.append(dict(row, positives=[pos[i] for i in keep], positive_weights=[pw[i] for i in keep]))
    return out, dropped


# ---------------------------------------------------------------- tokenisation and the batch


def encode(tok: Any, prompt: Any, text: str, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of prompt + text + end token; labels -100 on the prompt. A prompt that
    would leave no room is cut from the left."""
    if isinstance(prompt, list):
        ptxt = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ctxt = text
    else:
        ptxt, ctxt = str(prompt), " " + text.strip()
    p_ids = tok(ptxt, add_special_tokens=False)["input_ids"]
    c_ids = tok(ctxt, add_special_tokens=False)["input_ids"]
    if tok.eos_token_id is not None:
        c_ids = c_ids + [tok.eos_token_id]
    c_ids = c_ids[:max(1, max_length // 2)] if len(p_ids) + len(c_ids) > max_length else c_ids
    p_ids = p_ids[-(max_length - len(c_ids)):] if len(p_ids) + len(c_ids) > max_length else p_ids
    return p_ids + c_ids, [-100] * len(p_ids) + c_ids


class ContrastiveCollator:
    """Rows -> one padded batch of every positive and negative sequence, with their group,
    polarity and weight."""

    def __init__(self, tok: Any, max_length: int):
        self.tok, self.max_length = tok, max_length

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        seqs, group, positive, weight = [], [], [], []
        for g, row in enumerate(rows):
            pw = row.get("positive_weights") or [1.0] * len(row["positives"])
            nw = row.get("negative_weights") or [1.0] * len(row["negatives"])
            for text, w in zip(row["positives"], pw):
                seqs.append(encode(self.tok, row["prompt"], text, self.max_length))
                group.append(g), positive.append(True), weight.append(float(w))
            for text, w in zip(row["negatives"], nw):
                seqs.append(encode(self.tok, row["prompt"], text, self.max_length))
                group.append(g), positive.append(False), weight.append(float(w))
        width = max(len(ids) for ids, _ in seqs)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (ids, lab) in enumerate(seqs):
            input_ids[i, :len(ids)] = torch.tensor(ids)
            labels[i, :len(lab)] = torch.tensor(lab)
            attn[i, :len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attn, "labels": labels,
                "group": torch.tensor(group), "positive": torch.tensor(positive), "weight": torch.tensor(weight)}


def sequence_ce(logits: Any, labels: Any) -> Any:
    """Mean token cross-entropy of each sequence's labelled tokens (shifted as in causal LM)."""
    import torch.nn.functional as F

    lg, lb = logits[:, :-1, :], labels[:, 1:]
    tok_ce = F.cross_entropy(lg.transpose(1, 2).float(), lb, ignore_index=-100, reduction="none")
    mask = (lb != -100).float()
    return (tok_ce * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class Discriminator:
    """Online logistic regression on detached, L2-normalised features (see the module doc)."""

    def __init__(self, dim: int, lr: float):
        import torch

        self.w = torch.zeros(dim)
        self.b = torch.zeros(())
        self.lr = lr
        self.updates = 0

    def score(self, feats: Any) -> Any:
        import torch

        return torch.sigmoid(feats @ self.w + self.b)

    def update(self, feats: Any, labels: Any) -> None:
        err = self.score(feats) - labels
        self.w -= self.lr * (err[:, None] * feats).mean(0)
        self.b -= self.lr * err.mean()
        self.updates += 1

    def state(self) -> dict[str, Any]:
        return {"w": self.w, "b": self.b, "updates": self.updates}

    def load(self, state: dict[str, Any]) -> None:
        self.w, self.b, self.updates = state["w"], state["b"], int(state["updates"])


def _qcrd_trainer_class() -> Any:
    from transformers import Trainer, TrainerCallback

    class QCRDTrainer(Trainer):
        def __init__(self, *a: Any, qcrd: QCRDTrainConfig, neg_scale: float, disc: Discriminator | None, **kw: Any):
            super().__init__(*a, **kw)
            self.qcrd, self.neg_scale, self.disc = qcrd, neg_scale, disc
            self.terms: list[dict[str, Any]] = []

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **_: Any) -> Any:
            import torch

            group, positive, prior = inputs.pop("group"), inputs.pop("positive"), inputs.pop("weight")
            labels = inputs.pop("labels")
            out = model(**inputs, output_hidden_states=self.disc is not None)
            ce = sequence_ce(out.logits, labels)
            if self.disc is not None:
                with torch.no_grad():
                    mask = (labels != -100).float()[..., None]
                    h = (out.hidden_states[-1].float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                    feats = torch.nn.functional.normalize(h, dim=-1)
                    s = self.disc.score(feats)
                    self.disc.update(feats, positive.float())
                weight = torch.where(positive, s, 1.0 - s)
            else:
                weight = prior.to(ce.dtype)
            losses = []
            ntok = (labels[:, 1:] != -100).sum(1)
            for g in torch.unique(group):
                sel = group == g
                pos, neg = sel & positive, sel & ~positive
                if not bool(pos.any()):
                    continue
                losses.append(qcrd_loss(ce[pos], weight[pos], ce[neg], weight[neg], alpha1=self.qcrd.alpha1,
                                        alpha2=self.qcrd.alpha2, delta=self.qcrd.delta, neg_scale=self.neg_scale))
                if model.training:
                    self._record_terms(ce[pos].detach(), weight[pos].detach(), ntok[pos], ce[neg].detach(), ntok[neg])
            loss = torch.stack(losses).mean()
            return (loss, out) if return_outputs else loss

        def _record_terms(self, pce: Any, pw: Any, pn: Any, nce: Any, nn: Any) -> None:
            """Per question: the CE of positives/negatives, how many negatives the hinge still
            pushes, and the length of the positive the imitation term picks (for the round's log)."""
            k = int((pw * pce).argmin())
            self.terms.append({"ce_pos": float(pce.mean()), "ce_neg": float(nce.mean()) if nce.numel() else None,
                               "hinge_active": float((nce < self.qcrd.delta).float().mean()) if nce.numel() else None,
                               "picked_pos_tokens": int(pn[k]), "pos_tokens": float(pn.float().mean()),
                               "neg_tokens": float(nn.float().mean()) if nn.numel() else None})

        def term_summary(self) -> dict[str, Any]:
            """Means of the recorded terms over the first and the last quarter of the round."""
            if not self.terms:
                return {}
            q = max(1, len(self.terms) // 4)

            def mean(part: list[dict[str, Any]]) -> dict[str, Any]:
                vals = {k: [t[k] for t in part if t[k] is not None] for k in part[0]}
                return {k: round(sum(v) / len(v), 4) if v else None for k, v in vals.items()}

            return {"questions_seen": len(self.terms), "first": mean(self.terms[:q]), "last": mean(self.terms[-q:])}

    class SaveDiscriminator(TrainerCallback):
        def __init__(self, disc: Discriminator):
            self.disc = disc

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            import torch

            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if path.is_dir():
                torch.save(self.disc.state(), path / "qcrd_discriminator.pt")

    return QCRDTrainer, SaveDiscriminator


def evaluate_contrastive(model: Any, tok: Any, rows: list[dict[str, Any]], max_length: int,
                         batch_size: int = 2) -> dict[str, Any]:
    """Held-out metrics: mean token CE of positives and of negatives, and their margin (a student
    that learnt the contrast assigns its negatives a higher CE than its positives)."""
    import torch

    rows = [r for r in rows if r.get("positives")]
    if not rows:
        return {}
    coll = ContrastiveCollator(tok, max_length)
    pos, neg = [], []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            b = coll(rows[i:i + batch_size])
            out = model(input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device))
            ce = sequence_ce(out.logits, b["labels"].to(device)).cpu()
            pos += ce[b["positive"]].tolist()
            neg += ce[~b["positive"]].tolist()
    if was_training:
        model.train()
    m = {"eval_rows": len(rows), "eval_positive_ce": round(sum(pos) / len(pos), 4)}
    if neg:
        m["eval_negative_ce"] = round(sum(neg) / len(neg), 4)
        m["eval_ce_margin"] = round(m["eval_negative_ce"] - m["eval_positive_ce"], 4)
    return m


# ---------------------------------------------------------------- self-adversarial negatives


def _prompt_messages(prompt: Any) -> Any:
    from ..prompts import RenderedPrompt

    if isinstance(prompt, list):
        return RenderedPrompt([dict(m) for m in prompt], "qcrd"), None
    return RenderedPrompt([{"role": "user", "content": str(prompt)}], "qcrd"), str(prompt)


def student_negatives(model: Any, tok: Any, rows: list[dict[str, Any]], store: Any, cfg: QCRDTrainConfig,
                      model_tag: str, round_index: int) -> tuple[list[list[str]], dict[str, int]]:
    """For each row, the student's T=``student_temperature`` samples that do not reach the
    row's self-consistency answer (stored and cached through ``rationales.generate``)."""
    from ..answers import normalize
    from ..backends.transformers import TransformersBackend
    from ..generate import SampleSpec, generate

    if cfg.student_samples == 0:
        return [[] for _ in rows], {"sampled": 0, "kept": 0}
    backend = TransformersBackend(model=model, tokenizer=tok, model_id=model_tag, batch_size=16, dtype="auto")
    specs = []
    for row in rows:
        prompt, raw = _prompt_messages(row["prompt"])
        user = prompt.messages[-1]["content"]
        pid = row.get("problem_id") or content_hash("qcrd-problem", row["prompt"])
        problem = store.get_problem(pid) or Problem(id=pid, question=user)
        specs.append(SampleSpec(problem=problem, prompt=prompt, n=cfg.student_samples,
                                temperature=cfg.student_temperature, top_p=1.0, max_tokens=cfg.student_max_tokens,
                                seed=cfg.seed + round_index, method=NEGATIVE_METHOD, raw_prompt=raw,
                                meta={"round": round_index}))
    results = generate(specs, backend, store)
    out, kept, sampled = [], 0, 0
    for row, rs in zip(rows, results):
        sc = normalize(row.get("sc_answer"))
        texts = [r.text for r in rs if r.text.strip() and (sc is None or normalize(r.answer) != sc)]
        sampled += len(rs)
        kept += len(texts)
        out.append(texts)
    model.train()
    return out, {"sampled": sampled, "kept": kept}


# ---------------------------------------------------------------- the loop


def train_qcrd(cfg: QCRDTrainConfig, *, callbacks: list[Any] | None = None) -> TrainResult:
    """QCRD rounds on ``cfg.data`` (a store or a contrastive file); see the module doc."""
    import time

    import torch
    from datasets import Dataset

    from ..store import Store
    from .base import is_store
    from .models import apply_lora, load_base_model, save_trained

    t0 = time.time()
    rows, held, prov = load_training_rows(cfg, "contrastive", {"max_positives": cfg.max_positives,
                                                               "max_negatives": cfg.max_negatives,
                                                               "need_reasoning": cfg.positives_need_reasoning})
    require_columns(rows, CONTRASTIVE_COLUMNS, "contrastive", cfg.data)
    if cfg.positives_need_reasoning:  # file data: the same rule as the store builder
        rows, bare = drop_bare_positives(rows)
        if bare:
            prov = dict(prov, positives_without_reasoning_dropped=bare)
    rows = [r for r in rows if r.get("positives")]
    if not rows:
        raise TrainDataError(f"No question in {cfg.data} has a positive rationale; export with "
                             "`rationales export --format contrastive` from several teacher samples per problem.")
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store_path = Path(cfg.data) if is_store(Path(cfg.data)) else out_dir / "qcrd.sqlite"
    model, tok, info = load_base_model(cfg.model, seed=cfg.seed)
    if cfg.lora:
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha)
    QCRDTrainer, SaveDiscriminator = _qcrd_trainer_class()
    tag_base = content_hash("qcrd", {k: v for k, v in cfg.to_dict().items() if k not in ("progress", "resume")},
                            length=12)
    hidden = int(getattr(getattr(model, "config", None), "hidden_size", 0) or model.get_input_embeddings().weight.shape[1])
    disc = Discriminator(hidden, cfg.discriminator_lr) if cfg.discriminator else None
    history: list[dict[str, Any]] = []
    round_models: dict[int, Path] = {}
    total_steps, resumed_from, last_loss = 0, None, None
    for r in range(1, cfg.iterations + 1):
        rdir = out_dir / f"round-{r}"
        done = rdir / "model" / "config.json"
        if done.is_file() and cfg.resume:  # finished before: load it and move on
            round_models[r] = rdir / "model"
            state = json.loads((rdir / "round.json").read_text(encoding="utf-8"))
            history.append(state)
            total_steps += state["steps"]
            continue
        if round_models:  # continue from the last finished round
            last = round_models[max(round_models)]
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(str(last), dtype=torch.float32)
            if cfg.lora:
                model = apply_lora(model, cfg.lora_r, cfg.lora_alpha)
            if disc is not None and (last.parent / "qcrd_discriminator.pt").is_file():
                disc.load(torch.load(last.parent / "qcrd_discriminator.pt"))
        src_round = max(0, r - cfg.lag)
        if src_round == 0 or src_round not in round_models:
            sampler, _, _ = load_base_model(cfg.model, seed=cfg.seed) if round_models else (model, tok, info)
            tag = f"qcrd:{tag_base}:round0"
        else:
            from transformers import AutoModelForCausalLM

            sampler = AutoModelForCausalLM.from_pretrained(str(round_models[src_round]), dtype=torch.float32)
            tag = f"qcrd:{tag_base}:round{src_round}"
        with Store(store_path) as st:
            negs, neg_counts = student_negatives(sampler, tok, rows, st, cfg, tag, r)
        if sampler is not model:
            del sampler
        data = [dict(row, negatives=list(row.get("negatives") or []) + extra,
                     negative_weights=list(row.get("negative_weights") or [1.0] * len(row.get("negatives") or []))
                     + [1.0] * len(extra))
                for row, extra in zip(rows, negs)]
        keep = ("prompt", "positives", "negatives", "positive_weights", "negative_weights")
        ds = Dataset.from_list([{k: d.get(k) for k in keep} for d in data])
        args = cfg.training_arguments(output_dir=str(rdir), remove_unused_columns=False)
        cbs = list(callbacks or []) + ([SaveDiscriminator(disc)] if disc is not None else [])
        trainer = QCRDTrainer(model=model, args=args, train_dataset=ds, data_collator=ContrastiveCollator(
            tok, cfg.max_length), qcrd=cfg, neg_scale=cfg.neg_decay ** (r - 1), disc=disc, callbacks=cbs)
        quiet(trainer, cfg)
        ckpt = last_checkpoint(rdir) if cfg.resume else None
        if ckpt is not None and disc is not None and (ckpt / "qcrd_discriminator.pt").is_file():
            disc.load(torch.load(ckpt / "qcrd_discriminator.pt"))
        resumed_from = resumed_from or (str(ckpt) if ckpt else None)
        res = train_or_restore(trainer, ckpt, cfg)
        last_loss = run_loss(trainer, res, resumed=ckpt is not None)
        save_trained(trainer.model, tok, rdir / "model")
        if disc is not None:
            torch.save(disc.state(), rdir / "qcrd_discriminator.pt")
        state = {"round": r, "steps": int(trainer.state.global_step), "train_loss": last_loss,
                 "negatives_from_round": src_round, "student_negatives": neg_counts,
                 "neg_scale": cfg.neg_decay ** (r - 1), "discriminator_updates": disc.updates if disc else None,
                 "terms": trainer.term_summary()}
        (rdir / "round.json").write_text(json.dumps(state), encoding="utf-8")
        history.append(state)
        total_steps += state["steps"]
        round_models[r] = rdir / "model"
        model = trainer.model
    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(str(round_models[cfg.iterations]), dtype=torch.float32)
    save_trained(final, tok, out_dir)
    metrics = {"train_loss": history[-1]["train_loss"], "global_step": total_steps, "rounds": history,
               "examples": len(rows), "train_seconds": round(time.time() - t0, 2), "held_out_rows": len(held)}
    metrics.update(evaluate_contrastive(final, tok, held, cfg.max_length))
    write_model_card(out_dir, method="qcrd", config=cfg, provenance=prov, metrics=metrics, base_model=info)
    return TrainResult(output_dir=str(out_dir), method="qcrd", steps=total_steps, resumed_from=resumed_from,
                       train_loss=history[-1]["train_loss"], metrics=metrics, examples=len(rows),
                       seconds=round(time.time() - t0, 2))
