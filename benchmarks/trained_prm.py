"""A PRM trained on the product's own step labels vs voting, on grade-school word problems.

``reasoning_gym:gsm_symbolic`` (seed 0; problems 0..199 are the training pool, 200..399 the
test pool: disjoint by construction and checked by question text), the default model
(Qwen2.5-Coder-0.5B-Instruct Q4_K_M), chain-of-thought prompt, one greedy rationale and 8
samples per problem (T=0.7, top_p=0.95, 512 tokens: exactly what ``rationales compare``
draws, so it reuses them). Phases, each cached in the store so a killed run resumes:

1. ``samples``: greedy + 8 samples for the training and the test problems;
2. ``labels``: step labels on the training samples only (tool checks; Math-Shepherd MC labels
   built cheaply: a correct sample labels all its steps +1 for free, a wrong one labels its
   last step -1 for free, and the first error of a wrong sample is found by binary search with
   a few batched rollouts per probe, stopped as soon as one reaches the gold answer);
3. ``train``: the probe PRM (a logistic head on the frozen model's hidden states at step
   ends) on the labelled training steps;
4. ``eval``: on the test problems: ProcessBench F1 (built items from gsm_symbolic gold
   solutions, and the model's own rationales labelled by MC) of the trained PRM vs the tool
   checker vs the model as its own PRM; selection at equal budgets: greedy, vote@8, best-of-8,
   PRM-weighted vote@8, PRM-guided step search; 95% CIs and McNemar vs greedy and vote@8.

The model lock (``/tmp/rationales-model.lock``) is taken per batch with ``fcntl``, never for
the whole run, so other short model jobs interleave. The last line is the fraction of the
greedy-to-oracle@8 gap that the best trained-PRM strategy closes.

    nohup python benchmarks/trained_prm.py --phase all > /tmp/trained_prm.log 2>&1 &

The 2026-12-04 run (100 test problems) trained on the 96 problems whose trees and samples
``grounded_cost.py --skip 32 --problems 96 --samples 4`` had built, in a copy of its store:
``--train 96 --train-skip 32 --test 100 --max-tokens 384 --sources mc,grounded --step-search 0``.

Label sources (``--sources``, the variant choice picks among them on training problems): ``mc``,
``mc_tool`` and ``grounded``. ``grounded`` trains on the GroundedPRM trees' paths of the training
problems, so build them in the same store first (``benchmarks/grounded_cost.py --pool train
--store STORE``); its head is read out of fold on the training samples, the rows every source's
choice is made on (``cross_val_rewards(score_only=...)``).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from dataclasses import replace
from typing import Any, Iterator

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LOCK = "/tmp/rationales-model.lock"
TASK = "gsm_symbolic"
POOL = 400


def log(*a: Any) -> None:
    print(time.strftime("%H:%M:%S"), *a, flush=True)


NO_LOCK = False


@contextmanager
def model_lock() -> Iterator[float]:
    """Hold the shared model lock for one batch; yields the seconds spent waiting for it
    (``--no-lock``: no lock at all, for a one-thread run on its own core)."""
    t0 = time.time()
    if NO_LOCK:
        yield 0.0
        return
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield time.time() - t0
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Clock:
    """Seconds spent holding the lock (model work), per phase, kept in the store."""

    def __init__(self, store: Any):
        self.store = store
        self.data = store.get_blob("bench:clock") or {}

    def add(self, phase: str, seconds: float, **counts: int) -> None:
        # re-read first: phases in other processes (the other core) add to the same blob
        self.data = self.store.get_blob("bench:clock") or {}
        d = self.data.setdefault(phase, {"seconds": 0.0})
        d["seconds"] += seconds
        for k, v in counts.items():
            d[k] = d.get(k, 0) + v
        self.store.put_blob("bench:clock", "bench", self.data)


def split_problems(n_train: int, n_test: int, train_skip: int = 0) -> tuple[list[Any], list[Any]]:
    from rationales.tasks import reasoning_gym

    ps = reasoning_gym.load(TASK, size=POOL, seed=0)
    train, test = ps[:POOL // 2][train_skip:train_skip + n_train], ps[POOL // 2:][:n_test]
    overlap = {p.question for p in train} & {p.question for p in test}
    assert not overlap, "train and test problems overlap"
    return train, test


def sample_specs(problems: list[Any], args: argparse.Namespace, n: int | None = None) -> list[Any]:
    """Greedy + ``n`` samples per problem (``n`` = --samples); ``n=0`` style calls for training
    problems pass ``--train-samples`` and skip the greedy rationale."""
    from rationales.generate import cot_specs

    n = args.samples if n is None else n
    samples = cot_specs(problems, template="cot", n=n, temperature=0.7, top_p=0.95,
                        max_tokens=args.max_tokens, seed=0, method="cot")
    if n != args.samples:
        return samples
    greedy = cot_specs(problems, template="cot", n=1, temperature=0.0, max_tokens=args.max_tokens, method="cot")
    return [s for pair in zip(greedy, samples) for s in pair]


def phase_samples(backend: Any, store: Any, clock: Clock, train: list[Any], test: list[Any],
                  args: argparse.Namespace) -> None:
    from rationales.generate import GenerationStats, generate

    # interleave training and test batches so both grow together
    order: list[Any] = []
    for i in range(0, max(len(train), len(test)), args.batch):
        order += train[i:i + args.batch] and [train[i:i + args.batch]]
        order += test[i:i + args.batch] and [test[i:i + args.batch]]
    if args.test_first:  # the test set decides the confidence intervals
        order = sorted(order, key=lambda b: b[0].id not in {p.id for p in test})
    train_ids = {p.id for p in train}
    if args.only:  # one process per side (e.g. test samples on one core, training samples on the other)
        order = [b for b in order if (b[0].id in train_ids) == (args.only == "train")]
    if args.reverse:  # a second sampler on the same store starts from the other end
        order = order[::-1]
    for b, probs in enumerate(order):
        specs = sample_specs(probs, args, args.train_samples if probs[0].id in train_ids else None)
        stats = GenerationStats()
        from rationales.records import Rationale  # check the cache first, without the lock

        ids = [Rationale.make_id(s.problem.id, s.prompt_id, backend.model, sm, i, s.method, s.parent_id)
               for s in specs for i, sm in enumerate(s.samplings())]
        if len(store.has(ids)) == len(ids):
            continue
        with model_lock() as waited:
            t0 = time.time()
            generate(specs, backend, store, stats=stats)
            dt = time.time() - t0
        clock.add("samples", dt, tokens=stats.tokens_new, samples=stats.new)
        log(f"samples batch {b + 1}/{len(order)}: {stats.new} new, {stats.tokens_new} tokens in {dt:.0f}s "
            f"({stats.tokens_new / max(dt, 1e-9):.1f} tok/s; waited {waited:.0f}s for the lock)")



def load_samples(store: Any, backend: Any, problems: list[Any], args: argparse.Namespace, *, complete_only: bool = True,
                 n: int | None = None) -> tuple[list[Any], dict[str, Any], dict[str, list[Any]]]:
    """(problems with all their samples stored, greedy by id, samples by id); nothing generated."""
    from rationales.records import Rationale

    keep, greedy, samples = [], {}, {}
    for p in problems:
        specs = sample_specs([p], args, n)
        ids = [[Rationale.make_id(sp.problem.id, sp.prompt_id, backend.model, sm, i, sp.method, sp.parent_id)
                for i, sm in enumerate(sp.samplings())] for sp in specs]
        got = store.get_rationales([i for x in ids for i in x])
        if complete_only and len(got) < sum(len(x) for x in ids):
            continue
        keep.append(p)
        greedy[p.id] = got.get(ids[0][0]) if len(ids) == 2 else None
        samples[p.id] = [got[i] for i in ids[-1] if i in got]
    return keep, greedy, samples


def phase_labels(backend: Any, store: Any, clock: Clock, train: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """Tool checks and cheap MC labels on the training samples (never on test problems)."""
    from rationales.verify.mc import mc_search_labels
    from rationales.verify.arithmetic import check_rationale

    probs, _, samples = load_samples(store, backend, train, args, n=args.train_samples)
    info = store.get_blob("bench:labels") or {"done": []}
    todo = [p for p in probs if p.id not in set(info["done"])]
    log(f"labels: {len(probs)} training problems with samples, {len(todo)} to label")
    for i in range(0, len(todo), args.batch):
        chunk = todo[i:i + args.batch]
        rs = [r for p in chunk for r in samples[p.id]]
        for r in rs:
            check_rationale(r)
        st: dict[str, Any] = {}
        from contextlib import nullcontext

        with model_lock() if args.mc_wrong > 0 else nullcontext():  # free labels only: no model work
            t0 = time.time()
            mc_search_labels([p for p in chunk for _ in samples[p.id]], rs, backend, store, n=args.mc_n,
                             wave=args.mc_wave, max_tokens=args.mc_tokens, seed=0,
                             max_wrong_per_problem=args.mc_wrong, solved_only=args.mc_solved_only, stats=st)
            dt = time.time() - t0
        store.put_rationales(rs)
        both = [(s.verdict("mc"), s.verdict("tool")) for r in rs for s in r.steps
                if s.verdict("mc") is not None and s.verdict("tool") is not None]
        clock.add("label_noise", 0.0, mc_and_tool=len(both), agree=sum(1 for a, b in both if (a > 0) == (b > 0)),
                  mc_pos_tool_neg=sum(1 for a, b in both if a > 0 and b < 0),
                  mc_neg_tool_pos=sum(1 for a, b in both if a < 0 and b > 0))
        clock.add("labels", dt, tokens=st["tokens"], tokens_new=st.get("tokens_new", 0), rollouts=st["rollouts"],
                  steps_labelled=st["steps_labelled"], probes=st["probes"], searched=st["searched"],
                  skipped_unsolved=st.get("skipped_unsolved", 0),
                  free_positive=st["free_positive"], free_negative=st["free_negative"],
                  sample_tokens=sum(r.tokens for r in rs), tool_checked=sum(1 for r in rs for s in r.steps
                                                                            if s.verdict("tool") is not None))
        info["done"] += [p.id for p in chunk]
        store.put_blob("bench:labels", "bench", info)
        log(f"labels batch {i // args.batch + 1}: {st['rollouts']} rollouts, {st['tokens']} tokens, "
            f"{st['steps_labelled']} steps labelled in {dt:.0f}s")
    return clock.data.get("labels", {})


def phase_grounded(backend: Any, store: Any, clock: Clock, train: list[Any], args: argparse.Namespace) -> None:
    """Measure GroundedPRM tree labels (MCTS, tool-checked steps, hybrid reward) on a few training problems."""
    from rationales.generate import GenerationStats
    from rationales.select.grounded import grounded_trees

    probs = train[:args.grounded]
    if not probs or (store.get_blob("bench:grounded") or {}).get("n") == len(probs):
        return
    stats = GenerationStats()
    with model_lock():
        t0 = time.time()
        trees = grounded_trees(probs, backend, store, rollouts=8, stats=stats)
        dt = time.time() - t0
    steps = sum(len(r.steps) for t in trees for r in t.rationales)
    nodes = sum(len(t.nodes) - 1 for t in trees)
    res = {"n": len(probs), "seconds": round(dt, 1), "tokens": sum(t.tokens for t in trees),
           "tokens_new": stats.tokens_new, "paths": sum(len(t.rationales) for t in trees), "path_steps": steps,
           "tree_steps": nodes}
    store.put_blob("bench:grounded", "bench", res)
    log("grounded:", json.dumps(res))


def add_built_rows(data: Any, train_ids: set[str], n: int) -> None:
    """Extra training rows with known labels and no generation: gsm_symbolic gold solutions of
    TRAINING-pool problems (all steps right) and copies with one result number corrupted
    (steps before it right, it and the rest wrong), built like ProcessBench items."""
    from rationales.records import Problem
    from rationales.tasks import reasoning_gym
    from rationales.verify.processbench import build_from_gsm_symbolic

    pool = {p.question: p for p in reasoning_gym.load(TASK, size=POOL, seed=0)[:POOL // 2]}
    items = [it for it in build_from_gsm_symbolic(min(n, POOL // 2), seed=0) if it.problem in pool]
    added = 0
    for it in items:  # every item is a training-pool problem (indices 0..199), never a test one
        p = pool[it.problem]
        k = it.label
        labels = [True] * len(it.steps) if k < 0 else [i < k for i in range(len(it.steps))]
        data.problems.setdefault(p.id, p)
        data.rows.append({"prompt": p.question, "completions": [s + "\n" for s in it.steps[:-1]] + it.steps[-1:],
                          "labels": labels, "soft_labels": [1.0 if x else 0.0 for x in labels],
                          "problem_id": p.id, "rationale_id": it.id, "label_source": "built"})
        data.train.append(len(data.rows) - 1)
        added += 1
    data.provenance["built_rows"] = {"rows": added, "from": "gsm_symbolic gold solutions of training problems, "
                                     "half with one result corrupted (labels known by construction)"}


def phase_train(backend: Any, store: Any, train: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """Train the probe PRM on the training problems' labelled steps."""
    from rationales.train.prm import PRMConfig, load_prm_data
    from rationales.train.probe import train_probe

    from rationales.data.splits import record_split  # noqa: F401  (the split is by construction here)

    train_ids = {p.id for p in train}
    results = {}
    for source in args.sources.split(","):
        out = Path(args.out) / f"probe-{source}"
        # GroundedPRM labels live on the trees' paths (method grounded_mcts), the others on the samples
        cfg = PRMConfig(kind="probe", model=args.model, data=args.store, label_source=source,
                        task=f"reasoning_gym:{TASK}", data_method="grounded_mcts" if source == "grounded" else "cot",
                        output_dir=str(out), lr=1e-2,
                        l2=args.l2, val_fraction=0.2, probe_hidden=args.hidden, progress=False, n_ctx=2048)
        data = load_prm_data(cfg)
        keep = [i for i in range(len(data.rows)) if data.rows[i]["problem_id"] in train_ids]
        data.train = [i for i in data.train if i in set(keep)]
        data.val = [i for i in data.val if i in set(keep)]
        data.provenance["train_problems_only"] = True
        if args.built_train:
            add_built_rows(data, train_ids, args.built_train)
        # a head fitted on tree paths is read out of fold on the training problems' samples (their
        # MC labels for the metrics only): the same rows every source's variant choice is made on
        scored_only: list[int] = []
        if source == "grounded":
            cot = load_prm_data(replace(cfg, label_source="mc", data_method="cot"))
            for r in cot.rows:
                if r["problem_id"] in train_ids:
                    data.rows.append(dict(r, label_source="mc_scored_only"))
                    scored_only.append(len(data.rows) - 1)
            if not data.train + data.val:
                raise SystemExit("no GroundedPRM paths on the training problems: run benchmarks/grounded_cost.py "
                                 "--pool train on this store first")
        cache = Path(args.out) / "features.npz"
        from rationales.train.probe import extract_features
        from rationales.verify.trained_prm import StepStates

        states = StepStates(backend, n_ctx=2048)
        rows = data.train + data.val + scored_only
        t_feat = 0.0
        for i in range(0, len(rows), 40):  # hidden states in locked batches of 40 rationales
            part = replace(data, train=rows[i:i + 40], val=[])
            sub = replace(part, rows=[data.rows[j] for j in part.train], train=list(range(len(part.train))))
            with model_lock():
                t0 = time.time()
                extract_features(cfg, sub, backend, states, cache)
                t_feat += time.time() - t0
        states.close()
        # choose l2 by out-of-fold step AUROC over the training problems (5 folds by problem),
        # keep the out-of-fold rewards so that eval chooses its strategy on training problems too
        import numpy as np

        from rationales.train.probe import cross_val_rewards

        with np.load(cache, allow_pickle=False) as f:
            feats = {k: f[k] for k in f.files}
        from rationales.train.prm import step_metrics

        fit_rows = [i for i in data.train + data.val if data.rows[i].get("label_source") != "built"]
        sample_rows = scored_only or fit_rows

        def on_samples(rw: dict[str, Any], idx: list[int]) -> dict[str, Any]:
            """Out-of-fold step metrics on the model's own training samples only (not built rows)."""
            pr, py = [], []
            for i in idx:
                row = data.rows[i]
                for k, lab in enumerate(row["labels"]):
                    x = rw.get(row["rationale_id"], [])
                    if lab is not None and k < len(x) and x[k] is not None:
                        pr.append(x[k])
                        py.append(bool(lab))
            return step_metrics(pr, py)

        cv: dict[str, Any] = {}
        for l2 in (1e-3, 1e-2, 1e-1, 1.0):
            rw, m = cross_val_rewards(cfg, data, feats, backend.model, folds=5, l2=l2, score_only=scored_only)
            cv[str(l2)] = {"metrics": on_samples(rw, sample_rows), "all_rows": m, "rewards": rw}
            log(f"probe[{source}] 5-fold CV on training problems, l2={l2}: {json.dumps(cv[str(l2)]['metrics'])}")
        best_l2 = max(cv, key=lambda k: (cv[k]["metrics"].get("auroc") or 0.0, -float(k)))
        # learning curve: out-of-fold AUROC on the samples vs the share of training problems used
        curve = []
        pids = sorted({data.rows[i]["problem_id"] for i in sample_rows})
        built = [i for i in data.train + data.val if i not in set(fit_rows)]
        for frac in (0.25, 0.5, 0.75, 1.0):
            keep_p = set(pids[:max(2, int(round(frac * len(pids))))])
            sub = [i for i in sample_rows if data.rows[i]["problem_id"] in keep_p]
            fit_sub = [i for i in fit_rows if data.rows[i]["problem_id"] in keep_p] if scored_only else sub
            for with_built in ((False, True) if built else (False,)):
                rw, _ = cross_val_rewards(cfg, data, feats, backend.model, folds=5, l2=float(best_l2),
                                          rows=fit_sub + (built if with_built else []),
                                          score_only=sub if scored_only else None)
                m = on_samples(rw, sub)
                curve.append({"problems": len(keep_p), "built_rows": len(built) if with_built else 0,
                              "labelled_steps": m.get("steps"), "auroc": m.get("auroc")})
        log(f"probe[{source}] learning curve: {json.dumps(curve)}")
        store.put_blob(f"bench:cv:{source}", "bench", {"l2": best_l2, "rewards": cv[best_l2]["rewards"],
                                                     "grid": {k: v["metrics"] for k, v in cv.items()}})
        cfg = replace(cfg, l2=float(best_l2))
        data.train, data.val = data.train + data.val, []  # the final head sees every training problem
        if scored_only:  # the samples were only read out of fold; the head and its card are the paths'
            data.rows = data.rows[:scored_only[0]]
        res = train_probe(cfg, data=data, backend=backend, cache_path=cache)
        res.metrics["feature_seconds_total"] = round(t_feat, 1)
        res.metrics["cv"] = {"l2_chosen": float(best_l2), "grid": {k: v["metrics"] for k, v in cv.items()},
                             "grid_with_built_rows": {k: v["all_rows"] for k, v in cv.items()},
                             "learning_curve": curve}
        results[source] = res.metrics
        log(f"probe[{source}]: {json.dumps(res.metrics)}")
    return results


def mcnemar(a: list[bool], b: list[bool]) -> dict[str, Any]:
    """Exact two-sided McNemar test on paired outcomes (``rationales.stats.mcnemar_exact``)."""
    from rationales.stats import mcnemar_exact

    n01, n10, p = mcnemar_exact(a, b)
    return {"b_only": n01, "a_only": n10, "p": round(p, 4)}


def row(name: str, flags: list[bool], tokens: float) -> dict[str, Any]:
    from rationales.stats import accuracy

    d = accuracy(flags).as_dict()
    d.update({"strategy": name, "tokens_per_problem": round(tokens, 1)})
    return d


VARIANTS = [f"{s}:{h}:{v}" for s in ("weighted_vote", "best_of_n") for v in ("none", "veto")
            for h in ("min", "last", "mean", "product")]


def variant_flags(probs: list[Any], samples: dict[str, list[Any]], per: dict[str, list[Any]]) -> dict[str, list[bool]]:
    """Correctness per problem of every PRM selection variant: best-of-n or PRM-weighted vote,
    step rewards aggregated by min/last/mean/product, with or without the tool check's veto (a
    step whose arithmetic the tool finds wrong gets reward 0)."""
    from rationales.select.best_of_n import best_of_n, rationale_score
    from rationales.select.vote import weighted_vote
    from rationales.verify.arithmetic import check_step

    out: dict[str, list[bool]] = {k: [] for k in VARIANTS}
    for p in probs:
        rs = samples[p.id]
        veto = [[0.0 if (c := check_step(st)) is not None and c.verdict == -1 else x for st, x in zip(r.steps, rw)]
                for r, rw in zip(rs, per[p.id])]
        for k in VARIANTS:
            strat, how, v = k.split(":")
            rw = veto if v == "veto" else per[p.id]
            if strat == "best_of_n":
                ok = best_of_n(p, rs, rw, how).correct
            else:
                sc = {r.id: rationale_score(x, how) for r, x in zip(rs, rw)}
                ok = weighted_vote(p, rs, lambda r: sc[r.id]).correct
            out[k].append(bool(ok))
    return out


def test_key(backend: Any, p: Any, r: Any) -> str:
    from rationales.data.stepwise import problem_prompt
    from rationales.train.probe import _row_key
    from rationales.verify.trained_prm import rationale_pieces

    return _row_key({"prompt": problem_prompt(p), "completions": rationale_pieces(r)}, "cot", backend.model)


def load_test_features(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {}
    for f in sorted(Path(args.out).glob("test_features*.npz")):
        try:
            with np.load(f, allow_pickle=False) as z:
                out.update({k: z[k] for k in z.files})
        except (OSError, ValueError):
            log(f"unreadable feature file {f} skipped")
    return out


def head_rewards(head: Any, x: Any) -> list[float | None]:
    import numpy as np

    if x is None:
        return []
    ok = ~np.isnan(x).any(axis=1)
    probs = head.prob(np.nan_to_num(x)) if len(x) else []
    return [float(probs[k]) if ok[k] else None for k in range(len(x))]


def test_features(backend: Any, store: Any, clock: Clock, test: list[Any], args: argparse.Namespace) -> int:
    """Hidden states at the step ends of the test rationales (one forward pass each, prompts
    shared in the KV cache), cached in OUT/test_features[.partK].npz: any head trained later
    scores them without another pass. ``--score-part K/N``: every N-th problem from the K-th,
    into its own file (parallel processes)."""
    from rationales.data.stepwise import problem_prompt
    from rationales.train.prm import PRMConfig, PRMData
    from rationales.train.probe import extract_features
    from rationales.verify.trained_prm import StepStates, rationale_pieces

    probs, _, samples = load_samples(store, backend, test, args)
    name = "test_features.npz"
    if args.score_part:
        parts, of = args.score_part.split("/")
        mine = {int(x) for x in parts.split(",")}
        probs = [p for j, p in enumerate(probs) if j % int(of) in mine]
        name = f"test_features.part{min(mine)}.npz"
    have = load_test_features(args)
    todo = [p for p in probs if any(test_key(backend, p, r) not in have for r in samples[p.id])]
    if args.reverse:  # a second featuriser from the other end, into its own file
        todo, name = todo[::-1], name.replace(".npz", ".rev.npz")
    cfg = PRMConfig(kind="probe", model=args.model, data=args.store, output_dir=args.out, progress=False, n_ctx=2048)
    states = StepStates(backend, n_ctx=2048)
    for i in range(0, len(todo), args.batch):
        chunk = todo[i:i + args.batch]
        rows = [{"prompt": problem_prompt(p), "completions": rationale_pieces(r), "problem_id": p.id, "rationale_id": r.id}
                for p in chunk for r in samples[p.id]]
        data = PRMData(rows=rows, problems={p.id: p for p in chunk}, provenance={}, train=list(range(len(rows))), val=[])
        with model_lock():
            t0 = time.time()
            extract_features(cfg, data, backend, states, Path(args.out) / name)
            clock.add("prm_scoring", time.time() - t0, rationales=len(rows))
        log(f"test features {min(i + args.batch, len(todo))}/{len(todo)} problems ({time.time() - t0:.0f}s)")
    states.close()
    return len(todo)


def discrimination(probs: list[Any], samples: dict[str, list[Any]], per: dict[str, list[Any]]) -> dict[str, Any]:
    """How well the rewards tell a right rationale from a wrong one: pooled over problems (which
    mixes in problem difficulty) and within each problem that has both (the only thing selection
    among one problem's samples can use), by the last step's reward and by the minimum."""
    from rationales.verify.trained_prm import reward_auc

    out: dict[str, Any] = {}
    for how in ("last", "min"):
        pooled_x, pooled_y, within = [], [], []
        for p in probs:
            xs, ys = [], []
            for r, rw in zip(samples[p.id], per[p.id]):
                v = [x for x in rw if x is not None]
                if v:
                    xs.append(v[-1] if how == "last" else min(v))
                    ys.append(bool(r.correct))
            pooled_x += xs
            pooled_y += ys
            if 0 < sum(ys) < len(ys):
                within.append(reward_auc(xs, ys))
        out[how] = {"pooled_auroc": reward_auc(pooled_x, pooled_y), "rationales": len(pooled_y),
                    "right": sum(pooled_y), "mixed_problems": len(within),
                    "within_problem_auroc": sum(within) / len(within) if within else None}
    return out


def phase_eval(backend: Any, store: Any, clock: Clock, train: list[Any], test: list[Any],
               args: argparse.Namespace) -> dict[str, Any]:
    from rationales.answers import check_answer
    from rationales.select.best_of_n import best_of_n
    from rationales.select.vote import majority_vote, weighted_vote
    from rationales.select.best_of_n import rationale_score
    from rationales.verify.trained_prm import load_prm

    res: dict[str, Any] = {}
    # the label source, the strategy (best-of-n / weighted vote), the aggregate and the tool veto
    # are chosen on the TRAINING problems from their out-of-fold rewards (5-fold CV by problem in
    # phase train), never on test
    tr_all, _, tr_samples = load_samples(store, backend, train, args, n=args.train_samples)
    choice: dict[str, Any] = {}
    for source in args.sources.split(","):
        cvb = store.get_blob(f"bench:cv:{source}") or {}
        cvr = cvb.get("rewards", {})
        tr_probs = [p for p in tr_all if all(r.id in cvr for r in tr_samples[p.id])]
        tr_per = {p.id: [cvr[r.id] for r in tr_samples[p.id]] for p in tr_probs}
        val_flags = variant_flags(tr_probs, tr_samples, tr_per)
        val_acc = {k: sum(f) / max(1, len(f)) for k, f in val_flags.items()}
        choice[source] = {"train_cv_accuracy": val_acc, "train_problems": len(tr_probs), "l2": cvb.get("l2"),
                          "cv_grid": cvb.get("grid")}
        choice[source]["discrimination_out_of_fold"] = discrimination(tr_probs, tr_samples, tr_per)
    val_vote = sum(bool(majority_vote(p, tr_samples[p.id]).correct) for p in tr_all) / max(1, len(tr_all))
    order = [(src, k) for src in args.sources.split(",") for k in VARIANTS]
    source, chosen = max(order, key=lambda sk: (choice[sk[0]]["train_cv_accuracy"].get(sk[1], 0.0), -order.index(sk)))
    best_how = chosen.split(":")[1]
    res["aggregate"] = {"source": source, "chosen": chosen, "how": best_how, "by_source": choice,
                        "train_cv_vote": val_vote, "samples_per_problem": args.train_samples}
    log("choice on training problems (out-of-fold rewards):", json.dumps({"source": source, "chosen": chosen,
        "acc": choice[source]["train_cv_accuracy"][chosen], "vote": val_vote}))
    prm_path = Path(args.out) / f"probe-{source}"
    res["prm"] = str(prm_path)
    with model_lock():
        prm = load_prm(prm_path, backend=backend)

    probs, greedy_rs, samples = load_samples(store, backend, test, args)
    log(f"eval on {len(probs)} test problems with all samples")
    if args.score_only:  # hidden states of the test rationales only (no head needed yet)
        got = test_features(backend, store, clock, test, args)
        return {"featurised": got}
    feats = load_test_features(args)
    missing = [p for p in probs if any(test_key(backend, p, r) not in feats for r in samples[p.id])]
    if missing:
        test_features(backend, store, clock, test, args)
        feats = load_test_features(args)
    per = {p.id: [head_rewards(prm.head, feats.get(test_key(backend, p, r))) for r in samples[p.id]] for p in probs}
    # the cached features + head give exactly what the PRM scorer computes: check on a few
    chk = [(p, r) for p in probs[:2] for r in samples[p.id][:2]]
    with model_lock():
        direct = prm.score([p for p, _ in chk], [r for _, r in chk])
    diff = max((abs(a - b) for (p, r), d in zip(chk, direct) for a, b in zip(per[p.id][samples[p.id].index(r)], d)
                if a is not None and b is not None), default=0.0)
    res["feature_cache_check"] = {"rationales": len(chk), "max_abs_reward_diff": diff}
    log(f"cached features vs the PRM scorer on {len(chk)} rationales: max |reward diff| {diff:.2e}")
    res["discrimination_test"] = discrimination(probs, samples, per)
    greedy_ok = [bool(check_answer(p, greedy_rs[p.id].answer)) for p in probs]
    vote_ok = [bool(majority_vote(p, samples[p.id]).correct) for p in probs]
    oracle_ok = [any(bool(r.correct) for r in samples[p.id]) for p in probs]
    test_flags = variant_flags(probs, samples, per)
    # the same selection rules with every step reward 1.0: what the tool veto alone does (no PRM)
    no_prm = variant_flags(probs, samples, {p.id: [[1.0] * len(r.steps) for r in samples[p.id]] for p in probs})
    bon_ok, wv_ok = test_flags[f"best_of_n:{best_how}:none"], test_flags[f"weighted_vote:{best_how}:none"]
    bon_tv, wv_tv = test_flags[f"best_of_n:{best_how}:veto"], test_flags[f"weighted_vote:{best_how}:veto"]
    tok_g = sum(greedy_rs[p.id].tokens for p in probs) / max(1, len(probs))
    tok_s = sum(r.tokens for p in probs for r in samples[p.id]) / max(1, len(probs))
    res["all_variants_test"] = {k: sum(f) / max(1, len(f)) for k, f in test_flags.items()}  # reported, not chosen on
    rows = [row("greedy", greedy_ok, tok_g), row("vote@8", vote_ok, tok_s),
            row(f"best-of-8 (trained PRM, {best_how})", bon_ok, tok_s),
            row(f"PRM-weighted vote@8 ({best_how})", wv_ok, tok_s),
            row(f"best-of-8 (trained PRM + tool veto, {best_how})", bon_tv, tok_s),
            row(f"PRM-weighted vote@8 (+ tool veto, {best_how})", wv_tv, tok_s),
            row("vote@8 + tool veto (no PRM)", no_prm["weighted_vote:min:veto"], tok_s), row("oracle@8", oracle_ok, tok_s)]
    flags = {"greedy": greedy_ok, "vote@8": vote_ok, "best_of_8": bon_ok, "weighted_vote": wv_ok,
             "best_of_8_tool_veto": bon_tv, "weighted_vote_tool_veto": wv_tv}
    if args.step_search:
        from rationales.generate import GenerationStats
        from rationales.select.step_search import greedy_step_search

        sub = probs[:args.step_search]
        got: dict[str, Any] = {}
        for i in range(0, len(sub), args.batch):
            chunk = sub[i:i + args.batch]
            st = GenerationStats()
            with model_lock():
                t0 = time.time()
                sels = greedy_step_search(chunk, backend, store, prm, n=8, max_steps=12, temperature=0.7,
                                          max_step_tokens=128, finish_tokens=args.max_tokens, seed=0, stats=st)
                clock.add("step_search", time.time() - t0, tokens_new=st.tokens_new)
            for p, sel in zip(chunk, sels):
                got[p.id] = sel
            log(f"step search {len(got)}/{len(sub)}")
        ss_ok = [bool(got[p.id].correct) for p in sub]
        rows.append(row(f"PRM step search n=8 (first {len(sub)})", ss_ok,
                        sum(got[p.id].tokens for p in sub) / max(1, len(sub))))
        idx = {p.id: i for i, p in enumerate(probs)}
        res["step_search_subset"] = {
            "n": len(sub), "greedy": sum(greedy_ok[idx[p.id]] for p in sub), "vote@8": sum(vote_ok[idx[p.id]] for p in sub),
            "step_search": sum(ss_ok), "mcnemar_vs_greedy": mcnemar([greedy_ok[idx[p.id]] for p in sub], ss_ok),
            "mcnemar_vs_vote": mcnemar([vote_ok[idx[p.id]] for p in sub], ss_ok)}
    res["selection"] = rows
    res["tests"] = {name: {"vs_greedy": mcnemar(greedy_ok, f), "vs_vote@8": mcnemar(vote_ok, f)}
                    for name, f in flags.items() if name not in ("greedy",)}
    g, o = sum(greedy_ok) / max(1, len(probs)), sum(oracle_ok) / max(1, len(probs))
    best = sum(test_flags[chosen]) / max(1, len(probs))
    post = max(sum(f) for k, f in flags.items() if k not in ("greedy", "vote@8")) / max(1, len(probs))
    flags["chosen"] = test_flags[chosen]
    res["tests"]["chosen"] = {"vs_greedy": mcnemar(greedy_ok, test_flags[chosen]),
                              "vs_vote@8": mcnemar(vote_ok, test_flags[chosen])}
    # what the PRM adds over the same rule without it (rewards all 1.0: plain vote, or the tool filter)
    res["tests"]["chosen"]["vs_same_rule_without_prm"] = mcnemar(no_prm[chosen], test_flags[chosen])
    res["without_prm"] = {k: sum(f) / max(1, len(f)) for k, f in no_prm.items() if k.startswith("weighted_vote:min")}
    res["gap"] = {"greedy": g, "vote@8": sum(vote_ok) / max(1, len(probs)), "oracle@8": o, "chosen": chosen,
                  "chosen_accuracy": best, "fraction_closed": (best - g) / (o - g) if o > g else None,
                  "best_on_test_post_hoc": post, "n_test": len(probs)}
    return res


def phase_processbench(backend: Any, store: Any, clock: Clock, train: list[Any], test: list[Any],
                       args: argparse.Namespace) -> dict[str, Any]:
    """Step-error detection F1: built items (disjoint from training problems) and the model's own
    test rationales labelled by MC; trained PRM vs tool checker vs the model as its own PRM."""
    from rationales.verify.mc import mc_search_labels
    from rationales.verify.processbench import Item, build_from_gsm_symbolic, calibrate_threshold, evaluate_step_detector
    from rationales.verify.prm import LLMPRM
    from rationales.verify.trained_prm import load_prm

    out: dict[str, Any] = {}
    from rationales.tasks import reasoning_gym

    train_q = {p.question for p in reasoning_gym.load(TASK, size=POOL, seed=0)[:POOL // 2]}  # the whole training pool
    items = [it for it in build_from_gsm_symbolic(args.pb_items + 20, seed=7) if it.problem not in train_q][:args.pb_items]
    with model_lock():
        chosen = ((store.get_blob("bench:results") or {}).get("eval") or {}).get("prm")
        prm = load_prm(chosen or Path(args.out) / f"probe-{args.sources.split(',')[0]}", backend=backend)
        built = {"trained_prm": evaluate_step_detector(items, prm), "tool": evaluate_step_detector(items, "tool")}
        th = None
        if args.pb_calibrate:  # the PRM's threshold, chosen on built items of TRAINING problems only
            pool = {p.question for p in reasoning_gym.load(TASK, size=POOL, seed=0)[:POOL // 2]}
            cal = [it for it in build_from_gsm_symbolic(POOL // 2, seed=0) if it.problem in pool][:args.pb_calibrate]
            th, cal_scores = calibrate_threshold(cal, prm)
            out["calibration"] = {"items": len(cal), "threshold": th,
                                  **{k: cal_scores[k] for k in ("f1", "error_acc", "correct_acc")}}
            log(f"PRM threshold chosen on {len(cal)} built training items: {th} (F1 {cal_scores['f1']})")
            built["trained_prm_calibrated"] = evaluate_step_detector(items, prm, threshold=th)
    if args.llm_prm:
        with model_lock():
            t0 = time.time()
            built["model_as_prm"] = evaluate_step_detector(items[:args.llm_prm], LLMPRM(backend))
            clock.add("llm_prm", time.time() - t0)
        built["trained_prm_same_items"] = evaluate_step_detector(items[:args.llm_prm], prm)
    out["built"] = {k: {kk: v[kk] for kk in ("f1", "error_acc", "correct_acc", "n_error", "n_correct")}
                    for k, v in built.items()}
    # the model's own rationales on test problems, first error by MC (labels for evaluation only)
    probs, _, samples = load_samples(store, backend, test, args)
    chosen = []
    for p in probs[:args.own]:
        wrong = [r for r in samples[p.id] if not r.correct and len(r.steps) >= 2]
        right = [r for r in samples[p.id] if r.correct]
        chosen += [(p, r) for r in (wrong[:1] + right[:1])]
    if chosen:
        with model_lock():
            t0 = time.time()
            st: dict[str, Any] = {}
            mc_search_labels([p for p, _ in chosen], [r for _, r in chosen], backend, store, n=args.mc_n,
                             wave=args.mc_wave, max_tokens=args.mc_tokens, stats=st)
            clock.add("test_mc_labels", time.time() - t0, tokens=st["tokens"])
        own = []
        for p, r in chosen:
            label = next((i for i, s in enumerate(r.steps) if s.verdict("mc") == -1), -1)
            own.append(Item(problem=p.question, steps=[s.text for s in r.steps], label=label, answer=p.gold))
        with model_lock():
            res_own = {"trained_prm": evaluate_step_detector(own, prm), "tool": evaluate_step_detector(own, "tool")}
            if th is not None:
                res_own["trained_prm_calibrated"] = evaluate_step_detector(own, prm, threshold=th)
            if args.llm_prm:
                res_own["model_as_prm"] = evaluate_step_detector(own[:args.llm_prm], LLMPRM(backend))
        out["own"] = {k: {kk: v[kk] for kk in ("f1", "error_acc", "correct_acc", "n_error", "n_correct")}
                      for k, v in res_own.items()}
    return out


def report(results: dict[str, Any]) -> None:
    print(json.dumps(results, indent=1, default=str))
    lab = results.get("labels") or {}
    if lab.get("steps_labelled"):
        print(f"MC labels: {lab['steps_labelled']} steps labelled, {lab.get('tokens', 0)} rollout tokens "
              f"({lab.get('tokens', 0) / lab['steps_labelled']:.1f} per labelled step), "
              f"{lab['seconds'] / lab['steps_labelled']:.2f} s per labelled step")
    gr = results.get("grounded") or {}
    if gr.get("path_steps"):
        print(f"GroundedPRM trees: {gr['n']} problems, {gr['path_steps']} labelled path steps, {gr['tokens']} tokens "
              f"({gr['tokens'] / gr['path_steps']:.1f} per labelled step), {gr['seconds'] / gr['path_steps']:.2f} s per step")
    ev = results.get("eval") or {}
    for r in ev.get("selection", []):
        print(f"{r['strategy']:<40} {r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
              f"{r['correct']}/{r['n']}  {r['tokens_per_problem']:.0f} tokens/problem")
    gap = ev.get("gap")
    if gap:
        f = gap["fraction_closed"]
        print(f"fraction of the greedy->oracle@8 gap closed by the best trained-PRM strategy: "
              f"{'n/a' if f is None else f'{f:.3f}'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", default="all", help="samples | labels | train | eval | all (comma-separated)")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--train", type=int, default=48, help="training problems")
    ap.add_argument("--train-skip", type=int, default=0,
                    help="training problems start at this pool index (e.g. 32: the trees grounded_cost.py --skip 32 built)")
    ap.add_argument("--test", type=int, default=60, help="test problems")
    ap.add_argument("--samples", type=int, default=8, help="samples per test problem (plus one greedy)")
    ap.add_argument("--train-samples", type=int, default=4, help="samples per training problem (no greedy)")
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8, help="problems per locked batch")
    ap.add_argument("--store", default="/tmp/trained_prm/bench.sqlite")
    ap.add_argument("--out", default="/tmp/trained_prm/out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-parallel", type=int, default=32)
    ap.add_argument("--mc-n", type=int, default=4, help="MC rollouts per probed step (at most)")
    ap.add_argument("--mc-wave", type=int, default=2, help="rollouts per wave; a probe stops at its first success")
    ap.add_argument("--mc-tokens", type=int, default=320)
    ap.add_argument("--mc-wrong", type=int, default=1, help="wrong samples per problem searched for their first error")
    ap.add_argument("--mc-solved-only", action="store_true",
                    help="search first errors only on problems one training sample solves (elsewhere every rollout "
                         "fails and the search labels every step -1 at full cost)")
    ap.add_argument("--grounded", type=int, default=3, help="training problems to measure GroundedPRM trees on")
    ap.add_argument("--sources", default="mc", help="label sources to train probes on (the first is evaluated)")
    ap.add_argument("--hidden", type=int, default=0, help="probe MLP hidden units (0: logistic)")
    ap.add_argument("--test-first", action="store_true", help="samples: all test batches before training ones")
    ap.add_argument("--built-train", type=int, default=0,
                    help="also train on N built items (gold/corrupted solutions of training problems)")
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--step-search", type=int, default=20, help="test problems for PRM-guided step search (0: skip)")
    ap.add_argument("--pb-items", type=int, default=60, help="built ProcessBench items")
    ap.add_argument("--pb-calibrate", type=int, default=30,
                    help="built items of training problems to choose the PRM's threshold on (0: keep 0.5)")
    ap.add_argument("--llm-prm", type=int, default=20, help="items for the model-as-its-own-PRM baseline (0: skip)")
    ap.add_argument("--own", type=int, default=30, help="test problems whose own rationales are MC-labelled")
    ap.add_argument("--only", choices=["train", "test"], help="samples: only the training or only the test problems")
    ap.add_argument("--score-part", help="eval: score only these test problems, e.g. 3/4 or 0,1,2/4 (parallel scorers)")
    ap.add_argument("--score-only", action="store_true", help="eval: stop after scoring the test rationales")
    ap.add_argument("--reverse", action="store_true", help="samples / test features: last batches first")
    ap.add_argument("--results", help="also write the results as JSON here (e.g. benchmarks/results/trained_prm.json)")
    ap.add_argument("--no-lock", action="store_true", help="never take the shared model lock (own core, one thread)")
    args = ap.parse_args(argv)
    global NO_LOCK
    NO_LOCK = args.no_lock

    from rationales.backends.base import get_backend
    from rationales.store import Store

    phases = {p.strip() for p in args.phase.split(",")}
    if "all" in phases:
        phases = {"samples", "labels", "grounded", "train", "eval", "processbench"}
    t_start = time.time()
    train, test = split_problems(args.train, args.test, args.train_skip)
    backend = get_backend("llamacpp", model=args.model, n_ctx=2048, n_threads=args.threads,
                          n_parallel=args.n_parallel)  # loading reads the file; no decoding, no lock
    with Store(args.store) as store:
        clock = Clock(store)
        results = store.get_blob("bench:results") or {}
        if "samples" in phases:
            phase_samples(backend, store, clock, train, test, args)
        if "labels" in phases:
            results["labels"] = phase_labels(backend, store, clock, train, args)
        if "grounded" in phases:
            phase_grounded(backend, store, clock, train, args)
        if "train" in phases:
            results["probe"] = phase_train(backend, store, train, args)
            store.put_blob("bench:results", "bench", results)
        if "eval" in phases:
            ev = phase_eval(backend, store, clock, train, test, args)
            if args.score_only:
                log(f"scored: {ev}")
                return 0
            results["eval"] = ev
            store.put_blob("bench:results", "bench", results)
        if "processbench" in phases:
            results["processbench"] = phase_processbench(backend, store, clock, train, test, args)
            store.put_blob("bench:processbench", "bench", results["processbench"])
        # phases may run in separate processes (e.g. ProcessBench on the other core): merge
        computed = {k for k, ph in (("labels", "labels"), ("probe", "train"), ("eval", "eval"),
                                     ("processbench", "processbench")) if ph in phases}
        for k, v in (store.get_blob("bench:results") or {}).items():
            if k not in computed:
                results[k] = v
        results["processbench"] = results.get("processbench") or store.get_blob("bench:processbench")
        results["grounded"] = store.get_blob("bench:grounded")  # after the merge: an older run's null must not win
        results["clock"] = Clock(store).data
        store.put_blob("bench:results", "bench", results)
        report(results)
    log(f"done in {time.time() - t_start:.0f}s")
    if args.results:
        out = {"config": {k: v for k, v in vars(args).items() if k not in ("results",)},
               "this_invocation_seconds": round(time.time() - t_start, 1), **results}
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(out, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
