"""Precision and coverage of the arithmetic tool check on real rationales (issue 15).

The corpus (``tests/data/step_corpus/*.jsonl``, one rationale a line: ``style``, ``steps``,
``errors`` = one hand label per step: true = the step states wrong arithmetic or algebra,
false = right, null = not reviewed) holds four styles:

* ``smollm2`` / ``qwen``: the small models' own rationales on reasoning-gym tasks
  (``rationales run reasoning_gym:<task> --model ...`` then ``rationales export``);
* ``gold``: reasoning-gym ``gsm_symbolic`` gold solutions (``answer_cot``), some with one
  step's result changed (a known error);
* ``latex``: hand-written competition-style solutions (\\frac, \\binom, function notation,
  algebra), with a few deliberate errors.

Every step that either checker (today's or the baseline) gives a verdict is labelled. Printed
per style and in total: steps, steps with a verdict (coverage), false-alarm rate (-1 verdicts
on right steps / verdicts on right steps, with a 95% Wilson interval) and error recall (-1
verdicts on error steps / error steps). ``--baseline REV`` also measures the checker as it was
at git revision REV (the single-module ``verify/arithmetic.py``), loaded from ``git show``.

    python benchmarks/step_checks.py                       # today's checker
    python benchmarks/step_checks.py --baseline 742bda5    # and the checker before issue 15
    python benchmarks/step_checks.py --unlabelled          # steps with a verdict and no label

Last line: the headline, today's false-alarm rate and coverage on all styles.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "step_corpus"
STYLES = ("smollm2", "qwen", "gold", "latex")


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    rows = []
    for f in sorted(path.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def baseline_checker(rev: str) -> Callable:
    """``check_rationale`` of the single-module checker at git revision ``rev``."""
    src = subprocess.run(["git", "show", f"{rev}:src/rationales/verify/arithmetic.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    src = src.replace("from ..records import", "from rationales.records import")
    tmp = Path(tempfile.mkdtemp()) / f"arithmetic_{rev}.py"
    tmp.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"arithmetic_{rev}", tmp)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    assert spec and spec.loader
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)  # our own file from git history, not model text
    return mod.check_rationale


def verdicts(rows: list[dict[str, Any]], check_rationale: Callable) -> list[list[int | None]]:
    from rationales.records import Rationale, Step

    out = []
    for row in rows:
        steps, pos = [], 0
        for i, t in enumerate(row["steps"]):
            steps.append(Step(index=i, text=t, span=(pos, pos + len(t))))
            pos += len(t) + 1
        r = Rationale(id=row["id"], problem_id=row["id"], prompt_id="corpus", model=row.get("style", ""),
                      text="\n".join(row["steps"]), steps=steps)
        try:
            check_rationale(r)
        except Exception as e:  # noqa: BLE001 - the old checker crashes on some text (issue 9): no verdicts
            print(f"  checker raised on {row['id']}: {type(e).__name__}", file=sys.stderr)
            out.append([None] * len(steps))
            continue
        out.append([s.verdict("tool") for s in r.steps])
    return out


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    z, p = 1.96, k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def metrics(rows: list[dict[str, Any]], vs: list[list[int | None]]) -> dict[str, Any]:
    steps = checked = right_checked = false_alarms = errors = caught = unlabelled = 0
    for row, v in zip(rows, vs):
        for label, verdict in zip(row["errors"], v):
            steps += 1
            if verdict is not None:
                checked += 1
            if label is None:
                unlabelled += verdict is not None
                continue
            if label:
                errors += 1
                caught += verdict == -1
            elif verdict is not None:
                right_checked += 1
                false_alarms += verdict == -1
    fa = false_alarms / right_checked if right_checked else 0.0
    return {"steps": steps, "checked": checked, "coverage": checked / steps if steps else 0.0,
            "false_alarms": false_alarms, "right_checked": right_checked, "false_alarm_rate": fa,
            "fa_ci": wilson(false_alarms, right_checked), "errors": errors, "caught": caught,
            "recall": caught / errors if errors else None, "unlabelled_verdicts": unlabelled}


def table(name: str, rows: list[dict[str, Any]], vs: list[list[int | None]]) -> dict[str, Any]:
    print(f"{name}")
    print(f"  {'style':8} {'steps':>6} {'checked':>8} {'coverage':>8} {'false alarms':>14} {'FA rate (95% CI)':>22}"
          f" {'errors':>7} {'caught':>7} {'recall':>7}")
    total = None
    for style in (*STYLES, "all"):
        idx = [i for i, r in enumerate(rows) if style == "all" or r["style"] == style]
        if not idx:
            continue
        m = metrics([rows[i] for i in idx], [vs[i] for i in idx])
        lo, hi = m["fa_ci"]
        rec = f"{m['recall']:.2f}" if m["recall"] is not None else "-"
        print(f"  {style:8} {m['steps']:6d} {m['checked']:8d} {m['coverage']:8.3f} "
              f"{m['false_alarms']:6d}/{m['right_checked']:<7d} {m['false_alarm_rate']:7.3f} ({lo:.3f}-{hi:.3f})"
              f" {m['errors']:7d} {m['caught']:7d} {rec:>7}")
        if m["unlabelled_verdicts"]:
            print(f"  {'':8} ({m['unlabelled_verdicts']} steps with a verdict have no hand label)")
        total = m
    return total or {}


# ---------------------------------------------------------------- building the corpus

_CLAIMED = None


def corrupt_last_result(step: str, rng: Any) -> str | None:
    """``step`` with the number after its last "=" changed by 1-20% (at least 1), or None."""
    import re

    global _CLAIMED
    _CLAIMED = _CLAIMED or re.compile(r"=\s*[$£€]?(\d[\d,]*(?:\.\d+)?)")
    ms = list(_CLAIMED.finditer(step))
    if not ms:
        return None
    m = ms[-1]
    old = m.group(1)
    try:
        v = float(old.replace(",", ""))
    except ValueError:
        return None
    decimals = len(old.split(".")[1]) if "." in old else 0
    delta = max(10 ** -decimals, round(abs(v) * rng.uniform(0.01, 0.2), decimals))
    new_v = v + rng.choice([-1, 1]) * delta
    if new_v < 0 <= v:
        new_v = v + delta
    new = f"{new_v:,.{decimals}f}" if "," in old else f"{new_v:.{decimals}f}"
    if new == old:
        return None
    return step[:m.start(1)] + new + step[m.end(1):]


#: hand labels that differ from "gold is right": steps of gold solutions whose arithmetic is wrong
GOLD_ERRORS = {"gold-7-036": [2]}  # "13÷2/3=19 minutes": 13 ÷ (2/3) = 19.5


def build_gold(n: int, corrupted: int, seed: int) -> list[dict[str, Any]]:
    """gsm_symbolic gold solutions: ``n`` as written, ``corrupted`` more with one step's last
    result changed (that step labelled an error, the others right)."""
    import random

    import reasoning_gym

    rng = random.Random(seed)
    ds = reasoning_gym.create_dataset("gsm_symbolic", size=n + corrupted + 20, seed=seed)
    rows: list[dict[str, Any]] = []
    for i in range(len(ds)):
        cot = (ds[i].get("metadata") or {}).get("answer_cot") or ""
        steps = [ln.strip() for ln in cot.splitlines() if ln.strip() and not ln.strip().startswith("####")]
        if len(steps) < 2:
            continue
        labels: list[bool | None] = [False] * len(steps)
        if len(rows) >= n:
            if len(rows) >= n + corrupted:
                break
            ks = [k for k, st in enumerate(steps) if corrupt_last_result(st, random.Random(0)) is not None]
            if not ks:
                continue
            k = rng.choice(ks)
            steps[k] = corrupt_last_result(steps[k], rng) or steps[k]
            labels[k] = True
        for k in GOLD_ERRORS.get(f"gold-{seed}-{i:03d}", []):
            labels[k] = True
        rows.append({"id": f"gold-{seed}-{i:03d}", "style": "gold", "source": f"reasoning_gym:gsm_symbolic seed {seed}",
                     "problem": ds[i]["question"], "steps": steps, "errors": labels, "labelled": "all"})
    return rows


def import_export(path: Path, style: str, old: Path | None) -> list[dict[str, Any]]:
    """Rationales exported by ``rationales export`` -> corpus rows (steps from ``steps.segment``),
    keeping the labels of steps already labelled in ``old``."""
    from rationales.steps import segment

    known: dict[tuple[str, str], Any] = {}
    if old and old.exists():
        for line in old.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            for t, lab in zip(r["steps"], r["errors"]):
                known[(r["id"], t)] = lab
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        steps = [s.text for s in segment(r["text"])]
        if not steps:
            continue
        rows.append({"id": f"{style}-{r['id']}", "style": style, "source": f"{r['model']} on {r.get('source')}",
                     "problem": r.get("question", ""), "steps": steps,
                     "errors": [known.get((f"{style}-{r['id']}", t)) for t in steps], "labelled": "verdicts"})
    return rows


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", help="git revision of the checker to compare with (e.g. 742bda5)")
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--unlabelled", action="store_true", help="list steps with a verdict but no label")
    ap.add_argument("--show", choices=("false-alarms", "missed", "flagged"), help="list such steps")
    ap.add_argument("--build-gold", nargs=3, type=int, metavar=("N", "CORRUPTED", "SEED"),
                    help="(re)build gold.jsonl from reasoning-gym gsm_symbolic")
    ap.add_argument("--import-export", nargs=2, metavar=("EXPORT_JSONL", "STYLE"),
                    help="(re)build STYLE.jsonl from a `rationales export` file, keeping existing labels")
    args = ap.parse_args(argv)
    if args.build_gold:
        n, k, seed = args.build_gold
        rows = build_gold(n, k, seed)
        write_rows(rows, Path(args.corpus) / "gold.jsonl")
        print(f"wrote {len(rows)} gold rationales")
        return 0
    if args.import_export:
        src, style = args.import_export
        out = Path(args.corpus) / f"{style}.jsonl"
        rows = import_export(Path(src), style, out)
        write_rows(rows, out)
        print(f"wrote {len(rows)} {style} rationales")
        return 0

    from rationales.verify.arithmetic import check_rationale

    rows = load_corpus(Path(args.corpus))
    counts = ", ".join(f"{s}: {sum(r['style'] == s for r in rows)}" for s in STYLES)
    print(f"corpus: {len(rows)} rationales, {sum(len(r['steps']) for r in rows)} steps ({counts})")
    vs = verdicts(rows, check_rationale)
    base = None
    if args.baseline:
        bvs = verdicts(rows, baseline_checker(args.baseline))
        base = table(f"baseline checker (git {args.baseline})", rows, bvs)
    now = table("today's checker", rows, vs)
    if args.unlabelled or args.show:
        for row, v in zip(rows, vs):
            for i, (label, verdict) in enumerate(zip(row["errors"], v)):
                pick = (args.unlabelled and label is None and verdict is not None) or (
                    args.show == "false-alarms" and label is False and verdict == -1) or (
                    args.show == "missed" and label is True and verdict != -1) or (
                    args.show == "flagged" and verdict == -1)
                if pick:
                    print(f"  [{row['id']}#{i} label={label} verdict={verdict}] {row['steps'][i]!r}")
    if base:
        print(f"baseline: false-alarm rate {base['false_alarm_rate']:.3f}, coverage {base['coverage']:.3f}, "
              f"recall {base['recall']:.2f}")
    print(f"false-alarm rate {now['false_alarm_rate']:.3f} ({now['false_alarms']}/{now['right_checked']}), "
          f"coverage {now['coverage']:.3f}, error recall {now['recall']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
