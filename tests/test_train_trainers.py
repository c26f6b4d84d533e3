"""One real end-to-end path per trainer (tiny model made in code, CPU, a few steps), resume after a
kill, the trained directory used by `run --backend transformers`, and bad input as one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl")

from test_data_builders import make_training_store, rat  # noqa: E402

from rationales.cli import main  # noqa: E402
from rationales.records import Problem  # noqa: E402
from rationales.store import Store  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def data(tmp_path) -> Path:
    path = tmp_path / "train.sqlite"
    with Store(path) as st:
        make_training_store(st)
    return path


def cli_json(capsys, argv: list[str]) -> dict:
    rc = main(argv + ["--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out.strip().splitlines()[-1])


def cli_error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]), err  # the error is one line, and the last
    return lines[0]


def test_sft_cli_end_to_end_then_run_with_the_trained_model(data, tmp_path, capsys):
    out = tmp_path / "sft"
    res = cli_json(capsys, ["train", "sft", str(data), "--model", "tiny", "--output-dir", str(out), "--max-steps", "2",
                            "--save-steps", "1", "--test-fraction", "0.3", "--lr", "1e-3"])
    assert res["steps"] == 2 and res["method"] == "sft"
    card = json.loads((out / "model_card.json").read_text())
    assert card["data"]["split"]["name"] == "default" and card["data"]["filters"]["correct_only"] is True
    assert card["data"]["store"] == str(data) and card["base_model"]["kind"].startswith("tiny")
    assert "eval_loss" in card["metrics"] and card["metrics"]["held_out_rows"] > 0  # held-out problems only
    with Store(data) as st:  # the evaluation rows came from the recorded test side
        from rationales.data.splits import heldout_ids

        assert len(heldout_ids(st)) == card["data"]["split"]["test_problems"] > 0
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    # usable at once by every command through --backend transformers --model DIR
    run = cli_json(capsys, ["run", "demo", "--backend", "transformers", "--model", str(out), "-n", "1", "-k", "1",
                            "--max-tokens", "4", "--store", str(tmp_path / "run.sqlite"), "--out",
                            str(tmp_path / "run-out")])
    assert run["problems"] == 1 and run["samples_new"] >= 1


def test_killed_run_resumes_from_its_last_checkpoint(data, tmp_path):
    from transformers import TrainerCallback

    from rationales.train.sft import SFTTrainConfig, train_sft

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt  # the process dies after checkpoint-2, before checkpoint-4

    class Steps(TrainerCallback):
        seen: list[int] = []

        def on_step_end(self, args, state, control, **kw):
            self.seen.append(state.global_step)

    cfg = SFTTrainConfig(model="tiny", data=str(data), output_dir=str(tmp_path / "out"), max_steps=5, save_steps=2,
                         batch_size=1, progress=False, eval_max=0, logging_steps=1)
    with pytest.raises(KeyboardInterrupt):
        train_sft(cfg, callbacks=[Kill()])
    assert (tmp_path / "out" / "checkpoint-2").is_dir() and not (tmp_path / "out" / "checkpoint-4").exists()
    steps = Steps()
    res = train_sft(cfg, callbacks=[steps])
    assert res.resumed_from.endswith("checkpoint-2")
    assert steps.seen == [3, 4, 5] and res.steps == 5  # the step count continues, nothing is redone
    # the run's loss is the mean over all 5 logged steps, not transformers' post-resume average
    logged = json.loads((tmp_path / "out" / "checkpoint-5" / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in logged if "loss" in h]
    assert len(losses) == 5 and res.train_loss == pytest.approx(sum(losses) / 5)
    again = train_sft(cfg)  # rerun of a finished run: the loss is still the run's mean (was 0.0)
    assert again.train_loss > 0.1


def test_rerun_of_a_finished_max_steps_run_trains_nothing(data, tmp_path):
    """transformers' resume from the final checkpoint ran one extra optimiser step (2 -> 3)."""
    from transformers import TrainerCallback

    from rationales.train.sft import SFTTrainConfig, train_sft

    class Steps(TrainerCallback):
        def __init__(self):
            self.seen: list[int] = []

        def on_step_end(self, args, state, control, **kw):
            self.seen.append(state.global_step)

    cfg = SFTTrainConfig(model="tiny", data=str(data), output_dir=str(tmp_path / "out"), max_steps=2, save_steps=1,
                         batch_size=1, progress=False, eval_max=0, logging_steps=1)
    first = train_sft(cfg)
    weights = (tmp_path / "out" / "model.safetensors").read_bytes()
    steps = Steps()
    again = train_sft(cfg, callbacks=[steps])
    assert steps.seen == [] and again.steps == first.steps == 2 and again.resumed_from.endswith("checkpoint-2")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == weights  # the same model, saved again
    assert again.train_loss == pytest.approx(first.train_loss)
    assert not (tmp_path / "out" / "checkpoint-3").exists()
    longer = train_sft(SFTTrainConfig(**{**cfg.to_dict(), "max_steps": 3}), callbacks=[steps])  # extending still trains
    assert steps.seen == [3] and longer.steps == 3


def test_dpo_cli_end_to_end_all_pair_sources(data, tmp_path, capsys):
    out = tmp_path / "dpo"
    res = cli_json(capsys, ["train", "dpo", str(data), "--model", "tiny", "--output-dir", str(out), "--max-steps", "2",
                            "--pairs", "outcome,step_controlled,sibling", "--split-name", "all-train",
                            "--test-fraction", "0.0"])
    assert res["steps"] == 2
    card = json.loads((out / "model_card.json").read_text())
    assert card["metrics"]["pairs"] == {"outcome": 6, "step_controlled": 1, "sibling": 1}
    assert card["config"]["beta"] == 0.1


def test_qcrd_end_to_end_stores_self_adversarial_negatives_and_resumes(data, tmp_path):
    from rationales.train.qcrd import NEGATIVE_METHOD, QCRDTrainConfig, train_qcrd

    cfg = QCRDTrainConfig(model="tiny", data=str(data), output_dir=str(tmp_path / "q"), max_steps=2, save_steps=1,
                          iterations=2, lag=1, student_max_tokens=8, batch_size=2, progress=False, test_fraction=0.3)
    res = train_qcrd(cfg)
    rounds = res.metrics["rounds"]
    assert [r["negatives_from_round"] for r in rounds] == [0, 1]  # round 2 samples the round-1 checkpoint
    assert [r["neg_scale"] for r in rounds] == pytest.approx([1.0, 0.9])
    assert rounds[1]["discriminator_updates"] == 4 and res.steps == 4
    assert res.metrics["eval_rows"] > 0 and "eval_ce_margin" in res.metrics  # held-out positives vs negatives
    for r in rounds:  # the loss terms are logged per round: 2 steps x 2 questions, positives' CE, picked lengths
        t = r["terms"]
        assert t["questions_seen"] == 4 and set(t["first"]) == set(t["last"])
        assert t["first"]["ce_pos"] > 0 and 0.0 <= t["first"]["hinge_active"] <= 1.0
        assert 1 <= t["first"]["picked_pos_tokens"] <= cfg.max_length and t["first"]["neg_tokens"] > 0
    with Store(data) as st:
        negs = st.rationales(method=NEGATIVE_METHOD)
        assert len(negs) == 2 * res.examples and {r.sampling.temperature for r in negs} == {1.5}
        assert len({r.model for r in negs}) == 2
    again = train_qcrd(cfg)  # finished rounds are kept: nothing is retrained or resampled
    assert again.steps == 4 and again.metrics["rounds"] == rounds
    with Store(data) as st:
        assert len(st.rationales(method=NEGATIVE_METHOD)) == len(negs)
    assert (tmp_path / "q" / "config.json").is_file()
    card = json.loads((tmp_path / "q" / "model_card.json").read_text())
    assert card["metrics"]["rounds"] == rounds and card["data"]["format"] == "contrastive"


def test_pinto_cli_end_to_end(data, tmp_path, capsys):
    out = tmp_path / "pinto"
    res = cli_json(capsys, ["train", "pinto", str(data), "--model", "tiny", "--output-dir", str(out), "--max-steps",
                            "2", "--batch-size", "2", "--lora", "--lr", "1e-3"])
    assert res["steps"] == 2
    # LoRA adapters are merged: the output is a plain model directory
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    from rationales.train.models import load_base_model

    model, _, info = load_base_model(str(out))
    assert type(model).__name__ == "LlamaForCausalLM" and info["kind"] == "hf directory"
    card = json.loads((out / "model_card.json").read_text())
    assert card["data"]["format"] == "pinto" and card["data"]["rationales_with_built_perturbations"] > 0
    m = card["metrics"]  # held-out problems: answer CE and the entropy intact vs perturbed
    assert m["eval_rows"] == m["held_out_rows"] > 0 and "eval_entropy_gap" in m and m["eval_answer_ce"] > 0


def test_bad_input_is_one_line_error(data, tmp_path, capsys):
    # an empty dataset
    empty = tmp_path / "empty.sqlite"
    Store(empty).close()
    msg = cli_error(capsys, ["train", "sft", str(empty), "--model", "tiny", "--output-dir", str(tmp_path / "o1")])
    assert "No SFT rows" in msg and "rationales run" in msg
    (tmp_path / "empty.jsonl").write_text("")
    msg = cli_error(capsys, ["train", "sft", str(tmp_path / "empty.jsonl"), "--model", "tiny",
                             "--output-dir", str(tmp_path / "o1")])
    assert "is empty" in msg and "export --format sft" in msg  # not datasets' bare StopIteration
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    msg = cli_error(capsys, ["train", "dpo", str(tmp_path / "blank.jsonl"), "--model", "tiny",
                             "--output-dir", str(tmp_path / "o1")])
    assert "is empty" in msg and "export --format dpo" in msg
    # a missing column
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "chosen": "a"}) + "\n")
    msg = cli_error(capsys, ["train", "dpo", str(bad), "--model", "tiny", "--output-dir", str(tmp_path / "o2")])
    assert "lacks column(s) rejected" in msg and "export --format dpo" in msg
    # a model directory that is not a model
    notmodel = tmp_path / "notmodel"
    notmodel.mkdir()
    msg = cli_error(capsys, ["train", "sft", str(data), "--model", str(notmodel), "--output-dir", str(tmp_path / "o3")])
    assert "is not a model directory" in msg and "config.json" in msg
    # a dataset with no pairs: every rationale is correct
    nopairs = tmp_path / "nopairs.sqlite"
    with Store(nopairs) as st:
        p = Problem.make("1+1?", 2, source="toy", answer_type="number")
        st.put_problems([p])
        st.put_rationales([rat(p, "1 + 1 = 2.\nThe answer is 2.", "2", True, 0)])
    msg = cli_error(capsys, ["train", "dpo", str(nopairs), "--model", "tiny", "--output-dir", str(tmp_path / "o4"),
                             "--test-fraction", "0"])
    assert "No DPO pair rows" in msg
    # a bad option value
    msg = cli_error(capsys, ["train", "qcrd", str(data), "--neg-decay", "2"])
    assert "neg_decay" in msg
    msg = cli_error(capsys, ["train", "sft", str(tmp_path / "missing.sqlite"), "--model", "tiny"])
    assert "not found" in msg


@pytest.mark.model
def test_sft_on_the_packaged_smollm2_rebuilt_from_gguf(data, tmp_path):
    """The real small model: rebuilt from its GGUF as a plain LlamaForCausalLM, one SFT step, saved,
    and loaded back by the transformers backend (greedy generation)."""
    from rationales.backends import get_backend
    from rationales.train.sft import SFTTrainConfig, train_sft

    res = train_sft(SFTTrainConfig(model="smollm2-135m", data=str(data), output_dir=str(tmp_path / "s"), max_steps=1,
                                   batch_size=1, max_length=128, progress=False, eval_max=0))
    assert res.steps == 1 and res.train_loss > 0
    card = json.loads((tmp_path / "s" / "model_card.json").read_text())
    assert card["base_model"]["kind"] == "gguf rebuilt as a plain HF model"
    be = get_backend("transformers", model=str(tmp_path / "s"))
    try:
        from rationales.backends.base import GenerationRequest

        out = be.generate([GenerationRequest(messages=[{"role": "user", "content": "What is 2 + 3?"}], seeds=[0],
                                             temperature=0.0, max_tokens=8)])
        assert out[0].completions[0].text.strip()
    finally:
        be.close()
