"""The judge report: agreement with gold, then every judgment with its rationale beside the
response(s) it judged (and each sampled judgment, both orders for pairs, under a fold)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .html import esc, page, table

JUDGE_CSS = """
<style>
.jrow{display:grid;grid-template-columns:1fr 1fr;gap:1em;border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
.jrow.pair{grid-template-columns:1fr 1fr 1fr}
.resp,.why{white-space:pre-wrap;font-size:.92em;background:#fafafa;padding:.4em .6em;border-radius:4px;overflow-x:auto}
.why{background:#f3f6ff}.ok{color:#2a7}.bad{color:#c33}.tie{color:#a70}
</style>
"""


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}"
    if isinstance(x, list):
        return " > ".join("ABCDEFGHIJ"[i] for i in x)
    return str(x)


def _verdict_class(verdict: Any, gold: Any, how: str | None) -> str:
    if verdict is None:
        return "tie" if how == "tie" else "bad"
    if gold is None:
        return ""
    if isinstance(gold, float) and not isinstance(verdict, list):
        return "ok" if round(float(verdict)) == round(gold) else "bad"
    return "ok" if verdict == gold else "bad"


def judge_page(result: Any, max_items: int = 300) -> str:
    """HTML for a ``jobs.judge.JudgeResult``."""
    s = result.summary()
    ag = s["agreement"]
    body = [JUDGE_CSS, f"<p class='meta'>judge <b>{esc(s['judge'])}</b> · mode {esc(s['mode'])} · "
                       f"{s['items']} items from {esc(s['source'])} · {s['tokens']} tokens · {s['seconds']} s</p>"]
    body.append("<h2>Agreement with gold</h2>")
    body.append(table(["metric", "value"], [(k, json.dumps(v) if isinstance(v, (dict, list)) else _fmt(v))
                                            for k, v in ag.items()]))
    body.append("<h2>How verdicts were read</h2>")
    body.append(table(["outcome", "count"], sorted(s["counts"].items())))
    body.append("<h2>Judgments</h2>")
    by_id = {j.item_id: j for j in result.judgments}
    for it in result.items[:max_items]:
        j = by_id.get(it.id)
        if j is None:
            continue
        gold = getattr(it, "gold", None)
        cls = _verdict_class(j.value, gold, j.how)
        head = (f"<p><b>{esc(it.instruction[:600])}</b></p><p class='meta'>verdict "
                f"<span class='{cls}'><b>{esc(_fmt(j.value))}</b></span> ({esc(j.how)}) · gold {esc(_fmt(gold))}"
                + (f" · orders agree: {esc(j.consistent)}" if j.consistent is not None else "") + "</p>")
        if j.kind == "pairwise":
            cols = (f"<div><b>Response A</b><div class='resp'>{esc(it.response_a)}</div></div>"
                    f"<div><b>Response B</b><div class='resp'>{esc(it.response_b)}</div></div>")
            grid = "jrow pair"
        elif j.kind == "ranking":
            cols = "<div>" + "".join(f"<b>Response {'ABCDEFGHIJ'[k]}</b><div class='resp'>{esc(r)}</div>"
                                     for k, r in enumerate(it.responses)) + "</div>"
            grid = "jrow"
        else:
            ref = f"<p class='meta'>reference: {esc(it.reference)}</p>" if it.reference else ""
            cols = f"<div><b>Response</b><div class='resp'>{esc(it.response)}</div>{ref}</div>"
            grid = "jrow"
        why = f"<div><b>Judge's rationale</b><div class='why'>{esc(j.rationale or '(none)')}</div>"
        samples = "".join(f"<li>{esc(s_.order)} {esc(_fmt(s_.value))} ({esc(s_.how)}): "
                          f"<span class='resp'>{esc(s_.text[:3000])}</span></li>" for s_ in j.samples)
        why += f"<details><summary>{len(j.samples)} sampled judgment(s)</summary><ul>{samples}</ul></details></div>"
        body.append(f"<div>{head}<div class='{grid}'>{cols}{why}</div></div>")
    if len(result.items) > max_items:
        body.append(f"<p class='meta'>{len(result.items) - max_items} more items not shown.</p>")
    return page(f"Judge report: {s['mode']}", "".join(body))


def write_judge_report(result: Any, out_dir: str | Path, name: str = "judge.html") -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(judge_page(result), encoding="utf-8")
    return path


__all__ = ["judge_page", "write_judge_report"]
