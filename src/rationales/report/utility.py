"""``utility.html``: reasoning utility per rationale and per step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Problem, Rationale


def per_step_plot(samples: Sequence[Sequence[Rationale]]) -> str:
    from .html import new_figure, plot_img

    fig, ax = new_figure()
    seen: set[str] = set()
    for rs in samples:
        for r in rs:
            s = next((s for s in reversed(r.scores) if s.kind == "utility"), None)
            if s is None or not s.detail.get("per_step") or r.correct is None:
                continue
            label = "correct" if r.correct else "wrong"
            ys = [0.0, *s.detail["per_step"]]
            ax.plot(range(len(ys)), ys, color="#2a7" if r.correct else "#c33", alpha=.45, lw=1,
                    label=None if label in seen else label)
            seen.add(label)
    ax.axhline(0, color="gray", lw=.8, ls="--")
    ax.set_xlabel("steps of the rationale read (k)")
    ax.set_ylabel("log P(gold | q, steps ≤ k) − log P(gold | q)")
    ax.grid(alpha=.3)
    if seen:
        ax.legend()
    return plot_img(fig, "cumulative utility per step")


def write_report(out: Path, summary: dict[str, Any], problems: Sequence[Problem],
                 samples: Sequence[Sequence[Rationale]]) -> Path:
    from .html import esc, page, rationale_html, strategies_table, table

    out.mkdir(parents=True, exist_ok=True)
    rows = [(k, v["mean_correct"], v["mean_wrong"], v["n_correct"], v["n_wrong"], v["auroc"])
            for k, v in (("utility (gold answer)", summary["utility"]), ("utility (own answer)", summary["utility_own"]))]
    body = [f"<p class='meta'>{summary['problems']} problems × {summary['samples_per_problem']} samples · "
            f"{summary['logprob_calls']} log-prob calls · {summary['samples_new']} new / "
            f"{summary['samples_cached']} cached samples</p>",
            "<h2>Strategies</h2>", strategies_table(summary["strategies"]),
            "<h2>Utility of correct vs wrong rationales</h2>",
            table(["score", "mean (correct)", "mean (wrong)", "n correct", "n wrong", "AUROC"], rows),
            "<p class='meta'>utility = log P(answer | question, rationale) − log P(answer | question), in nats; "
            "AUROC = chance a correct rationale scores above a wrong one.</p>",
            "<h2>Cumulative utility per step</h2>", per_step_plot(samples), "<h2>Problems</h2>"]
    for p, rs in zip(problems, samples):
        body.append(f"<div class='problem'><b>{esc(p.question)}</b><div class='meta'>gold: {esc(p.gold)}</div>"
                    + "".join(rationale_html(r, f"sample {r.sample_index}") for r in rs) + "</div>")
    path = out / "utility.html"
    path.write_text(page("reasoning utility", "".join(body)), encoding="utf-8")
    return path
