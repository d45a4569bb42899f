"""`ragtune tune ...`: help, one-line errors, the JSON result, and --show-example."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from _tiny import chat_records, write_jsonl
from ragtune.cli import main


def test_tune_group_lists_its_verbs(capsys):
    main(["tune"])
    out = capsys.readouterr().out
    for verb in ("data", "run", "eval", "merge"):
        assert verb in out


def test_bad_data_is_one_line_error_without_traceback(tmp_path, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{oops"])
    code = main(["tune", "run", "--data", str(bad), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.jsonl:1" in err and "Traceback" not in err


def test_bad_config_value_names_the_field(tmp_path, capsys, chat_data):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("rank: 0\nlearning_rat: 0.1\n")
    code = main(["tune", "run", "--data", str(chat_data), "--out", str(tmp_path / "run"), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2 and "rank" in err and "learning_rat" in err


def test_run_prints_json_result(tiny_model, chat_data, tmp_path, capsys):
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"eval_steps": 2, "save_steps": 2, "early_stopping_patience": None}))
    code = main(["tune", "run", "--data", str(chat_data), "--out", str(tmp_path / "run"), "--base-model",
                 str(tiny_model), "--max-steps", "2", "--config", str(cfg), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["metrics"]["steps"] == 2 and result["adapter"].endswith("adapter")


def _run_four_steps(config_yaml: str, tiny_model, chat_data, tmp_path, capsys):
    """``tune run`` for 4 steps, validating every 2, with ``config_yaml`` added: (exit code, printed output)."""
    cfg = tmp_path / "train.yaml"
    cfg.write_text("eval_steps: 2\nsave_steps: 2\n" + config_yaml)
    code = main(["tune", "run", "--data", str(chat_data), "--out", str(tmp_path / "run"), "--base-model",
                 str(tiny_model), "--max-steps", "4", "--config", str(cfg)])
    return code, capsys.readouterr()


def test_run_summary_names_how_the_kept_checkpoint_was_chosen(tiny_model, chat_data, tmp_path, capsys):
    code, printed = _run_four_steps("select_by: answer_accuracy\n", tiny_model, chat_data, tmp_path, capsys)
    assert code == 0 and re.search(r"kept checkpoint \(step [24]\): validation answer accuracy 0\.", printed.out)
    assert "eval_answer_accuracy=" in printed.err  # the progress line of each evaluation


def test_run_summary_and_progress_show_the_generated_answer_f1(tiny_model, chat_data, tmp_path, capsys):
    code, printed = _run_four_steps("select_by: answer_f1\nf1_questions: 2\nf1_max_new_tokens: 4\n", tiny_model,
                                    chat_data, tmp_path, capsys)
    assert code == 0 and re.search(r"kept checkpoint \(step [24]\): validation answer F1 [01]", printed.out)
    assert printed.err.count("eval_answer_f1=") == 2  # one progress line per evaluation (steps 2 and 4)


def test_show_example_prints_the_masked_answer(tiny_model, tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", chat_records(2))
    assert main(["tune", "data", "--out", str(data), "--show-example", "--model", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert "[[two small matrices [1]<|im_end|>" in out and "with loss" in out


def test_help_does_not_import_torch():
    code = "import sys; from ragtune.cli import main\ntry:\n main(['tune','run','--help'])\nexcept SystemExit: pass\n" \
           "print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False")


def test_eval_of_plain_chat_data_writes_every_answer(tiny_model, chat_data, tmp_path, capsys):
    # `tune eval` on the user's own chat data, with the default "also without retrieval" rows: such records have
    # no sources to take out (this used to stop with KeyError 'question'), so only the +rag rows are scored.
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"eval_steps": 2, "save_steps": 2, "early_stopping_patience": None}))
    assert main(["tune", "run", "--data", str(chat_data), "--out", str(tmp_path / "run"), "--base-model",
                 str(tiny_model), "--max-steps", "2", "--config", str(cfg)]) == 0
    records = chat_records(5)
    for r in records:
        r["split"] = "test"
    data = write_jsonl(tmp_path / "test.jsonl", records)
    capsys.readouterr()
    code = main(["tune", "eval", "--adapter", str(tmp_path / "run" / "adapter"), "--data", str(data),
                 "--answers", str(tmp_path / "answers.jsonl"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["answers"] == str(tmp_path / "answers.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert sorted({r["config"] for r in rows}) == ["adapter+rag", "base+rag"] and len(rows) == 10
    assert report["test_split"]["adapter+rag"]["answerable"] == 5 and report["test_split"]["adapter"]["answerable"] == 0


def test_eval_on_data_without_a_test_split_says_why_its_rows_are_empty(tiny_model, chat_data, tmp_path, capsys):
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"eval_steps": 2, "save_steps": 2, "early_stopping_patience": None}))
    assert main(["tune", "run", "--data", str(chat_data), "--out", str(tmp_path / "run"), "--base-model",
                 str(tiny_model), "--max-steps", "2", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["tune", "eval", "--adapter", str(tmp_path / "run" / "adapter"), "--data", str(chat_data)]) == 0
    err = capsys.readouterr().err
    assert "has no test split" in err
