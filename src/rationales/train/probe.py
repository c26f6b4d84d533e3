"""The laptop PRM: a small head on the frozen llama.cpp model's hidden states at step ends.

The model that wrote the rationales reads each one once (prompt + rationale, one forward pass
in an embeddings context on the loaded GGUF, the prompt shared by a problem's samples kept in
the KV cache); its final hidden state (after the output norm) at the last token of every step
is that step's feature vector. A logistic regression (or a one-hidden-layer MLP,
``probe_hidden``) on standardised features is fitted by full-batch Adam with an L2 penalty,
classes balanced, on hard or soft targets. The feature pass is the whole cost (about one
prompt evaluation per rationale); the head trains in seconds. Features are cached in
``OUTPUT/features.npz`` every ``save_steps`` rationales, so a killed run resumes where it
stopped. Probing hidden states for correctness follows the "LLMs know more than they show"
line of work; here it is used as a process reward model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..records import content_hash
from .base import TrainDataError, TrainResult
from .prm import PRMConfig, PRMData, _write_card, load_prm_data, step_metrics, targets

FEATURES = "features.npz"


def _row_key(row: dict[str, Any], template: str, model: str) -> str:
    return content_hash("probe-row", model, template, row["prompt"], row["completions"], length=20)


def extract_features(cfg: PRMConfig, data: PRMData, backend: Any, states: Any,
                     cache_path: str | Path | None = None) -> dict[str, Any]:
    """Hidden states at the step ends of every row, cached in ``OUTPUT/features.npz`` (or in
    ``cache_path``, which several probes on the same rationales can share)."""
    import numpy as np

    from ..verify.trained_prm import probe_prompt

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache: dict[str, Any] = {}
    path = Path(cache_path) if cache_path is not None else out / FEATURES
    if path.is_file() and cfg.resume:
        try:
            with np.load(path, allow_pickle=False) as f:
                cache = {k: f[k] for k in f.files}
        except (OSError, ValueError):
            cache = {}

    def save() -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **cache)
        os.replace(tmp, path)

    order = sorted(range(len(data.rows)), key=lambda i: data.rows[i]["problem_id"])
    todo = [i for i in order if _row_key(data.rows[i], cfg.template, backend.model) not in cache]
    from tqdm.auto import tqdm

    done = 0
    for i in tqdm(todo, desc="hidden states", unit="rationale", disable=not cfg.progress):
        row = data.rows[i]
        p = data.problems[row["problem_id"]]
        x, rows = states.step_states(probe_prompt(backend, p, cfg.template), row["completions"])
        full = np.full((len(rows), states.n_embd), np.nan, dtype=np.float32)
        for k, j in enumerate(rows):
            if j is not None:
                full[k] = x[j]
        cache[_row_key(row, cfg.template, backend.model)] = full
        done += 1
        if done % cfg.save_steps == 0:
            save()
    if todo:
        save()
    return cache


def fit_head(x: Any, y: Any, *, hidden: int = 0, l2: float = 1e-3, lr: float = 1e-2, steps: int = 300,
             seed: int = 0) -> dict[str, Any]:
    """Fit the probe head on features ``x [n, d]`` and targets ``y`` in [0, 1] (classes
    balanced by weight); returns the numpy parameters of ``verify.trained_prm.ProbeHead``."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    xt = torch.tensor((x - mean) / std, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    pos = float((y >= 0.5).sum())
    neg = float(len(y) - pos)
    w_pos = len(y) / (2 * pos) if pos else 1.0
    w_neg = len(y) / (2 * neg) if neg else 1.0
    weights = torch.where(yt >= 0.5, torch.tensor(w_pos), torch.tensor(w_neg))
    d = xt.shape[1]
    if hidden:
        layer = torch.nn.Linear(d, hidden)
        head = torch.nn.Linear(hidden, 1)
        params = [*layer.parameters(), *head.parameters()]

        def forward(z: Any) -> Any:
            return head(torch.relu(layer(z))).squeeze(-1)
    else:
        head = torch.nn.Linear(d, 1)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        params = list(head.parameters())

        def forward(z: Any) -> Any:
            return head(z).squeeze(-1)

    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(max(1, steps)):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(forward(xt), yt, weight=weights)
        loss = loss + l2 * sum((p ** 2).sum() for p in params if p.dim() > 1)
        loss.backward()
        opt.step()
    out = {"mean": mean, "std": std, "w": head.weight.detach().double().numpy().reshape(-1),
           "b": head.bias.detach().double().numpy().reshape(())}
    if hidden:
        out.update({"w1": layer.weight.detach().double().numpy().T, "b1": layer.bias.detach().double().numpy()})
    return out


def _matrix(data: PRMData, idx: list[int], cache: dict[str, Any], cfg: PRMConfig, model: str
            ) -> tuple[Any, Any, Any]:
    import numpy as np

    xs, ys, hs = [], [], []
    for i in idx:
        row = data.rows[i]
        feats = cache[_row_key(row, cfg.template, model)]
        for k, t in enumerate(targets(row, cfg.soft)):
            if t is None or k >= len(feats) or np.isnan(feats[k]).any():
                continue
            xs.append(feats[k])
            ys.append(t)
            hs.append(bool(row["labels"][k]))
    if not xs:
        return np.zeros((0, 1)), np.zeros(0), np.zeros(0, dtype=bool)
    return np.stack(xs), np.asarray(ys), np.asarray(hs)


def train_probe(cfg: PRMConfig, data: PRMData | None = None, backend: Any = None,
                cache_path: str | Path | None = None) -> TrainResult:
    """Extract step-end hidden states with the GGUF model ``cfg.model`` (or ``backend``), fit the
    head, save ``probe.npz`` and the model card."""
    from ..backends.base import get_backend
    from ..verify.trained_prm import PROBE_FILE, ProbeHead, StepStates, llama_vocab_fingerprint

    t0 = time.time()
    data = data or load_prm_data(cfg)
    if backend is None:
        backend = get_backend("llamacpp", model=cfg.model, n_ctx=cfg.n_ctx)
    if getattr(backend, "name", "") != "llamacpp":
        raise TrainDataError("The probe PRM reads hidden states from llama.cpp: pass a GGUF model (an alias such as "
                             "qwen2.5-coder-0.5b, or a .gguf path) as --model.")
    states = StepStates(backend, n_ctx=cfg.n_ctx)
    t_feat = time.time()
    tokens_before = states.tokens_evaluated
    cache = extract_features(cfg, data, backend, states, cache_path)
    feat_seconds = time.time() - t_feat
    x, y, hard = _matrix(data, data.train, cache, cfg, backend.model)
    if len(y) == 0:
        raise TrainDataError("No labelled step fits in the context; raise --n-ctx.")
    if len(set(hard.tolist())) < 2:
        raise TrainDataError(f"All {len(y)} labelled training steps have the same label; a PRM needs right and "
                             "wrong steps (add wrong samples or another label source).")
    steps = cfg.max_steps if cfg.max_steps > 0 else int(300 * cfg.epochs)
    params = fit_head(x, y, hidden=cfg.probe_hidden, l2=cfg.l2, lr=cfg.lr, steps=steps, seed=cfg.seed)
    head = ProbeHead(params)
    out = Path(cfg.output_dir)
    head.save(out / PROBE_FILE)
    metrics: dict[str, Any] = {"train": step_metrics(head.prob(x).tolist(), hard.tolist(), cfg.threshold),
                               "feature_seconds": round(feat_seconds, 1),
                               "feature_tokens": states.tokens_evaluated - tokens_before, "fit_steps": steps}
    if data.val:
        xv, _, hv = _matrix(data, data.val, cache, cfg, backend.model)
        if len(hv):
            metrics["val"] = step_metrics(head.prob(xv).tolist(), hv.tolist(), cfg.threshold)
    info = {"name": backend.model, "kind": "frozen GGUF (llama.cpp hidden states)",
            "path": str(getattr(backend, "model_path", ""))}
    prm_info = {"kind": "probe", "id": content_hash("probe", cfg.to_dict(), backend.model, time.time(), length=10),
                "feature_model": backend.model, "feature_model_path": str(getattr(backend, "model_path", "")),
                "tokenizer": llama_vocab_fingerprint(backend), "n_embd": states.n_embd, "n_ctx": cfg.n_ctx,
                "template": cfg.template, "hidden": cfg.probe_hidden, "threshold": cfg.threshold,
                "label_source": cfg.label_source, "soft": cfg.soft,
                "features": "final hidden state (after the output norm) at each step's last token"}
    _write_card(cfg, data, metrics, info, prm_info)
    states.close()
    return TrainResult(output_dir=str(out), method="prm", steps=steps, resumed_from=None, train_loss=None,
                       metrics=metrics, examples=len(data.train), seconds=round(time.time() - t0, 1))


def cross_val_rewards(cfg: PRMConfig, data: PRMData, cache: dict[str, Any], model: str, *, folds: int = 5,
                      rows: list[int] | None = None, l2: float | None = None, hidden: int | None = None,
                      score_only: list[int] | None = None
                      ) -> tuple[dict[str, list[float | None]], dict[str, Any]]:
    """Out-of-fold step rewards for choosing a variant on TRAINING problems only: the rows
    (``data.train + data.val`` by default) are split into ``folds`` groups by problem; each
    group's rationales are scored by a head fitted on the other groups' labelled steps (every
    step of a row gets a reward, labelled or not). Returns (rewards by ``rationale_id``, pooled
    out-of-fold step metrics on the labelled steps). Features come from ``extract_features``.
    Rows in ``score_only`` are scored the same way (by the head of their problem's fold) but never
    fitted and left out of the metrics: a head trained on one label source (GroundedPRM paths),
    read out of fold on other rationales of the same problems (the samples a strategy selects among)."""
    import numpy as np

    from ..records import content_hash as _h
    from ..verify.trained_prm import ProbeHead

    idx = list(data.train) + list(data.val) if rows is None else list(rows)
    extra = [i for i in (score_only or []) if i not in set(idx)]
    extra_set = set(extra)
    fold_of = {i: int(_h("prm-fold", data.rows[i]["problem_id"], length=8), 16) % max(2, folds) for i in idx + extra}
    steps = cfg.max_steps if cfg.max_steps > 0 else int(300 * cfg.epochs)
    out: dict[str, list[float | None]] = {}
    pooled_r: list[float] = []
    pooled_y: list[bool] = []
    for f in range(max(2, folds)):
        fit = [i for i in idx if fold_of[i] != f]
        held = [i for i in idx + extra if fold_of[i] == f]
        if not held:
            continue
        x, y, hard = _matrix(data, fit, cache, cfg, model)
        if len(y) == 0 or len(set(hard.tolist())) < 2:
            continue
        head = ProbeHead(fit_head(x, y, hidden=cfg.probe_hidden if hidden is None else hidden,
                                  l2=cfg.l2 if l2 is None else l2, lr=cfg.lr, steps=steps, seed=cfg.seed))
        for i in held:
            row = data.rows[i]
            feats = cache[_row_key(row, cfg.template, model)]
            ok = ~np.isnan(feats).any(axis=1)
            probs = head.prob(np.nan_to_num(feats)) if len(feats) else []
            rw = [float(probs[k]) if ok[k] else None for k in range(len(feats))]
            out[row.get("rationale_id") or str(i)] = rw
            if i in extra_set:
                continue
            for k, lab in enumerate(row["labels"]):
                if lab is not None and k < len(rw) and rw[k] is not None:
                    pooled_r.append(rw[k])
                    pooled_y.append(bool(lab))
    return out, step_metrics(pooled_r, pooled_y, cfg.threshold)


__all__ = ["train_probe", "fit_head", "extract_features", "cross_val_rewards"]
