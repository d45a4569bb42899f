"""Training data formats, validation with file:line, and loss masking on answer tokens only."""

from __future__ import annotations

import json

import pytest

from _tiny import build_tokenizer, write_jsonl
from ragtune.errors import TrainingDataError
from ragtune.tune.data import IGNORE, Record, encode_record, load_records, show_example, split_records


def test_every_format_is_normalised_to_messages_or_text(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        {"instruction": "Translate", "input": "chat", "output": "cat"},
        {"text": "Plain text for continued pre-training."},
    ])
    records = load_records(path)
    assert records[0].messages == records[1].messages == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert records[2].messages == [{"role": "user", "content": "Translate\n\nchat"},
                                   {"role": "assistant", "content": "cat"}]
    assert records[3].text.startswith("Plain text") and records[3].messages is None


def test_plain_text_file_is_split_into_blocks(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("First paragraph.\n\nSecond paragraph.\n")
    assert [r.text for r in load_records(path)] == ["First paragraph.", "Second paragraph."]


@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"messages": [{"role": "user", "content": "no answer"}]}), "no assistant turn"),
    (json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}), "role"),
    (json.dumps({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]}), "non-empty"),
    (json.dumps({"instruction": "do it", "output": ""}), "'output'"),
    (json.dumps({"conversations": [{"from": "alien", "value": "x"}]}), "from"),
    (json.dumps({"text": 5}), "'text'"),
    (json.dumps({"question": "?"}), "unknown format"),
    (json.dumps({"text": "ok", "split": "dev"}), "split"),
    (json.dumps([1, 2]), "JSON object"),
    (json.dumps("not valid JSON"), "expected a JSON object, got str"),  # a string line is a record, not an error
])
def test_bad_record_is_reported_with_file_and_line(tmp_path, bad, message):
    good = json.dumps({"text": "fine"})
    path = write_jsonl(tmp_path / "data.jsonl", [good, good, bad])
    with pytest.raises(TrainingDataError) as err:
        load_records(path)
    assert f"{path}:3:" in str(err.value) and message in str(err.value)
    assert "nothing was trained" in str(err.value)


def test_all_bad_records_are_listed_at_once(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", ["{bad", json.dumps({"text": "fine"}), "{also bad"])
    with pytest.raises(TrainingDataError) as err:
        load_records(path)
    assert "2 bad record(s)" in str(err.value) and f"{path}:1:" in str(err.value) and f"{path}:3:" in str(err.value)


def test_missing_and_empty_files_are_clear_errors(tmp_path):
    with pytest.raises(TrainingDataError, match="does not exist"):
        load_records(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TrainingDataError, match="no records"):
        load_records(tmp_path / "empty.jsonl")


def test_only_assistant_tokens_carry_labels():
    tok = build_tokenizer()
    record = Record(messages=[{"role": "system", "content": "Answer from the sources."},
                              {"role": "user", "content": "What does LoRA train?"},
                              {"role": "assistant", "content": "two small matrices [1]"}])
    ids, labels = encode_record(tok, record, 512)
    trained = [i for i, lab in zip(ids, labels) if lab != IGNORE]
    assert tok.decode(trained) == "two small matrices [1]<|im_end|>\n"
    assert all(lab in (IGNORE, i) for i, lab in zip(ids, labels))
    prompt = tok.apply_chat_template(record.messages[:-1], tokenize=False, add_generation_prompt=True)
    assert tok.decode(ids[: len(ids) - len(trained)]) == prompt


def test_every_assistant_turn_of_a_conversation_is_trained():
    tok = build_tokenizer()
    record = Record(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "first"},
                              {"role": "user", "content": "b"}, {"role": "assistant", "content": "second"}])
    ids, labels = encode_record(tok, record, 512)
    text = tok.decode([i for i, lab in zip(ids, labels) if lab != IGNORE])
    assert "first" in text and "second" in text and "user" not in text


def test_plain_text_is_trained_on_every_token_and_cut_to_max_length():
    tok = build_tokenizer()
    ids, labels = encode_record(tok, Record(text="LoRA trains two small matrices. " * 20), 16)
    assert len(ids) == 16 and labels == ids


def test_show_example_marks_the_trained_span():
    tok = build_tokenizer()
    record = Record(messages=[{"role": "user", "content": "Question?"}, {"role": "assistant", "content": "Paris"}])
    shown = show_example(tok, record, 512)
    assert "[[Paris<|im_end|>\n]]" in shown and "Question?" in shown.split("[[")[0]
    assert "with loss" in shown


def test_split_uses_the_records_own_splits_when_present():
    records = [Record(text="a", split="train"), Record(text="b", split="test"), Record(text="c", split="validation")]
    groups = split_records(records)
    assert [r.text for r in groups["train"]] == ["a"] and [r.text for r in groups["test"]] == ["b"]


def test_a_mix_of_records_with_and_without_a_split_is_refused():
    # Hash-splitting everything would train on the records labelled "test".
    records = [Record(text="a", split="test", where="d.jsonl:1"), Record(text="b", where="d.jsonl:2")]
    with pytest.raises(TrainingDataError, match=r"1 of 2 records have a 'split'.*d\.jsonl:2"):
        split_records(records)


def test_split_without_labels_is_stable_and_holds_out_some_records():
    records = [Record(text=f"record {i}") for i in range(200)]
    first, again = split_records(records, 0.1), split_records(records + [Record(text="new")], 0.1)
    assert 5 < len(first["validation"]) < 40
    assert {r.text for r in first["validation"]} <= {r.text for r in again["validation"]}


def test_a_byte_order_mark_is_not_data_and_another_encoding_names_its_line(tmp_path):
    bom = "\ufeff"
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(bom + json.dumps({"instruction": "Hi", "output": "Hello"}) + "\n", encoding="utf-8")
    assert load_records(jsonl)[0].messages[0]["content"] == "Hi"
    text = tmp_path / "d.txt"
    text.write_text(bom + "LoRA trains small matrices.\n\nQLoRA quantises the base.", encoding="utf-8")
    assert [r.text for r in load_records(text)] == ["LoRA trains small matrices.", "QLoRA quantises the base."]
    latin = tmp_path / "l.jsonl"
    latin.write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "caf\xe9", "output": "b"}\n')
    with pytest.raises(TrainingDataError, match=r"l\.jsonl: not UTF-8 text \(byte 0xe9 on line 2\): save the file as UTF-8"):
        load_records(latin)


def test_openai_content_parts_and_sharegpt_turns_under_messages_are_read(tmp_path):
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "LoRA?"}]},
                          {"role": "assistant", "content": "A low-rank update."}]}
    sharegpt = {"messages": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                          {"role": "assistant", "content": "A cat."}]}
    good = write_jsonl(tmp_path / "good.jsonl", [parts, sharegpt])
    first, second = load_records(good)
    assert first.messages[0]["content"] == "What is LoRA?"
    assert [m["role"] for m in second.messages] == ["user", "assistant"]
    with pytest.raises(TrainingDataError, match=r"bad\.jsonl:1: messages\[0\]\.content must be a non-empty string"):
        load_records(write_jsonl(tmp_path / "bad.jsonl", [image]))
