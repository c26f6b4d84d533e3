"""``rationales verify`` (re-score stored rationales step by step) and ``rationales processbench``
(step-error detection metric)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import RationalesError, UnknownNameError
from .common import BackendOpt, BaseUrlOpt, JsonOpt, ModelOpt, OutOpt, StoreOpt, err_console, make_backend, \
    open_store, out_console, print_json, progress_bar

CHECKERS = ("tool", "mc", "prm", "genprm")
#: stored samples that are by-products of other stages (rollouts, judgements, probes, search
#: fragments), not rationales to check; ``--method`` still selects any of them explicitly
INTERNAL_METHODS = ("mc_rollout", "genprm", "faithfulness_probe", "answer_from_rationale", "feedback",
                    "mistake_explanation")
INTERNAL_SUFFIXES = ("_step", "_rollout", "_finish")


def is_internal(method: str) -> bool:
    return method in INTERNAL_METHODS or method.endswith(INTERNAL_SUFFIXES)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_cmd)
    app.command("processbench")(processbench_cmd)


def parse_checkers(spec: str) -> list[str]:
    names = [c.strip().lower() for c in spec.split(",") if c.strip()]
    if not names:
        raise RationalesError("--checkers is empty; name one or more of tool, mc, prm, genprm (comma-separated).")
    for c in names:
        if c not in CHECKERS:
            raise UnknownNameError("checker", c, CHECKERS)
    return list(dict.fromkeys(names))


def _column_checks(step: Any, column: str) -> list[Any]:
    """The checks shown in a table column: the prm column holds LLM/function PRMs, genprm the
    generative PRM (both are Check(kind="prm"))."""
    if column == "genprm":
        return [c for c in step.checks if c.kind == "prm" and c.by.startswith("genprm")]
    if column == "prm":
        return [c for c in step.checks if c.kind == "prm" and not c.by.startswith("genprm")]
    return [c for c in step.checks if c.kind == column]


def _cell(step: Any, column: str) -> str:
    """One verdict for the table: '+', '-', '?' (checked, undecided) or '' (not checked), with its score."""
    checks = _column_checks(step, column)
    if not checks:
        return ""
    c = checks[-1]
    mark = "?" if c.verdict is None else ("+" if c.verdict > 0 else "-")
    if c.score is not None and column in ("mc", "prm", "genprm"):
        return f"{mark}{c.score:.2f}"
    return mark


def _columns(rationales: list[Any]) -> list[str]:
    has_gen = any(_column_checks(s, "genprm") for r in rationales for s in r.steps)
    return ["tool", "mc", "prm", *(["genprm"] if has_gen else []), "consensus"]


def verify_cmd(
    store: str = StoreOpt,
    checkers: str = typer.Option("tool,prm", "--checkers", "-c",
                                 help="Comma-separated checkers: tool (arithmetic, no model), mc (Math-Shepherd "
                                      "rollouts), prm (LLM P(+)/P(-)), genprm (GroundedPRM-format judge)."),
    backend: str = BackendOpt,
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    method: Optional[str] = typer.Option(None, "--method", help="Only rationales of this method (e.g. cot). "
                                         "Default: all but by-products (MC rollouts, judgements, step fragments)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-k", min=1, help="Verify only the first K rationales."),
    mc_samples: int = typer.Option(8, "--mc-samples", min=1, help="MC rollouts per step (Math-Shepherd N)."),
    mc_max_tokens: int = typer.Option(256, "--mc-max-tokens", min=1, help="Max new tokens per MC rollout."),
    temperature: float = typer.Option(0.7, min=0.0, help="Temperature of the MC rollouts."),
    threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="PRM reward at or above which a step is +1."),
    rel_tol: float = typer.Option(1e-6, "--rel-tol", min=0.0, help="Relative tolerance of the arithmetic check."),
    rule: str = typer.Option("agree", "--rule", help="Consensus rule: agree | majority | tool_first."),
    seed: int = typer.Option(0, help="Base seed of the MC rollouts."),
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Re-score stored rationales step by step (tool, mc, prm, genprm), save the checks, print
    per-step verdicts and agreement, and write verify.html."""
    from ..score.consensus import RULES, consensus_labels

    names = parse_checkers(checkers)
    if rule not in RULES:
        raise UnknownNameError("consensus rule", rule, RULES)
    with open_store(store) as st:
        rationales = [r for r in st.rationales(method=method)
                      if method is not None or not is_internal(r.method)]
        if not rationales:
            what = f" with method '{method}'" if method else ""
            raise RationalesError(f"No stored rationales{what} in {store}; sample some first, e.g. "
                                  f"`rationales run demo --store {store}`.")
        if limit is not None:
            rationales = rationales[:limit]
        problems = {}
        for r in rationales:
            if r.problem_id not in problems:
                p = st.get_problem(r.problem_id)
                if p is None:
                    raise RationalesError(f"Rationale {r.id} refers to problem {r.problem_id}, which {store} does "
                                          "not hold; the store is incomplete - re-run `rationales run`.")
                problems[r.problem_id] = p
        n_steps = sum(len(r.steps) for r in rationales)
        if not json_out:
            err_console.print(f"[bold]rationales verify[/] {len(rationales)} rationales, {n_steps} steps, "
                              f"checkers: {', '.join(names)}")
        info: dict[str, Any] = {}
        if "tool" in names:
            from ..verify.arithmetic import check_rationale

            for r in rationales:
                check_rationale(r, rel_tol=rel_tol)
        needs_model = [c for c in names if c != "tool"]
        if needs_model:
            be = make_backend(backend, model, base_url)
            try:
                probs = [problems[r.problem_id] for r in rationales]
                if "mc" in names:
                    from ..score.mc import mc_labels

                    total = sum(max(len(r.steps) - 1, 0) for r in rationales) * mc_samples
                    with progress_bar(total, "mc rollouts", enabled=not json_out) as advance:
                        mc_labels(probs, rationales, be, st, n=mc_samples, temperature=temperature,
                                  max_tokens=mc_max_tokens, seed=seed, on_progress=advance)
                if "prm" in names:
                    from ..score.prm import LLMPRM, prm_checks

                    prm_checks(LLMPRM(be), probs, rationales, threshold=threshold)
                if "genprm" in names:
                    from ..score.prm import GenerativePRM, prm_checks

                    gen = GenerativePRM(be, store=st, seed=seed)
                    prm_checks(gen, probs, rationales, threshold=threshold)
                    info["genprm"] = dict(gen.stats)
                info["backend"] = f"{be.name}:{be.model}"
            finally:
                be.close()
        _, counts = consensus_labels(rationales, rule=rule)
        st.put_rationales(rationales)
    summary = verify_summary(rationales, names, counts, rule)
    summary.update(info)
    summary["store"] = store
    summary["report"] = str(write_verify_report(Path(out), rationales, problems, summary))
    if json_out:
        print_json(summary)
        return
    out_console.print(steps_table(rationales))
    out_console.print(agreement_table(counts, rule))
    verdicts = " · ".join(f"{k}: +{v['+1']} -{v['-1']} ?{v['undecided']}" for k, v in summary["verdicts"].items())
    out_console.print(f"verdicts: {verdicts}")
    if "genprm" in info:
        out_console.print(f"genprm verdicts parsed: {info['genprm']['parsed']}, unparsed: {info['genprm']['failed']}")
    out_console.print(f"report: {summary['report']}")


def verify_summary(rationales: list[Any], checkers: list[str], counts: dict[str, Any], rule: str) -> dict[str, Any]:
    verdicts: dict[str, dict[str, int]] = {}
    for column in _columns(rationales):
        c: Counter = Counter()
        for r in rationales:
            for s in r.steps:
                checks = _column_checks(s, column)
                v = checks[-1].verdict if checks else "unchecked"
                c["unchecked" if v == "unchecked" else ("undecided" if v is None else ("+1" if v > 0 else "-1"))] += 1
        verdicts[column] = {key: c.get(key, 0) for key in ("+1", "-1", "undecided", "unchecked")}
    return {"rationales": len(rationales), "steps": sum(len(r.steps) for r in rationales), "checkers": checkers,
            "rule": rule, "consensus": counts, "verdicts": verdicts}


def steps_table(rationales: list[Any]) -> Any:
    from rich.table import Table

    from rich import box

    t = Table(title="per-step verdicts", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = _columns(rationales)
    t.add_column("rationale", overflow="fold")
    t.add_column("step", justify="right", overflow="fold")
    t.add_column("text", overflow="fold", min_width=12, ratio=1)
    for col in columns:
        t.add_column(col, overflow="fold")
    for r in rationales:
        mark = "✓" if r.correct else ("✗" if r.correct is False else "")
        for s in r.steps:
            excerpt = " ".join(s.text.split())
            excerpt = excerpt if len(excerpt) <= 60 else excerpt[:57] + "..."
            t.add_row(f"{r.id[:8]} {mark}" if s.index == 0 else "", str(s.index + 1), excerpt,
                      *(_cell(s, k) for k in columns))
    return t


def agreement_table(counts: dict[str, Any], rule: str) -> Any:
    from rich.table import Table

    t = Table(title=f"agreement between checkers (consensus rule: {rule})")
    t.add_column("steps with")
    t.add_column("count", justify="right")
    for key, label in (("agree", "2+ verdicts, all agree"), ("disagree", "2+ verdicts, disagree"),
                       ("single", "one verdict"), ("none", "no verdict")):
        t.add_row(label, str(counts[key]))
    for pair, c in counts["pairs"].items():
        if c["agree"] or c["disagree"]:
            t.add_row(f"{pair} agree / disagree", f"{c['agree']} / {c['disagree']}")
    labels = counts["labels"]
    t.add_row("consensus +1 / -1 / none", f"{labels['+1']} / {labels['-1']} / {labels['none']}")
    return t


def write_verify_report(out_dir: Path, rationales: list[Any], problems: dict[str, Any],
                        summary: dict[str, Any]) -> Path:
    from ..report.html import esc, page, rationale_html, table

    out_dir.mkdir(parents=True, exist_ok=True)
    counts = summary["consensus"]
    legend = ("<p class='meta'>Steps are coloured by their verdicts: "
              "<span class='step good' style='display:inline'>every verdict +1</span> "
              "<span class='step bad' style='display:inline'>every verdict -1</span> "
              "<span class='step mixed' style='display:inline'>verdicts disagree</span> "
              "<span class='step' style='display:inline;border:1px solid #ddd'>no verdict</span>. "
              "Hover a step for its checks (tool: the expression it evaluated).</p>")
    verdict_rows = [(k, v["+1"], v["-1"], v["undecided"], v["unchecked"]) for k, v in summary["verdicts"].items()]
    agree_rows = [("2+ verdicts, all agree", counts["agree"]), ("2+ verdicts, disagree", counts["disagree"]),
                  ("one verdict", counts["single"]), ("no verdict", counts["none"])]
    agree_rows += [(f"{pair}: agree / disagree", f"{c['agree']} / {c['disagree']}")
                   for pair, c in counts["pairs"].items()]
    labels = counts["labels"]
    agree_rows.append((f"consensus ({summary['rule']}) +1 / -1 / none",
                       f"{labels['+1']} / {labels['-1']} / {labels['none']}"))
    body = [f"<p class='meta'>{summary['rationales']} rationales · {summary['steps']} steps · checkers "
            f"{esc(', '.join(summary['checkers']))}"
            + (f" · {esc(summary['backend'])}" if summary.get("backend") else "") + "</p>", legend,
            "<h2>Verdicts</h2>", table(["checker", "+1", "-1", "undecided", "not checked"], verdict_rows),
            "<h2>Agreement</h2>", table(["steps", "count"], agree_rows), "<h2>Rationales</h2>"]
    by_problem: dict[str, list[Any]] = {}
    for r in rationales:
        by_problem.setdefault(r.problem_id, []).append(r)
    columns = _columns(rationales)
    for pid, rs in by_problem.items():
        p = problems[pid]
        parts = [f"<div class='problem'><b>{esc(p.question)}</b><div class='meta'>gold: {esc(p.gold)}</div>"]
        for r in rs:
            parts.append(rationale_html(r, f"{r.method} #{r.sample_index} ({r.id[:8]})"))
            rows = [(s.index + 1, s.text[:80], *(_cell(s, k) for k in columns)) for s in r.steps]
            parts.append("<details><summary>per-step verdicts</summary>"
                         + table(["step", "text", *columns], rows) + "</details>")
        parts.append("</div>")
        body.append("".join(parts))
    path = out_dir / "verify.html"
    path.write_text(page("rationales verify", "".join(body)), encoding="utf-8")
    return path


def processbench_cmd(
    file: Optional[str] = typer.Argument(None, help="ProcessBench-style JSONL (problem, steps, label)."),
    build: Optional[int] = typer.Option(None, "--build", min=1,
                                        help="Build N items from reasoning-gym gsm_symbolic (half corrupted)."),
    detector: str = typer.Option("tool", "--detector", help="tool (arithmetic checker) | prm | genprm."),
    backend: str = BackendOpt,
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="A step with reward below this is an error."),
    limit: Optional[int] = typer.Option(None, "--limit", "-k", min=1, help="Use the first K items."),
    seed: int = typer.Option(0, help="Seed of --build."),
    save: Optional[str] = typer.Option(None, "--save", help="Write the (built) items to this JSONL file."),
    json_out: bool = JsonOpt,
) -> None:
    """Step-error detection scores (ProcessBench): accuracy on erroneous and on correct solutions, and F1."""
    from ..verify.processbench import build_from_gsm_symbolic, evaluate_step_detector, load_processbench, \
        save_processbench

    if (file is None) == (build is None):
        raise RationalesError("Give either a ProcessBench JSONL FILE or --build N (not both).")
    if detector not in ("tool", "prm", "genprm"):
        raise UnknownNameError("step detector", detector, ["tool", "prm", "genprm"])
    items = load_processbench(file) if file is not None else build_from_gsm_symbolic(build or 0, seed=seed)
    if limit is not None:
        items = items[:limit]
    if save:
        save_processbench(items, save)
    if detector == "tool":
        scores = evaluate_step_detector(items, "tool")
    else:
        from ..score.prm import LLMPRM, GenerativePRM

        be = make_backend(backend, model, base_url)
        try:
            scorer = LLMPRM(be) if detector == "prm" else GenerativePRM(be)
            scores = evaluate_step_detector(items, scorer, threshold=threshold)
            if detector == "genprm":
                scores["genprm"] = dict(scorer.stats)  # type: ignore[attr-defined]
        finally:
            be.close()
    scores["detector"] = detector
    scores["source"] = file if file is not None else f"gsm_symbolic build {build} seed {seed}"
    if json_out:
        print_json(scores)
        return
    from rich.table import Table

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}"

    t = Table(title=f"ProcessBench-style scores · detector {detector} · {scores['source']}")
    for col in ("error acc %", "correct acc %", "F1 %", "erroneous", "correct"):
        t.add_column(col, justify="right")
    t.add_row(pct(scores["error_acc"]), pct(scores["correct_acc"]), pct(scores["f1"]), str(scores["n_error"]),
              str(scores["n_correct"]))
    out_console.print(t)
    if save:
        out_console.print(f"items: {save}")
