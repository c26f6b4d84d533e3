"""Static HTML reports: summary tables, plots (matplotlib, embedded as PNG) and rationales
with their steps coloured by verdict. One self-contained file, no network needed to view it.

Building blocks (``page``, ``table``, ``plot_img``, ``rationale_html``) are shared by every
command's report (run, compare, verify, methods).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

from ..records import Rationale, Step

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0} td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.problem{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
.rationale{border-left:3px solid #bbb;margin:.6em 0;padding:.2em .8em;background:#fafafa}
.rationale.correct{border-color:#2a7}.rationale.wrong{border-color:#c33}
.step{display:block;white-space:pre-wrap;padding:1px 4px;margin:1px 0;border-radius:3px}
.step.good{background:#e3f6e8}.step.bad{background:#fde2e2}.step.mixed{background:#fff4d6}
.meta{color:#666;font-size:.85em} .badge{display:inline-block;padding:0 6px;border-radius:8px;background:#eee;margin-right:4px}
details summary{cursor:pointer}
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>{body}</body></html>")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def plot_img(fig: Any, alt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f"<img alt='{esc(alt)}' src='data:image/png;base64,{data}'/>"


def new_figure(width: float = 6.5, height: float = 4.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def step_class(step: Step) -> str:
    verdicts = [c.verdict for c in step.checks if c.verdict is not None]
    if not verdicts:
        return ""
    if all(v > 0 for v in verdicts):
        return "good"
    if all(v < 0 for v in verdicts):
        return "bad"
    return "mixed"


def rationale_html(r: Rationale, title: str = "") -> str:
    cls = "correct" if r.correct else ("wrong" if r.correct is False else "")
    steps = []
    for s in r.steps:
        tip = "; ".join(f"{c.kind}:{'+' if (c.verdict or 0) > 0 else '-' if (c.verdict or 0) < 0 else '?'}"
                        + (f" {c.detail.get('why') or c.detail.get('expression', '')}"
                           if c.detail.get("why") or c.detail.get("expression") else "")
                        for c in s.checks)
        steps.append(f"<span class='step {step_class(s)}' title='{esc(tip)}'>{esc(s.text)}</span>")
    scores = " ".join(f"<span class='badge'>{esc(s.kind)}={s.value:.3g}</span>" for s in r.scores
                      if s.value is not None)
    meta = (f"<div class='meta'>{esc(title)} answer=<b>{esc(r.answer)}</b> "
            f"{'✓' if r.correct else '✗' if r.correct is False else ''} outcome={esc(r.outcome)} "
            f"tokens={r.tokens} T={r.sampling.temperature} {scores}</div>")
    return f"<div class='rationale {cls}'>{meta}{''.join(steps) or esc(r.text)}</div>"


def strategies_table(strategies: dict[str, dict[str, Any]]) -> str:
    rows = [(name, f"{s['accuracy']:.3f}", f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]",
             f"{s.get('correct', '')}/{s.get('n', '')}", s.get("tokens", ""),
             s.get("mean_confidence", "")) for name, s in strategies.items()]
    return table(["strategy", "accuracy", "95% CI", "correct", "tokens", "mean confidence"], rows)


