"""A trained process reward model as a step scorer, loaded by path (``--prm PATH``).

``load_prm(path)`` reads ``PATH/model_card.json`` (written by ``rationales train prm``) and
returns a scorer of the kind it records, each implementing the step-scorer protocol
``score(problems, rationales) -> list[list[float | None]]`` in batches:

* ``discriminative``: a causal LM with a per-step head (``AutoModelForTokenClassification``,
  2 labels), read at the last token of each step (the stepwise format of TRL's old
  ``PRMTrainer``; reward = softmax P(+));
* ``generative``: an SFT-trained generative PRM in GroundedPRM's format (``<verify>``,
  ``<judge>``, ``<output>\\boxed{+}``), run through ``GenerativePRM`` on the transformers
  backend;
* ``probe``: a small head (logistic regression or a one-hidden-layer MLP) on the frozen
  llama.cpp model's final hidden states at each step's end (``StepStates``: an embeddings
  context on the loaded GGUF; one forward pass per rationale, the shared prompt evaluated
  once per problem).

The input of the discriminative and probe kinds is built the same way at training and at
scoring time (``encode_steps``): the prompt, then each step's text as cut at its recorded
span (``step_pieces``) tokenized on its own, so a step's end is a token position, never a
searched-for separator. Scores are attached and stored by ``verify.prm.prm_checks`` as
``Check(kind="prm", by=<prm id>)``; steps that already carry this PRM's scores are not
scored again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import RationalesError
from ..records import Problem, Rationale, content_hash

CARD = "model_card.json"
PRM_KINDS = ("discriminative", "generative", "probe")
PROBE_FILE = "probe.npz"


class TrainedPRMError(RationalesError):
    """A PRM directory cannot be used; the message says why and what to pass."""


# ------------------------------------------------------------------ the shared input format


def step_pieces(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """One string per step: the text from the step's start to the next step's start (the step
    and the whitespace after it; text before the first step goes with the first)."""
    starts = [a for a, _ in spans]
    return [text[(0 if i == 0 else st):(starts[i + 1] if i + 1 < len(starts) else len(text))]
            for i, st in enumerate(starts)]


def rationale_pieces(r: Rationale) -> list[str]:
    return step_pieces(r.text, [s.span for s in r.steps]) if r.steps else []


def problem_text(p: Problem) -> str:
    return f"{p.context.strip()}\n\n{p.question.strip()}" if p.context else p.question.strip()


def encode_steps(tokenizer: Any, prompt: str, pieces: Sequence[str], max_length: int = 1024
                 ) -> tuple[list[int], list[int | None]]:
    """Token ids of a stepwise example for an HF tokenizer and the position of each step's
    last token (None for steps cut off by ``max_length``). The prompt goes through the
    tokenizer's chat template as a user turn when it has one."""
    if getattr(tokenizer, "chat_template", None):
        head = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                             tokenize=False)
    else:
        head = prompt + "\n\n"
    ids = list(tokenizer(head, add_special_tokens=False)["input_ids"])
    ends: list[int | None] = []
    for piece in pieces:
        toks = list(tokenizer(piece, add_special_tokens=False)["input_ids"]) if piece else []
        if not toks or len(ids) + len(toks) > max_length:
            ends.append(None)
            if toks:
                break
            continue
        ids.extend(toks)
        ends.append(len(ids) - 1)
    ends += [None] * (len(pieces) - len(ends))
    return ids, ends


def hf_tokenizer_fingerprint(tokenizer: Any) -> str:
    vocab = tokenizer.get_vocab()
    items = sorted(vocab.items(), key=lambda kv: kv[1])
    return content_hash("hf-vocab", len(items), items[:2000], items[-200:])


# ------------------------------------------------------------------ model cards


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card of a trained PRM, or a one-line error saying what is wrong."""
    p = Path(path).expanduser()
    if not p.exists():
        raise TrainedPRMError(f"PRM {p} does not exist; train one with `rationales train prm --output-dir {p}`.")
    if not p.is_dir() or not (p / CARD).is_file():
        raise TrainedPRMError(f"{p} is not a trained PRM: it has no {CARD}. Pass the output directory of "
                              "`rationales train prm`.")
    try:
        card = json.loads((p / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TrainedPRMError(f"{p / CARD} is unreadable ({e}); retrain the PRM.") from e
    info = card.get("prm") if isinstance(card, dict) else None
    kind = info.get("kind") if isinstance(info, dict) else None
    if not isinstance(card, dict) or card.get("method") != "prm" or kind not in PRM_KINDS:
        method = " ".join(str(card.get("method", "?") if isinstance(card, dict) else "?").split())[:40]
        raise TrainedPRMError(f"{p} holds a model trained by `rationales train {method}`, not a PRM "
                              f"(its card names no PRM kind of {', '.join(PRM_KINDS)}).")
    return card


def prm_id(card: dict[str, Any], path: str | Path) -> str:
    return f"trained-prm:{card['prm'].get('id') or Path(path).name}"


def _split_rewards(flat: list[float | None], shape: list[int]) -> list[list[float | None]]:
    out, i = [], 0
    for n in shape:
        out.append(flat[i:i + n])
        i += n
    return out


class _Cached:
    """Shared parts: names, reuse of stored scores, a memory cache, partial-path scoring."""

    kind = ""

    def __init__(self, path: Path, card: dict[str, Any]):
        self.path, self.card = path, card
        self.name = prm_id(card, path)
        self.threshold = float(card["prm"].get("threshold", 0.5))
        self._cache: dict[str, list[float | None]] = {}
        self.last_details: list[list[dict[str, Any]]] = []
        self.scored_steps = 0

    def _stored(self, r: Rationale) -> list[float | None] | None:
        got = []
        for s in r.steps:
            c = next((c for c in reversed(s.checks) if c.kind == "prm" and c.by == self.name), None)
            if c is None:
                return None
            got.append(c.score)
        return got

    def _compute(self, problems: list[Problem], rationales: list[Rationale]) -> list[list[float | None]]:
        raise NotImplementedError

    def score(self, problems: Sequence[Problem], rationales: Sequence[Rationale]) -> list[list[float | None]]:
        from .prm import align_problems

        probs = align_problems(problems, rationales)
        out: list[list[float | None] | None] = []
        todo: list[int] = []
        keys: list[str] = []
        for i, (p, r) in enumerate(zip(probs, rationales)):
            key = content_hash(self.name, problem_text(p), rationale_pieces(r))
            keys.append(key)
            hit = self._cache.get(key) if key in self._cache else (self._stored(r) if r.steps else [])
            out.append(hit)
            if hit is None:
                todo.append(i)
        if todo:
            got = self._compute([probs[i] for i in todo], [rationales[i] for i in todo])
            for i, rewards in zip(todo, got):
                out[i] = rewards
                self.scored_steps += len(rewards)
        for key, rewards in zip(keys, out):
            self._cache[key] = rewards  # type: ignore[assignment]
        self.last_details = [[{"prm": self.name, "kind": self.kind}] * len(r.steps) for r in rationales]
        return [list(x or []) for x in out]

    def score_steps(self, items: Sequence[tuple[Problem, Sequence[str], str]]) -> list[float | None]:
        """Reward of each candidate step after its earlier steps (step search), batched."""
        from .prm import rationale_from_steps

        rs = [rationale_from_steps(p, [*prev, step]) for p, prev, step in items]
        rewards = self.score([p for p, _, _ in items], rs)
        return [r[-1] if r else None for r in rewards]


# ------------------------------------------------------------------ discriminative


class DiscriminativePRM(_Cached):
    """Token-classification PRM: P(+) at each step's last token."""

    kind = "discriminative"

    def __init__(self, path: Path, card: dict[str, Any], batch_size: int = 8):
        super().__init__(path, card)
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            self.model = AutoModelForTokenClassification.from_pretrained(str(path), dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise TrainedPRMError(f"Could not load the PRM in {path} ({str(e)[:160]}); retrain it.") from e
        want = card["prm"].get("tokenizer")
        if want and hf_tokenizer_fingerprint(self.tokenizer) != want:
            raise TrainedPRMError(f"PRM {path} was trained with another tokenizer than the one in its directory; "
                                  "retrain it, or copy back the tokenizer it was trained with.")
        self.model.eval()
        self.batch_size = max(1, int(batch_size))
        self.max_length = int(card["prm"].get("max_length", 1024))

    def _compute(self, problems: list[Problem], rationales: list[Rationale]) -> list[list[float | None]]:
        import torch

        encoded = [encode_steps(self.tokenizer, problem_text(p), rationale_pieces(r), self.max_length)
                   for p, r in zip(problems, rationales)]
        out: list[list[float | None]] = []
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for b in range(0, len(encoded), self.batch_size):
            chunk = encoded[b:b + self.batch_size]
            width = max(1, max(len(ids) for ids, _ in chunk))
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, (x, _) in enumerate(chunk):
                ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
                mask[i, :len(x)] = 1
            with torch.no_grad():
                probs = torch.softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)[..., 1]
            for i, (_, ends) in enumerate(chunk):
                out.append([None if e is None else float(probs[i, e]) for e in ends])
        return out


# ------------------------------------------------------------------ generative


class GenerativeTrainedPRM(_Cached):
    """An SFT-trained GroundedPRM-format judge, run by ``GenerativePRM`` on transformers."""

    kind = "generative"

    def __init__(self, path: Path, card: dict[str, Any], backend: Any = None):
        super().__init__(path, card)
        from ..backends.base import get_backend
        from .genprm import GenerativePRM

        be = backend if backend is not None else get_backend("transformers", model=str(path))
        self.judge = GenerativePRM(be, template=card["prm"].get("template", "prm_generative"),
                                   max_tokens=int(card["prm"].get("max_new_tokens", 96)))

    def _compute(self, problems: list[Problem], rationales: list[Rationale]) -> list[list[float | None]]:
        return self.judge.score(problems, rationales)


# ------------------------------------------------------------------ probe on llama.cpp hidden states


class StepStates:
    """Final-layer hidden states (after the output norm) of a GGUF model at chosen token
    positions, from a llama.cpp context with embeddings on (pooling none) created on an
    already loaded model. One sequence; the longest common token prefix with the previous
    call stays in the KV cache (the 8 samples of a problem share their prompt)."""

    def __init__(self, backend: Any, n_ctx: int = 2048, n_batch: int = 512):
        ll = backend._ll  # the llamacpp backend's llama_cpp module and loaded model
        self.backend, self.ll = backend, ll
        p = ll.llama_context_default_params()
        p.n_ctx = int(n_ctx)
        p.n_batch = int(n_batch)
        p.n_ubatch = int(n_batch)
        p.n_seq_max = 1
        p.embeddings = True
        p.pooling_type = ll.LLAMA_POOLING_TYPE_NONE
        p.n_threads = backend.n_threads
        p.n_threads_batch = backend.n_threads
        p.no_perf = True
        p.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ptr = ll.llama_init_from_model(backend.llm.model, p)
        if not self.ptr:
            raise TrainedPRMError("llama.cpp could not create an embeddings context (out of memory?).")
        self.n_ctx = int(ll.llama_n_ctx(self.ptr))
        self.n_embd = int(ll.llama_model_n_embd(backend.llm.model))
        self.mem = ll.llama_get_memory(self.ptr)
        self.n_batch = int(n_batch)
        self.batch = ll.llama_batch_init(self.n_batch, 0, 1)
        self.past: list[int] = []
        self.kept: dict[int, Any] = {}  # position -> hidden state, for positions in ``past``
        self.tokens_evaluated = 0

    def tokens(self, text: str, first: bool) -> list[int]:
        if first:
            return self.backend.tokenize(text)
        return list(self.backend.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else []

    def encode(self, prompt: str, pieces: Sequence[str]) -> tuple[list[int], list[int | None]]:
        ids = self.tokens(prompt, True)
        ends: list[int | None] = []
        for piece in pieces:
            toks = self.tokens(piece, False)
            if not toks or len(ids) + len(toks) > self.n_ctx:
                ends.append(None)
                continue
            ids.extend(toks)
            ends.append(len(ids) - 1)
        return ids, ends

    def states(self, ids: list[int], positions: Sequence[int]) -> Any:
        import numpy as np

        ll = self.ll
        keep = 0
        n = min(len(ids), len(self.past))
        while keep < n and ids[keep] == self.past[keep]:
            keep += 1
        if keep == len(ids):  # everything cached: re-decode the last token so outputs exist
            keep -= 1
        need = set(positions)
        self.kept = {q: v for q, v in self.kept.items() if q < keep}
        ll.llama_memory_seq_rm(self.mem, 0, keep, -1)
        self.past = self.past[:keep]
        b = self.batch
        for start in range(keep, len(ids), self.n_batch):
            chunk = ids[start:start + self.n_batch]
            for i, t in enumerate(chunk):
                b.token[i] = t
                b.pos[i] = start + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = 1 if (start + i) in need else 0
            b.n_tokens = len(chunk)
            rc = ll.llama_decode(self.ptr, b)
            if rc != 0:
                ll.llama_memory_clear(self.mem, False)
                self.past, self.kept = [], {}
                raise TrainedPRMError(f"llama_decode failed (code {rc}) while reading hidden states.")
            self.tokens_evaluated += len(chunk)
            for i in range(len(chunk)):
                if (start + i) in need:
                    ptr = ll.llama_get_embeddings_ith(self.ptr, i)
                    self.kept[start + i] = np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).copy()
            self.past.extend(chunk)
        return np.stack([self.kept[q] for q in positions]) if positions else np.zeros((0, self.n_embd), np.float32)

    def step_states(self, prompt: str, pieces: Sequence[str]) -> tuple[Any, list[int | None]]:
        """Hidden states at the end of each step (rows for steps that fit) and the row index of
        each step (None for steps beyond the context)."""
        ids, ends = self.encode(prompt, pieces)
        pos = [e for e in ends if e is not None]
        x = self.states(ids, pos)
        rows, k = [], 0
        for e in ends:
            rows.append(None if e is None else k)
            k += e is not None
        return x, rows

    def close(self) -> None:
        if getattr(self, "batch", None) is not None:
            self.ll.llama_batch_free(self.batch)
            self.batch = None
        if getattr(self, "ptr", None):
            self.ll.llama_free(self.ptr)
            self.ptr = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def llama_vocab_fingerprint(backend: Any) -> str:
    ll, vocab = backend._ll, backend._vocab
    n = int(ll.llama_vocab_n_tokens(vocab))
    ids = list(range(min(n, 2000))) + list(range(max(0, n - 200), n))
    texts = [ll.llama_vocab_get_text(vocab, i).decode("utf-8", "ignore") for i in ids]
    return content_hash("llama-vocab", n, texts)


def probe_prompt(backend: Any, p: Problem, template: str = "cot") -> str:
    """What the model saw before its rationale: the CoT prompt with an open assistant turn."""
    from ..generate import continuation_prompt
    from ..prompts import render

    return continuation_prompt(backend, render(template, question=p.question, context=p.context), "")


class ProbeHead:
    """Logistic regression (``hidden == 0``) or a one-hidden-layer MLP on standardised
    features, in numpy (the trainer fits it with torch; scoring needs numpy only)."""

    def __init__(self, params: dict[str, Any]):
        self.p = params

    def logits(self, x: Any) -> Any:
        import numpy as np

        z = (np.asarray(x, dtype=np.float64) - self.p["mean"]) / self.p["std"]
        if "w1" in self.p:
            z = np.maximum(z @ self.p["w1"] + self.p["b1"], 0.0)
        return z @ self.p["w"] + self.p["b"]

    def prob(self, x: Any) -> Any:
        import numpy as np

        return 1.0 / (1.0 + np.exp(-np.clip(self.logits(x), -60, 60)))

    @classmethod
    def load(cls, path: Path) -> "ProbeHead":
        import numpy as np

        try:
            with np.load(path) as f:
                return cls({k: f[k] for k in f.files})
        except (OSError, ValueError, KeyError) as e:
            raise TrainedPRMError(f"Probe weights {path} are unreadable ({e}); retrain the PRM.") from e

    def save(self, path: Path) -> None:
        import numpy as np

        np.savez(path, **{k: np.asarray(v) for k, v in self.p.items()})


class ProbePRM(_Cached):
    """A head on the frozen GGUF model's hidden states at step ends."""

    kind = "probe"

    def __init__(self, path: Path, card: dict[str, Any], backend: Any = None):
        super().__init__(path, card)
        info = card["prm"]
        if not (path / PROBE_FILE).is_file():
            raise TrainedPRMError(f"{path} is a probe PRM without its weights ({PROBE_FILE}); retrain it.")
        self.head = ProbeHead.load(path / PROBE_FILE)
        feature_model = info.get("feature_model")
        if backend is None or getattr(backend, "name", "") != "llamacpp" or backend.model != feature_model:
            from ..backends.base import get_backend

            backend = get_backend("llamacpp", model=info.get("feature_model_path") or feature_model,
                                  n_ctx=int(info.get("n_ctx", 2048)))
        if info.get("tokenizer") and llama_vocab_fingerprint(backend) != info["tokenizer"]:
            raise TrainedPRMError(f"PRM {path} was trained on the hidden states of {feature_model}, whose tokenizer "
                                  f"differs from that of {backend.model}; score with --model {feature_model}.")
        self.backend = backend
        self.template = info.get("template", "cot")
        self.states = StepStates(backend, n_ctx=int(info.get("n_ctx", 2048)))
        if self.states.n_embd != int(info.get("n_embd", self.states.n_embd)):
            raise TrainedPRMError(f"PRM {path} expects {info['n_embd']}-dim hidden states; {backend.model} has "
                                  f"{self.states.n_embd}.")

    def features(self, problem: Problem, r: Rationale) -> tuple[Any, list[int | None]]:
        return self.states.step_states(probe_prompt(self.backend, problem, self.template), rationale_pieces(r))

    def _compute(self, problems: list[Problem], rationales: list[Rationale]) -> list[list[float | None]]:
        out = []
        order = sorted(range(len(rationales)), key=lambda i: problems[i].id)  # shared prompts back to back
        got: dict[int, list[float | None]] = {}
        for i in order:
            x, rows = self.features(problems[i], rationales[i])
            probs = self.head.prob(x) if len(x) else []
            got[i] = [None if k is None else float(probs[k]) for k in rows]
        for i in range(len(rationales)):
            out.append(got[i])
        return out


def load_prm(path: str | Path, backend: Any = None, **kwargs: Any) -> _Cached:
    """The step scorer of a trained PRM directory (any kind, detected from its model card).
    ``backend``: the llamacpp backend to reuse for a probe PRM (when it runs the probe's
    feature model) or the backend of a generative PRM."""
    p = Path(path).expanduser()
    card = read_card(p)
    kind = card["prm"]["kind"]
    if kind == "discriminative":
        return DiscriminativePRM(p, card, **kwargs)
    if kind == "generative":
        return GenerativeTrainedPRM(p, card, backend=backend)
    return ProbePRM(p, card, backend=backend)


def is_prm_path(spec: str) -> bool:
    """Whether a ``--prm`` value names a directory (a trained PRM) rather than a scorer name."""
    return "/" in spec or spec.startswith(".") or Path(spec).expanduser().is_dir()


def reward_auc(rewards: Sequence[float], labels: Sequence[bool]) -> float | None:
    """AUROC of rewards against boolean labels (ties count half); None with one class only."""
    pos = [r for r, y in zip(rewards, labels) if y]
    neg = [r for r, y in zip(rewards, labels) if not y]
    if not pos or not neg:
        return None
    wins = 0.0
    for a in pos:
        for b in neg:
            wins += 1.0 if a > b else (0.5 if a == b else 0.0)
    return wins / (len(pos) * len(neg))


__all__ = ["load_prm", "read_card", "is_prm_path", "encode_steps", "step_pieces", "rationale_pieces", "StepStates",
           "ProbeHead", "TrainedPRMError", "PRM_KINDS", "CARD", "problem_text", "probe_prompt", "reward_auc",
           "llama_vocab_fingerprint", "hf_tokenizer_fingerprint"]
