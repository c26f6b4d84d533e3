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
from pathlib import Path
from typing import Any

import numpy as np

from ..generate import cot_specs, finish_rationale
from ..records import Problem, Rationale, Score
from ..search.vote import Selection, majority_vote
from ..answers import check_answer, extract_answer, normalize
from .utility import option


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

def reliability_diagram(summaries: dict[str, dict[str, Any]], title: str = "reliability diagram") -> str:
    """An <img> with one reliability curve per summary (label -> ``calibration_summary``):
    accuracy per bin against mean confidence per bin, the shaded marker's size ~ bin count;
    the diagonal is perfect calibration."""
    from ..report.html import new_figure, plot_img

    fig, ax = new_figure(6.0, 5.2)
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="perfect calibration")
    for label, s in summaries.items():
        pts = [(b["confidence"], b["accuracy"], b["n"]) for b in s["bins"] if b["n"]]
        if not pts:
            continue
        xs, ys, ns = zip(*pts)
        ece = s.get("ece")
        (line,) = ax.plot(xs, ys, marker="o",
                          label=f"{label} (ECE {ece:.3f}, n={s['n']})" if ece is not None else label)
        ax.scatter(xs, ys, s=[20 + 180 * n / max(ns) for n in ns], alpha=.3, color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (mean per bin)")
    ax.set_ylabel("accuracy (per bin)")
    ax.set_title(title)
    ax.grid(alpha=.3)
    ax.legend(loc="upper left", fontsize=8)
    return plot_img(fig, title)


def calibration_html(summaries: dict[str, dict[str, Any]]) -> str:
    """A report section body: ECE table plus the reliability diagram."""
    from ..report.html import table

    rows = [(label, s["n"], s["ece"], s["brier"], s["mean_confidence"], s["accuracy"]) for label, s in summaries.items()]
    return (table(["confidence", "n", "ECE", "Brier", "mean confidence", "accuracy"], rows)
            + reliability_diagram(summaries))


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

def run(ctx: Any) -> dict[str, Any]:
    """``rationales run --method calibration``: N CoT samples per problem -> vote-share
    confidence; one greedy rationale with a verbal confidence per problem; ECE, Brier and a
    reliability diagram for both (and per-sample agreement)."""
    from ..pipeline import strategy_row

    opts = ctx.options
    n_bins = option(opts, "bins", 10)
    specs = ctx.cot_specs(option(opts, "template", "cot"))
    verbal = option(opts, "verbal", True)
    verbal_specs = cot_specs(ctx.problems, template="cot_confidence", n=1, temperature=0.0,
                             max_tokens=ctx.max_tokens, method="cot_confidence") if verbal else []
    out, stats = ctx.sample([*specs, *verbal_specs])
    samples, verbal_rs = out[:len(specs)], [rs[0] for rs in out[len(specs):]]
    problems = [s.problem for s in specs]
    for rs in samples:
        agreement_scores(rs)
    ctx.store.put_rationales([r for rs in samples for r in rs])
    for p, r in zip(problems, verbal_rs):
        verbal_scores(p, [r])
    if verbal_rs:
        ctx.store.put_rationales(verbal_rs)

    votes = [majority_vote(p, rs) for p, rs in zip(problems, samples)]
    n = ctx.samples
    strategies = {f"vote@{n}": strategy_row(votes),
                  "sample@1": strategy_row([majority_vote(p, rs[:1]) for p, rs in zip(problems, samples)])}
    calib: dict[str, dict[str, Any]] = {f"vote share (vote@{n})": vote_calibration(votes, n_bins)}
    flat = [r for rs in samples for r in rs]
    answered = [r for r in flat if r.answer is not None]
    calib["sample agreement"] = calibration_summary([r.score("agreement") for r in answered],
                                                    [r.correct for r in answered], n_bins)
    unparsed = 0
    if verbal_rs:
        strategies["verbal greedy"] = strategy_row(
            [Selection(p.id, r.answer, check_answer(p, r.answer), r.score("verbal_confidence"), r.tokens, r.id,
                       strategy="verbal") for p, r in zip(problems, verbal_rs)])
        parsed = [r for r in verbal_rs if r.score("verbal_confidence") is not None]
        unparsed = len(verbal_rs) - len(parsed)
        calib["verbal (greedy)"] = calibration_summary([r.score("verbal_confidence") for r in parsed],
                                                       [r.correct for r in parsed], n_bins)
    summary: dict[str, Any] = {
        "method": "calibration",
        "problems": len(problems),
        "samples_per_problem": n,
        "strategies": strategies,
        "calibration": calib,
        "ece_vote": calib[f"vote share (vote@{n})"]["ece"],
        "ece_verbal": calib["verbal (greedy)"]["ece"] if verbal_rs else None,
        "verbal_parsed": len(verbal_rs) - unparsed,
        "verbal_unparsed": unparsed,
        "tokens": sum(r.tokens for r in flat) + sum(r.tokens for r in verbal_rs),
        **stats.as_dict(),
    }
    summary["report"] = str(write_report(Path(ctx.out), summary, problems, votes, verbal_rs))
    return summary


def write_report(out: Path, summary: dict[str, Any], problems: Sequence[Problem], votes: Sequence[Selection],
                 verbal_rs: Sequence[Rationale]) -> Path:
    from ..report.html import esc, page, rationale_html, strategies_table, table

    out.mkdir(parents=True, exist_ok=True)
    body = [f"<p class='meta'>{summary['problems']} problems × {summary['samples_per_problem']} samples · "
            f"verbal confidence parsed {summary['verbal_parsed']}, unparsed {summary['verbal_unparsed']}</p>",
            "<h2>Strategies</h2>", strategies_table(summary["strategies"]),
            "<h2>Calibration</h2>", calibration_html(summary["calibration"]),
            "<h2>Per problem</h2>"]
    rows = []
    verbal_by = {r.problem_id: r for r in verbal_rs}
    for p, v in zip(problems, votes):
        vr = verbal_by.get(p.id)
        rows.append((p.question[:80], p.gold, v.answer, f"{v.confidence or 0:.2f}", "✓" if v.correct else "✗",
                     "" if vr is None else vr.answer,
                     "" if vr is None else ("unparsed" if vr.score("verbal_confidence") is None
                                            else f"{vr.score('verbal_confidence'):.2f}")))
    body.append(table(["question", "gold", "vote", "vote share", "", "verbal answer", "verbal confidence"], rows))
    if verbal_rs:
        body.append("<h2>Verbal-confidence rationales</h2>"
                    + "".join(f"<div class='problem'><b>{esc(p.question)}</b>{rationale_html(verbal_by[p.id])}</div>"
                              for p in problems if p.id in verbal_by))
    path = out / "calibration.html"
    path.write_text(page("calibration: agreement and verbal confidence", "".join(body)), encoding="utf-8")
    return path
