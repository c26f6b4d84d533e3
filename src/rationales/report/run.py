"""``report.html`` of ``rationales run``: strategies, vote curve, calibration, rationales."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Problem, Rationale
from .html import esc, new_figure, page, plot_img, rationale_html, strategies_table, table


def curve_plot(curve: Sequence[dict[str, float]], greedy_acc: float | None) -> str:
    fig, ax = new_figure()
    ks = [c["k"] for c in curve]
    ax.plot(ks, [c["accuracy"] for c in curve], marker="o", label="majority vote@k")
    if greedy_acc is not None:
        ax.axhline(greedy_acc, color="gray", linestyle="--", label="greedy")
    ax.set_xlabel("samples per problem (k)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=.3)
    ax.legend()
    return plot_img(fig, "accuracy vs samples")


def calibration_section(summary: dict[str, Any]) -> list[str]:
    """ECE table and reliability diagram of the vote-share confidence (when computed)."""
    if not summary.get("calibration"):
        return []
    from .calibration import calibration_html

    label = f"vote share (vote@{summary['samples_per_problem']})"
    return ["<h2>Calibration</h2>", calibration_html({label: summary["calibration"]})]


def write_run_report(out_dir: Path, summary: dict[str, Any], problems: Sequence[Problem],
                     greedy_rs: Sequence[Rationale], samples: Sequence[Sequence[Rationale]],
                     votes: Sequence[Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    body = [f"<p class='meta'>task <b>{esc(summary['task'])}</b> · backend {esc(summary['backend'])} · "
            f"model {esc(summary['model'])} · {summary['problems']} problems × {summary['samples_per_problem']} "
            f"samples · {summary['samples_new']} new / {summary['samples_cached']} cached samples · "
            f"{summary['tokens']} tokens · {summary['time_s']} s</p>",
            "<h2>Strategies</h2>", strategies_table(summary["strategies"]),
            "<h2>Accuracy vs samples</h2>",
            curve_plot(summary["curve"], summary["strategies"]["greedy"]["accuracy"]),
            *calibration_section(summary),
            "<h2>Outcomes</h2>", table(["outcome", "rationales"], sorted(summary["outcomes"].items())),
            "<h2>Problems</h2>"]
    for p, g, rs, v in zip(problems, greedy_rs, samples, votes):
        tally = ", ".join(f"{esc(k)}: {c:g}" for k, c in sorted(v.votes.items(), key=lambda kv: -kv[1]))
        body.append(
            f"<div class='problem'><b>{esc(p.question)}</b><div class='meta'>gold: {esc(p.gold)} · "
            f"vote: {esc(v.answer)} {'✓' if v.correct else '✗'} (share {v.confidence or 0:.2f}; {tally})</div>"
            f"{rationale_html(g, 'greedy')}<details><summary>{len(rs)} samples</summary>"
            + "".join(rationale_html(r, f'sample {r.sample_index}') for r in rs) + "</details></div>")
    path = out_dir / "report.html"
    path.write_text(page("rationales run report", "".join(body)), encoding="utf-8")
    return path
