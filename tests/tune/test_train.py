"""Training on a tiny random Llama: loss goes down, outputs are complete and self-describing, runs resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _tiny import chat_records, script_answer_f1, write_jsonl
from ragtune.errors import ConfigError, ModelMismatchError, TrainingDataError
from ragtune.tune.artifacts import META_FILE, check_base, model_fingerprint
from ragtune.tune.config import TrainConfig
from ragtune.tune.train import choose_mode, train_adapter

FAST = dict(max_steps=12, eval_steps=4, save_steps=4, batch_size=4, learning_rate=1e-2, logging_steps=1,
            early_stopping_patience=None, warmup_ratio=0.0)


def config(model, **kw) -> TrainConfig:
    return TrainConfig(base_model=str(model), **{**FAST, **kw})


def test_loss_decreases_and_the_run_folder_is_complete(tiny_model, chat_data, tmp_path):
    seen = []
    result = train_adapter(chat_data, tmp_path / "run", config(tiny_model), on_log=seen.append)
    losses = [r["loss"] for r in result.log if "loss" in r]
    assert losses[-1] < losses[0] - 0.2
    assert any("eval_loss" in r for r in seen) and all("step" in r for r in seen)
    run = tmp_path / "run"
    for name in ("training_log.csv", "loss_curve.png", "metrics.json"):
        assert (run / name).stat().st_size > 0
    assert (run / "training_log.csv").read_text().startswith("step,epoch,loss,eval_loss")
    assert (run / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    adapter = run / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    meta = json.loads((adapter / META_FILE).read_text())
    assert meta["base_model"]["fingerprint"] == model_fingerprint(tiny_model)
    assert len(meta["data"]["sha256"]) == 64 and meta["config"]["rank"] == 16
    assert meta["metrics"]["steps"] == 12 and 0 < meta["metrics"]["trainable_fraction"] < 1
    assert result.mode == "fp32-lora-cpu" and "CPU" in result.mode_reason


def test_adapter_round_trips_through_the_local_generator(tiny_model, chat_data, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ragtune.rag.generators import LocalGenerator

    result = train_adapter(chat_data, tmp_path / "run", config(tiny_model))
    gen = LocalGenerator(tiny_model, adapter=result.adapter, device="cpu", no_repeat_ngram=0)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        trained = gen.model(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model)
        result_model_logits = PeftModel.from_pretrained(base, result.adapter)(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model)(input_ids=ids).logits
    assert torch.allclose(trained, result_model_logits, atol=1e-5)
    assert not torch.allclose(trained, plain, atol=1e-4)  # the adapter changed the model


def test_adapter_on_another_base_model_is_refused(tiny_model, other_tiny_model, chat_data, tmp_path):
    result = train_adapter(chat_data, tmp_path / "run", config(tiny_model, max_steps=2))
    check_base(result.adapter, tiny_model)  # its own base: fine
    with pytest.raises(ModelMismatchError, match="trained on"):
        check_base(result.adapter, other_tiny_model)


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tiny_model, chat_data, tmp_path):
    calls = {"n": 0}

    def stop_after_five():
        calls["n"] += 1
        return calls["n"] >= 5

    first = train_adapter(chat_data, tmp_path / "run", config(tiny_model), should_stop=stop_after_five)
    assert first.cancelled and first.adapter is None and not (tmp_path / "run" / "adapter").exists()
    assert first.metrics["steps"] == 5
    second = train_adapter(chat_data, tmp_path / "run", config(tiny_model))
    assert second.resumed_from and Path(second.resumed_from).name.startswith("checkpoint-")
    resumed_at = int(Path(second.resumed_from).name.split("-")[1])
    steps = [r["step"] for r in second.log if "loss" in r]
    assert steps == sorted(steps) and steps[-1] > 5 and steps[0] <= resumed_at  # continued, history kept
    assert second.metrics["steps"] == 12 and second.adapter is not None
    logged = (tmp_path / "run" / "training_log.csv").read_text().splitlines()[1:]
    assert int(logged[0].split(",")[0]) <= resumed_at  # the log file holds the steps before the interruption too


def test_data_without_a_train_split_says_so(tiny_model, tmp_path):
    records = chat_records(5)
    for r in records:
        r["split"] = "test"
    data = write_jsonl(tmp_path / "test_only.jsonl", records)
    with pytest.raises(TrainingDataError, match=r"no records in the train split \(test 5\)"):
        train_adapter(data, tmp_path / "run", config(tiny_model, max_steps=2))


def test_the_same_finished_run_twice_is_refused_and_its_adapter_kept(tiny_model, chat_data, tmp_path, monkeypatch):
    first = train_adapter(chat_data, tmp_path / "run", config(tiny_model, max_steps=2))
    before = (tmp_path / "run" / "adapter" / "adapter_model.safetensors").read_bytes()
    from ragtune.tune import train as train_module

    loads = []
    original = train_module._load_model
    monkeypatch.setattr(train_module, "_load_model", lambda *a, **kw: loads.append(a) or original(*a, **kw))
    with pytest.raises(ConfigError, match="already holds a finished run"):
        train_adapter(chat_data, tmp_path / "run", config(tiny_model, max_steps=2))
    assert not loads  # refused before the model is loaded
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").read_bytes() == before
    assert first.metrics["steps"] == 2
    again = train_adapter(chat_data, tmp_path / "run", config(tiny_model, max_steps=2), resume=False)
    assert again.metrics["steps"] == 2 and again.log[0]["step"] == 1


def test_resuming_with_other_data_is_refused_unless_fresh(tiny_model, chat_data, tmp_path):
    train_adapter(chat_data, tmp_path / "run", config(tiny_model, max_steps=4))
    other = write_jsonl(tmp_path / "other.jsonl", chat_records(30))
    with pytest.raises(ConfigError, match="other data"):
        train_adapter(other, tmp_path / "run", config(tiny_model, max_steps=8))
    fresh = train_adapter(other, tmp_path / "run", config(tiny_model, max_steps=4), resume=False)
    assert fresh.log[0]["step"] == 1


def test_a_failed_save_leaves_the_previous_adapter_in_place(tiny_model, chat_data, tmp_path, monkeypatch):
    first = train_adapter(chat_data, tmp_path / "run", config(tiny_model, max_steps=4))
    before = (tmp_path / "run" / "adapter" / "adapter_model.safetensors").read_bytes()
    import ragtune.tune.train as train_mod

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(train_mod, "publish_dir", crash)
    with pytest.raises(OSError):
        train_adapter(chat_data, tmp_path / "run", config(tiny_model, max_steps=8), resume=False)
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").read_bytes() == before
    assert json.loads((tmp_path / "run" / "adapter" / META_FILE).read_text())["metrics"]["steps"] == 4
    assert first.adapter


def test_early_stopping_ends_a_run_whose_validation_loss_stops_improving(tiny_model, chat_data, tmp_path):
    result = train_adapter(chat_data, tmp_path / "run",
                           config(tiny_model, max_steps=200, learning_rate=0.3, early_stopping_patience=1,
                                  eval_steps=2, save_steps=2))
    assert result.metrics["stopped_early"] and result.metrics["steps"] < 200


def test_a_run_out_of_time_scores_and_keeps_its_last_steps(tiny_model, chat_data, tmp_path):
    # A budget of a few microseconds ends the run at its first step, long before the first scheduled validation.
    result = train_adapter(chat_data, tmp_path / "run",
                           config(tiny_model, max_minutes=1e-7, eval_steps=10, save_steps=10,
                                  early_stopping_patience=5, select_by="answer_accuracy"))
    assert result.metrics["out_of_time"] and result.metrics["steps"] == 1
    # That step was validated and saved, so it is the kept checkpoint instead of an unscored leftover.
    assert [r["step"] for r in result.log if "eval_answer_accuracy" in r] == [1]
    assert result.metrics["best_answer_accuracy"] is not None


def test_answer_accuracy_counts_only_answer_tokens_shifted_by_one():
    import numpy as np
    from transformers import EvalPrediction

    from ragtune.tune.train import answer_accuracy

    labels = np.array([[-100, -100, 7, 8, 9], [-100, 5, 6, -100, -100]])
    # predictions at t are for token t+1: row 0 gets 7 and 9 right (8 wrong), row 1 gets 5 right, 6 wrong
    preds = np.array([[0, 7, 1, 9, 0], [5, 0, 2, 3, 3]])
    assert answer_accuracy(EvalPrediction(predictions=preds, label_ids=labels)) == {"answer_accuracy": 0.6}


def test_the_checkpoint_can_be_selected_by_validation_answer_accuracy(tiny_model, chat_data, tmp_path):
    result = train_adapter(chat_data, tmp_path / "run",
                           config(tiny_model, select_by="answer_accuracy", early_stopping_patience=5))
    accuracies = {r["step"]: r["eval_answer_accuracy"] for r in result.log if "eval_answer_accuracy" in r}
    assert set(accuracies) == {4, 8, 12}
    assert result.metrics["selected_by"] == "answer_accuracy"
    assert result.metrics["best_answer_accuracy"] == max(accuracies.values())
    assert "eval_answer_accuracy" in (tmp_path / "run" / "training_log.csv").read_text().splitlines()[0]


def test_dora_and_gradient_checkpointing_train(tiny_model, chat_data, tmp_path):
    result = train_adapter(chat_data, tmp_path / "run",
                           config(tiny_model, max_steps=2, use_dora=True, gradient_checkpointing=True))
    cfg = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert cfg["use_dora"] is True and result.metrics["steps"] == 2


def test_unknown_target_module_is_a_clear_error(tiny_model, chat_data, tmp_path):
    with pytest.raises(ConfigError, match="not linear layers"):
        train_adapter(chat_data, tmp_path / "run", config(tiny_model, target_modules=["c_attn"]))


def test_bad_data_trains_nothing(tiny_model, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", chat_records(4) + ["{oops"])
    with pytest.raises(TrainingDataError, match="bad.jsonl:5"):
        train_adapter(bad, tmp_path / "run", config(tiny_model))
    assert not (tmp_path / "run").exists()


def test_cpu_refuses_qlora_and_bf16_with_the_reason():
    with pytest.raises(ConfigError, match="CUDA"):
        choose_mode(TrainConfig(quantization="4bit"), cuda=False, bf16_ok=False)
    with pytest.raises(ConfigError, match="CUDA"):
        choose_mode(TrainConfig(precision="bf16"), cuda=False, bf16_ok=False)
    assert choose_mode(TrainConfig(), cuda=True, bf16_ok=True)[0] == "bf16-lora-cuda"
    assert choose_mode(TrainConfig(quantization="4bit"), cuda=True, bf16_ok=False)[0] == "qlora-4bit-fp16"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs CUDA")
def test_qlora_and_bf16_train_on_cuda(tiny_model, chat_data, tmp_path):
    pytest.importorskip("bitsandbytes")
    result = train_adapter(chat_data, tmp_path / "run", config(tiny_model, max_steps=2, quantization="4bit"))
    assert result.mode.startswith("qlora-4bit") and result.adapter
    bf16 = train_adapter(chat_data, tmp_path / "run2", config(tiny_model, max_steps=2, precision="bf16"))
    assert bf16.mode == "bf16-lora-cuda"


def test_answer_f1_selection_generates_logs_and_keeps_the_best_checkpoint(tiny_model, chat_data, tmp_path):
    from safetensors.torch import load_file

    result = train_adapter(chat_data, tmp_path / "run",
                           config(tiny_model, select_by="answer_f1", early_stopping_patience=5, f1_questions=3,
                                  f1_max_new_tokens=8))
    f1 = {r["step"]: r["eval_answer_f1"] for r in result.log if "eval_answer_f1" in r}
    assert set(f1) == {4, 8, 12} and all(0.0 <= v <= 1.0 for v in f1.values())
    assert all(r["eval_answer_f1_seconds"] > 0 for r in result.log if "eval_answer_f1" in r)
    assert result.metrics["selected_by"] == "answer_f1"
    assert result.metrics["best_answer_f1"] == max(f1.values())
    # Ties keep the earliest: transformers replaces the best only on a strictly greater figure.
    assert result.metrics["best_step"] == min(s for s, v in f1.items() if v == max(f1.values()))
    header = (tmp_path / "run" / "training_log.csv").read_text().splitlines()[0]
    assert "eval_answer_f1" in header.split(",")
    kept = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    best = load_file(tmp_path / "run" / "checkpoints" / f"checkpoint-{result.metrics['best_step']}"
                     / "adapter_model.safetensors")
    assert kept.keys() == best.keys() and all((kept[k] == best[k]).all() for k in kept)


def test_the_kept_checkpoint_is_the_one_whose_generated_answers_score_best(tiny_model, chat_data, tmp_path,
                                                                            monkeypatch):
    # Real training and real generation; the scores are replaced by a script so that the best evaluation is the
    # middle one (step 4), neither the first nor the last, whatever the tiny model happens to answer.
    from safetensors.torch import load_file

    script_answer_f1(monkeypatch, [0.2, 0.7, 0.1])
    result = train_adapter(chat_data, tmp_path / "run",
                           config(tiny_model, max_steps=6, eval_steps=2, save_steps=2, select_by="answer_f1",
                                  early_stopping_patience=5, f1_questions=2, f1_max_new_tokens=4))
    assert [r["eval_answer_f1"] for r in result.log if "eval_answer_f1" in r] == [0.2, 0.7, 0.1]
    assert result.metrics["best_step"] == 4 and result.metrics["best_answer_f1"] == 0.7
    kept = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    last = load_file(tmp_path / "run" / "checkpoints" / "checkpoint-6" / "adapter_model.safetensors")
    best = load_file(tmp_path / "run" / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors")
    assert all((kept[k] == best[k]).all() for k in kept) and not all((kept[k] == last[k]).all() for k in kept)


def test_answer_f1_is_generated_with_the_model_back_in_training_mode_afterwards(tiny_model):
    from transformers import AutoModelForCausalLM

    from ragtune.tune.data import Record
    from ragtune.tune.evaluate import validation_answer_f1
    from ragtune.tune.train import _tokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    model.config.use_cache = False
    model.train()
    records = [Record(messages=r["messages"]) for r in chat_records(4, split=False)]
    figures = validation_answer_f1(model, _tokenizer(tiny_model), records, max_new_tokens=4)
    assert 0.0 <= figures["answer_f1"] <= 1.0 and figures["abstain_unanswerable"] is None
    assert model.training and model.config.use_cache is False
    assert isinstance(figures["answer_f1_seconds"], float)


def test_out_that_is_a_file_is_refused(tiny_model, chat_data, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        train_adapter(chat_data, tmp_path / "afile", config(tiny_model, max_steps=2))
    assert (tmp_path / "afile").read_text() == "x"


def test_a_bad_config_value_is_a_config_error_naming_the_field_however_it_is_built(tmp_path):
    with pytest.raises(ConfigError, match="rank"):
        TrainConfig(rank=0)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rank: 0\n")
    with pytest.raises(ConfigError, match=r"training config .*c\.yaml: rank"):
        TrainConfig.from_file(cfg)


def test_the_config_may_be_a_dict_of_its_fields_and_anything_else_is_refused(tmp_path, chat_data):
    with pytest.raises(ConfigError, match="training config: .*max_step"):
        train_adapter(chat_data, tmp_path / "run", {"max_step": 1})  # a typo: refused before any loading
    with pytest.raises(ConfigError, match="config must be a TrainConfig or a dict of its fields, got list"):
        train_adapter(chat_data, tmp_path / "run", [("max_steps", 1)])


def test_a_run_folder_is_taken_for_its_adapter(tmp_path):
    from ragtune.errors import ModelLoadError
    from ragtune.rag.generators.adapters import check_adapter_dir

    adapter = tmp_path / "run" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"x")
    assert check_adapter_dir(tmp_path / "run") == adapter
    assert check_adapter_dir(adapter) == adapter
    with pytest.raises(ModelLoadError, match="is not a LoRA adapter folder"):
        check_adapter_dir(tmp_path)
