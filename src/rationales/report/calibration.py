"""Calibration pages and sections: reliability diagrams and ECE tables (``calibration.html``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Problem, Rationale
from ..select.vote import Selection


def reliability_diagram(summaries: dict[str, dict[str, Any]], title: str = "reliability diagram") -> str:
    """An <img> with one reliability curve per summary (label -> ``calibration_summary``):
    accuracy per bin against mean confidence per bin, the shaded marker's size ~ bin count;
    the diagonal is perfect calibration."""
    from .html import new_figure, plot_img

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
    from .html import table

    rows = [(label, s["n"], s["ece"], s["brier"], s["mean_confidence"], s["accuracy"]) for label, s in summaries.items()]
    return (table(["confidence", "n", "ECE", "Brier", "mean confidence", "accuracy"], rows)
            + reliability_diagram(summaries))


def write_report(out: Path, summary: dict[str, Any], problems: Sequence[Problem], votes: Sequence[Selection],
                 verbal_rs: Sequence[Rationale]) -> Path:
    from .html import esc, page, rationale_html, strategies_table, table

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
