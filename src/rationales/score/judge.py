"""Response-level judge scores and agreement with gold (compute only).

* ``rationale_item`` / ``judge_scores``: an absolute judge (``verify.judge.AbsoluteJudge``)
  scores whole rationales; each gets ``Score(kind="judge", value=score or None, by=judge)``
  with the judge's rationale, how the verdict was read and every sample in ``detail``.
* Agreement with gold, as the judge literature reports it (Prometheus, RewardBench):
  ``absolute_agreement``: exact accuracy, Pearson and Spearman correlation and quadratic
  weighted kappa (Cohen 1968) against gold scores, plus unparsed counts; ``pairwise_agreement``:
  accuracy (a pair whose two orders disagree counts 0.5, as a tie), strict accuracy, position
  bias (share of pairs whose orders disagree) and unparsed counts, with Wilson 95% intervals.

Pearson/Spearman use ``scipy.stats`` when it is installed, else the same formulas in numpy
(``method`` in the result says which); the kappa is computed here (a confusion matrix).
An unparsed verdict is never a number: it is left out of correlations and counts as wrong in
accuracy. "unparsed" counts every verdict the judge did not write readably, including those then
read off the log-probabilities (``forced``, which do count in accuracy and correlations);
``no_verdict`` those left without any.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..records import Problem, Rationale, Score
from ..stats import mcnemar_exact, wilson_interval
from ..verify.judge import AbsoluteJudge, JudgeItem, Judgment, PairItem


def rationale_item(problem: Problem, rationale: Rationale, *, reference: bool = False, rubric: Any = None) -> JudgeItem:
    """A judge item for a stored rationale: instruction = the problem, response = the rationale;
    ``reference=True`` shows the gold answer as the reference; gold score = scale top if the
    rationale is correct, bottom if wrong (None when unknown)."""
    instruction = problem.question if not problem.context else f"{problem.context}\n\n{problem.question}"
    ref = f"The answer is {problem.gold}." if reference and problem.gold is not None else None
    return JudgeItem(instruction, rationale.text, ref, rubric, id=f"rationale:{rationale.id}",
                     meta={"rationale_id": rationale.id, "problem_id": problem.id, "correct": rationale.correct})


def judge_scores(judge: AbsoluteJudge, problems: Sequence[Problem], rationales: Sequence[Rationale], *,
                 reference: bool = False) -> list[Judgment]:
    """Score every rationale with ``judge`` and attach ``Score(kind="judge")`` (in place)."""
    by_id = {p.id: p for p in problems}
    items = [rationale_item(by_id[r.problem_id], r, reference=reference) for r in rationales]
    judgments = judge.judge(items)
    for r, j in zip(rationales, judgments):
        r.set_score(Score(kind="judge", value=None if j.value is None else float(j.value), by=judge.name,
                          detail={"rationale": j.rationale[:4000], "how": j.how, "rubric": j.detail.get("rubric"),
                                  "low": j.detail.get("low"), "high": j.detail.get("high"),
                                  "samples": [{"value": s.value, "how": s.how, "text": s.text[:4000]}
                                              for s in j.samples]}))
    return judgments


# ------------------------------------------------------------------ statistics


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), 1-based."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        idx = np.where(x == v)[0]
        if len(idx) > 1:
            ranks[idx] = ranks[idx].mean()
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def correlations(pred: Sequence[float], gold: Sequence[float]) -> dict[str, Any]:
    """Pearson and Spearman (scipy if installed, else numpy); None when undefined (constant)."""
    x, y = np.asarray(pred, dtype=float), np.asarray(gold, dtype=float)
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return {"pearson": None, "spearman": None, "method": "undefined (fewer than 2 values or a constant)"}
    try:
        from scipy import stats as sst

        return {"pearson": float(sst.pearsonr(x, y)[0]), "spearman": float(sst.spearmanr(x, y)[0]),
                "method": "scipy"}
    except ImportError:
        return {"pearson": _pearson(x, y), "spearman": _pearson(_ranks(x), _ranks(y)), "method": "numpy"}


def weighted_kappa(pred: Sequence[int], gold: Sequence[int], low: int, high: int, weights: str = "quadratic"
                   ) -> float | None:
    """Cohen's weighted kappa on the scale low..high (quadratic or linear weights); None when
    undefined (no items, or both raters constant on the same value)."""
    k = high - low + 1
    if not pred or k < 2:
        return None
    obs = np.zeros((k, k))
    for p, g in zip(pred, gold):
        obs[int(p) - low, int(g) - low] += 1
    n = obs.sum()
    expected = np.outer(obs.sum(1), obs.sum(0)) / n
    i, j = np.indices((k, k))
    w = ((i - j) / (k - 1)) ** 2 if weights == "quadratic" else np.abs(i - j) / (k - 1)
    denom = (w * expected).sum()
    if denom == 0:
        return None
    return float(1.0 - (w * obs).sum() / denom)


def absolute_agreement(judgments: Sequence[Judgment], items: Sequence[JudgeItem], low: int = 1, high: int = 5
                       ) -> dict[str, Any]:
    """Agreement of absolute judgments with the items' gold scores (items without gold skipped)."""
    gold_of = {it.id: it.gold for it in items}
    pairs = [(j, gold_of.get(j.item_id)) for j in judgments if gold_of.get(j.item_id) is not None]
    parsed = [(float(j.value), float(g)) for j, g in pairs if j.value is not None]  # forced verdicts included
    n = len(pairs)
    written = sum(1 for j, _ in pairs if j.value is not None and j.how != "forced")
    exact = sum(1 for p, g in parsed if round(p) == round(g))
    lo, hi = wilson_interval(exact, n)
    out: dict[str, Any] = {"n": n, "parsed": written, "unparsed": n - written,
                           "unparsed_rate": round((n - written) / n, 4) if n else None,
                           "forced": sum(1 for j, _ in pairs if j.how == "forced"), "no_verdict": n - len(parsed),
                           "accuracy": round(exact / n, 4) if n else None, "ci_low": round(lo, 4),
                           "ci_high": round(hi, 4)}
    out.update(correlations([p for p, _ in parsed], [g for _, g in parsed]))
    ints = [(int(round(p)), int(round(g))) for p, g in parsed if low <= round(p) <= high and low <= round(g) <= high]
    out["kappa_quadratic"] = weighted_kappa([p for p, _ in ints], [g for _, g in ints], low, high)
    by_gold: dict[str, list[float]] = {}
    for p, g in parsed:
        by_gold.setdefault(str(int(g)) if g == int(g) else str(g), []).append(p)
    out["mean_score_by_gold"] = {k: round(sum(v) / len(v), 3) for k, v in sorted(by_gold.items())}
    return out


def pair_outcome(j: Judgment, gold: str | None) -> float | None:
    """1 right, 0 wrong, 0.5 a tie (orders disagree or no majority), 0 unparsed; None without gold."""
    if gold is None:
        return None
    if j.value is None:
        return 0.5 if j.how == "tie" else 0.0
    return 1.0 if j.value == gold else 0.0


def pairwise_agreement(judgments: Sequence[Judgment], items: Sequence[PairItem]) -> dict[str, Any]:
    """Pairwise accuracy against gold (ties 0.5), strict accuracy (ties 0), per-order accuracy,
    position bias and unparsed counts, with Wilson 95% intervals."""
    gold_of = {it.id: it.gold for it in items}
    rows = [(j, gold_of.get(j.item_id)) for j in judgments if gold_of.get(j.item_id) is not None]
    n = len(rows)
    score = sum(pair_outcome(j, g) or 0.0 for j, g in rows)
    strict = sum(1 for j, g in rows if j.value == g)
    samples = [s for j, _ in rows for s in j.samples]
    order_right = sum(1 for j, g in rows for s in j.samples if s.value == g)
    both = [j for j, _ in rows if j.consistent is not None]
    lo, hi = wilson_interval(score, n)
    slo, shi = wilson_interval(strict, n)
    unread = sum(1 for s in samples if s.value is None or s.how == "forced")
    return {"n": n, "accuracy": round(score / n, 4) if n else None, "ci_low": round(lo, 4), "ci_high": round(hi, 4),
            "strict_accuracy": round(strict / n, 4) if n else None, "strict_ci": [round(slo, 4), round(shi, 4)],
            "ties": sum(1 for j, _ in rows if j.value is None and j.how == "tie"),
            "unparsed_pairs": sum(1 for j, _ in rows if j.value is None and j.how != "tie"),
            "judgments": len(samples), "unparsed_judgments": unread,
            "unparsed_rate": round(unread / len(samples), 4) if samples else None,
            "forced": sum(1 for s in samples if s.how == "forced"),
            "order_accuracy": round(order_right / len(samples), 4) if samples else None,
            "position_bias": round(sum(1 for j in both if not j.consistent) / len(both), 4) if both else None,
            **_probability_metrics(rows)}


def _probability_metrics(rows: Sequence[tuple[Judgment, str]]) -> dict[str, Any]:
    """Calibrated judges (``JudgeConfig.calibrate``): how many pairs the probabilities decided,
    the mean P(gold side) over every sample of both orders, and the mean P(position shown first)
    (0.5 = no positional lean in the probabilities; position bias in probability space)."""
    with_probs = [(j, g) for j, g in rows if any(s.probs is not None for s in j.samples)]
    if not with_probs:
        return {}
    p_gold = [s.probs[g] for j, g in with_probs for s in j.samples if s.probs is not None]
    p_first = [s.probs["A" if s.order != "BA" else "B"] for j, _ in with_probs for s in j.samples
               if s.probs is not None]
    return {"calibrated": sum(1 for j, _ in rows if j.how == "calibrated"), "with_probs": len(with_probs),
            "mean_p_gold": round(sum(p_gold) / len(p_gold), 4), "mean_p_first": round(sum(p_first) / len(p_first), 4)}


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test on paired right/wrong outcomes of two judges over the same pairs."""
    b01, b10, p = mcnemar_exact(a, b)
    return {"b01": b01, "b10": b10, "p_value": round(p, 4)}


__all__ = ["rationale_item", "judge_scores", "correlations", "weighted_kappa", "absolute_agreement",
           "pairwise_agreement", "pair_outcome", "mcnemar"]
