"""The judge job (``rationales judge``): judge stored rationales or a prometheus-eval JSONL file,
and report agreement with gold where it is known.

Inputs (``JudgeJobConfig.source``):

* ``store``: stored rationales, filtered by run (its model, method and task), method, model or
  problem source. ``mode="absolute"`` scores each rationale (gold = correct/wrong as the scale's
  top/bottom) and writes ``Score(kind="judge")`` on it; ``mode="pairwise"`` judges the
  RewardBench-style pairs (a correct and a wrong rationale of one problem,
  ``data.judge_pairs.reasoning_pairs``); ``mode="ranking"`` ranks up to ``rank_k`` rationales per
  problem (gold: correct ones first).
* a JSONL file in prometheus-eval's field names: ``instruction``, ``response``,
  ``reference_answer``, ``rubric`` or ``score_rubric`` (a built-in rubric name, a rubric text, or
  an object with ``criteria``/``score1_description``...), gold ``score``/``orig_score``/``gold``;
  relative rows have ``response_A``/``response_B`` and gold ``winner``/``label``/``gold``
  ("A"/"B"); ranking rows have ``responses`` (a list) and gold ``ranking`` (indices).

Returns a ``JudgeResult`` (items, judgments, agreement, counts, time); never prints.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..backends.base import Backend
from ..errors import RationalesError, UnknownNameError
from ..records import Score, content_hash
from ..store import Store
from ..verify.judge import (AbsoluteJudge, JudgeConfig, JudgeError, JudgeItem, Judgment, PairItem, PairwiseJudge,
                            RankingJudge, RankItem, load_rubric)

MODES = ("absolute", "pairwise", "ranking", "step")


@dataclass
class JudgeJobConfig:
    """Options of ``rationales judge`` (validated)."""

    mode: Literal["absolute", "pairwise", "ranking", "step"] = "absolute"
    file: str | None = None  # a JSONL file instead of the store's rationales
    run: str | None = None  # store filters
    method: str | None = None
    source_model: str | None = None
    task: str | None = None
    rubric: str = "correctness"
    low: int | None = None  # scale override (default: the rubric's)
    high: int | None = None
    reference: bool = False  # show the gold answer as the reference (store items)
    limit: int | None = None
    per_problem: int = 1
    rank_k: int = 3
    seed: int = 0
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    write_scores: bool = True  # absolute over the store: Score(kind="judge") on each rationale

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UnknownNameError("judge mode", str(self.mode), MODES)
        if (self.low is None) != (self.high is None):
            raise JudgeError("Give both --low and --high for a custom scale (e.g. --low 1 --high 10).")
        if self.low is not None and self.high is not None and self.high <= self.low:
            raise JudgeError(f"Scale {self.low}..{self.high}: --high must be above --low.")
        if self.limit is not None and self.limit < 1:
            raise JudgeError(f"--limit {self.limit} must be at least 1.")
        if not 2 <= self.rank_k <= 5:
            raise JudgeError(f"--rank-k {self.rank_k}: rank 2 to 5 responses per problem.")
        if self.per_problem < 1:
            raise JudgeError(f"--per-problem {self.per_problem} must be at least 1.")
        load_rubric(self.rubric)  # unknown rubric -> one-line error now, before any model loads
        if self.judge.calibrate and self.mode != "pairwise":
            raise JudgeError(f"--calibrate decides A vs B pairs; it needs --mode pairwise, not --mode {self.mode}.")
        if self.mode == "step" and self.file:
            raise JudgeError("--mode step judges the steps of stored rationales; drop the file argument.")


@dataclass
class JudgeResult:
    mode: str
    judge: str
    source: str
    items: list[Any]
    judgments: list[Judgment]
    agreement: dict[str, Any]
    counts: dict[str, int]
    seconds: float
    tokens: int
    run_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"mode": self.mode, "judge": self.judge, "source": self.source, "items": len(self.items),
                "agreement": self.agreement, "counts": self.counts, "seconds": round(self.seconds, 2),
                "tokens": self.tokens, "run_id": self.run_id}

    def rows(self) -> list[dict[str, Any]]:
        """One row per item: its verdict, rationale and gold (for --json and reports)."""
        by_id = {j.item_id: j for j in self.judgments}
        out = []
        for it in self.items:
            j = by_id.get(it.id)
            out.append({"id": it.id, "verdict": None if j is None else j.value, "how": None if j is None else j.how,
                        "gold": getattr(it, "gold", None), "rationale": "" if j is None else j.rationale,
                        "consistent": None if j is None else j.consistent,
                        "samples": [] if j is None else [{"value": s.value, "how": s.how, "order": s.order,
                                                          "text": s.text} for s in j.samples]})
        return out


# ------------------------------------------------------------------ JSONL input


def _rubric_field(row: dict[str, Any]) -> Any:
    r = row.get("rubric", row.get("score_rubric"))
    if r is None or (isinstance(r, str) and not r.strip()):
        return None
    return r


def _gold_score(row: dict[str, Any], where: str) -> float | None:
    for key in ("score", "orig_score", "gold", "gold_score", "label"):
        if key in row and row[key] is not None and row[key] != "":
            try:
                return float(row[key])
            except (TypeError, ValueError):
                raise JudgeError(f"{where}: gold '{key}' = {row[key]!r} is not a number.") from None
    return None


def _gold_winner(row: dict[str, Any], where: str) -> str | None:
    for key in ("winner", "label", "gold", "chosen"):
        v = row.get(key)
        if v is None or v == "":
            continue
        s = str(v).strip().upper().replace("RESPONSE_", "").replace("RESPONSE ", "")
        if s in ("A", "B"):
            return s
        if s in ("0", "1"):
            return "AB"[int(s)]
        raise JudgeError(f"{where}: gold '{key}' = {v!r}; write 'A' or 'B'.")
    return None


def read_jsonl(path: str | Path, mode: str, limit: int | None = None) -> list[Any]:
    """Judge items from a prometheus-eval style JSONL file; one-line errors for bad rows."""
    p = Path(path)
    if not p.is_file():
        raise JudgeError(f"Judge file {p} does not exist; pass a JSONL file with instruction/response rows.")
    items: list[Any] = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise JudgeError(f"Cannot read {p} as UTF-8 text ({e}).") from e
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{p.name} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise JudgeError(f"{where} is not valid JSON ({e.msg}); write one JSON object per line.") from None
        if not isinstance(row, dict):
            raise JudgeError(f"{where} is not a JSON object; write one object per line.")
        instruction = row.get("instruction", row.get("orig_instruction", row.get("prompt")))
        if not isinstance(instruction, str) or not instruction.strip():
            raise JudgeError(f"{where} has no 'instruction' text.")
        ref = row.get("reference_answer", row.get("orig_reference_answer", row.get("reference")))
        ref = ref if isinstance(ref, str) and ref.strip() else None
        rubric = _rubric_field(row)
        if rubric is not None:
            load_rubric(rubric)  # an unknown rubric name fails here, with its line
        rid = str(row.get("id", "")) or ""
        if mode == "pairwise":
            a, b = row.get("response_A", row.get("orig_response_A")), row.get("response_B", row.get("orig_response_B"))
            if not isinstance(a, str) or not isinstance(b, str):
                raise JudgeError(f"{where} needs 'response_A' and 'response_B' texts for pairwise judging.")
            items.append(PairItem(instruction, a, b, ref, rubric, id=rid, gold=_gold_winner(row, where)))
        elif mode == "ranking":
            rs = row.get("responses")
            if not isinstance(rs, list) or len(rs) < 2 or not all(isinstance(x, str) for x in rs):
                raise JudgeError(f"{where} needs 'responses': a list of at least two texts for ranking.")
            gold = row.get("ranking")
            if gold is not None and (not isinstance(gold, list) or sorted(gold) != list(range(len(rs)))):
                raise JudgeError(f"{where}: 'ranking' must list every response index once, best first.")
            items.append(RankItem(instruction, rs, ref, rubric, id=rid, gold=gold))
        else:
            resp = row.get("response", row.get("orig_response"))
            if not isinstance(resp, str):
                raise JudgeError(f"{where} needs a 'response' text (for relative rows use --mode pairwise).")
            items.append(JudgeItem(instruction, resp, ref, rubric, id=rid, gold=_gold_score(row, where)))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise JudgeError(f"{p} holds no rows; write one JSON object per line with 'instruction' and 'response'.")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):  # duplicate user ids: make them unique, keep order
        for k, it in enumerate(items):
            it.id = f"{it.id}#{k}"
    return items


# ------------------------------------------------------------------ store input


def _store_filters(config: JudgeJobConfig, store: Store) -> dict[str, Any]:
    filters: dict[str, Any] = {"model": config.source_model, "method": config.method}
    problem_ids = None
    task = config.task
    if config.run:
        runs = [r for r in store.runs() if r["id"] == config.run or r["id"].startswith(config.run)]
        if not runs:
            raise JudgeError(f"No run '{config.run}' in {store.path}; see the run ids with `rationales runs` or "
                             "filter with --method/--source-model instead.")
        run = runs[-1]
        filters["model"] = filters["model"] or (run.get("summary") or {}).get("model")
        filters["method"] = filters["method"] or run["config"].get("method")
        task = task or run["config"].get("task")
    if task:
        problem_ids = {p.id for p in store.problems(source=task)}
        if not problem_ids:
            problem_ids = {p.id for p in store.problems() if p.source.startswith(task)}
    filters["problem_ids"] = problem_ids
    return filters


def store_items(config: JudgeJobConfig, store: Store, low: int, high: int) -> list[Any]:
    from ..data.judge_pairs import absolute_items, reasoning_pairs, stored_rationales

    f = _store_filters(config, store)
    if config.mode == "absolute":
        items = absolute_items(store, model=f["model"], method=f["method"], problem_ids=f["problem_ids"], low=low,
                               high=high, reference=config.reference, limit=config.limit)
    elif config.mode == "pairwise":
        items = reasoning_pairs(store, model=f["model"], method=f["method"], problem_ids=f["problem_ids"],
                                per_problem=config.per_problem, seed=config.seed)
    else:
        groups: dict[str, list[Any]] = {}
        for r in stored_rationales(store, model=f["model"], method=f["method"], problem_ids=f["problem_ids"]):
            groups.setdefault(r.problem_id, []).append(r)
        items = []
        for pid, rs in groups.items():
            rs = sorted(rs, key=lambda r: r.id)[:config.rank_k]
            if len(rs) < 2 or len({bool(r.correct) for r in rs}) < 2:
                continue
            p = store.get_problem(pid)
            if p is None:
                continue
            # gold: correct ones first (ties kept in id order)
            gold = sorted(range(len(rs)), key=lambda i: (not rs[i].correct, i))
            items.append(RankItem(p.question, [r.text for r in rs], None, None, id=content_hash("rank", pid),
                                  gold=gold, meta={"problem_id": pid, "rationale_ids": [r.id for r in rs]}))
    if config.limit is not None:
        items = items[:config.limit]
    if not items:
        what = {"absolute": "rationales with a known correctness",
                "pairwise": "problems with both a correct and a wrong rationale",
                "ranking": "problems with a correct and a wrong rationale"}[config.mode]
        raise JudgeError(f"No items to judge: the store {store.path} has no {what} for these filters; run "
                         "`rationales run TASK` first or relax --run/--method/--source-model/--task.")
    return items


# ------------------------------------------------------------------ the job


def make_judge(config: JudgeJobConfig, backend: Backend, store: Store | None) -> Any:
    rubric = load_rubric(config.rubric)
    if config.mode == "absolute":
        scale = (config.low, config.high) if config.low is not None and config.high is not None else None
        return AbsoluteJudge(backend, rubric, config.judge, store=store, scale=scale)
    if config.mode == "pairwise":
        return PairwiseJudge(backend, rubric, config.judge, store=store)
    return RankingJudge(backend, rubric, config.judge, store=store)


def agreement(mode: str, judgments: list[Judgment], items: list[Any], low: int, high: int) -> dict[str, Any]:
    from ..score.judge import absolute_agreement, pairwise_agreement
    from ..stats import wilson_interval

    if mode == "absolute":
        return absolute_agreement(judgments, items, low, high)
    if mode == "pairwise":
        return pairwise_agreement(judgments, items)
    gold_of = {it.id: it.gold for it in items}
    rows = [(j, gold_of.get(j.item_id)) for j in judgments if gold_of.get(j.item_id) is not None]
    top1 = sum(1 for j, g in rows if j.value is not None and j.value[0] == g[0])
    lo, hi = wilson_interval(top1, len(rows))
    return {"n": len(rows), "top1_accuracy": round(top1 / len(rows), 4) if rows else None, "ci_low": round(lo, 4),
            "ci_high": round(hi, 4), "unparsed": sum(1 for j, _ in rows if j.value is None or j.how == "forced"),
            "forced": sum(1 for j, _ in rows if j.how == "forced"), "no_verdict": sum(1 for j, _ in rows if j.value is None)}


def run_judge(config: JudgeJobConfig, backend: Backend, store: Store) -> JudgeResult:
    """Judge the configured items; absolute judgments of stored rationales are written back as
    ``Score(kind="judge")``. The run is recorded in the store's runs table."""
    t0 = time.time()
    rubric = load_rubric(config.rubric)
    low, high = (config.low, config.high) if config.low is not None and config.high is not None \
        else (rubric.low, rubric.high)
    if config.mode == "step":
        return _run_step_judge(config, backend, store, t0)
    if config.file:
        items, source = read_jsonl(config.file, config.mode, config.limit), str(config.file)
    else:
        items, source = store_items(config, store, low, high), f"store:{store.path}"
    judge = make_judge(config, backend, store)
    run_id = store.start_run("judge", {**asdict(config), "backend": backend.name, "model": backend.model})
    judgments = judge.judge(items)
    if config.mode == "absolute" and not config.file and config.write_scores:
        ids = [it.meta.get("rationale_id") for it in items]
        stored = store.get_rationales([i for i in ids if i])
        changed = []
        for it, j in zip(items, judgments):
            r = stored.get(it.meta.get("rationale_id"))
            if r is None:
                continue
            r.set_score(Score(kind="judge", value=None if j.value is None else float(j.value), by=judge.name,
                              detail={"rationale": j.rationale[:4000], "how": j.how, "rubric": rubric.name,
                                      "low": low, "high": high, "run_id": run_id}))
            changed.append(r)
        if changed:
            store.put_rationales(changed)
    counts: dict[str, int] = {}
    for j in judgments:
        for s in j.samples:
            key = s.how if s.value is not None else f"unparsed:{s.how}"
            counts[key] = counts.get(key, 0) + 1
    counts["verdicts"] = sum(1 for j in judgments if j.value is not None)
    counts["no_verdict"] = sum(1 for j in judgments if j.value is None)
    result = JudgeResult(config.mode, judge.name, source, items, judgments,
                         agreement(config.mode, judgments, items, low, high), counts, time.time() - t0,
                         sum(j.tokens for j in judgments), run_id, {**asdict(config), "low": low, "high": high,
                                                                    "constrained": judge.engine.constrained})
    store.finish_run(run_id, result.summary())
    return result


def _run_step_judge(config: JudgeJobConfig, backend: Backend, store: Store, t0: float) -> JudgeResult:
    """Step-level judging: ``Check(kind="judge")`` on every step of the selected stored
    rationales (rubric ``step`` unless another is given); agreement with the arithmetic tool
    check on the steps it can decide."""
    from ..data.judge_pairs import stored_rationales
    from ..stats import wilson_interval
    from ..verify.arithmetic import check_step
    from ..verify.judge import StepJudge, judge_checks

    f = _store_filters(config, store)
    rats = [r for r in stored_rationales(store, model=f["model"], method=f["method"], problem_ids=f["problem_ids"])
            if r.steps][:config.limit or None]
    if not rats:
        raise JudgeError(f"No stored rationales with steps in {store.path} for these filters; run `rationales run "
                         "TASK` first or relax --run/--method/--source-model/--task.")
    problems = {pid: store.get_problem(pid) for pid in {r.problem_id for r in rats}}
    rats = [r for r in rats if problems.get(r.problem_id) is not None]
    rubric = config.rubric if config.rubric != "correctness" else "step"
    judge = StepJudge(backend, rubric, config.judge, store=store)
    run_id = store.start_run("judge", {**asdict(config), "backend": backend.name, "model": backend.model})
    judge_checks(judge, [problems[r.problem_id] for r in rats], rats)
    store.put_rationales(rats)
    agree = n_tool = judged = unparsed = forced = 0
    for r in rats:
        for step in r.steps:
            c = next((c for c in reversed(step.checks) if c.kind == "judge" and c.by == judge.name), None)
            if c is None:
                continue
            judged += 1
            unparsed += c.verdict is None or (c.detail or {}).get("how") == "forced"
            forced += (c.detail or {}).get("how") == "forced"
            tool = check_step(step)
            if tool is not None and tool.verdict is not None and c.verdict is not None:
                n_tool += 1
                agree += int(tool.verdict == c.verdict)
    lo, hi = wilson_interval(agree, n_tool)
    ag = {"steps": judged, "unparsed": unparsed, "unparsed_rate": round(unparsed / judged, 4) if judged else None,
          "forced": forced,
          "tool_decided_steps": n_tool, "agreement_with_tool": round(agree / n_tool, 4) if n_tool else None,
          "ci_low": round(lo, 4), "ci_high": round(hi, 4)}
    counts = dict(judge.stats)
    result = JudgeResult("step", judge.name, f"store:{store.path}", [], [], ag, counts, time.time() - t0, 0, run_id,
                         {**asdict(config), "rationales": len(rats)})
    store.finish_run(run_id, result.summary())
    return result


# ------------------------------------------------------------------ judges as verifiers (compare)


def judge_rewards(problems: list[Any], samples: list[list[Any]], judge: AbsoluteJudge, store: Store
                  ) -> tuple[dict[str, float | None], dict[str, int]]:
    """Each sample's judge score scaled to [0, 1] ((score - low) / (high - low); None when the
    verdict could not be read) and the judge tokens charged to it. Scores are kept on the
    samples (``Score(kind="judge", by=judge)``, with the judge's rationale and tokens) and
    stored, so a sample is judged once per judge."""
    from ..score.judge import judge_scores
    from .scoring import unscored

    def scored(r: Any) -> bool:
        return any(s.kind == "judge" and s.by == judge.name and "tokens" in s.detail for s in r.scores)

    todo_p, todo_r = unscored(problems, samples, scored)
    if todo_r:
        js = judge_scores(judge, todo_p, todo_r)
        for r, j in zip(todo_r, js):
            s = next(x for x in r.scores if x.kind == "judge" and x.by == judge.name)
            s.detail["tokens"] = j.tokens
        store.put_rationales(todo_r)
    rewards: dict[str, float | None] = {}
    cost: dict[str, int] = {}
    for rs in samples:
        for r in rs:
            s = next(x for x in reversed(r.scores) if x.kind == "judge" and x.by == judge.name)
            low, high = s.detail.get("low") or 1, s.detail.get("high") or 5
            rewards[r.id] = None if s.value is None else (float(s.value) - low) / (high - low)
            cost[r.id] = int(s.detail.get("tokens", 0))
    return rewards, cost


def judge_selections(name: str, problems: list[Any], samples: list[list[Any]], judge: AbsoluteJudge,
                     store: Store) -> list[Any]:
    """``judge_vote`` (votes weighted by the judge's score) or ``judge_best_of_n`` (the sample
    the judge scores highest) over the same samples; the judge's tokens count as spent."""
    from ..select.best_of_n import best_of_n
    from ..select.vote import weighted_vote

    rewards, cost = judge_rewards(problems, samples, judge, store)
    sels = []
    for p, rs in zip(problems, samples):
        if name == "judge_vote":
            sel = weighted_vote(p, rs, lambda r: 0.5 if rewards[r.id] is None else rewards[r.id], strategy="judge_vote")
        else:
            sel = best_of_n(p, rs, [[rewards[r.id]] for r in rs], "min")
            sel.strategy = "judge_best_of_n"
        sel.tokens += sum(cost[r.id] for r in rs)
        sel.meta = {**sel.meta, "judge": judge.name, "unparsed": sum(rewards[r.id] is None for r in rs)}
        sels.append(sel)
    return sels


__all__ = ["judge_rewards", "judge_selections", "JudgeJobConfig", "JudgeResult", "run_judge", "read_jsonl", "store_items", "make_judge", "agreement",
           "MODES"]
