"""``compare.html``: strategies at equal budgets, accuracy vs tokens."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..jobs.compare import size_label
from ..records import Problem
from ..select.vote import Selection


def accuracy_tokens_plot(curves: dict[str, list[dict[str, Any]]]) -> str:
    """Accuracy vs tokens per problem, one marker (or curve, with several budgets) per
    strategy, with 95% Wilson intervals as error bars."""
    from .html import new_figure, plot_img

    fig, ax = new_figure(7.0, 4.4)
    xs_all = []
    for name, rows in curves.items():
        if not rows:
            continue
        xs = [r["tokens_per_problem"] for r in rows]
        ys = [r["accuracy"] for r in rows]
        err = [[max(0.0, r["accuracy"] - r["ci_low"]) for r in rows],
               [max(0.0, r["ci_high"] - r["accuracy"]) for r in rows]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, linestyle="-" if len(rows) > 1 else "none", label=name)
        xs_all += xs
    if xs_all and min(xs_all) > 0 and max(xs_all) / min(xs_all) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("generated tokens per problem")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=.3)
    ax.legend(fontsize=8, loc="best")
    return plot_img(fig, "accuracy vs tokens")


def write_compare_report(out_dir: Path, summary: dict[str, Any], problems: Sequence[Problem],
                         selections: dict[str, list[Selection]]) -> Path:
    """``compare.html``: the strategies table, the accuracy-vs-tokens plot and each problem's
    answer per strategy."""
    from .html import esc, page, table

    out_dir.mkdir(parents=True, exist_ok=True)
    est = summary["estimate"]
    rows = [(name, r["budget"], size_label(name, r["size"]), f"{r['accuracy']:.3f}",
             f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]", f"{r['correct']}/{r['n']}", r["tokens"],
             r["tokens_per_problem"], r["accuracy_per_1k_tokens"]) for name, r in summary["strategies"].items()]
    body = [
        f"<p class='meta'>task <b>{esc(summary['task'])}</b> · {esc(summary['backend'])}:{esc(summary['model'])} · "
        f"{summary['problems']} problems · budget(s) {esc(', '.join(map(str, summary['budgets'])))} tokens per "
        f"problem · PRM {esc(summary['prm'])} ({esc(summary['how'])}) · pilot: {est['tokens_per_sample']} tokens and "
        f"{est['steps_per_sample']} steps per sample · {summary['samples_new']} new / {summary['samples_cached']} "
        f"cached samples · {summary['time_s']} s</p>",
        "<h2>Strategies</h2>",
        table(["strategy", "budget", "size", "accuracy", "95% CI", "correct", "tokens", "tokens/problem",
               "accuracy per 1k tokens"], rows),
        "<p class='meta'>tokens = every generated token a strategy used (samples, candidate steps, rollouts, "
        "continuations, generative-PRM judgements), cached or not; log-probability scoring is not counted.</p>",
        "<h2>Accuracy vs tokens</h2>", accuracy_tokens_plot(summary["curves"]),
    ]
    if selections:
        names = list(selections)
        head = ["problem", "gold", *names]
        prow = []
        for i, p in enumerate(problems):
            cells = [p.question[:80], p.gold]
            for n in names:
                s = selections[n][i] if i < len(selections[n]) else None
                cells.append("" if s is None else f"{s.answer} {'✓' if s.correct else '✗'} ({s.tokens})")
            prow.append(cells)
        body += ["<h2>Answers per problem</h2><p class='meta'>answer, ✓/✗, tokens spent</p>", table(head, prow)]
    path = out_dir / "compare.html"
    path.write_text(page("rationales compare", "".join(body)), encoding="utf-8")
    return path
