"""PINTO training rows: answer from question + rationale, with counterfactual (perturbed) rationales.

Wang et al., 2023, "PINTO: Faithful Language Reasoning Using Prompt-Generated Rationales": the
reasoner answers from the question and a rationale, and is regularised to be *less confident*
when the rationale is perturbed (so its answers depend on its rationales). One row per selected
rationale:

* ``prompt``: the decomposed-answer prompt (template ``faithfulness_probe``: question + the
  rationale's body, final-answer statement cut off), conversational or standard;
* ``completion``: "The answer is X." with X the gold answer (or the rationale's own answer when
  the problem has no gold);
* ``perturbed_prompts``: the same prompt around each perturbed body. The stored faithfulness
  probes (``score.faithfulness``, method ``faithfulness_probe``, ``parent_id`` = the rationale,
  ``meta["rationale"]`` = the perturbed text) are used when present; otherwise the same
  perturbations are built here (token masks at ratio 0.3 and one number replacement,
  ``score.faithfulness.perturbations``), which needs no model. ``perturbation_source`` says which.
"""

from __future__ import annotations

from typing import Any

from ..prompts import render
from ..score.faithfulness import PROBE_TEMPLATE, perturbations
from ..score.utility import ANSWER_TEMPLATE, rationale_body
from ..store import Store
from .common import answer_value, check_style, finish_rows, prompt_value, to_dataset
from .filters import DataFilter, select


def pinto_rows(store: Store, f: DataFilter | None = None, *, style: str = "conversational", ratio: float = 0.3,
               n_masks: int = 2, provenance: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    check_style(style)
    f = f or DataFilter(correct_only=True)
    sel = select(store, f)
    rows, stored, built = [], 0, 0
    for g in sel.groups:
        p = g.problem
        for r in g.rationales:
            body = rationale_body(r.text)
            answer = p.gold if p.gold is not None else r.answer
            if not body or answer is None:
                continue
            probes = [k for k in store.rationales(parent_id=r.id)
                      if k.method == "faithfulness_probe" and k.meta.get("perturbation") not in (None, "intact")
                      and k.meta.get("rationale")]
            if probes:
                texts, source = [str(k.meta["rationale"]) for k in probes], "stored_probes"
                stored += 1
            else:
                texts = [x.text for x in perturbations(body, ratio=ratio, n_masks=n_masks) if x.kind != "intact"]
                source = "built"
                built += 1
            if not texts:
                continue

            def prompt_for(text: str) -> Any:
                return prompt_value(render(PROBE_TEMPLATE, question=p.question, context=p.context, rationale=text),
                                    style)

            rows.append({"prompt": prompt_for(body), "completion": answer_value(ANSWER_TEMPLATE.format(answer=answer),
                                                                                style),
                         "perturbed_prompts": [prompt_for(t) for t in texts], "problem_id": p.id,
                         "rationale_id": r.id, "perturbation_source": source})
    prov = dict(sel.provenance, format="pinto", style=style, rows=len(rows), rationales_with_stored_probes=stored,
                rationales_with_built_perturbations=built, mask_ratio=ratio, n_masks=n_masks)
    return finish_rows(rows, "PINTO", prov, provenance, "PINTO needs rationales with reasoning before their answer: "
                       "sample some with `rationales run` (and optionally probes with `run --method faithfulness`).")


def pinto_dataset(store: Store, f: DataFilter | None = None, **kwargs: Any) -> Any:
    return to_dataset(pinto_rows(store, f, **kwargs))
