"""Step-error detection, scored the ProcessBench way (Zheng et al. 2024).

Each item is a step-by-step solution with ``label`` = index of its first wrong step, or -1 when
every step is right. A detector predicts an index (or -1). Scores:

* ``error_acc``: on the erroneous items, the fraction whose first wrong step is found exactly;
* ``correct_acc``: on the correct items, the fraction predicted all-correct (-1);
* ``f1``: their harmonic mean. Fractions in [0, 1] (the paper prints percentages); a subset
  with no items gives None, and then f1 is None.

Data: ``load_processbench(path)`` reads JSONL with ``problem``, ``steps`` (list of strings),
``label`` (the original ProcessBench files have exactly these fields, plus ``id``,
``generator``, ``final_answer_correct``); ``answer``/``gold`` is kept when present.
``build_from_gsm_symbolic(n, seed)`` makes such data offline from reasoning-gym's
``gsm_symbolic`` gold solutions (the only generator that ships step-by-step solutions, in
``metadata["answer_cot"]``): half kept correct, half with one step's result number changed
by ``corrupt_solution``, so the label is known exactly.

Detectors for ``evaluate_step_detector``: ``"tool"`` (the arithmetic checker: first step with
a -1 tool verdict), any ``StepScorer`` (first step whose reward is below ``threshold``), or a
function ``Item -> int``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TaskError
from ..records import Problem, Rationale, content_hash
from .arithmetic import check_rationale, find_claims


@dataclass
class Item:
    """One ProcessBench-style item: a solution's steps and the index of its first wrong step."""

    problem: str
    steps: list[str]
    label: int = -1
    id: str = ""
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = content_hash("pb", self.problem, self.steps, self.label)

    def to_problem(self) -> Problem:
        return Problem.make(self.problem, self.answer, source="processbench")

    def to_rationale(self) -> Rationale:
        from .prm import rationale_from_steps

        return rationale_from_steps(self.to_problem(), self.steps, method="processbench",
                                    rid=content_hash("pb-rationale", self.id))


def load_processbench(path: str | Path) -> list[Item]:
    """Items from a JSONL file (fields problem, steps, label; see the module docstring). Every
    malformed line is a one-line ``TaskError`` naming the line (read by ``tasks/jsonl.py``)."""
    from ..tasks.jsonl import read_jsonl_numbered

    p = Path(path)
    try:
        is_file = p.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        raise TaskError(f"ProcessBench file {p} not found; pass a JSONL file with problem, steps and label "
                        "fields, or build one with `rationales processbench --build N`.")
    shape = "each line needs problem (text), steps (list of strings) and label (-1 or the first wrong step's index)"
    items = []
    for line_no, row in read_jsonl_numbered(p, "ProcessBench file"):
        where = f"{p}:{line_no}"
        missing = [k for k in ("problem", "steps", "label") if k not in row]
        if missing:
            raise TaskError(f"{where} has no {', '.join(missing)}; {shape}.")
        problem, steps, label = row["problem"], row["steps"], row["label"]
        if not isinstance(problem, str) or not problem.strip():
            raise TaskError(f"{where}: problem must be non-empty text; {shape}.")
        if not isinstance(steps, list) or not all(isinstance(x, str) for x in steps):
            raise TaskError(f"{where}: steps must be a list of strings.")
        if isinstance(label, bool) or not isinstance(label, int) and not (isinstance(label, str) and
                                                                          label.strip().lstrip("-").isdigit()):
            raise TaskError(f"{where}: label must be a whole number (-1 or a step index), got {str(label)[:40]!r}.")
        label = int(label) if len(str(label)) < 20 else len(steps)
        if not -1 <= label < len(steps):
            raise TaskError(f"{where}: label {label} is not -1 or a step index below {len(steps)}.")
        answer = row.get("answer", row.get("gold"))
        meta = {k: v for k, v in row.items() if k not in ("problem", "steps", "label", "id", "answer", "gold")}
        items.append(Item(problem=problem, steps=steps, label=label, id=str(row.get("id", "")),
                          answer=None if answer is None else str(answer), meta=meta))
    if not items:
        raise TaskError(f"{p} holds no items.")
    return items


def save_processbench(items: Sequence[Item], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(asdict(it), ensure_ascii=False) + "\n")
    return p


def first_error(step_rewards: Sequence[float | None], threshold: float = 0.5) -> int:
    """Index of the first step whose reward is below ``threshold`` (None rewards are skipped), -1 when none."""
    for i, r in enumerate(step_rewards):
        if r is not None and r < threshold:
            return i
    return -1


def first_wrong_verdict(r: Rationale, kind: str = "tool") -> int:
    """Index of the first step with a -1 verdict of ``kind``, -1 when none."""
    for i, step in enumerate(r.steps):
        if step.verdict(kind) == -1:
            return i
    return -1


def processbench_scores(predicted: Sequence[int], labels: Sequence[int]) -> dict[str, Any]:
    """ProcessBench accuracy on erroneous items, on correct items, and their harmonic mean."""
    if len(predicted) != len(labels):
        raise ValueError(f"{len(predicted)} predictions for {len(labels)} labels")
    err = [(p, l) for p, l in zip(predicted, labels) if l != -1]
    cor = [(p, l) for p, l in zip(predicted, labels) if l == -1]
    error_acc = sum(p == l for p, l in err) / len(err) if err else None
    correct_acc = sum(p == -1 for p, _ in cor) / len(cor) if cor else None
    if error_acc is None or correct_acc is None:
        f1 = None
    elif error_acc + correct_acc == 0:
        f1 = 0.0
    else:
        f1 = 2 * error_acc * correct_acc / (error_acc + correct_acc)
    return {"error_acc": error_acc, "correct_acc": correct_acc, "f1": f1, "n_error": len(err),
            "n_correct": len(cor)}


# ------------------------------------------------------------------ building test data


def _format_like(old: str, value: float) -> str:
    """Write ``value`` the way ``old`` was written (thousands commas, decimals)."""
    decimals = len(old.split(".")[1]) if "." in old else 0
    s = f"{value:,.{decimals}f}" if "," in old else f"{value:.{decimals}f}"
    return s


def corrupt_solution(steps: Sequence[str], k: int, rng: random.Random) -> list[str]:
    """A copy of ``steps`` whose step ``k`` states a wrong result: the claimed number of one of
    its arithmetic claims is changed (by a random nonzero amount of about 1-20% of it, at least
    1, never flipping the sign of a positive number). Later steps are left as they were, so the
    first wrong step is exactly ``k``. Raises ValueError when step k has no checkable claim."""
    if not 0 <= k < len(steps):
        raise ValueError(f"step {k} out of range for {len(steps)} steps")
    text = steps[k]
    claims = [c for c in find_claims(text) if c.ok and c.claimed_span is not None]
    if not claims:
        raise ValueError(f"step {k} has no correct arithmetic claim to corrupt: {text!r}")
    claim = rng.choice(claims)
    a, b = claim.claimed_span  # type: ignore[misc]
    old = text[a:b]
    old_val = float(old.replace(",", ""))
    decimals = len(old.split(".")[1]) if "." in old else 0
    unit = 10 ** -decimals
    for _ in range(100):
        delta = abs(old_val) * rng.uniform(0.01, 0.2)
        if abs(old_val) >= 100 and decimals == 0:  # keep it round: 78,000 -> 93,000, not 93,123
            step = 10 ** (len(str(int(abs(old_val)))) - 2)
            delta = max(step, round(delta / step) * step)
        else:
            delta = max(unit, round(delta, decimals))
        new_val = old_val + rng.choice([-1, 1]) * delta
        if old_val >= 0 > new_val:
            new_val = old_val + delta
        new = _format_like(old, new_val)
        if new != old and abs(new_val - old_val) > 1e-9:
            break
    out = list(steps)
    out[k] = text[:a] + new + text[b:]
    return out


def gsm_symbolic_steps(answer_cot: str) -> list[str]:
    """The steps of a gsm_symbolic gold solution (one per line, the ``#### answer`` line dropped)."""
    lines = [ln.strip() for ln in answer_cot.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("####")]


def build_from_gsm_symbolic(n: int = 100, seed: int = 0) -> list[Item]:
    """``n`` items from reasoning-gym's gsm_symbolic: even positions keep the gold solution
    (label -1), odd positions get one step corrupted (label = that step). The corrupted step is
    drawn among the steps whose arithmetic the tool checker reads and finds right, so the
    corruption is a real, checkable error. Deterministic in ``seed``."""
    import reasoning_gym

    if n < 1:
        raise TaskError("Build at least one item (--build N with N >= 1).")
    rng = random.Random(seed)
    ds = reasoning_gym.create_dataset("gsm_symbolic", size=max(2 * n, 20), seed=seed)
    items: list[Item] = []
    for i in range(len(ds)):
        if len(items) >= n:
            break
        entry = ds[i]
        cot = (entry.get("metadata") or {}).get("answer_cot")
        if not cot:
            continue
        steps = gsm_symbolic_steps(cot)
        if len(steps) < 2:
            continue
        meta = {"source": "reasoning_gym:gsm_symbolic", "index": i, "seed": seed}
        if len(items) % 2 == 0:
            items.append(Item(problem=entry["question"], steps=steps, label=-1, answer=str(entry["answer"]),
                              meta=meta))
            continue
        candidates = [k for k, s in enumerate(steps)
                      if any(c.ok and c.claimed_span is not None for c in find_claims(s))
                      and all(c.ok for c in find_claims(s))]
        if not candidates:
            continue
        k = rng.choice(candidates)
        bad = corrupt_solution(steps, k, rng)
        items.append(Item(problem=entry["question"], steps=bad, label=k, answer=str(entry["answer"]),
                          meta={**meta, "corrupted": True, "original": steps[k]}))
    return items


# ------------------------------------------------------------------ evaluation

Detector = Any  # "tool" | StepScorer | Callable[[Item], int]


def predict_first_errors(items: Sequence[Item], detector: Detector, threshold: float = 0.5,
                         rel_tol: float = 1e-6) -> list[int]:
    """Predicted first wrong step of each item."""
    if isinstance(detector, str):
        if detector != "tool":
            from ..errors import UnknownNameError

            raise UnknownNameError("step detector", detector, ["tool", "<StepScorer>"])
        return [first_wrong_verdict(check_rationale(it.to_rationale(), rel_tol=rel_tol), "tool") for it in items]
    if hasattr(detector, "score"):
        problems = [it.to_problem() for it in items]
        rationales = [it.to_rationale() for it in items]
        rewards = detector.score(problems, rationales)
        return [first_error(rs, threshold) for rs in rewards]
    if callable(detector):
        return [int(detector(it)) for it in items]
    raise TypeError("detector must be 'tool', a StepScorer (with .score) or a function Item -> int")


def calibrate_threshold(items: Sequence[Item], scorer: Any, grid: Sequence[float] | None = None
                        ) -> tuple[float, dict[str, Any]]:
    """The step-reward threshold with the best ProcessBench F1 on ``items``, and its scores
    (ties go to the threshold nearest 0.5). A PRM's rewards are not calibrated across kinds of
    text, so choose the threshold on items of the training problems and score others with it;
    the rewards are computed once for the whole grid (default 0.05, 0.10, ..., 0.95)."""
    labels = [it.label for it in items]
    rewards = scorer.score([it.to_problem() for it in items], [it.to_rationale() for it in items])
    best: tuple[tuple[float, float], float, dict[str, Any]] | None = None
    for th in grid or [k / 20 for k in range(1, 20)]:
        s = processbench_scores([first_error(rw, th) for rw in rewards], labels)
        key = (s["f1"] if s["f1"] is not None else -1.0, -abs(th - 0.5))
        if best is None or key > best[0]:
            best = (key, th, s)
    if best is None:
        raise ValueError("calibrate_threshold needs a non-empty grid")
    return best[1], best[2]


def evaluate_step_detector(items: Sequence[Item], detector: Detector, threshold: float = 0.5,
                           rel_tol: float = 1e-6) -> dict[str, Any]:
    """ProcessBench scores of ``detector`` on ``items``, plus its predictions."""
    predicted = predict_first_errors(items, detector, threshold=threshold, rel_tol=rel_tol)
    scores = processbench_scores(predicted, [it.label for it in items])
    scores["predicted"] = predicted
    return scores


__all__ = ["Item", "load_processbench", "save_processbench", "first_error", "first_wrong_verdict",
           "processbench_scores", "corrupt_solution", "build_from_gsm_symbolic", "evaluate_step_detector",
           "calibrate_threshold",
           "predict_first_errors", "gsm_symbolic_steps"]
