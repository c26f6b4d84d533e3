"""SFT datasets (TRL ``SFTTrainer`` columns) from stored rationales.

Layouts:

* ``messages`` (conversational): ``{"messages": [system, user, assistant]}``;
* ``prompt_completion``: ``{"prompt": ..., "completion": ...}``, conversational (message lists)
  or standard (strings, see ``data.common``); TRL trains on the completion only.

Each row also carries ``problem_id`` and ``rationale_id`` (TRL ignores extra columns).

``reduced=True`` trains on the verbosity-reduced rationales (``score.brevity``, method
``"reduced"``, ``parent_id`` = the original) instead of the originals: a selected rationale is
replaced by its stored reduction where one exists (and, with ``correct_only``, only where the
reduction still reaches a correct answer); the provenance reports the tokens saved and the
accuracy kept (share of reductions of correct originals that are still correct).
"""

from __future__ import annotations

from typing import Any

from ..records import Rationale
from ..store import Store
from .common import answer_value, check_style, finish_rows, problem_prompt, prompt_value, to_dataset
from .filters import DataFilter, select

LAYOUTS = ("messages", "prompt_completion")


def _reductions(store: Store, r: Rationale) -> Rationale | None:
    kids = [k for k in store.rationales(parent_id=r.id) if k.method == "reduced" and k.meta.get("assembled")]
    return kids[-1] if kids else None


def sft_rows(store: Store, f: DataFilter | None = None, *, layout: str = "messages", style: str = "conversational",
             reduced: bool = False, provenance: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """SFT rows for the rationales ``f`` selects. ``provenance`` (a dict) is filled in."""
    from ..errors import RationalesError

    f = f or DataFilter()
    check_style(style)
    if layout not in LAYOUTS:
        raise RationalesError(f"Unknown SFT layout '{layout}': use messages or prompt_completion.")
    if layout == "messages" and style != "conversational":
        raise RationalesError("The messages layout is conversational; use --layout prompt_completion for "
                              "standard (plain-text) rows.")
    sel = select(store, f)
    rows: list[dict[str, Any]] = []
    red_stats = {"replaced": 0, "no_reduction": 0, "dropped_reduction_wrong": 0, "tokens_original": 0,
                 "tokens_reduced": 0, "body_tokens_saved": 0, "originals_correct": 0, "reductions_still_correct": 0}
    for g in sel.groups:
        prompt = problem_prompt(g.problem, f.template)
        for r in g.rationales:
            text, rid = r.text, r.id
            if reduced:
                red = _reductions(store, r)
                if red is None:
                    red_stats["no_reduction"] += 1
                    continue
                if r.correct:
                    red_stats["originals_correct"] += 1
                    red_stats["reductions_still_correct"] += int(bool(red.correct))
                if f.correct_only and red.correct is not True:
                    red_stats["dropped_reduction_wrong"] += 1
                    continue
                red_stats["replaced"] += 1
                red_stats["tokens_original"] += r.tokens
                red_stats["tokens_reduced"] += red.tokens
                red_stats["body_tokens_saved"] += int(red.meta.get("body_tokens", 0)) - int(
                    red.meta.get("reduced_body_tokens", 0))
                text, rid = red.text, red.id
            row: dict[str, Any]
            if layout == "messages":
                row = {"messages": prompt_value(prompt, style) + answer_value(text, style)}
            else:
                row = {"prompt": prompt_value(prompt, style), "completion": answer_value(text, style)}
            row.update(problem_id=g.problem.id, rationale_id=rid)
            rows.append(row)
    prov = dict(sel.provenance, format="sft", layout=layout, style=style, reduced=reduced, rows=len(rows))
    if reduced:
        oc = red_stats["originals_correct"]
        red_stats["accuracy_kept"] = round(red_stats["reductions_still_correct"] / oc, 4) if oc else None
        to, tr = red_stats["tokens_original"], red_stats["tokens_reduced"]
        red_stats["tokens_saved"] = to - tr
        red_stats["tokens_saved_share"] = round((to - tr) / to, 4) if to else None
        prov["reduction"] = red_stats
    hint = ("Run `rationales run --method brevity` first to store reductions, or drop --reduced."
            if reduced else "Sample rationales first (`rationales run`), or relax the filters "
                            "(--correct-only, --agree-sc, --task, --model, --split).")
    return finish_rows(rows, "SFT", prov, provenance, hint)


def sft_dataset(store: Store, f: DataFilter | None = None, **kwargs: Any) -> Any:
    """``sft_rows`` as a ``datasets.Dataset``."""
    return to_dataset(sft_rows(store, f, **kwargs))
