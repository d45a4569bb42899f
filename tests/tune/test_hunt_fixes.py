"""What a user's-eye hunt found in `tune data/run/merge`: nothing of the user's is deleted or overwritten, a run
folder is taken for its adapter, chats without a user turn are refused, long plain text is kept whole, config
values are finite and in range, a diverged adapter is not published, the base model is found from anywhere, and
the kept checkpoint is the best validated one."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from _tiny import chat_records, script_answer_f1, write_jsonl
from ragtune.cli import main
from ragtune.errors import ConfigError, ModelMismatchError, TrainingDataError
from ragtune.tune.artifacts import META_FILE
from ragtune.tune.config import TrainConfig
from ragtune.tune.train import train_adapter

FAST = dict(max_steps=2, eval_steps=2, save_steps=2, batch_size=4, learning_rate=1e-2, logging_steps=1,
            early_stopping_patience=None, warmup_ratio=0.0)


def config(model, **kw) -> TrainConfig:
    return TrainConfig(base_model=str(model), **{**FAST, **kw})


def _no_model_load(monkeypatch) -> list:
    """Records every model load of train_adapter: a refusal must come before it."""
    from ragtune.tune import train as train_module

    loads: list = []
    original = train_module._load_model
    monkeypatch.setattr(train_module, "_load_model", lambda *a, **kw: loads.append(a) or original(*a, **kw))
    return loads


# ------------------------------------------------------------------------ the user's files are never lost
def test_user_files_in_the_checkpoints_folder_are_refused_not_deleted(tiny_model, chat_data, tmp_path):
    ckpt = tmp_path / "run" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"checkpoints holds notes\.txt, which `ragtune tune run` did not write"):
        train_adapter(chat_data, tmp_path / "run", config(tiny_model))
    assert (ckpt / "notes.txt").read_text() == "mine"
    (ckpt / "notes.txt").unlink()
    train_adapter(chat_data, tmp_path / "run", config(tiny_model))
    (ckpt / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):  # --fresh over a finished run: the same
        train_adapter(chat_data, tmp_path / "run", config(tiny_model), resume=False)
    assert (ckpt / "notes.txt").read_text() == "mine" and (ckpt / "checkpoint-2").is_dir()


def test_fresh_removes_only_the_runs_own_checkpoints(tiny_model, chat_data, tmp_path):
    train_adapter(chat_data, tmp_path / "run", config(tiny_model, max_steps=4))
    again = train_adapter(chat_data, tmp_path / "run", config(tiny_model), resume=False)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert again.metrics["steps"] == 2 and names == ["checkpoint-2", "finished.json", "run.json"]


def test_an_adapter_folder_ragtune_did_not_write_is_refused_before_training(tiny_model, chat_data, tmp_path,
                                                                             monkeypatch):
    loads = _no_model_load(monkeypatch)
    theirs = tmp_path / "run" / "adapter"
    theirs.mkdir(parents=True)
    (theirs / "weights.bin").write_text("precious")
    with pytest.raises(ConfigError, match=r"adapter exists and is not an adapter written by `ragtune tune run`"):
        train_adapter(chat_data, tmp_path / "run", config(tiny_model))
    assert not loads and (theirs / "weights.bin").read_text() == "precious"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["adapter"]  # nothing else written


def test_out_that_is_an_adapter_folder_is_refused(tiny_model, chat_data, tmp_path, monkeypatch):
    loads = _no_model_load(monkeypatch)
    adapter = tmp_path / "r1" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    with pytest.raises(ConfigError, match=r"is an adapter folder .*--out .*r1 if this is a run's adapter"):
        train_adapter(chat_data, adapter, config(tiny_model))
    assert not loads and sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json"]


def test_logs_in_a_folder_ragtune_did_not_create_are_not_overwritten(tiny_model, chat_data, tmp_path, monkeypatch):
    loads = _no_model_load(monkeypatch)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "metrics.json").write_text('{"mine": 1}')
    with pytest.raises(ConfigError, match=r"holds metrics\.json but no ragtune run"):
        train_adapter(chat_data, tmp_path / "results", config(tiny_model))
    assert not loads and (tmp_path / "results" / "metrics.json").read_text() == '{"mine": 1}'


def test_out_paths_under_a_file_are_one_line_errors(tiny_model, chat_data, tmp_path, capsys, monkeypatch, hash_index):
    (tmp_path / "afile").write_text("x")
    code = main(["tune", "run", "--data", str(chat_data), "--out", str(tmp_path / "afile" / "sub"), "--base-model",
                 str(tiny_model), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "afile is a file, so nothing can be written under it" in err and "Traceback" not in err

    from ragtune.commands import tune as tune_cmd

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lora.md").write_text("# LoRA\n\nLoRA is a method that trains two small matrices.\n")
    index = hash_index()
    index.add([docs])
    monkeypatch.setattr(tune_cmd, "_index", lambda path: index)
    code = main(["tune", "data", "--out", str(docs / "lora.md" / "data.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "lora.md is a file" in err and (docs / "lora.md").read_text().startswith("# LoRA")


# ------------------------------------------------------------------------ a run folder for its adapter
def test_merge_takes_the_run_folder_for_its_adapter(tiny_model, chat_data, tmp_path, capsys):
    from ragtune.tune.export import merge_adapter

    train_adapter(chat_data, tmp_path / "run", config(tiny_model))
    out = merge_adapter(tmp_path / "run", tmp_path / "merged")
    merged = json.loads((out / "ragtune_merged.json").read_text())
    assert merged["adapter"] == str(tmp_path / "run" / "adapter") and merged["adapter_meta"]["config"]["rank"] == 16
    assert main(["tune", "merge", "--adapter", str(tmp_path / "run"), "--out", str(tmp_path / "merged2")]) == 0
    assert (tmp_path / "merged2" / "config.json").is_file()


# ------------------------------------------------------------------------ data
def test_a_conversation_without_a_user_turn_is_refused_with_file_and_line(tmp_path):
    from ragtune.tune.data import load_records

    path = write_jsonl(tmp_path / "chat.jsonl", chat_records(1, split=False) + [
        {"messages": [{"role": "assistant", "content": "hello"}]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "hello"}]},
        {"conversations": [{"from": "gpt", "value": "hi"}, {"from": "human", "value": "q"},
                           {"from": "gpt", "value": "a"}]},
    ])
    with pytest.raises(TrainingDataError) as err:
        load_records(path)
    for line in (2, 3, 4):
        assert re.search(rf"chat\.jsonl:{line}: '(messages|conversations)' has no user turn", str(err.value))
    assert f"{path}:1" not in str(err.value)


def test_long_plain_text_is_split_into_windows_and_counted(tiny_model, tmp_path, capsys):
    from ragtune.tune.data import Record, encode_record
    from ragtune.tune.train import _encode, _tokenizer

    tokenizer = _tokenizer(tiny_model)
    record = Record(text=" ".join(f"word{i}" for i in range(200)))
    full, _ = encode_record(tokenizer, record, 1 << 30)
    examples = _encode(tokenizer, [record], 64, "train")
    assert sum((e["input_ids"] for e in examples.items), []) == full  # nothing cut off
    assert examples.split_text == 1 and examples.too_long == 0 and len(examples) == -(-len(full) // 64)
    assert all(len(e["input_ids"]) <= 64 and e["labels"] == e["input_ids"] for e in examples.items)

    text = tmp_path / "notes.txt"
    text.write_text(record.text + "\n")
    code = main(["tune", "run", "--data", str(text), "--out", str(tmp_path / "run"), "--base-model", str(tiny_model),
                 "--max-steps", "1", "--max-length", "64"])
    printed = capsys.readouterr()
    assert code == 0 and "1 plain-text training record(s) longer than max_length=64 tokens were split" in printed.err
    assert "no validation set: the last checkpoint is kept" in printed.out


# ------------------------------------------------------------------------ config values, diverged runs
@pytest.mark.parametrize("line, field", [
    ("weight_decay: .inf", "weight_decay"), ("epochs: .inf", "epochs"), ("seed: -1", "seed"),
    ("rank: true", "rank"), ("learning_rate: .nan", "learning_rate"), ("max_minutes: .inf", "max_minutes"),
    ("dropout: false", "dropout"), ("epochs: 1.0e+9", "epochs"),
])
def test_config_values_must_be_finite_numbers_in_range(tmp_path, line, field):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(line + "\n")
    with pytest.raises(ConfigError, match=rf"train\.yaml: {field}: "):
        TrainConfig.from_file(cfg)


def test_a_diverged_adapter_is_not_published_and_the_previous_one_is_kept(tiny_model, chat_data, tmp_path,
                                                                        monkeypatch):
    train_adapter(chat_data, tmp_path / "run", config(tiny_model))
    before = (tmp_path / "run" / "adapter" / "adapter_model.safetensors").read_bytes()
    from ragtune.tune import train as train_module

    original = train_module._add_lora

    def poisoned(*args, **kwargs):  # as if a learning rate far too high had blown the weights up
        model, trainable, total = original(*args, **kwargs)
        next(p for name, p in model.named_parameters() if "lora_B" in name).data.fill_(float("nan"))
        return model, trainable, total

    monkeypatch.setattr(train_module, "_add_lora", poisoned)
    with pytest.raises(ConfigError, match="training diverged: .*Lower the learning rate"):
        train_adapter(chat_data, tmp_path / "run", config(tiny_model), resume=False)
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").read_bytes() == before


# ------------------------------------------------------------------------ the base model, from anywhere
def test_the_adapter_records_the_absolute_base_path_found_from_another_folder(tiny_model, chat_data, tmp_path,
                                                                              monkeypatch):
    from ragtune.tune.export import base_model_dir

    monkeypatch.chdir(tiny_model.parent)
    result = train_adapter(chat_data, tmp_path / "run", config(tiny_model.name))  # a relative --base-model
    meta = json.loads((tmp_path / "run" / "adapter" / META_FILE).read_text())
    assert meta["base_model"]["path"] == str(tiny_model.resolve())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert base_model_dir(result.adapter) == tiny_model.resolve()


def test_a_moved_base_says_which_model_was_tried_and_how_to_point_at_it(tiny_model, other_tiny_model, chat_data,
                                                                        tmp_path, monkeypatch, capsys):
    from ragtune.rag.generators import models
    from ragtune.tune.export import base_model_dir

    base = shutil.copytree(tiny_model, tmp_path / "base")
    train_adapter(chat_data, tmp_path / "run", config(base))
    moved = base.rename(tmp_path / "moved")
    monkeypatch.setattr(models, "default_model_dir", lambda: other_tiny_model)  # the shipped model, as a stand-in
    with pytest.raises(ModelMismatchError) as err:
        base_model_dir(tmp_path / "run")
    message = str(err.value)
    assert "the base model given" not in message
    assert f"no base model was given and its recorded base {base} is not found" in message
    assert f"so the shipped model {other_tiny_model} was tried" in message and "--base-model DIR" in message
    assert main(["tune", "merge", "--adapter", str(tmp_path / "run"), "--out", str(tmp_path / "merged"),
                 "--base-model", str(moved)]) == 0
    code = main(["tune", "eval", "--adapter", str(tmp_path / "run"), "--data", str(chat_data), "--limit", "1"])
    assert code == 1 and "no base model was given" in capsys.readouterr().err
    from ragtune.tune.evaluate import evaluate_adapter  # the Python API says the same, not "the base model given"

    with pytest.raises(ModelMismatchError, match="no base model was given"):
        evaluate_adapter(tmp_path / "run", data=chat_data, limit=1)


# ------------------------------------------------------------------------ the kept checkpoint
def test_without_early_stopping_the_best_validated_checkpoint_is_kept(tiny_model, chat_data, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    script_answer_f1(monkeypatch, [0.2, 0.7, 0.1])  # the best evaluation is the middle one (step 4)
    result = train_adapter(chat_data, tmp_path / "run",
                           config(tiny_model, max_steps=6, select_by="answer_f1", f1_questions=2, f1_max_new_tokens=4))
    assert result.metrics["best_step"] == 4 and result.metrics["kept"] == "best"
    kept = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    best = load_file(tmp_path / "run" / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors")
    assert all((kept[k] == best[k]).all() for k in kept)


def test_run_summary_reports_the_kept_checkpoints_validation_loss(tiny_model, chat_data, tmp_path, capsys):
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"eval_steps": 2, "save_steps": 2, "early_stopping_patience": None}))
    code = main(["tune", "run", "--data", str(chat_data), "--out", str(tmp_path / "run"), "--base-model",
                 str(tiny_model), "--max-steps", "4", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert code == 0 and re.search(r"kept checkpoint \(step [24]\): validation loss \d", out) and "None" not in out


# ------------------------------------------------------------------------ `tune data` messages
def test_show_example_json_is_one_json_object(tiny_model, tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", chat_records(6))
    assert main(["tune", "data", "--out", str(data), "--show-example", "--json", "--model", str(tiny_model)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert "[[two small matrices [1]<|im_end|>" in shown["example"] and shown["records"] == 6
    assert shown["splits"] == {"train": 5, "validation": 1} and 0 < shown["trained_tokens"] < shown["tokens"]


def test_show_example_on_a_bad_file_does_not_speak_of_training(tmp_path, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{oops"])
    assert main(["tune", "data", "--out", str(bad), "--show-example"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1" in err and "trained" not in err


@pytest.mark.parametrize("kwargs, expected, other", [
    ({"sources_per_example": (3, 2)}, r"--sources MIN \(3\) must not be more than MAX \(2\)", "abstain"),
    ({"sources_per_example": (0, 2)}, r"--sources MIN must be at least 1", "abstain"),
    ({"abstain_share": 1.0}, r"abstain_share \(--abstain-share\) .* below 1, got 1\.0", "sources"),
])
def test_sources_and_abstain_share_errors_name_the_flag_and_the_one_problem(hash_index, tmp_path, kwargs, expected,
                                                                            other):
    from ragtune.tune.synth import build_training_data

    with pytest.raises(ConfigError, match=expected) as err:
        build_training_data(hash_index(), tmp_path / "data.jsonl", **kwargs)
    assert other not in str(err.value)


def test_an_empty_split_is_said_plainly(monkeypatch, tmp_path, capsys):
    from ragtune.commands import tune as tune_cmd
    from ragtune.tune import synth

    def fake_build(index, out, **kw):  # --test-share 0: no test documents, so no test records
        return synth.DataReport(out=str(out), records={"train": 8, "validation": 2}, abstain={}, kinds={},
                                sources={"train": ["a.md", "b.md"], "validation": ["c.md"]}, chunks=3,
                                chunks_without_questions=0)

    monkeypatch.setattr(synth, "build_training_data", fake_build)
    monkeypatch.setattr(tune_cmd, "_index", lambda path: object())
    assert main(["tune", "data", "--out", str(tmp_path / "d.jsonl"), "--test-share", "0"]) == 0
    printed = capsys.readouterr()
    assert "test documents: (none)" in printed.out
    assert "note: the test split is empty: no documents went to it (--test-share 0)" in printed.err


def test_a_bad_qa_line_is_named_by_its_line_in_the_file(tmp_path):
    from ragtune.errors import DatasetError
    from ragtune.tune.evaluate import _qa_items

    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"question": "a?", "answer": "x"}\n\n{"question": oops}\n')
    with pytest.raises(DatasetError, match=r"qa\.jsonl:3: not valid JSON"):
        _qa_items(bad, None)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"question": "a?"}\n{"question": "caf\xe9?"}\n')
    with pytest.raises(DatasetError, match=r"latin\.jsonl:2: not UTF-8"):
        _qa_items(latin, None)
    shape = tmp_path / "shape.jsonl"
    shape.write_text('\n["not", "an", "object"]\n')
    with pytest.raises(DatasetError, match=r"shape\.jsonl:2: expected an object"):
        _qa_items(shape, None)
