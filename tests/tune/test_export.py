"""Merging an adapter into a standalone model, and refusing the wrong base model."""

from __future__ import annotations

import json

import pytest

from ragtune.errors import ConfigError, ModelMismatchError
from ragtune.tune.config import TrainConfig
from ragtune.tune.export import greedy, load_with_adapter, merge_adapter
from ragtune.tune.train import train_adapter


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    from _tiny import chat_records, write_jsonl

    d = tmp_path_factory.mktemp("export")
    data = write_jsonl(d / "data.jsonl", chat_records())
    cfg = TrainConfig(base_model=str(tiny_model), max_steps=6, learning_rate=5e-2, early_stopping_patience=None,
                      eval_steps=3, save_steps=3)
    return train_adapter(data, d / "run", cfg).adapter


def test_merged_model_gives_the_same_greedy_output_as_base_plus_adapter(adapter, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = merge_adapter(adapter, tmp_path / "merged")
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not (out / "adapter_config.json").exists()  # a plain model, no peft needed to load it
    model, tok = load_with_adapter(adapter)
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert greedy(merged, AutoTokenizer.from_pretrained(out), max_new_tokens=12) == greedy(model, tok, max_new_tokens=12)
    assert json.loads((out / "ragtune_merged.json").read_text())["adapter"] == str(adapter)


def test_merge_onto_another_base_model_is_refused(adapter, other_tiny_model, tmp_path):
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        merge_adapter(adapter, tmp_path / "merged", base_model=other_tiny_model)
    assert not (tmp_path / "merged").exists()


def test_evaluation_scores_the_adapter_at_other_strengths_in_the_same_run(adapter, tmp_path):
    from _tiny import chat_records, write_jsonl

    from ragtune.tune.evaluate import evaluate_adapter

    records = chat_records(8)
    for i, r in enumerate(records):
        r["split"] = "test" if i < 3 else "validation"
    data = write_jsonl(tmp_path / "eval.jsonl", records)
    report = evaluate_adapter(adapter, data=data, without_retrieval=False, max_new_tokens=6, also_scales=[0, 0.5])
    rows = report["test_split"]
    assert set(rows) == {"base+rag", "adapter+rag", "adapter@0+rag", "adapter@0.5+rag"}
    assert report["adapter_scale"] == 1.0
    ppl = report["validation_perplexity"]
    assert ppl["adapter@0"] == pytest.approx(ppl["base"], rel=1e-4)  # strength 0 is the base model
    assert ppl["adapter"] != pytest.approx(ppl["base"], rel=1e-4)  # the trained adapter is not
    assert rows["adapter@0+rag"] == rows["base+rag"]
    with pytest.raises(Exception, match="also_scales must be a number"):  # refused before any answer
        evaluate_adapter(adapter, data=data, also_scales=[3])
    with pytest.raises(ConfigError, match="limit"):  # -1 would silently drop the last question
        evaluate_adapter(adapter, data=data, limit=-1)


def test_merge_at_a_strength_writes_the_interpolated_weights(adapter, tmp_path):
    from safetensors.torch import load_file

    from ragtune.tune.export import base_model_dir

    base = load_file(str(base_model_dir(adapter) / "model.safetensors"))
    full = load_file(str(merge_adapter(adapter, tmp_path / "full") / "model.safetensors"))
    half_dir = merge_adapter(adapter, tmp_path / "half", scale=0.5)
    half = load_file(str(half_dir / "model.safetensors"))
    changed = [k for k in base if k in full and not (full[k] == base[k]).all()]
    assert changed  # the adapter moved some weights
    for k in changed:  # merging is linear in the strength: halfway between the base and the full merge
        assert (half[k] - (base[k] + full[k]) / 2).abs().max() < 1e-5, k
    assert json.loads((half_dir / "ragtune_merged.json").read_text())["scale"] == 0.5
    with pytest.raises(Exception, match="scale must be a number"):
        merge_adapter(adapter, tmp_path / "bad", scale=-1)
    assert not (tmp_path / "bad").exists()


def test_evaluation_writes_every_answer_and_the_rows_add_up_to_the_report(adapter, tmp_path):
    from _tiny import chat_records, write_jsonl

    from ragtune.tune.evaluate import evaluate_adapter

    records = chat_records(8)
    for i, r in enumerate(records):
        r["split"] = "test" if i < 3 else "validation"
    data = write_jsonl(tmp_path / "eval.jsonl", records)
    out = tmp_path / "answers" / "test.jsonl"
    report = evaluate_adapter(adapter, data=data, max_new_tokens=6, answers=out)
    assert report["answers"] == str(out)
    assert [p.name for p in out.parent.iterdir()] == ["test.jsonl"]  # no temporary file left beside it
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # 3 test questions x (base, adapter), with retrieval only: plain chat records have no sources to take out
    assert len(rows) == 6 and {r["section"] for r in rows} == {"test_split"}
    assert report["test_split"]["base"]["answerable"] == 0
    for label, figures in report["test_split"].items():
        mine = [r for r in rows if r["config"] == label]
        if not label.endswith("+rag"):
            assert mine == []
            continue
        assert len(mine) == 3 and all(r["question"] and isinstance(r["answer"], str) for r in mine)
        f1 = [r["f1"] for r in mine if r["gold"] is not None]
        assert figures["f1"] == pytest.approx(sum(f1) / len(f1), abs=1e-3)
        assert figures["gold_fact_rate"] == pytest.approx(sum(r["gold_fact"] for r in mine if r["gold"]) / len(f1))


def test_merge_into_a_folder_of_something_else_is_refused_and_nothing_is_deleted(adapter, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("my notes")
    with pytest.raises(ConfigError, match="is not a merged model folder"):
        merge_adapter(adapter, docs)
    assert (docs / "notes.md").read_text() == "my notes" and [p.name for p in docs.iterdir()] == ["notes.md"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is not a merged model folder"):
        merge_adapter(adapter, tmp_path / "afile")
    merged = merge_adapter(adapter, tmp_path / "merged")
    assert merge_adapter(adapter, merged, scale=0.5) == merged  # a merged model folder is replaced whole
    assert json.loads((merged / "ragtune_merged.json").read_text())["scale"] == 0.5


def test_a_question_too_long_for_the_model_is_skipped_and_counted_not_fatal(adapter, tmp_path):
    from _tiny import chat_records, write_jsonl

    from ragtune.tune.evaluate import evaluate_adapter

    records = chat_records(4)
    for r in records:
        r["split"] = "test"
    records[1]["messages"][0]["content"] = "lora " * 2000  # far past the tiny model's 512 positions
    data = write_jsonl(tmp_path / "eval.jsonl", records)
    report = evaluate_adapter(adapter, data=data, without_retrieval=False, max_new_tokens=4,
                              answers=tmp_path / "answers.jsonl")
    for figures in report["test_split"].values():
        assert figures["skipped_too_long"] == 1 and figures["answerable"] == 3
    rows = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    skipped = [r for r in rows if r.get("skipped")]
    assert len(skipped) == 2 and all("accepts 512" in r["skipped"] and r["answer"] is None for r in skipped)


def test_limit_takes_n_answerable_and_n_unanswerable_qa_questions(adapter, tmp_path, monkeypatch):
    # A cut of both together at 2N dropped every unanswerable question when the QA file held 2N answerable ones.
    import ragtune.tune.evaluate as ev

    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"id": f"q{i}", "question": f"q {i}?", "answer": "a", "source": "d.md"}) + "\n"
                          for i in range(4)))
    unanswerable = tmp_path / "un.jsonl"
    unanswerable.write_text("".join(json.dumps({"id": f"u{i}", "question": f"u {i}?", "answer": None}) + "\n"
                                    for i in range(3)))
    seen = []

    def run_qa(gen, configs, index, items, *args, **kwargs):
        seen.append([it["id"] for it in items])
        return {}

    monkeypatch.setattr(ev, "_run_qa", run_qa)
    ev.evaluate_adapter(adapter, index=object(), qa=qa, unanswerable=unanswerable, limit=2)
    assert seen == [["q0", "q1", "u0", "u1"]]
    ev.evaluate_adapter(adapter, index=object(), qa=qa, unanswerable=unanswerable, limit=0)
    assert len(seen[-1]) == 7


def test_evaluation_adds_the_reader_checked_adapter_rows_for_qa_questions(adapter, tmp_path):
    from _answer_fakes import FakeSearcher, make_hit

    from ragtune.tune.evaluate import evaluate_adapter

    hits = [make_hit(1, "Staff get 25 paid leave days per year.", source="/d/handbook.md"),
            make_hit(2, "The engineer is paged after 15 minutes.", source="/d/oncall.md")]
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "How many paid leave days do staff get?", "answer": "25", "source": "handbook.md"}\n'
                  '{"question": "When is the engineer paged?", "answer": "after 15 minutes", "source": "oncall.md"}\n')
    out = tmp_path / "answers.jsonl"
    report = evaluate_adapter(adapter, index=FakeSearcher(hits), qa=qa, max_new_tokens=6, check_adapter=True,
                              answers=out)
    assert set(report["qa"]) - {"sources"} == {"base+rag", "base", "adapter+rag", "adapter", "adapter+check+rag"}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len([r for r in rows if r["config"] == "adapter+check+rag"]) == 2
    # without an adapter there is nothing to check: no such rows
    plain = evaluate_adapter(None, index=FakeSearcher(hits), qa=qa, max_new_tokens=6, check_adapter=True,
                             without_retrieval=False)
    assert set(plain["qa"]) - {"sources"} == {"base+rag"}
