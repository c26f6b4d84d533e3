"""Confidence and calibration: agreement among samples, verbal confidence, ECE, reliability.

Xu et al., 2024, "SaySelf: Teaching LLMs to Express Confidence with Self-Reflective Rationales"
(EMNLP 2024): the model's confidence in an answer is estimated from the *agreement among its
sampled rationales* (SaySelf derives its training targets from the consistency of many sampled
reasoning chains), and the stated confidence is judged by its calibration, the expected
calibration error (ECE) and reliability diagrams (Guo et al., 2017, "On Calibration of Modern
Neural Networks").

* Agreement confidence: the share of answered samples that give the voted answer (the
  ``confidence`` of ``majority_vote``); each sample also gets ``Score(kind="agreement")``, the
  share of answered samples agreeing with its own answer.
* Verbal confidence: template ``cot_confidence`` asks for a final line "Confidence: N%";
  ``parse_verbal_confidence`` reads "Confidence: 85%", "confidence: 0.85", "85 percent",
  "I am 90% sure"... A confidence it cannot find is *unparsed* and counted, never a silent 0.
  Stored as ``Score(kind="verbal_confidence")`` (value None when unparsed).
* ECE with ``n_bins`` equal-width bins over [0, 1]: bin b holds confidences in
  [b/n, (b+1)/n) (the last bin also holds 1.0); ECE = sum_b (n_b / N) * |acc_b - conf_b|.
  Brier score = mean (confidence - correct)^2.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..generate import finish_rationale
from ..records import Problem, Rationale, Score
from ..answers import extract_answer, normalize

if TYPE_CHECKING:  # a selection is only read (confidence, correct); select/ sits above score/
    from ..select.vote import Selection


# ------------------------------------------------------------------ ECE and reliability bins

def _arrays(confidences: Sequence[float], correct: Sequence[bool | None]) -> tuple[np.ndarray, np.ndarray]:
    if len(confidences) != len(correct):
        from ..errors import RationalesError

        raise RationalesError(f"Calibration needs one correctness flag per confidence "
                              f"({len(confidences)} confidences, {len(correct)} flags).")
    pairs = [(float(c), bool(k)) for c, k in zip(confidences, correct) if c is not None and k is not None]
    conf = np.array([c for c, _ in pairs], dtype=float)
    hit = np.array([k for _, k in pairs], dtype=float)
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        from ..errors import RationalesError

        raise RationalesError("Confidences must lie in [0, 1]; divide percentages by 100.")
    return conf, hit


def bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each confidence; 1.0 goes to the last bin. A tiny epsilon keeps
    values such as 0.3 (0.3 * 10 = 2.9999...) in the bin they name."""
    return np.minimum(np.floor(conf * n_bins + 1e-9).astype(int), n_bins - 1)


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool | None],
                     n_bins: int = 10) -> list[dict[str, Any]]:
    """Per bin: its range, count, mean confidence and accuracy (None for empty bins).
    Pairs whose confidence or correctness is None are left out."""
    if n_bins < 1:
        from ..errors import RationalesError

        raise RationalesError(f"The number of calibration bins must be at least 1, got {n_bins}.")
    conf, hit = _arrays(confidences, correct)
    idx = bin_index(conf, n_bins)
    out = []
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        out.append({"lo": b / n_bins, "hi": (b + 1) / n_bins, "n": n,
                    "confidence": float(conf[mask].mean()) if n else None,
                    "accuracy": float(hit[mask].mean()) if n else None})
    return out


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool | None],
                               n_bins: int = 10) -> float | None:
    """ECE = sum over bins of (n_b / N) * |accuracy_b - mean confidence_b|; None when empty."""
    bins = reliability_bins(confidences, correct, n_bins)
    total = sum(b["n"] for b in bins)
    if total == 0:
        return None
    return float(sum(b["n"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["n"]))


def calibration_summary(confidences: Sequence[float], correct: Sequence[bool | None],
                        n_bins: int = 10) -> dict[str, Any]:
    """ECE, Brier score, mean confidence, accuracy and the reliability bins, JSON-ready."""
    conf, hit = _arrays(confidences, correct)
    bins = reliability_bins(confidences, correct, n_bins)
    n = int(conf.size)
    return {
        "n": n,
        "n_bins": n_bins,
        "ece": None if n == 0 else round(expected_calibration_error(confidences, correct, n_bins) or 0.0, 4),
        "brier": None if n == 0 else round(float(np.mean((conf - hit) ** 2)), 4),
        "mean_confidence": None if n == 0 else round(float(conf.mean()), 4),
        "accuracy": None if n == 0 else round(float(hit.mean()), 4),
        "bins": [{**b, "confidence": None if b["confidence"] is None else round(b["confidence"], 4),
                  "accuracy": None if b["accuracy"] is None else round(b["accuracy"], 4)} for b in bins],
    }


def vote_calibration(selections: Sequence[Selection], n_bins: int = 10) -> dict[str, Any]:
    """Calibration of the vote-share confidence of majority-vote selections (problems with no
    gold are left out; a problem with no answered sample has confidence 0)."""
    return calibration_summary([s.confidence or 0.0 for s in selections], [s.correct for s in selections], n_bins)


# ------------------------------------------------------------------ reliability diagram


# ------------------------------------------------------------------ confidence scores

_VERBAL = [
    # "Confidence: 85%", "confidence in my answer is about 0.85", "Confidence level - 8/10"
    re.compile(r"\bconfidence\b[^\d\n.]{0,40}?(?P<num>\d{1,3}(?:\.\d+)?)\s*"
               r"(?:(?P<pct>%|percent|per\s*cent)|(?:/|out\s+of)\s*(?P<den>10|100)\b)?", re.IGNORECASE),
    re.compile(r"(?P<num>\d{1,3}(?:\.\d+)?)\s*(?P<pct>%|percent|per\s*cent)\s*(?:confident|sure|certain|confidence)",
               re.IGNORECASE),
]


def parse_verbal_confidence(text: str) -> float | None:
    """A stated confidence as a probability in [0, 1], or None when none can be read.
    The last statement wins. "N%" / "N percent" -> N/100; a bare number above 1 is read as a
    percentage, at most 1 as a probability; "N/10" -> N/10; anything above 100% is unparsed."""
    found = None
    for pattern in _VERBAL:
        for m in pattern.finditer(text):
            if found is None or m.start() > found[0]:
                found = (m.start(), m.group("num"), m.group("pct"), m.groupdict().get("den"))
    if found is None:
        return None
    _, num, pct, den = found
    value = float(num)
    if den:
        value /= float(den)
    elif pct or value > 1:
        value /= 100.0
    return value if 0.0 <= value <= 1.0 else None


_CONF_TAIL = re.compile(r"\bconfiden(?:ce|t)\b[^\n]*", re.IGNORECASE)


def strip_confidence(text: str) -> str:
    """``text`` without its confidence statement(s) (from the word to the end of its line), for
    answer extraction: "Confidence in my answer: 80%" must not be read as the answer."""
    return _CONF_TAIL.sub("", text).strip()


def agreement_scores(rationales: Sequence[Rationale]) -> None:
    """``Score(kind="agreement")`` on each answered rationale: the share of answered samples
    (this one included) whose normalised answer equals its own."""
    keys = [normalize(r.answer) for r in rationales]
    answered = [k for k in keys if k is not None]
    for r, k in zip(rationales, keys):
        if k is None:
            continue
        r.set_score(Score(kind="agreement", value=answered.count(k) / len(answered), by="vote",
                          detail={"samples": len(answered)}))


def verbal_scores(problem: Problem, rationales: Sequence[Rationale]) -> list[Rationale]:
    """Read each rationale's verbal confidence into ``Score(kind="verbal_confidence")`` and
    re-extract its answer with the confidence line removed. Returns the rationales changed."""
    changed = []
    for r in rationales:
        answer = extract_answer(strip_confidence(r.text))
        if answer != r.answer:
            fixed = finish_rationale(problem, strip_confidence(r.text), rid=r.id, prompt_id=r.prompt_id, model=r.model,
                                     sampling=r.sampling, index=r.sample_index, tokens=r.tokens,
                                     prompt_tokens=r.prompt_tokens, finish_reason=r.finish_reason, method=r.method,
                                     parent_id=r.parent_id, meta=r.meta)
            r.answer, r.outcome, r.correct = fixed.answer, fixed.outcome, fixed.correct
        value = parse_verbal_confidence(r.text)
        r.set_score(Score(kind="verbal_confidence", value=value, by="verbal",
                          detail={"parsed": value is not None}))
        changed.append(r)
    return changed


# ------------------------------------------------------------------ method: rationales run --method calibration


