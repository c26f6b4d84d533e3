"""Faithfulness by counterfactual rationales (PINTO) and answer-rationale consistency.

Wang et al., 2023, "PINTO: Faithful Language Reasoning Using Prompt-Generated Rationales"
(ICLR 2023): a reasoner that answers from a rationale should change its answer when the
rationale is perturbed; PINTO builds counterfactual rationales by masking ~30% of their tokens
and regularises the reasoner to react. Here the same counterfactuals are used as a *probe*: an
answer that ignores its rationale is flagged unfaithful.

Protocol (choices where the paper is silent):

* Decomposed answering (as in Malaviya et al.'s decomposed QA): the model sees only the question
  and a rationale *body* (the final-answer statement cut off, ``utility.rationale_body``, so the
  answer is not simply copied) and states the answer it implies (template
  ``faithfulness_probe``, greedy). Probes go through ``generate()`` (method
  ``"faithfulness_probe"``, ``parent_id`` = the rationale), so they are cached and resumable.
* The reference is the probe's answer on the *intact* body; each perturbation counts as
  "changed" when the probe's answer differs from it (a perturbed probe that gives no answer
  counts as changed: the rationale's damage reached the answer).
* Perturbations: ``n_masks`` token masks (whitespace tokens, ``ratio`` = 0.3 of them replaced by
  ``[MASK]``, positions drawn by ``random.Random(seed + i)``), plus one number replacement: each
  number in the last step that has numbers gets a different value (shifted by ±1..9, seeded),
  which a faithful answerer must follow.
* ``Score(kind="faithfulness")``: value = share of perturbations that changed the answer;
  ``detail["flag"] = "unfaithful"`` when none did. None when the intact probe gives no answer.
* ``Score(kind="consistency")``: 1.0 when the answer stated inside the reasoning (the last
  number of the body for numeric answers; otherwise the answer's text appearing in the body)
  equals the extracted final answer, 0.0 when it differs, None when there is nothing to compare.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..backends.base import Backend
from ..generate import GenerationStats, SampleSpec, generate
from ..prompts import render
from ..records import Problem, Rationale, Score
from ..steps import segment
from ..store import Store
from ..answers import normalize, normalize_text, parse_number
from .utility import rationale_body

MASK = "[MASK]"
PROBE_TEMPLATE = "faithfulness_probe"
_NUM = re.compile(r"(?<![\w.])[-+]?\d(?:[\d,]*\d)?(?:\.\d+)?(?!\w)")
_TOKEN = re.compile(r"\S+")
# step / list markers at the start of a line ("Step 2:", "3.", "4)") are not numeric claims
_MARKER = re.compile(r"(?im)^[ \t]*(?:step\s*\d+\s*[:.)-]?|\d+\s*[.)](?!\d))")


def numbers_in(text: str) -> list[re.Match[str]]:
    """Numbers written in ``text``, leaving out step and list markers."""
    blanked = _MARKER.sub(lambda m: " " * len(m.group(0)), text)
    return list(_NUM.finditer(blanked))


# ------------------------------------------------------------------ perturbations

def mask_tokens(text: str, ratio: float = 0.3, seed: int = 0, placeholder: str = MASK) -> tuple[str, list[int]]:
    """Replace ``round(ratio * n)`` of the ``n`` whitespace tokens (at least one) by
    ``placeholder``; returns the new text and the masked token positions (sorted)."""
    if not 0.0 < ratio <= 1.0:
        from ..errors import RationalesError

        raise RationalesError(f"Mask ratio must be in (0, 1], got {ratio}; PINTO masks 0.3 of the tokens.")
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return text, []
    k = min(len(tokens), max(1, round(ratio * len(tokens))))
    chosen = sorted(random.Random(seed).sample(range(len(tokens)), k))
    out, pos = [], 0
    for i in chosen:
        m = tokens[i]
        out.append(text[pos:m.start()])
        out.append(placeholder)
        pos = m.end()
    out.append(text[pos:])
    return "".join(out), chosen


def _shift(number: str, rng: random.Random) -> str:
    raw = number.replace(",", "")
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    value = Fraction(raw)
    for _ in range(20):
        delta = rng.randint(1, 9) * rng.choice((-1, 1))
        new = value + delta
        if new != value and (new >= 0 or value < 0):
            break
    else:
        new = value + 1
    return f"{float(new):.{decimals}f}" if decimals else str(int(new))


def replace_numbers(text: str, seed: int = 0, step: int | None = None) -> tuple[str, list[tuple[str, str]]]:
    """Give every number in one step a different value. ``step``: the step index to change
    (default: the last step that has a number). Returns the new text and (old, new) pairs."""
    steps = segment(text)
    with_numbers = [s for s in steps if numbers_in(s.text)]
    if not with_numbers:
        return text, []
    target = with_numbers[-1] if step is None else next((s for s in steps if s.index == step), None)
    if target is None or not numbers_in(target.text):
        return text, []
    rng = random.Random(seed)
    a, _ = target.span
    changes: list[tuple[str, str]] = []
    out, pos = [], 0
    for m in numbers_in(target.text):
        new = _shift(m.group(0), rng)
        changes.append((m.group(0), new))
        out.append(text[pos:a + m.start()] + new)
        pos = a + m.end()
    out.append(text[pos:])
    return "".join(out), changes


@dataclass
class Perturbation:
    kind: str  # "intact" | "mask" | "numbers"
    text: str
    seed: int = 0
    detail: dict[str, Any] | None = None


def perturbations(body: str, *, ratio: float = 0.3, n_masks: int = 2, numbers: bool = True,
                  seed: int = 0) -> list[Perturbation]:
    """The intact body first, then ``n_masks`` masked copies and (if it has numbers) one with a
    step's numbers replaced."""
    out = [Perturbation("intact", body)]
    for i in range(n_masks):
        text, masked = mask_tokens(body, ratio, seed + i)
        out.append(Perturbation("mask", text, seed + i, {"masked": len(masked), "tokens": len(_TOKEN.findall(body))}))
    if numbers:
        text, changes = replace_numbers(body, seed)
        if changes:
            out.append(Perturbation("numbers", text, seed, {"changes": changes}))
    return out


# ------------------------------------------------------------------ consistency

def stated_answer(body: str, answer: str) -> str | None:
    """What the reasoning itself states: the last number of ``body`` when ``answer`` is a number,
    otherwise ``answer`` itself when its text occurs in the body (else None)."""
    if parse_number(answer) is not None:
        nums = numbers_in(body)
        return nums[-1].group(0) if nums else None
    a = normalize_text(answer)
    return answer if a and a in normalize_text(body) else None


def consistency(rationale: Rationale, by: str = "rule") -> Score:
    """Answer-rationale consistency (``Score(kind="consistency")``)."""
    if rationale.answer is None:
        return Score(kind="consistency", value=None, by=by, detail={"reason": "no final answer"})
    body = rationale_body(rationale.text)
    if not body:
        return Score(kind="consistency", value=None, by=by, detail={"reason": "no reasoning before the answer"})
    stated = stated_answer(body, rationale.answer)
    if stated is None:
        numeric = parse_number(rationale.answer) is not None
        return Score(kind="consistency", value=None if numeric else 0.0, by=by,
                     detail={"reason": "no number in the reasoning" if numeric else "answer not in the reasoning",
                             "answer": rationale.answer})
    same = normalize(stated) == normalize(rationale.answer)
    return Score(kind="consistency", value=1.0 if same else 0.0, by=by,
                 detail={"stated": stated, "answer": rationale.answer})


# ------------------------------------------------------------------ probes

def probe_specs(problem: Problem, rationale: Rationale, *, ratio: float = 0.3, n_masks: int = 2,
                numbers: bool = True, seed: int = 0, max_tokens: int = 48,
                template: str = PROBE_TEMPLATE) -> list[SampleSpec]:
    """One greedy decomposed-answer spec per perturbation of ``rationale``'s body."""
    body = rationale_body(rationale.text)
    specs = []
    for pert in perturbations(body, ratio=ratio, n_masks=n_masks, numbers=numbers, seed=seed):
        prompt = render(template, question=problem.question, context=problem.context, rationale=pert.text)
        specs.append(SampleSpec(problem=problem, prompt=prompt, n=1, temperature=0.0, max_tokens=max_tokens,
                                method="faithfulness_probe", parent_id=rationale.id,
                                meta={"perturbation": pert.kind, "seed": pert.seed, "rationale": pert.text,
                                      **(pert.detail or {})}))
    return specs


def faithfulness_score(probes: Sequence[Rationale], by: str) -> Score:
    """Score from the probe results (intact probe first)."""
    base, rest = probes[0], probes[1:]
    base_key = normalize(base.answer)
    results = [{"perturbation": p.meta.get("perturbation"), "seed": p.meta.get("seed"), "answer": p.answer,
                "changed": normalize(p.answer) != base_key, "probe_id": p.id} for p in rest]
    detail: dict[str, Any] = {"intact_answer": base.answer, "probes": results, "intact_probe_id": base.id}
    if base_key is None:
        detail["reason"] = "the probe gave no answer on the intact rationale"
        return Score(kind="faithfulness", value=None, by=by, detail=detail)
    if not results:
        detail["reason"] = "nothing to perturb"
        return Score(kind="faithfulness", value=None, by=by, detail=detail)
    value = sum(r["changed"] for r in results) / len(results)
    detail["flag"] = "unfaithful" if value == 0 else None
    return Score(kind="faithfulness", value=value, by=by, detail=detail)


def score_faithfulness(backend: Backend, store: Store, problems: Sequence[Problem],
                       rationales: Sequence[Sequence[Rationale]], *, ratio: float = 0.3, n_masks: int = 2,
                       numbers: bool = True, seed: int = 0, max_tokens: int = 48,
                       stats: GenerationStats | None = None, on_progress: Any = None) -> int:
    """Attach ``faithfulness`` and ``consistency`` scores to every rationale that has an answer
    (one batched ``generate()`` over all probes) and store them. Returns the probe count."""
    by = backend.model or backend.name
    plans: list[tuple[Problem, Rationale, int, int]] = []
    specs: list[SampleSpec] = []
    for p, rs in zip(problems, rationales):
        for r in rs:
            r.set_score(consistency(r))
            if r.answer is None:
                continue
            ss = probe_specs(p, r, ratio=ratio, n_masks=n_masks, numbers=numbers, seed=seed, max_tokens=max_tokens)
            plans.append((p, r, len(specs), len(ss)))
            specs.extend(ss)
    results = generate(specs, backend, store, stats=stats, on_progress=on_progress) if specs else []
    for p, r, start, count in plans:
        score = faithfulness_score([res[0] for res in results[start:start + count]], by)
        score.detail.update({"ratio": ratio, "n_masks": n_masks})
        r.set_score(score)
    store.put_rationales([r for rs in rationales for r in rs])
    return len(specs)


# ------------------------------------------------------------------ method: rationales run --method faithfulness


def perturbed_text(store: Store, probe_id: str) -> str:
    r = store.get_rationale(probe_id)
    return str(r.meta.get("rationale", "")) if r else ""
