"""Monte-Carlo step labels (Math-Shepherd, Wang et al. 2024).

A step is good when the solution can still reach the gold answer from it: from the prefix of
steps 0..k, sample ``n`` completions (default 8) and extract each completion's final answer.

* hard label: +1 when **any** completion reaches the gold answer, else -1 (Math-Shepherd "HE");
* soft label: the **fraction** of completions that do (Math-Shepherd "SE"), kept in
  ``Check.score``.

Rollouts are ordinary samples: ``SampleSpec(raw_prompt=continuation_prompt(...),
method="mc_rollout", parent_id=<rationale id>)``, so they are stored, cached by content hash
(a rerun costs nothing, a killed run resumes) and show up in exports.

Choices where the paper is silent:

* the prompt is rebuilt from the rationale's own template: ``rationale.method`` when it names a
  prompt template, else ``"cot"`` (the same instructions the rationale was written under);
* a rollout's answer is extracted from prefix + completion, so a prefix that already states
  the answer counts even if the completion adds nothing;
* the last step needs no rollouts: its prefix is the whole rationale, so its label is the
  rationale's own correctness (soft 1.0 / 0.0);
* a problem without a gold answer gets no MC labels (verdict None) - there is nothing to reach.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..backends.base import Backend
from ..generate import SampleSpec, continuation_prompt, generate, steps_prefix
from ..prompts import render, template_names
from ..records import Check, Problem, Rationale
from ..store import Store
from ..answers import check_answer, extract_answer, normalize
from .prm import align_problems

CHECK_BY = "math-shepherd"
ROLLOUT_METHOD = "mc_rollout"


def rollout_template(r: Rationale) -> str:
    """The prompt template a rationale was written with (its method, if that names one), else cot."""
    return r.method if r.method in template_names() else "cot"


def mc_labels(problems: Sequence[Problem] | Mapping[str, Problem], rationales: Sequence[Rationale],
              backend: Backend, store: Store, n: int = 8, temperature: float = 0.7, max_tokens: int = 256,
              seed: int = 0, on_progress: Callable[[int], None] | None = None) -> list[Rationale]:
    """Attach ``Check(kind="mc", verdict=+1/-1, score=fraction correct)`` to every step.

    In place; returns the rationales (write them back with ``store.put_rationales``). Rollouts
    are generated in one batch over all rationales and steps and stored as ``mc_rollout``."""
    probs = align_problems(problems, rationales)
    plans: list[tuple[Rationale, Problem, int, str]] = []  # rationale, problem, step index, prefix
    specs: list[SampleSpec] = []
    templates: dict[str, str] = {}
    for r, p in zip(rationales, probs):
        if p.gold is None and p.answer_type != "reasoning_gym":
            continue
        template = templates.setdefault(r.method, rollout_template(r))
        prompt = render(template, question=p.question, context=p.context)
        texts = [s.text for s in r.steps]
        for k in range(len(texts) - 1):  # the last step's label is the rationale's own correctness
            prefix = steps_prefix(texts[:k + 1])
            plans.append((r, p, k, prefix))
            specs.append(SampleSpec(problem=p, prompt=prompt, n=n, temperature=temperature,
                                    max_tokens=max_tokens, seed=seed, method=ROLLOUT_METHOD, parent_id=r.id,
                                    raw_prompt=continuation_prompt(backend, prompt, prefix),
                                    meta={"step": k, "template": template}))
    results = generate(specs, backend, store, on_progress=on_progress) if specs else []
    labels: dict[tuple[str, int], Check] = {}
    for (r, p, k, prefix), rollouts in zip(plans, results):
        answers, hits = [], 0
        for roll in rollouts:
            ans = extract_answer(prefix + roll.text)
            ok = check_answer(p, ans) is True
            hits += ok
            answers.append(normalize(ans))
        labels[(r.id, k)] = Check(kind="mc", by=CHECK_BY, verdict=1 if hits else -1, score=hits / len(rollouts),
                                  detail={"n": len(rollouts), "correct": hits, "answers": answers,
                                          "temperature": temperature, "max_tokens": max_tokens})
    for r, p in zip(rationales, probs):
        for step in r.steps:
            step.checks = [c for c in step.checks if not (c.kind == "mc" and c.by == CHECK_BY)]
        if not r.steps:
            continue
        if p.gold is None and p.answer_type != "reasoning_gym":
            continue
        for k, step in enumerate(r.steps[:-1]):
            step.checks.append(labels[(r.id, k)])
        last = r.steps[-1]
        correct = bool(r.correct) if r.correct is not None else check_answer(p, r.answer) is True
        last.checks.append(Check(kind="mc", by=CHECK_BY, verdict=1 if correct else -1, score=float(correct),
                                 detail={"n": 0, "final": True, "answer": normalize(r.answer)}))
    return list(rationales)


def mc_summary(rationales: Sequence[Rationale]) -> dict[str, Any]:
    """Counts of MC labels: steps labelled, +1, -1, mean soft label."""
    checks = [c for r in rationales for s in r.steps for c in s.checks if c.kind == "mc" and c.by == CHECK_BY]
    return {"steps": len(checks), "positive": sum(c.verdict == 1 for c in checks),
            "negative": sum(c.verdict == -1 for c in checks),
            "mean_soft": (sum(c.score or 0.0 for c in checks) / len(checks)) if checks else None}


__all__ = ["mc_labels", "mc_summary", "rollout_template", "ROLLOUT_METHOD"]


def mc_search_labels(problems: Any, rationales: Sequence[Rationale], backend: Any, store: Any, *, n: int = 4,
                     wave: int = 2, max_tokens: int = 320, temperature: float = 0.7, seed: int = 0,
                     max_wrong_per_problem: int | None = None, solved_only: bool = False,
                     stats: dict[str, Any] | None = None) -> list[Rationale]:
    """Math-Shepherd hard labels at a fraction of the rollouts (``Check(kind="mc",
    by="math-shepherd")``, in place; store them with ``store.put_rationales``):

    * a rationale with the right answer is itself a completion from each of its prefixes that
      reaches the gold answer, so every step is +1 without a rollout (``detail["inferred"]``);
    * a wrong rationale's last step is -1 (its prefix is the whole rationale);
    * the first wrong step of a wrong rationale is found by binary search (OmegaPRM, Luo et al.
      2024): probe the middle step with rollouts; a rollout reaching the gold answer makes that
      step and all before it +1, none makes it and all after it -1 (Math-Shepherd's label is
      monotone along a path in expectation; the probed steps carry their measured soft label,
      the others are marked inferred);
    * rollouts of all probes of all rationales run in one batched ``generate`` per wave of
      ``wave`` samples, up to ``n`` per probe; a probe stops at its first success.

    Rollouts are ordinary stored samples (``method=ROLLOUT_METHOD``): a rerun costs nothing.
    ``max_wrong_per_problem`` bounds the searched wrong rationales per problem (the others keep
    only their free labels). ``solved_only`` searches only problems that one of the given
    rationales solves: where no sample reaches the gold, rollouts almost never do either, so the
    search pays its full budget (``n`` rollouts per probe) to label every step -1, which says
    "this problem is hard", not which step went wrong (``stats["skipped_unsolved"]``).
    ``stats`` is filled with rollouts, tokens and labelled steps."""
    from ..generate import GenerationStats

    probs = align_problems(problems, rationales)
    gstats = GenerationStats()
    st = stats if stats is not None else {}
    for key in ("rollouts", "tokens", "probes", "searched", "free_positive", "free_negative", "skipped_unsolved"):
        st.setdefault(key, 0)
    solved = {p.id for r, p in zip(rationales, probs)
              if r.steps and (bool(r.correct) if r.correct is not None else check_answer(p, r.answer) is True)}

    def put(step: Any, verdict: int, score: float | None, detail: dict[str, Any]) -> None:
        step.checks = [c for c in step.checks if not (c.kind == "mc" and c.by == CHECK_BY)]
        step.checks.append(Check(kind="mc", by=CHECK_BY, verdict=verdict, score=score, detail=detail))

    searches: list[dict[str, Any]] = []
    wrong_seen: dict[str, int] = {}
    for r, p in zip(rationales, probs):
        if not r.steps or (p.gold is None and p.answer_type != "reasoning_gym"):
            continue
        correct = bool(r.correct) if r.correct is not None else check_answer(p, r.answer) is True
        if correct:
            for s in r.steps:
                put(s, 1, None, {"inferred": "the rationale itself reaches the gold answer"})
            st["free_positive"] += len(r.steps)
            continue
        put(r.steps[-1], -1, 0.0, {"n": 0, "final": True})
        st["free_negative"] += 1
        k = wrong_seen.get(p.id, 0)
        if len(r.steps) < 2 or (max_wrong_per_problem is not None and k >= max_wrong_per_problem):
            continue
        if solved_only and p.id not in solved:
            st["skipped_unsolved"] += 1
            continue
        wrong_seen[p.id] = k + 1
        searches.append({"r": r, "p": p, "prompt": render(rollout_template(r), question=p.question, context=p.context),
                         "lo": 0, "hi": len(r.steps) - 1, "probed": {}})
    st["searched"] += len(searches)

    while True:
        active = [s for s in searches if s["lo"] < s["hi"]]
        if not active:
            break
        probes = []
        for s in active:
            mid = (s["lo"] + s["hi"]) // 2
            probes.append((s, mid, {"hits": 0, "n": 0}))
        drawn = 0
        while True:
            todo = [(s, mid, acc) for s, mid, acc in probes if acc["hits"] == 0 and acc["n"] < n]
            if not todo:
                break
            upto = min(n, drawn + wave)
            specs = []
            for s, mid, _ in todo:
                prefix = steps_prefix([x.text for x in s["r"].steps[:mid + 1]])
                specs.append(SampleSpec(problem=s["p"], prompt=s["prompt"], n=upto, temperature=temperature,
                                        max_tokens=max_tokens, seed=seed, method=ROLLOUT_METHOD, parent_id=s["r"].id,
                                        raw_prompt=continuation_prompt(backend, s["prompt"], prefix),
                                        meta={"step": mid, "search": "binary"}))
            results = generate(specs, backend, store, stats=gstats)
            for (s, mid, acc), rolls in zip(todo, results):
                prefix = steps_prefix([x.text for x in s["r"].steps[:mid + 1]])
                for roll in rolls[drawn:upto]:  # every drawn rollout counts, even after a success
                    st["rollouts"] += 1
                    st["tokens"] += roll.tokens
                    if acc["hits"] == 0:
                        acc["n"] += 1
                        acc["hits"] += check_answer(s["p"], extract_answer(prefix + roll.text)) is True
            drawn = upto
        st["probes"] += len(probes)
        for s, mid, acc in probes:
            s["probed"][mid] = acc
            if acc["hits"]:
                s["lo"] = mid + 1
            else:
                s["hi"] = mid
    for s in searches:
        r, first = s["r"], s["hi"]
        for i, step in enumerate(r.steps[:-1]):
            acc = s["probed"].get(i)
            if acc is not None:
                put(step, 1 if acc["hits"] else -1, acc["hits"] / max(1, acc["n"]),
                    {"n": acc["n"], "correct": acc["hits"], "search": "binary", "stopped_early": bool(acc["hits"])})
            else:
                put(step, 1 if i < first else -1, None,
                    {"inferred": f"binary search: first wrong step is {first}", "search": "binary"})
    st["tokens_new"] = st.get("tokens_new", 0) + gstats.tokens_new
    st["steps_labelled"] = sum(1 for r in rationales for s in r.steps
                               if any(c.kind == "mc" and c.by == CHECK_BY for c in s.checks))
    return list(rationales)
