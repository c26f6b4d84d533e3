"""Base models for training: a Hugging Face directory, a packaged GGUF rebuilt as a plain
trainable ``LlamaForCausalLM``, or a tiny model made in code (tests).

* ``load_base_model("path/to/hf_dir")``: ``from_pretrained`` (``config.json`` required).
* ``load_base_model("smollm2-135m")`` or a ``.gguf`` path: transformers dequantises the GGUF, but
  a model loaded that way cannot be trained or saved ("purely quantized"), so its config and
  state dict are copied into a fresh ``LlamaForCausalLM`` (fp32) and that model is saved once as
  a normal HF directory under ``models.cache_dir()/hf/`` (later loads take a second). The
  tokenizer (with its ChatML template) comes from the same GGUF.
* ``load_base_model("tiny")``: a 2-layer Llama of width 32 over a byte-level tokenizer built
  with ``tokenizers`` (256 byte tokens + specials, no merges, so any text encodes), with a ChatML
  chat template so conversational datasets work. ``tiny:SEED`` varies the initialisation.

All heavy imports (torch, transformers) are inside the functions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import RationalesError

TINY = "tiny"

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


class ModelLoadError(RationalesError):
    """A base model could not be loaded; the message says what to pass instead."""


def tiny_tokenizer() -> Any:
    """A byte-level BPE tokenizer with no merges (259 tokens), built in code in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_model(tokenizer: Any = None, seed: int = 0, hidden: int = 32, layers: int = 2) -> tuple[Any, Any]:
    """A tiny ``LlamaForCausalLM`` (about 30k parameters) and its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=4096, tie_word_embeddings=True,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def _gguf_path(name: str) -> Path | None:
    """The GGUF file named by an alias or a path, or None when ``name`` is neither."""
    from ..models import is_alias, resolve_model

    if is_alias(name):
        return resolve_model(name)
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return resolve_model(p)
    return None


def gguf_to_hf_dir(gguf: Path, alias: str | None = None) -> Path:
    """Rebuild a GGUF model as a plain, trainable ``LlamaForCausalLM`` saved as an HF directory
    (once; cached under ``models.cache_dir()/hf``). Returns the directory."""
    from ..models import cache_dir, model_id

    target = cache_dir() / "hf" / (alias or model_id(str(gguf), gguf).replace("@", "-"))
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        _drop_quantization(target / "config.json")
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds here
        raise ModelLoadError(f"Could not read {gguf} as a model ({type(e).__name__}: {str(e)[:200]}); "
                             "pass a Hugging Face model directory instead.") from e
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):  # the GGUF's quantisation must not follow the plain fp32 copy
        del cfg.quantization_config
    model = type(loaded)(cfg)  # a fresh, plain (unquantised) model of the same class
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and model.config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelLoadError(f"Rebuilding {gguf.name} left weights unmatched (missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]}); pass a Hugging Face model directory instead.")
    model.tie_weights()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "rationales_source.json").write_text(json.dumps({"gguf": str(gguf), "alias": alias}), encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # another process won the race; keep theirs
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        return target
    _drop_quantization(tmp / "config.json")
    os.replace(tmp, target)
    return target


def _drop_quantization(config_json: Path) -> None:
    """Remove a ``quantization_config`` left by the GGUF load: transformers would refuse to train
    the plain fp32 weights ("purely quantized model")."""
    data = json.loads(config_json.read_text(encoding="utf-8"))
    if "quantization_config" in data:
        data.pop("quantization_config")
        config_json.write_text(json.dumps(data, indent=2), encoding="utf-8")


def check_model_dir(path: Path) -> None:
    """One-line error unless ``path`` holds a Hugging Face model."""
    if not path.is_dir():
        raise ModelLoadError(f"Model {path} not found: pass a Hugging Face model directory, a .gguf file, "
                             "smollm2-135m or tiny.")
    if not (path / "config.json").is_file():
        hint = " (it holds LoRA adapters only; pass the merged model directory)" if \
            (path / "adapter_config.json").is_file() else ""
        raise ModelLoadError(f"{path} is not a model directory: it has no config.json{hint}. Pass a Hugging Face "
                             "model directory, a .gguf file, smollm2-135m or tiny.")


def load_base_model(name: str, *, seed: int = 0) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, info) for training; ``info`` records what was loaded (for the model card)."""
    name = str(name).strip()
    if name == TINY or name.startswith(TINY + ":"):
        tiny_seed = int(name.split(":", 1)[1]) if ":" in name else seed
        model, tok = tiny_model(seed=tiny_seed)
        return model, tok, {"name": name, "kind": "tiny (made in code)", "parameters": _n_params(model)}
    gguf = _gguf_path(name)
    if gguf is not None:
        from ..models import is_alias

        path = gguf_to_hf_dir(gguf, alias=name if is_alias(name) else None)
        info = {"name": name, "kind": "gguf rebuilt as a plain HF model", "gguf": str(gguf), "hf_dir": str(path)}
    else:
        path = Path(name).expanduser()
        check_model_dir(path)
        info = {"name": name, "kind": "hf directory", "hf_dir": str(path.resolve())}
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"Could not load the model in {path} ({str(e)[:200]}); pass a Hugging Face model "
                             "directory with its tokenizer.") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML_TEMPLATE
    info["parameters"] = _n_params(model)
    return model, tok, info


def _n_params(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def apply_lora(model: Any, r: int, alpha: int) -> Any:
    """Wrap ``model`` with LoRA adapters on its attention and MLP projections (peft)."""
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj") if t in names]
    if not targets:
        raise ModelLoadError("LoRA found no q/k/v/o or MLP projections in this model; train it in full (no --lora).")
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def save_trained(model: Any, tokenizer: Any, output_dir: str | Path) -> Path:
    """Save the final model merged (LoRA folded in) with its tokenizer, so that
    ``--backend transformers --model OUTPUT`` loads it at once."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
