"""What every trainer shares: the config base dataclass, checkpoints/resume and the model card.

Style after TRL's ``trainer/base_config.py``: one config dataclass per method on a shared base,
validated in ``__post_init__``, each field's help text in ``field(metadata={"help": ...})`` so the
CLI builds its options from the dataclass (one source of truth; ``cli/train_sft.py``).

Checkpoints are ``transformers.Trainer`` checkpoints (``OUTPUT/checkpoint-STEP``, every
``save_steps`` optimiser steps). A run started again on the same output directory resumes from the
last complete checkpoint (``resume=True``, the default), so a killed run loses at most
``save_steps`` steps. The finished model is saved *merged* (LoRA adapters folded in) with its
tokenizer at the top of the output directory, where ``--backend transformers --model OUTPUT``
loads it; ``model_card.json`` records the data's provenance and the metrics.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import RationalesError


class TrainConfigError(RationalesError):
    """A training option is out of range; the message names the option."""


class TrainDataError(RationalesError):
    """A training dataset is empty, lacks a column or has no pairs; the message says what to do."""


def opt(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002 - "help" reads as in argparse/typer
    """A config field with its help text (read by the CLI)."""
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Options every trainer takes. Subclasses add their own and call ``super().__post_init__()``."""

    model: str = opt("smollm2-135m", "Base model: a Hugging Face model directory, a .gguf file, the alias "
                                     "smollm2-135m (rebuilt from its GGUF), or tiny (a tiny model made in code).")
    data: str = opt("", "Training data: a store (.sqlite, built with the store filters below) or an "
                        "exported .jsonl/.parquet file.")
    output_dir: str = opt("train-out", "Output directory: checkpoints, the final model, model_card.json.")
    lora: bool = opt(False, "Train LoRA adapters (merged into the saved model) instead of all weights.")
    lora_r: int = opt(8, "LoRA rank.")
    lora_alpha: int = opt(16, "LoRA alpha.")
    epochs: float = opt(1.0, "Passes over the training data (max_steps overrides).")
    lr: float = opt(5e-5, "Peak learning rate.")
    batch_size: int = opt(4, "Examples per device batch.")
    grad_accum: int = opt(1, "Gradient accumulation steps (effective batch = batch_size x grad_accum).")
    seed: int = opt(0, "Random seed (data order, initialisation of new weights).")
    save_steps: int = opt(50, "Save a checkpoint every N optimiser steps (a killed run resumes from the last).")
    max_steps: int = opt(-1, "Stop after N optimiser steps (-1: run the epochs).")
    max_length: int = opt(1024, "Truncate examples to this many tokens.")
    resume: bool = opt(True, "Resume from the last checkpoint in output_dir if there is one.")
    logging_steps: int = opt(10, "Log the loss every N steps.")
    progress: bool = opt(True, "Show a progress bar.")

    def __post_init__(self) -> None:
        positive = {"lora_r": self.lora_r, "lora_alpha": self.lora_alpha, "batch_size": self.batch_size,
                    "grad_accum": self.grad_accum, "save_steps": self.save_steps, "max_length": self.max_length,
                    "logging_steps": self.logging_steps}
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TrainConfigError(f"{name} must be a positive integer, got {value!r}.")
        for name, value in (("epochs", self.epochs), ("lr", self.lr)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise TrainConfigError(f"{name} must be a finite number > 0, got {value!r}.")
        if self.lr >= 1.0:
            raise TrainConfigError(f"lr={self.lr} is far too large for fine-tuning; use e.g. 5e-5 (full) or 2e-4 (LoRA).")
        if not isinstance(self.max_steps, int) or (self.max_steps < 1 and self.max_steps != -1):
            raise TrainConfigError(f"max_steps must be -1 (use epochs) or a positive integer, got {self.max_steps!r}.")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise TrainConfigError(f"seed must be a non-negative integer, got {self.seed!r}.")
        if not str(self.model).strip():
            raise TrainConfigError("model is empty: pass a model directory, a .gguf file, smollm2-135m or tiny.")
        if not str(self.output_dir).strip():
            raise TrainConfigError("output_dir is empty: pass a directory for the trained model.")

    # ------------------------------------------------------------ helpers
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def training_arguments(self, **overrides: Any) -> Any:
        """``transformers.TrainingArguments`` (or a TRL config class via ``args_class=``) from this
        config: checkpoints every ``save_steps``, CPU-friendly defaults, no reporting to services."""
        args_class = overrides.pop("args_class", None)
        if args_class is None:
            from transformers import TrainingArguments as args_class  # noqa: N813
        kw: dict[str, Any] = dict(
            output_dir=str(self.output_dir), num_train_epochs=float(self.epochs), learning_rate=float(self.lr),
            per_device_train_batch_size=self.batch_size, gradient_accumulation_steps=self.grad_accum,
            seed=self.seed, data_seed=self.seed, save_strategy="steps", save_steps=self.save_steps,
            max_steps=self.max_steps, logging_steps=self.logging_steps, report_to=[],
            disable_tqdm=not self.progress, save_only_model=False, remove_unused_columns=False,
            use_cpu=not _cuda(), dataloader_num_workers=0, lr_scheduler_type="linear", warmup_steps=0,
            save_total_limit=2)
        kw.update(overrides)
        return args_class(**kw)


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a hard dependency of training
        return False


_CKPT = re.compile(r"^checkpoint-(\d+)$")


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step in ``output_dir`` (one whose trainer state
    was written, so a checkpoint cut off mid-save is skipped), or None."""
    out = Path(output_dir)
    if not out.is_dir():
        return None
    found = []
    for p in out.iterdir():
        m = _CKPT.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def checkpoint_step(path: str | Path) -> int:
    state = json.loads((Path(path) / "trainer_state.json").read_text(encoding="utf-8"))
    return int(state.get("global_step", 0))


@dataclass
class TrainResult:
    """What a trainer returns: where the model is, how far it got, what it measured."""

    output_dir: str
    method: str
    steps: int
    resumed_from: str | None
    train_loss: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    examples: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_model_card(output_dir: str | Path, *, method: str, config: TrainConfig, provenance: dict[str, Any],
                     metrics: dict[str, Any], base_model: dict[str, Any] | None = None) -> Path:
    """``model_card.json`` (machine-readable) and a short ``README.md`` in the output directory."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    card = {"method": method, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "base_model": base_model or {"name": config.model}, "config": config.to_dict(),
            "data": provenance, "metrics": metrics,
            "usage": f"rationales run TASK --backend transformers --model {out}"}
    path = out / "model_card.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)
    lines = [f"# {out.name}: {method} fine-tune of {card['base_model'].get('name')}", "",
             f"Trained by `rationales train {method}`. Load it with `--backend transformers --model {out}`.", "",
             "## Data", "```json", json.dumps(provenance, indent=2, default=str)[:4000], "```", "",
             "## Metrics", "```json", json.dumps(metrics, indent=2, default=str), "```", ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
    return path


# ---------------------------------------------------------------- data from a store or a file

DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass
class DatasetTrainConfig(TrainConfig):
    """A trainer whose data is a store (selected with these filters; the store's recorded split
    keeps test problems out) or an exported dataset file (used as it is)."""

    task: str | None = opt(None, "Store data: only problems of this task (e.g. reasoning_gym:basic_arithmetic).")
    from_model: str | None = opt(None, "Store data: only rationales written by this model (the teacher).")
    method: str | None = opt(None, "Store data: only rationales of this method (default: every primary rationale).")
    correct_only: bool = opt(True, "Store data: keep only rationales with a correct answer.")
    dedupe: bool = opt(True, "Store data: drop repeated rationale texts.")
    agree_sc: bool = opt(False, "Store data: keep only rationales agreeing with the self-consistency answer.")
    max_per_problem: int | None = opt(None, "Store data: at most K rationales per problem.")
    split_name: str = opt("default", "Store data: name of the recorded train/test split (train side is used).")
    test_fraction: float = opt(0.2, "Store data: test share of a new split (held out; used for eval metrics).")
    split_seed: int = opt(0, "Store data: seed of the split.")
    template: str = opt("cot", "Store data: prompt template the rows are rendered with.")
    style: str = opt("conversational", "Store data: conversational (chat messages) or standard (plain text) rows.")
    eval_max: int = opt(64, "At most this many held-out rows for the evaluation metrics (0: no evaluation).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.style not in ("conversational", "standard"):
            raise TrainConfigError(f"style must be conversational or standard, got '{self.style}'.")
        if self.max_per_problem is not None and self.max_per_problem < 1:
            raise TrainConfigError(f"max_per_problem must be >= 1, got {self.max_per_problem}.")
        if not math.isfinite(self.test_fraction) or not 0.0 <= self.test_fraction < 1.0:
            raise TrainConfigError(f"test_fraction must be in [0, 1), got {self.test_fraction}.")
        if self.eval_max < 0:
            raise TrainConfigError(f"eval_max must be >= 0, got {self.eval_max}.")
        if not str(self.data).strip():
            raise TrainConfigError("data is empty: pass a store (.sqlite) or an exported .jsonl/.parquet file.")

    def data_filter(self, side: str = "train") -> Any:
        from ..data.filters import DataFilter

        return DataFilter(task=self.task, model=self.from_model, method=self.method, correct_only=self.correct_only,
                          dedupe=self.dedupe, agree_sc=self.agree_sc, max_per_problem=self.max_per_problem,
                          split=side, split_name=self.split_name, test_fraction=self.test_fraction,
                          split_seed=self.split_seed, template=self.template)


def is_store(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def load_training_rows(cfg: DatasetTrainConfig, fmt: str, build: dict[str, Any] | None = None
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(train rows, held-out rows for evaluation, provenance) from ``cfg.data``."""
    from ..data.common import EmptyDatasetError, read_provenance

    path = Path(cfg.data).expanduser()
    if is_store(path):
        from ..data.export import dataset_rows
        from ..store import Store

        with Store(path) as store:
            rows, prov = dataset_rows(store, fmt, cfg.data_filter("train"), style=cfg.style, **(build or {}))
            held: list[dict[str, Any]] = []
            if cfg.eval_max > 0 and cfg.test_fraction > 0:
                try:
                    held, _ = dataset_rows(store, fmt, cfg.data_filter("test"), style=cfg.style, **(build or {}))
                except EmptyDatasetError:
                    held = []
        return rows, held[:cfg.eval_max], prov
    if path.is_file() and path.suffix.lower() in DATA_SUFFIXES:
        rows = read_rows(path)
        prov = read_provenance(path) or {}
        prov = dict(prov, file=str(path))
        return rows, [], prov
    if path.exists():
        raise TrainDataError(f"{path} is neither a rationales store nor a .jsonl/.parquet dataset; export one with "
                             "`rationales export --format FORMAT` or pass the store.")
    raise TrainDataError(f"Training data {path} not found: pass a store (.sqlite) or a .jsonl/.parquet file "
                         "written by `rationales export`.")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL/Parquet dataset through ``datasets.load_dataset`` (the way users load it)."""
    from datasets import load_dataset

    kind = "parquet" if path.suffix.lower() == ".parquet" else "json"
    if kind == "json" and not _has_content(path):
        return []  # datasets fails on an empty file with a bare StopIteration; require_columns says "empty"
    try:
        ds = load_dataset(kind, data_files=str(path), split="train")
    except Exception as e:  # noqa: BLE001 - malformed files fail in many ways
        raise TrainDataError(f"Cannot read dataset {path} ({type(e).__name__}: {str(e)[:160]}); write it with "
                             "`rationales export`.") from e
    return ds.to_list()


def _has_content(path: Path) -> bool:
    with path.open("rb") as f:
        return any(line.strip() for line in f)


def require_columns(rows: list[dict[str, Any]], alternatives: list[tuple[str, ...]], fmt: str, source: str) -> tuple[str, ...]:
    """The first column set present in every row; one-line error when the data is empty or none fits."""
    if not rows:
        raise TrainDataError(f"The training data {source} is empty: export rows with `rationales export --format "
                             f"{fmt}` (check the filters), then train again.")
    cols = set(rows[0])
    for alt in alternatives:
        if set(alt) <= cols:
            return alt
    want = " or ".join("/".join(a) for a in alternatives)
    missing = sorted(set(alternatives[0]) - cols)
    raise TrainDataError(f"The training data {source} lacks column(s) {', '.join(missing)} (needs {want}); "
                         f"write it with `rationales export --format {fmt}`.")


def train_and_save(trainer: Any, cfg: TrainConfig, method: str, tokenizer: Any, provenance: dict[str, Any],
                   base_info: dict[str, Any], examples: int, evaluate: bool = False,
                   extra_metrics: dict[str, Any] | None = None) -> TrainResult:
    """Train (resuming from the last checkpoint when ``cfg.resume``), evaluate, save the merged
    model and tokenizer and write the model card."""
    t0 = time.time()
    quiet(trainer, cfg)
    ckpt = last_checkpoint(cfg.output_dir) if cfg.resume else None
    out = train_or_restore(trainer, ckpt, cfg)
    metrics: dict[str, Any] = {"train_loss": run_loss(trainer, out, resumed=ckpt is not None),
                               "global_step": int(trainer.state.global_step), "examples": examples,
                               "train_seconds": round(time.time() - t0, 2)}
    if evaluate:
        ev = trainer.evaluate()
        metrics.update({k: (float(v) if isinstance(v, (int, float)) else v) for k, v in ev.items()})
    metrics.update(extra_metrics or {})
    save_trained_model(trainer.model, tokenizer, cfg.output_dir)
    write_model_card(cfg.output_dir, method=method, config=cfg, provenance=provenance, metrics=metrics,
                     base_model=base_info)
    return TrainResult(output_dir=str(cfg.output_dir), method=method, steps=int(trainer.state.global_step),
                       resumed_from=str(ckpt) if ckpt else None, train_loss=metrics["train_loss"], metrics=metrics,
                       examples=examples, seconds=round(time.time() - t0, 2))


def finished_at(ckpt: Path, cfg: TrainConfig) -> bool:
    """Whether ``ckpt`` is the end of the run ``cfg`` asks for: its step reached ``cfg.max_steps``
    (or, for an epochs run, the step count the checkpointed run had planned)."""
    state = json.loads((Path(ckpt) / "trainer_state.json").read_text(encoding="utf-8"))
    target = cfg.max_steps if cfg.max_steps > 0 else int(state.get("max_steps") or 0)
    return target > 0 and int(state.get("global_step", 0)) >= target


def train_or_restore(trainer: Any, ckpt: Path | None, cfg: TrainConfig) -> Any:
    """``trainer.train`` resuming from ``ckpt``; but when ``ckpt`` already finished the run,
    restore its weights and state without training: transformers' ``train(resume_from_checkpoint=)``
    on a finished checkpoint runs one more optimiser step (a rerun of a finished ``--max-steps 2``
    run ended at step 3). Returns train()'s output, or None when nothing was trained."""
    if ckpt is None or not finished_at(ckpt, cfg):
        return trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    from transformers.trainer_callback import TrainerState

    trainer._load_from_checkpoint(str(ckpt))
    trainer.state = TrainerState.load_from_json(str(Path(ckpt) / "trainer_state.json"))
    return None


def run_loss(trainer: Any, out: Any, *, resumed: bool) -> float | None:
    """The whole run's mean training loss. After a resume, transformers' ``training_loss`` averages
    only the steps run since the checkpoint over all steps (0.0 when the run was already finished),
    so the mean of the logged losses (kept in the checkpoint's state) is used instead."""
    if resumed:
        losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
        if losses:
            return sum(losses) / len(losses)
    return float(out.training_loss) if out is not None and out.training_loss is not None else None


def quiet(trainer: Any, cfg: TrainConfig) -> None:
    """Without a progress bar, transformers prints every log dict on stdout; keep stdout for results
    (``--json``)."""
    if not cfg.progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)


def save_trained_model(model: Any, tokenizer: Any, output_dir: str | Path) -> Path:
    from .models import save_trained

    return save_trained(model, tokenizer, output_dir)
