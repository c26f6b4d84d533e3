"""Contrastive rationale datasets for QCRD (Wang et al., 2024, "Distilling LLMs' reasoning
via quality-guided contrastive rationale distillation"; papers.md section 4).

One row per problem: ``prompt`` (conversational messages or a standard string),
``positives`` / ``negatives`` (assistant texts) and ``positive_weights`` / ``negative_weights``.

* Positives: the teacher's rationales that agree with the self-consistency answer,
  deduplicated, at most ``max_positives`` (QCRD: 5 samples at T=0.7 per question). The
  filter's ``agree_sc`` and ``dedupe`` are forced on.
* Negatives: the problem's other rationales whose answer is not the self-consistency answer
  (or that have none), deduplicated, at most ``max_negatives``. The trainer adds the student's
  own self-adversarial samples (``train.qcrd``).
* Weights: the prior quality s of a rationale is the vote share of its answer among the
  problem's answered rationales (self-consistency agreement); ``w_pos = s``, ``w_neg = 1 - s``,
  as in QCRD's discriminator weighting. The trainer's online discriminator replaces them.

* Positives are *rationales*: with ``need_reasoning`` (default), a sample that is only an answer
  statement ("The answer is -9.", a bare ``\\boxed{}``: no reasoning before it,
  ``score.utility.rationale_body``) is not a positive; the provenance counts them
  (``positives_without_reasoning``). Measured on a 0.5B teacher (``benchmarks/qcrd_terms.py``):
  9% of its T=0.7 samples were bare answers, and QCRD's min over positives picks exactly those
  (their token-mean CE is the lowest), which taught the student to drop its rationales.

Problems with no positive are left out (there is nothing to imitate); the provenance counts them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from ..answers import normalize
from ..store import Store
from .common import check_style, finish_rows, problem_prompt, prompt_value, to_dataset
from .filters import DataFilter, select


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def has_reasoning(text: str) -> bool:
    """Whether ``text`` has some reasoning besides its final-answer statement."""
    from ..score.utility import rationale_body

    return any(ch.isalnum() for ch in rationale_body(text))


def contrastive_rows(store: Store, f: DataFilter | None = None, *, style: str = "conversational",
                     max_positives: int = 5, max_negatives: int = 5, need_reasoning: bool = True,
                     provenance: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    check_style(style)
    f = replace(f or DataFilter(), agree_sc=True, dedupe=True, max_per_problem=None)
    sel = select(store, f)
    rows, no_pos, n_neg, bare, over_k = [], 0, 0, 0, 0
    for g in sel.groups:
        pos = [r for r in g.rationales if not need_reasoning or has_reasoning(r.text)]
        bare += len(g.rationales) - len(pos)
        over_k += max(0, len(pos) - max_positives)
        g.rationales = pos[:max_positives]
        if not g.rationales:
            no_pos += 1
            continue
        answered = [normalize(r.answer) for r in g.candidates if normalize(r.answer) is not None]
        share = Counter(answered)
        total = max(1, len(answered))
        sc = normalize(g.sc_answer)

        def s_of(r: Any) -> float:
            key = normalize(r.answer)
            return share.get(key, 0) / total if key is not None else 0.0

        seen = {_key(r.text) for r in g.rationales}
        negs = []
        for r in g.candidates:
            if len(negs) >= max_negatives:
                break
            k = _key(r.text)
            if not r.text.strip() or k in seen or (sc is not None and normalize(r.answer) == sc):
                continue
            seen.add(k)
            negs.append(r)
        n_neg += len(negs)
        rows.append({"prompt": prompt_value(problem_prompt(g.problem, f.template), style),
                     "positives": [r.text for r in g.rationales],
                     "positive_weights": [round(s_of(r), 6) for r in g.rationales],
                     "negatives": [r.text for r in negs],
                     "negative_weights": [round(1.0 - s_of(r), 6) for r in negs],
                     "problem_id": g.problem.id, "sc_answer": g.sc_answer,
                     "positive_ids": [r.id for r in g.rationales], "negative_ids": [r.id for r in negs]})
    prov = dict(sel.provenance, format="contrastive", style=style, rows=len(rows),
                positives=sum(len(r["positives"]) for r in rows), negatives=n_neg, problems_without_positive=no_pos,
                positives_without_reasoning=bare, positives_over_k=over_k, need_reasoning=need_reasoning,
                max_positives=max_positives, max_negatives=max_negatives)
    prov["filters"] = dict(prov.get("filters", {}), max_per_problem=max_positives)
    return finish_rows(rows, "contrastive", prov, provenance, "QCRD needs teacher rationales that agree with the "
                       "self-consistency answer: sample several per problem (`rationales run -n 5`).")


def contrastive_dataset(store: Store, f: DataFilter | None = None, **kwargs: Any) -> Any:
    return to_dataset(contrastive_rows(store, f, **kwargs))
