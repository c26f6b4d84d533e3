"""The self-rationalizing judge (seeds/001, "Self-rationalization improves LLM as a
fine-grained judge"): the judge improves from its own rationales.

Each iteration k = 1..K (the paper: 2):

1. the current judge samples ``n`` judgments (rationale, then verdict) for every training item
   (pairwise: in both orders) at temperature ``temperature``;
2. preference pairs from its own judgments (``data.judge_pairs.judgment_pairs``): chosen = a
   judgment whose verdict matches the reference (the gold winner / score; the majority verdict
   where an item has no gold), rejected = one that does not (a wrong verdict, else an unreadable
   one) - same prompt, both written by the judge;
3. DPO on those pairs (TRL's ``DPOTrainer``; the reference model is an explicit copy of the
   iteration's starting model, see ENVIRONMENT.md);
4. the new judge is saved (``OUTPUT/iter-k``, a plain HF directory) and evaluated on held-out
   items (disjoint problems) with greedy judgments.

Baselines on the same held-out items (evaluated after the iterations, on a copy of the untrained
judge, so a time-boxed run has the loop's numbers first): the untrained judge (greedy), its
self-consistency (majority of ``eval_n`` sampled judgments per order) and best-of-N (the sampled
judgment with the highest mean token log-likelihood under the judge). Verdicts are read with
the lenient parser and no forced fallback, so the unparsed rate is the judge's own. By default
(``grammar``) every judgment is constrained to ``Feedback: ... [RESULT] <verdict>`` (GBNF on
llama.cpp and servers, ``backends/verdict_grammar.py`` on transformers), so the loop trains
the verdicts, not the format; ``free_eval`` also evaluates each judge without the constraint.

Every iteration's judgments and pairs are kept in the store (blobs ``judge_train_judgments`` and
``judge_train_pairs``), the sampled outputs too (``judge_output``), so a killed run resumes: a
finished iteration's saved model is loaded instead of retrained. The final judge is saved at the
top of ``output_dir``: ``--backend transformers --model OUTPUT`` uses it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UnknownNameError
from ..records import content_hash
from .base import TrainConfig, TrainConfigError, TrainDataError, TrainResult, opt, write_model_card


@dataclass
class JudgeTrainConfig(TrainConfig):
    """``rationales train judge``: TrainConfig plus the self-rationalization loop's options."""

    data: str = opt("rationales.sqlite", "Store with rationales of known correctness (pairs of a correct and a "
                                         "wrong rationale per problem become the judge's items).")
    mode: str = opt("pairwise", "Judge kind to train: pairwise (A vs B, both orders) or absolute (a score).")
    iterations: int = opt(2, "Self-rationalization iterations (sample, pair, DPO, evaluate); the paper uses 2.")
    n: int = opt(4, "Judgments sampled per training item (and per order) each iteration.")
    temperature: float = opt(0.8, "Sampling temperature of the judgments.")
    judge_max_tokens: int = opt(160, "Max new tokens per judgment.")
    beta: float = opt(0.1, "DPO beta.")
    rubric: str = opt("correctness", "Rubric: a built-in name, a JSON file or a text.")
    per_item: int = opt(1, "Preference pairs per item (and order) per iteration.")
    test_fraction: float = opt(0.5, "Share of problems held out for evaluation (a recorded split).")
    split: str = opt("judge", "Name of the recorded train/test split.")
    source_model: str | None = opt(None, "Only rationales of this model (the judged model).")
    method: str | None = opt(None, "Only rationales of this method.")
    pairs_per_problem: int = opt(2, "Items per problem (distinct correct/wrong rationale pairs).")
    max_train_items: int = opt(40, "At most this many training items.")
    max_test_items: int = opt(40, "At most this many held-out items.")
    eval_n: int = opt(4, "Samples per order for the self-consistency and best-of-N baselines (0: skip them).")
    generation_batch: int = opt(8, "Rows per generate() call of the judge.")
    grammar: bool = opt(True, "Constrain every judgment to 'Feedback: ... [RESULT] <verdict>' (GBNF on llama.cpp and "
                              "servers, a token-level verdict constraint on transformers); --no-grammar leaves the "
                              "format to the judge (unreadable verdicts are then counted and paired as rejected).")
    best_of_n: bool = opt(True, "Also evaluate the best-of-N baseline (one scoring pass per sampled judgment).")
    free_eval: bool = opt(False, "Also evaluate every judge greedily without the grammar: does it write a readable "
                                 "verdict on its own?")
    calibrate: bool = opt(False, "Pairwise: also evaluate every judge with calibrated verdicts (P(A) vs P(B) after "
                                 "each feedback, averaged over both orders; no new generations).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("pairwise", "absolute"):
            raise UnknownNameError("judge mode", self.mode, ("pairwise", "absolute"))
        if self.calibrate and self.mode != "pairwise":
            raise TrainConfigError("--calibrate decides A vs B pairs; it needs --mode pairwise.")
        for name in ("iterations", "n", "judge_max_tokens", "per_item", "pairs_per_problem", "max_train_items",
                     "max_test_items", "generation_batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TrainConfigError(f"{name} must be a positive integer, got {v!r}.")
        if self.iterations > 10:
            raise TrainConfigError(f"iterations={self.iterations}: use at most 10 (the paper uses 2).")
        if self.n < 2:
            raise TrainConfigError("n must be at least 2: pairs need two different judgments of one item.")
        if not isinstance(self.eval_n, int) or self.eval_n < 0:
            raise TrainConfigError(f"eval_n must be 0 or more, got {self.eval_n!r}.")
        if not (math.isfinite(self.temperature) and 0.0 < self.temperature <= 3.0):
            raise TrainConfigError(f"temperature must be in (0, 3] (sampled judgments must differ), got "
                                   f"{self.temperature!r}.")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise TrainConfigError(f"beta must be a finite number > 0, got {self.beta!r}.")
        if not (math.isfinite(self.test_fraction) and 0.0 < self.test_fraction < 1.0):
            raise TrainConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}.")
        from ..verify.judge import load_rubric

        load_rubric(self.rubric)


@dataclass
class JudgeIteration:
    iteration: int
    model_dir: str | None
    train_judgments: int
    pairs: int
    train_loss: float | None
    metrics: dict[str, Any]
    seconds: float
    pair_stats: dict[str, int] = field(default_factory=dict)
    dpo_log: list[dict[str, Any]] = field(default_factory=list)  # the DPO trainer's logged rows


@dataclass
class JudgeTrainResult:
    """Every iteration's evaluation (iteration 0 = the untrained judge) and the baselines."""

    output_dir: str
    iterations: list[JudgeIteration]
    baselines: dict[str, dict[str, Any]]
    train_items: int
    test_items: int
    seconds: float
    key: str
    free: dict[str, dict[str, Any]] = field(default_factory=dict)  # the same judges without the grammar
    calibrated: dict[str, dict[str, Any]] = field(default_factory=dict)  # the same judgments, calibrated verdicts

    def table(self) -> dict[str, dict[str, Any]]:
        """judge name -> held-out metrics, in report order (``X (calibrated)`` after each judge X
        evaluated with calibrated verdicts)."""
        out = {"untrained": self.iterations[0].metrics}
        if "untrained" in self.calibrated:
            out["untrained (calibrated)"] = self.calibrated["untrained"]
        out.update(self.baselines)
        for it in self.iterations[1:]:
            name = f"iteration {it.iteration}"
            out[name] = it.metrics
            if name in self.calibrated:
                out[f"{name} (calibrated)"] = self.calibrated[name]
        return out

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _judge_config(n: int, temperature: float, max_tokens: int, seed: int, aggregate: str = "majority",
                  grammar: bool = True, calibrate: bool = False) -> Any:
    """Sampled judgments of the loop: no retries and no forced verdicts, so an unreadable one (only
    possible without the grammar) is the judge's own and counts as unparsed."""
    from ..verify.judge import JudgeConfig

    return JudgeConfig(n=n, temperature=temperature if n > 1 else 0.0, max_tokens=max_tokens, seed=seed,
                       aggregate=aggregate, grammar=grammar, retries=0, force=False, calibrate=calibrate)


def _make_judge(config: JudgeTrainConfig, backend: Any, store: Any, jcfg: Any) -> Any:
    from ..verify.judge import AbsoluteJudge, PairwiseJudge

    cls = PairwiseJudge if config.mode == "pairwise" else AbsoluteJudge
    return cls(backend, config.rubric, jcfg, store=store)


def _metrics(config: JudgeTrainConfig, judgments: Sequence[Any], items: Sequence[Any]) -> dict[str, Any]:
    from ..score.judge import absolute_agreement, pair_outcome, pairwise_agreement

    if config.mode == "pairwise":
        m = pairwise_agreement(judgments, items)
        gold = {it.id: it.gold for it in items}
        m["outcomes"] = {j.item_id: pair_outcome(j, gold.get(j.item_id)) for j in judgments}
        return m
    return absolute_agreement(judgments, items)


def load_items(config: JudgeTrainConfig, store: Any) -> tuple[list[Any], list[Any]]:
    """(train, test) judge items from the store, disjoint by problem (recorded split)."""
    from ..data.judge_pairs import absolute_items, reasoning_pairs, split_items

    if config.mode == "pairwise":
        items = reasoning_pairs(store, model=config.source_model, method=config.method,
                                per_problem=config.pairs_per_problem, seed=config.seed)
    else:
        items = absolute_items(store, model=config.source_model, method=config.method)
    if not items:
        what = "problems with both a correct and a wrong rationale" if config.mode == "pairwise" else \
            "rationales with a known correctness"
        raise TrainDataError(f"The store {config.data} has no {what}; run `rationales run TASK -n 4` with a model "
                             "that is sometimes right and sometimes wrong, then train again.")
    train, test = split_items(store, items, name=config.split, test_fraction=config.test_fraction, seed=config.seed)
    train, test = train[:config.max_train_items], test[:config.max_test_items]
    if not train or not test:
        raise TrainDataError(f"The split left {len(train)} training and {len(test)} held-out items; store more "
                             "problems or change --test-fraction.")
    return train, test


def dpo_train(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], config: JudgeTrainConfig,
              output_dir: str | Path, history: list[dict[str, Any]] | None = None) -> tuple[Any, float | None, int]:
    """One DPO pass (TRL) over conversational preference rows; returns (model, loss, steps).
    The reference model is a frozen copy of ``model`` as it enters this iteration. ``history``
    (a list) receives the trainer's logged rows (step, loss, rewards/accuracies, rewards/margins)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    if not rows:
        raise TrainDataError("No preference pairs to train on.")
    ds = Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows])
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    if config.lora:
        from .models import apply_lora

        model = apply_lora(model, config.lora_r, config.lora_alpha)
    args = config.training_arguments(args_class=DPOConfig, output_dir=str(output_dir), beta=float(config.beta),
                                     max_length=int(config.max_length), truncation_mode="keep_end",
                                     save_strategy="no", logging_steps=max(1, config.logging_steps))
    model.train()
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=ds, processing_class=tokenizer)
    out = trainer.train()
    if history is not None:
        keep = ("step", "epoch", "loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")
        history.extend({k: row[k] for k in keep if k in row} for row in trainer.state.log_history if "loss" in row)
    model = trainer.model
    if hasattr(model, "merge_and_unload"):  # LoRA: fold the adapters in, the next iteration starts plain
        model = model.merge_and_unload()
    model.eval()
    del trainer, ref
    return model, (float(out.training_loss) if out.training_loss is not None else None), int(out.global_step)


def _save(model: Any, tokenizer: Any, path: Path) -> Path:
    from .models import save_trained

    return save_trained(model, tokenizer, path)


def train_judge(config: JudgeTrainConfig, *, store: Any = None, train_items: Sequence[Any] | None = None,
                test_items: Sequence[Any] | None = None, model_and_tokenizer: tuple[Any, Any] | None = None,
                backend_factory: Callable[[Any, Any, str], Any] | None = None,
                on_progress: Callable[[str], None] | None = None) -> JudgeTrainResult:
    """Run the self-rationalization loop; see the module docstring. ``train_items``/``test_items``
    (``PairItem``/``JudgeItem`` with gold) replace the store's pairs; ``model_and_tokenizer``
    replaces loading ``config.model``; ``backend_factory(model, tokenizer, model_id)`` replaces
    the transformers backend that samples the judgments (tests script the judgments with the
    fake backend while DPO trains a real tiny model)."""
    from ..backends.transformers import TransformersBackend
    from ..data.judge_pairs import judgment_pairs
    from ..store import Store

    t0 = time.time()
    say = on_progress or (lambda msg: None)
    own_store = store is None
    if own_store and not Path(config.data).is_file():
        raise TrainDataError(f"No store at {config.data}; pass --data with a store of rationales of known correctness "
                             "(`rationales run TASK -n 4` writes one).")
    store = store if store is not None else Store(config.data)
    try:
        if train_items is None or test_items is None:
            train, test = load_items(config, store)
        else:
            train, test = list(train_items), list(test_items)
        if not train or not test:
            raise TrainDataError("Training needs at least one training and one held-out item.")
        if model_and_tokenizer is not None:
            model, tok = model_and_tokenizer
            base_info: dict[str, Any] = {"name": config.model, "kind": "given"}
        else:
            from .models import load_base_model

            model, tok, base_info = load_base_model(config.model, seed=config.seed)
        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        key = content_hash("judge-train", config.model, config.mode, config.rubric, config.seed, config.n,
                           config.temperature, config.beta, config.lr, config.epochs, config.grammar, [it.id for it in train],
                           [it.id for it in test], length=12)
        # the model id judgments are cached under: the untrained judge's do not depend on the items
        tag = lambda k: f"{config.model}@judge-{key}-iter{k}" if k else f"{config.model}@judge-untrained"  # noqa: E731

        def backend_for(k: int, m: Any = None) -> Any:
            m = model if m is None else m
            if backend_factory is not None:
                return backend_factory(m, tok, tag(k))
            return TransformersBackend(model=m, tokenizer=tok, model_id=tag(k), batch_size=config.generation_batch)

        def evaluate(k: int, n: int = 1, aggregate: str = "majority", grammar: bool | None = None,
                     calibrate: bool = False, m: Any = None) -> dict[str, Any]:
            grammar = config.grammar if grammar is None else grammar
            jcfg = _judge_config(n, config.temperature, config.judge_max_tokens, config.seed + 1, aggregate, grammar,
                                 calibrate)
            backend = backend_for(k, m)
            judge = _make_judge(config, backend, store, jcfg)
            js = judge.judge(test)  # calibrated: the same (cached) judgments, plus their verdict probabilities
            free = ("" if grammar == config.grammar else (":free" if not grammar else ":grammar")) + \
                (":calibrated" if calibrate else "")
            store.put_blob(f"judge-train:{key}:eval:iter{k}:n{n}:{aggregate}{free}", "judge_train_eval",
                           [j.as_dict() for j in js])
            m = _metrics(config, js, test)
            m["constrained"] = bool(judge.engine.constrained)
            say(f"held-out, judge of iteration {k}, n={n} {aggregate}{free}: "
                + ", ".join(f"{name} {m.get(name)}" for name in ("accuracy", "ci_low", "ci_high", "strict_accuracy",
                                                                  "unparsed_rate", "position_bias", "pearson",
                                                                  "mean_p_first", "mean_p_gold")
                            if name in m))
            return m

        say(f"evaluating the untrained judge on {len(test)} held-out items")
        t_it = time.time()
        iterations = [JudgeIteration(0, None, 0, 0, None, evaluate(0), time.time() - t_it)]
        free_evals: dict[str, dict[str, Any]] = {}
        calibrated: dict[str, dict[str, Any]] = {}
        if config.calibrate:
            calibrated["untrained"] = evaluate(0, calibrate=True)
        if config.free_eval and config.grammar:
            say("held-out, untrained judge without the grammar")
            free_evals["untrained"] = evaluate(0, grammar=False)
        baselines: dict[str, dict[str, Any]] = {}
        # the baselines run after the iterations (a time-boxed run has the loop's numbers first), on
        # a copy of the untrained judge (DPO trains the model in place)
        untrained = copy.deepcopy(model) if config.eval_n > 1 else None
        for k in range(1, config.iterations + 1):
            t_it = time.time()
            iter_dir = out / f"iter-{k}"
            say(f"iteration {k}: sampling {config.n} judgments per item on {len(train)} items")
            jcfg = _judge_config(config.n, config.temperature, config.judge_max_tokens, config.seed + 1000 * k,
                                 grammar=config.grammar)
            judge = _make_judge(config, backend_for(k - 1), store, jcfg)
            js = judge.judge(train)
            rows = judgment_pairs(judge, train, js, per_item=config.per_item, seed=config.seed, iteration=k)
            store.put_blob(f"judge-train:{key}:iter{k}:judgments", "judge_train_judgments", [j.as_dict() for j in js])
            store.put_blob(f"judge-train:{key}:iter{k}:pairs", "judge_train_pairs", rows)
            stats = {"chosen_gold": sum(r["reference"] == "gold" for r in rows),
                     "rejected_unreadable": sum(r["rejected_verdict"] is None for r in rows)}
            say(f"iteration {k}: {len(rows)} preference pairs ({stats})")
            if not rows:
                if k == 1:
                    raise TrainDataError(f"Iteration 1 found no preference pairs in {len(js)} judged items: no item "
                                         "had both a judgment matching the reference and one that did not. Raise "
                                         "--n or --temperature, or use more items.")
                say(f"iteration {k}: no pairs left; stopping")
                break
            loss, steps, dpo_log = None, 0, []
            if (iter_dir / "config.json").is_file():  # finished before: resume from the saved model
                from transformers import AutoModelForCausalLM

                say(f"iteration {k}: loading the saved model from {iter_dir}")
                model = AutoModelForCausalLM.from_pretrained(str(iter_dir))
                model.eval()
                done = store.get_blob(f"judge-train:{key}:iter{k}:dpo") or {}  # what that run's DPO reported
                loss, steps, dpo_log = done.get("loss"), int(done.get("steps", 0)), list(done.get("log", []))
            else:
                say(f"iteration {k}: DPO on {len(rows)} pairs")
                model, loss, steps = dpo_train(model, tok, rows, config, out / f"iter-{k}-work", dpo_log)
                _save(model, tok, iter_dir)
                store.put_blob(f"judge-train:{key}:iter{k}:dpo", "judge_train_dpo",
                               {"loss": loss, "steps": steps, "log": dpo_log})
            say(f"iteration {k}: DPO loss {loss}, {steps} steps; logged {dpo_log}")
            say(f"iteration {k}: evaluating")
            metrics = evaluate(k)
            metrics["dpo_steps"] = steps
            if config.calibrate:
                calibrated[f"iteration {k}"] = evaluate(k, calibrate=True)
            if config.free_eval and config.grammar:
                free_evals[f"iteration {k}"] = evaluate(k, grammar=False)
            iterations.append(JudgeIteration(k, str(iter_dir), len(js), len(rows), loss, metrics, time.time() - t_it,
                                             stats, dpo_log))
        if untrained is not None:
            say(f"baselines: self-consistency{' and best-of-' + str(config.eval_n) if config.best_of_n else ''}")
            baselines[f"self-consistency@{config.eval_n}"] = evaluate(0, config.eval_n, "majority", m=untrained)
            if config.best_of_n:
                baselines[f"best-of-{config.eval_n}"] = evaluate(0, config.eval_n, "best", m=untrained)
            del untrained
        _save(model, tok, out)
        result = JudgeTrainResult(str(out), iterations, baselines, len(train), len(test), time.time() - t0, key,
                                  free_evals, calibrated)
        provenance = {"store": str(store.path), "mode": config.mode, "split": config.split,
                      "train_items": len(train), "test_items": len(test), "rubric": config.rubric,
                      "source_model": config.source_model, "judgments_key": key}
        summary = {name: {k: v for k, v in m.items() if k != "outcomes"} for name, m in result.table().items()}
        write_model_card(out, method="judge", config=config, provenance=provenance, metrics=summary,
                         base_model=base_info)
        return result
    finally:
        if own_store:
            store.close()


def as_train_result(result: JudgeTrainResult) -> TrainResult:
    last = result.iterations[-1]
    return TrainResult(result.output_dir, "judge", sum(int(i.metrics.get("dpo_steps", 0)) for i in result.iterations),
                       None, last.train_loss, {k: {m: v for m, v in d.items() if m != "outcomes"}
                                               for k, d in result.table().items()},
                       sum(i.pairs for i in result.iterations), result.seconds)


__all__ = ["JudgeTrainConfig", "JudgeTrainResult", "JudgeIteration", "train_judge", "dpo_train", "load_items",
           "as_train_result"]
