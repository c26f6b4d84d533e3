"""Local Hugging Face causal language models: batched sampling and scoring, GPU when present.

Generation runs ``model.generate`` on left-padded batches that mix several prompts and several
samples of each. Sampling itself is done here, not by ``generate``: a logits processor draws
each row's next token with that row's own ``torch.Generator`` (seeded with the sample's seed,
after temperature and top-p) and hands ``generate`` a one-hot choice that greedy decoding then
takes. So:

* the random draws of a sample depend only on its seed, never on its neighbours in the batch;
* the same requests with the same ``batch_size`` on the same machine give identical text;
* a sample's text depends on the rest of its batch only through floating-point rounding in
  padded, batched kernels (this can, rarely, flip a near-tied draw; greedy output matched
  unbatched output in the tests).

Stop strings are matched on the decoded text as tokens arrive; the text is cut before the stop
string. ``finish_reason`` is ``"stop"`` for end-of-sequence or a stop string, ``"length"`` when
``max_tokens`` ran out. ``tokens`` counts generated tokens (without the end-of-sequence token).

Grammars: only the judges' verdict grammars (``Feedback: ... [RESULT] <verdict>``) are honoured,
by a token-level constraint (``backends/verdict_grammar.py``); any other GBNF grammar is refused.

``logprobs`` scores each continuation with one forward pass over prompt + continuation (several
continuations per batch) and sums the log-softmax of the continuation's tokens. Tokenization is
of the joined text, and a token that straddles the prompt/continuation boundary counts toward
the continuation (the same rule as the openai backend).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from ..errors import BackendError
from .base import Backend, BackendOptions, Completion, ContinuationScore, GenerationRequest, GenerationResult, Messages, OnSample

_TRUE = {"1", "true", "yes", "on"}


def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _transformers_version() -> tuple[int, int]:
    import transformers

    major, minor = transformers.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


@dataclass
class _Row:
    """One sample to generate: request ``req`` (its position), sample ``index``."""

    req: int
    index: int
    seed: int
    ids: list[int]
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str]
    grammar: Any = None  # a VerdictGrammar (judge verdicts), enforced by _RowGrammar


class TransformersOptions(BackendOptions):
    """Options of the transformers backend."""

    model: Any = Field(None, description="HF model name, local directory, .gguf file, or a model object")
    tokenizer: Any = Field(None, description="the tokenizer of a model object, or a tokenizer name/directory")
    device: str | None = Field(None, description="cpu, cuda, cuda:1, mps (default: cuda when present)")
    dtype: Any = Field("auto", description="auto, float32, bfloat16, float16 (or a torch.dtype)")
    batch_size: int = Field(16, ge=1, le=4096, description="rows per generate() call")
    chat: bool | None = Field(None, description="use the chat template (default: when the tokenizer has one)")
    model_id: str | None = Field(None, description="the id recorded with samples (default: the model name)")
    max_batch_tokens: int = Field(8192, ge=1, description="padded tokens per scoring batch")


class TransformersBackend(Backend):
    """A ``transformers`` causal LM behind the backend protocol; see the module docstring."""

    name = "transformers"

    Options = TransformersOptions

    def __init__(self, model: Any = None, **options: Any):
        """Options: see :class:`TransformersOptions` (``model`` is a name, a directory, a .gguf
        file, or a loaded model object given with its ``tokenizer``)."""
        o: TransformersOptions = self.parse_options(**options, **({} if model is None else {"model": model}))
        self.options = o
        model, tokenizer, device, dtype = o.model, o.tokenizer, o.device, o.dtype
        batch_size, chat, model_id, max_batch_tokens = o.batch_size, o.chat, o.model_id, o.max_batch_tokens
        import torch

        self._torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = max(1, int(batch_size))
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        if model is None or model == "":
            raise BackendError("The transformers backend needs --model: a local model directory, a Hugging Face "
                               "model name, or a .gguf file.")
        if isinstance(model, (str, Path)):
            self.hf_model, self.tokenizer = self._load(str(model), tokenizer, dtype)
            self.model = model_id or str(model)
        else:
            if tokenizer is None:
                raise BackendError("A model object needs its tokenizer: pass tokenizer= as well.")
            self.hf_model, self.tokenizer = model, tokenizer
            if dtype not in (None, "auto"):  # "auto" leaves a given model's dtype alone
                self.hf_model.to(dtype=self._dtype(dtype))
            if not hasattr(self.hf_model, "hf_device_map"):  # leave accelerate-sharded models alone
                self.hf_model.to(self.device)
            self.model = model_id or self._model_id(model)
        self.hf_model.eval()
        self.device = next(self.hf_model.parameters()).device
        tok = self.tokenizer
        self.chat = bool(getattr(tok, "chat_template", None)) if chat is None else bool(chat)
        eos: set[int] = set()
        for source in (getattr(tok, "eos_token_id", None),
                       getattr(getattr(self.hf_model, "generation_config", None), "eos_token_id", None)):
            if isinstance(source, int):
                eos.add(source)
            elif isinstance(source, (list, tuple)):
                eos.update(int(x) for x in source)
        self.eos_ids = sorted(eos)
        pad = getattr(tok, "pad_token_id", None)
        self.pad_id = int(pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0))
        self._fast_scoring = self._supports_fast_scoring()

    # ------------------------------------------------------------ loading

    def _dtype(self, dtype: str | Any) -> Any:
        """For loading: 'auto' -> float32 on CPU (half precision is slow there), the checkpoint's on GPU."""
        torch = self._torch
        if dtype is None or dtype == "auto":
            return torch.float32 if self.device.type == "cpu" else "auto"
        if isinstance(dtype, torch.dtype):
            return dtype
        value = getattr(torch, str(dtype).replace("torch.", ""), None)
        if not isinstance(value, torch.dtype):
            raise BackendError(f"Unknown dtype '{dtype}'; use auto, float32, float16 or bfloat16.")
        return value

    def _load(self, name: str, tokenizer: Any, dtype: str) -> tuple[Any, Any]:
        """from_pretrained on a directory, hub name or .gguf file (offline if HF_HUB_OFFLINE)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source, kwargs = name, {"local_files_only": _offline()}
        path = Path(name).expanduser()
        if not path.exists() and "/" not in name:  # a short name from the model registry, if any
            try:
                from ..models import resolve_model  # type: ignore[attr-defined]

                path = Path(resolve_model(name))
            except Exception:  # noqa: BLE001 - not a registry name; let from_pretrained decide
                pass
        if path.suffix == ".gguf" and path.is_file():
            source, kwargs["gguf_file"] = str(path.parent), path.name
        elif path.exists():
            source = str(path)
        dtype_key = "dtype" if _transformers_version() >= (4, 56) else "torch_dtype"
        try:
            model = AutoModelForCausalLM.from_pretrained(source, **{dtype_key: self._dtype(dtype)}, **kwargs)
            if tokenizer is None or isinstance(tokenizer, (str, Path)):
                tokenizer = AutoTokenizer.from_pretrained(str(tokenizer or source), **kwargs)
        except (OSError, ValueError, ImportError) as e:
            hint = " (offline: HF_HUB_OFFLINE is set, so only local files are used)" if _offline() else ""
            msg = " ".join(str(e).split())[:300]
            raise BackendError(f"Could not load Hugging Face model '{name}'{hint}: {msg}") from e
        if not hasattr(model, "hf_device_map"):
            model.to(self.device)
        return model, tokenizer

    @staticmethod
    def _model_id(model: Any) -> str:
        """The model's name, or for an unnamed in-memory model a hash of its config and weights."""
        named = getattr(model, "name_or_path", "") or getattr(getattr(model, "config", None), "_name_or_path", "")
        if named:
            return str(named)
        h = hashlib.sha256()
        config = getattr(model, "config", None)
        if config is not None:
            h.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
        for key, tensor in sorted(model.state_dict().items()):
            h.update(f"{key}:{tuple(tensor.shape)}:{float(tensor.double().sum()):.10e}".encode())
        return f"{type(model).__name__}-{h.hexdigest()[:12]}"

    def _supports_fast_scoring(self) -> bool:
        """Left padding + position_ids + logits_to_keep: only the needed logits get computed."""
        import inspect

        try:
            params = inspect.signature(self.hf_model.forward).parameters
        except (TypeError, ValueError):
            return False
        return "position_ids" in params and "logits_to_keep" in params

    # ------------------------------------------------------------ text

    def render(self, messages: Messages, add_generation_prompt: bool = True) -> str:
        """The tokenizer's chat template when it has one, else ChatML."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=add_generation_prompt)
        return super().render(messages, add_generation_prompt)

    def _add_special(self, text: str) -> bool:
        """Add the tokenizer's special tokens (BOS) unless the text (a rendered template) has them."""
        bos = getattr(self.tokenizer, "bos_token", None)
        return not (bos and text.startswith(bos))

    def _encode(self, text: str) -> list[int]:
        ids = list(self.tokenizer(text, add_special_tokens=self._add_special(text))["input_ids"])
        if not ids:  # an empty prompt: start from BOS (or EOS, as GPT-2 style models do)
            start = getattr(self.tokenizer, "bos_token_id", None)
            start = start if start is not None else (self.eos_ids[0] if self.eos_ids else None)
            if start is None:
                raise BackendError("Empty prompt and the tokenizer has no BOS or EOS token to start from.")
            ids = [int(start)]
        return ids

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # ------------------------------------------------------------ generation

    @property
    def samples_in_flight(self) -> int:
        return self.batch_size

    def generate(self, requests: Sequence[GenerationRequest],
                 on_sample: OnSample | None = None) -> list[GenerationResult]:
        """All samples of all requests, ``batch_size`` rows per ``generate`` call.

        Rows are grouped by ``max_tokens`` and sorted by prompt length (less padding); each
        batch's samples go to ``on_sample`` (in this thread) as soon as the batch is done.
        """
        grammars = [self._verdict_grammar(r.grammar) if r.grammar is not None else None for r in requests]
        prompt_ids = [self._encode(self.prompt_text(r)) for r in requests]
        rows = [_Row(r_i, i, int(seed), prompt_ids[r_i], float(req.temperature), float(req.top_p),
                     int(req.max_tokens), [s for s in req.stop if s], grammars[r_i])
                for r_i, req in enumerate(requests) for i, seed in enumerate(req.seeds)]
        completions: list[list[Completion]] = [[] for _ in requests]
        rows.sort(key=lambda row: (row.max_tokens, len(row.ids), row.req, row.index))
        groups: dict[int, list[_Row]] = {}
        for row in rows:
            groups.setdefault(row.max_tokens, []).append(row)
        for group in groups.values():
            for start in range(0, len(group), self.batch_size):
                chunk = group[start: start + self.batch_size]
                for row, comp in zip(chunk, self._generate_batch(chunk)):
                    completions[row.req].append(comp)
                    if on_sample:
                        on_sample(row.req, comp)
        return [GenerationResult(req, sorted(comps, key=lambda c: c.index), prompt_tokens=len(ids))
                for req, comps, ids in zip(requests, completions, prompt_ids)]

    def _generate_batch(self, rows: list[_Row]) -> list[Completion]:
        torch = self._torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        max_new = rows[0].max_tokens
        if max_new <= 0:
            return [Completion("", row.index, row.seed, 0, "length", prompt_tokens=len(row.ids)) for row in rows]
        width = max(len(row.ids) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, row in enumerate(rows):
            if row.ids:
                input_ids[b, width - len(row.ids):] = torch.tensor(row.ids, dtype=torch.long)
                mask[b, width - len(row.ids):] = 1
        sampler = _RowSampler(rows, self.device)
        stops = _RowStops(rows, width, set(self.eos_ids), self._decode)
        processors = [sampler]
        if any(row.grammar is not None for row in rows):
            processors.insert(0, _RowGrammar(rows, width, self._constraint))
        # Explicit neutral values: transformers fills unset fields from the model's own
        # generation_config (e.g. a repetition_penalty), which would change what a sample means.
        config = GenerationConfig(max_new_tokens=max_new, do_sample=False, num_beams=1,
                                  pad_token_id=self.pad_id, eos_token_id=self.eos_ids or None,
                                  repetition_penalty=1.0, no_repeat_ngram_size=0,
                                  min_new_tokens=0)
        with torch.inference_mode():
            self.hf_model.generate(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                   generation_config=config,
                                   logits_processor=LogitsProcessorList(processors),
                                   stopping_criteria=StoppingCriteriaList([stops]))
        out = []
        for b, row in enumerate(rows):
            n, reason = stops.done[b] or (len(stops.tokens[b]), "length")
            text = self._decode(stops.tokens[b][:n])
            cut = [text.index(s) for s in row.stop if s in text]
            if cut:
                text, reason = text[: min(cut)], "stop"
            out.append(Completion(text=text, index=row.index, seed=row.seed, tokens=n, finish_reason=reason,
                                  prompt_tokens=len(row.ids)))
        return out

    # ------------------------------------------------------------ judge verdict grammars

    supports_grammar = True  # the judges' verdict grammars only (backends/verdict_grammar.py)

    def _verdict_grammar(self, grammar: str) -> Any:
        from .verdict_grammar import parse_verdict_grammar

        g = parse_verdict_grammar(grammar)
        if g is None:
            raise BackendError("The transformers backend constrains only the judges' verdict grammars "
                               "('Feedback: ... [RESULT] <verdict>'); for other GBNF grammars use --backend llamacpp, "
                               "or an OpenAI-compatible server with -o grammar_mode=...")
        if not self.eos_ids:
            raise BackendError("The transformers backend needs the model's end-of-sequence token to constrain a verdict.")
        return g

    def _constraint(self, grammar: Any, max_new: int) -> Any:
        from .verdict_grammar import VerdictConstraint, bracket_mask

        vocab = int(self.hf_model.get_output_embeddings().weight.shape[0])
        mask = getattr(self, "_bracket", None)
        if mask is None or mask.shape[0] != vocab:
            mask = self._bracket = bracket_mask(self.tokenizer, vocab).to(self.device)
        try:
            return VerdictConstraint(grammar, lambda t: self.tokenizer.encode(t, add_special_tokens=False), mask,
                                     self.eos_ids[0], max_new)
        except ValueError as e:
            raise BackendError(f"Cannot constrain a judge verdict with this tokenizer: {e}.") from e

    # ------------------------------------------------------------ scoring

    def _continuation_positions(self, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of prompt + continuation, and the positions of the continuation's tokens."""
        full = prompt + continuation
        special = self._add_special(full)
        if getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(full, add_special_tokens=special, return_offsets_mapping=True)
            ids = list(enc["input_ids"])
            # special tokens added by the tokenizer have offsets (0, 0) and so are never picked
            positions = [k for k, (_, end) in enumerate(enc["offset_mapping"]) if end > len(prompt)]
        else:
            head = list(self.tokenizer(prompt, add_special_tokens=special)["input_ids"]) if prompt else []
            tail = list(self.tokenizer(continuation, add_special_tokens=False)["input_ids"])
            ids, positions = head + tail, list(range(len(head), len(head) + len(tail)))
        return ids, [k for k in positions if k >= 1]  # the first token has no prediction

    def logprobs(self, prompt: str | Messages, continuations: Sequence[str]) -> list[ContinuationScore]:
        """log P(continuation | prompt) per continuation, summed over its tokens."""
        text = prompt if isinstance(prompt, str) else self.render(prompt)
        items = [self._continuation_positions(text, c) for c in continuations]
        scores: list[list[float]] = [[] for _ in items]
        # one-token continuations after the same ids (a judge's verdict options " A" / " B"): one
        # forward pass reads them all off the next-token distribution
        shared: dict[tuple[int, ...], list[int]] = {}
        for j, (ids, positions) in enumerate(items):
            if positions == [len(ids) - 1]:
                shared.setdefault(tuple(ids[:-1]), []).append(j)
        done = set()
        for prefix, members in shared.items():
            if len(members) < 2:
                continue
            logp = self._next_token_logprobs(list(prefix))
            for j in members:
                scores[j] = [float(logp[items[j][0][-1]])]
                done.add(j)
        order = sorted((k for k in range(len(items)) if k not in done), key=lambda k: len(items[k][0]))
        k = 0
        while k < len(order):
            batch = [order[k]]
            while (k + len(batch) < len(order) and len(batch) < self.batch_size
                   and (len(batch) + 1) * len(items[order[k + len(batch)]][0]) <= self.max_batch_tokens):
                batch.append(order[k + len(batch)])
            k += len(batch)
            for j, values in zip(batch, self._score_batch([items[j] for j in batch])):
                scores[j] = values
        return [ContinuationScore(c, float(sum(v)), v) for c, v in zip(continuations, scores)]

    def _next_token_logprobs(self, prefix: list[int]) -> Any:
        """log P(next token | prefix) over the vocabulary (one forward pass, last position only)."""
        torch = self._torch
        ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
        kwargs: dict[str, Any] = {"logits_to_keep": 1} if self._fast_scoring else {}
        with torch.inference_mode():
            logits = self.hf_model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False,
                                   **kwargs).logits
        return torch.log_softmax(logits[0, -1].float(), dim=-1)

    def _score_batch(self, items: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        torch = self._torch
        width = max(len(ids) for ids, _ in items)
        n = len(items)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        fast = self._fast_scoring
        offsets = []
        for b, (ids, _) in enumerate(items):
            off = width - len(ids) if fast else 0  # left padding when fast, else right padding
            input_ids[b, off: off + len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[b, off: off + len(ids)] = 1
            offsets.append(off)
        kwargs: dict[str, Any] = {}
        keep_from = 0
        if fast:
            first = min((off + pos[0] for off, (_, pos) in zip(offsets, items) if pos), default=width)
            keep_from = max(0, first - 1)
            kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(self.device)
            kwargs["logits_to_keep"] = max(1, width - keep_from)
            keep_from = width - kwargs["logits_to_keep"]
        with torch.inference_mode():
            logits = self.hf_model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                   use_cache=False, **kwargs).logits
            out = []
            for b, (ids, positions) in enumerate(items):
                if not positions:
                    out.append([])
                    continue
                at = torch.tensor([offsets[b] + p - 1 - keep_from for p in positions], device=logits.device)
                targets = torch.tensor([ids[p] for p in positions], device=logits.device)
                logp = torch.log_softmax(logits[b, at].float(), dim=-1)
                out.append(logp.gather(-1, targets[:, None]).squeeze(-1).tolist())
        return out

    # ------------------------------------------------------------ misc

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "device": str(self.device)}

    def close(self) -> None:
        """Drop the model; frees GPU memory once nothing else holds it."""
        if getattr(self, "hf_model", None) is not None:
            self.hf_model = None
            if self._torch.cuda.is_available():
                self._torch.cuda.empty_cache()


class _RowSampler:
    """Logits processor: per-row temperature/top-p sampling with per-row generators.

    Returns scores that are -inf everywhere but the chosen token, so greedy ``generate`` takes
    exactly that token. Rows with temperature <= 0 take the argmax.
    """

    def __init__(self, rows: list[_Row], device: Any):
        import torch

        self.torch = torch
        self.rows = rows
        self.generators = []
        for row in rows:
            g = torch.Generator(device=device)
            g.manual_seed(row.seed)
            self.generators.append(g)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self.torch
        chosen = scores.argmax(dim=-1)
        for b, row in enumerate(self.rows):
            if row.temperature <= 0:
                continue
            probs = torch.softmax(scores[b].float() / row.temperature, dim=-1)
            if row.top_p < 1.0:
                sorted_p, order = probs.sort(descending=True)
                drop = sorted_p.cumsum(-1) - sorted_p >= row.top_p  # keep the smallest head >= top_p
                sorted_p[drop] = 0.0
                probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
            chosen[b] = torch.multinomial(probs, 1, generator=self.generators[b])[0]
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, chosen[:, None], 0.0)
        return out


class _RowGrammar:
    """Logits processor: each row with a judge verdict grammar gets its own ``VerdictConstraint``
    (backends/verdict_grammar.py), applied before the row's sampler."""

    def __init__(self, rows: list[_Row], prompt_width: int, make: Any):
        self.width = prompt_width
        self.constraints = [make(row.grammar, row.max_tokens) if row.grammar is not None else None for row in rows]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        new = input_ids[:, self.width:].tolist()
        for b, c in enumerate(self.constraints):
            if c is not None:
                c.step(new[b], scores[b])
        return scores


class _RowStops:
    """Stopping criteria: per row, stop at EOS, a stop string or its own ``max_tokens``.

    Records in ``done[b]`` how many generated tokens belong to the sample and why it ended.
    """

    def __init__(self, rows: list[_Row], prompt_width: int, eos: set[int], decode: Any):
        self.rows = rows
        self.width = prompt_width
        self.eos = eos
        self.decode = decode
        self.done: list[tuple[int, str] | None] = [None] * len(rows)
        self.tokens: list[list[int]] = [[] for _ in rows]
        self.tails = [max((len(s) for s in row.stop), default=0) + 8 for row in rows]

    def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
        import torch

        new = input_ids[:, self.width:].tolist()
        flags = []
        for b, row in enumerate(self.rows):
            if self.done[b] is None:
                toks = new[b]
                self.tokens[b] = toks
                n = len(toks)
                if n and toks[-1] in self.eos:
                    self.done[b] = (n - 1, "stop")
                elif row.stop and any(s in self.decode(toks[-self.tails[b]:]) for s in row.stop):
                    self.done[b] = (n, "stop")
                elif n >= row.max_tokens:
                    self.done[b] = (n, "length")
            flags.append(self.done[b] is not None)
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)
