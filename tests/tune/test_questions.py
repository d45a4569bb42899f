"""Development questions for checkpoint selection: only validation documents' questions are stored, with the
prompt the RAG pipeline builds, and answer-F1 selection asks them through RAG."""

from __future__ import annotations

import json

import pytest

from _tiny import chat_records, write_jsonl
from ragtune.errors import TrainingDataError
from ragtune.tune.synth import build_training_data
from test_synth import TOPICS, topic_index


def _questions_file(tmp_path, n: int):
    """One question per topic document (answerable from its text), and one about a file not in the index."""
    items = [{"question": f"Method{i} freezes the layer number {i} and trains adapters of which rank?", "answer": f"rank {i + 4}", "source": f"topic{i}.md"}
             for i in range(n)]
    items.append({"question": "Method99 freezes the layer number 99 and trains adapters of which rank?", "answer": "nothing", "source": "missing.md"})
    return write_jsonl(tmp_path / "qa.jsonl", items)


@pytest.fixture
def built(hash_index, tiny_model, tmp_path):
    """An index of 10 topic documents, its data file with question records, and the search queries it saw."""
    index = topic_index(hash_index(), tmp_path, 10, TOPICS)
    asked = []
    search = index.search

    def recording_search(query, *args, **kwargs):
        asked.append(query)
        return search(query, *args, **kwargs)

    index.search = recording_search
    out = tmp_path / "data.jsonl"
    report = build_training_data(index, out, seed=0, questions=_questions_file(tmp_path, 10),
                                 prompt_model=str(tiny_model))
    index.search = search
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return index, report, [r for r in records if r["meta"].get("kind") == "question"], asked


def test_only_questions_about_validation_documents_are_stored(built):
    index, report, questions, asked = built
    split = {f: s for s, files in report.sources.items() for f in files}
    counts = report.questions
    assert counts["validation"] == len(questions) == sum(1 for s in split.values() if s == "validation") > 0
    assert counts["skipped_test"] == sum(1 for s in split.values() if s == "test") > 0
    assert counts["skipped_train"] == sum(1 for s in split.values() if s == "train") and counts["skipped_unknown"] == 1
    assert all(r["split"] == "validation" and split[r["meta"]["source"]] == "validation" for r in questions)
    # Test documents' questions are not even retrieved for, let alone stored.
    test_questions = {f"Method{f[5:-3]} freezes the layer number {f[5:-3]} and trains adapters of which rank?" for f, s in split.items() if s == "test"}
    assert test_questions and not test_questions & set(asked)


def test_a_stored_question_holds_the_prompt_the_rag_pipeline_builds(built, tiny_model):
    from ragtune.rag.answer import RAG
    from ragtune.rag.generators import LocalGenerator

    index, _, questions, _ = built
    rag = RAG(index, LocalGenerator(str(tiny_model)), k=5, max_new_tokens=48, attribute=False)
    for r in questions:
        stream = rag.stream(r["meta"]["question"])
        assert [h["chunk_id"] for h in r["meta"]["hits"]] == [h.chunk_id for h in stream.hits]
        assert r["meta"]["gated"] == (stream.prompt is None)
        if stream.prompt is not None:
            assert r["messages"][:-1] == stream.prompt.messages
        assert r["messages"][-1]["content"].startswith(r["meta"]["answer"])


def test_question_records_are_answered_as_rag_over_the_index_answers(built, tiny_model):
    from ragtune.rag.answer import RAG
    from ragtune.rag.generators import LocalGenerator
    from ragtune.tune.data import load_records
    from ragtune.tune.questions import ask_stored, is_question

    index, report, _, _ = built
    gen = LocalGenerator(str(tiny_model), device="cpu")
    rag = RAG(index, gen, k=5, max_new_tokens=8, attribute=False)
    records = [r for r in load_records(report.out) if is_question(r)]
    assert any(not r.meta["gated"] for r in records)  # the model is asked, not only the gates
    for r in records:
        replayed, live = ask_stored(gen, r, 8), rag.ask(r.meta["question"])
        assert (replayed.text, replayed.abstained) == (live.text, live.abstained)
        assert [c.chunk_id for c in replayed.citations] == [c.chunk_id for c in live.citations]


def test_a_bad_questions_file_names_file_and_line_and_writes_nothing(hash_index, tmp_path):
    index = topic_index(hash_index(), tmp_path, 4, TOPICS)
    bad = write_jsonl(tmp_path / "qa.jsonl", [{"question": "What?", "answer": "x", "source": "topic0.md"},
                                              {"question": "Who?", "source": "topic1.md"}, "{not json"])
    with pytest.raises(TrainingDataError) as e:
        build_training_data(index, tmp_path / "data.jsonl", questions=bad)
    assert f"{bad}:2:" in str(e.value) and "answer" in str(e.value) and f"{bad}:3:" in str(e.value)
    assert not (tmp_path / "data.jsonl").exists()


def _question_record(i: int) -> dict:
    answer = f"answer {i}"
    return {"messages": [{"role": "system", "content": "Answer from the sources."},
                         {"role": "user", "content": f"Sources: [1] text {i}\n\nQuestion: question {i}?"},
                         {"role": "assistant", "content": f"{answer} [1]"}],
            "split": "validation", "meta": {"kind": "question", "question": f"question {i}?", "answer": answer,
                                            "source": "doc.md", "k": 5, "hits": [], "gated": False}}


def _unanswerable(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"Sources: (none)\n\nQuestion: unknown {i}?"},
                         {"role": "assistant", "content": "The documents do not say."}],
            "split": "validation", "meta": {"question": f"unknown {i}?", "answer": None}}


def test_with_question_records_the_f1_sample_is_exactly_those():
    from ragtune.tune.config import TrainConfig
    from ragtune.tune.data import parse_record
    from ragtune.tune.train import _f1_sample

    template = [parse_record(r) for r in chat_records(12)]
    records = template + [parse_record(_unanswerable(i)) for i in range(2)] + [parse_record(_question_record(i))
                                                                            for i in range(3)]
    sample = _f1_sample(records, TrainConfig(f1_questions=100))
    assert [r.meta.get("question") for r in sample] == ["question 0?", "question 1?", "question 2?"]
    assert len(_f1_sample(template, TrainConfig(f1_questions=5))) == 5  # no questions: the template sample


def test_answer_f1_selection_asks_the_question_records_and_keeps_the_best(tiny_model, tmp_path, monkeypatch):
    # Real training; the answers to the question records are scripted (right at the second evaluation only),
    # so the kept checkpoint must be that evaluation's whatever the tiny model says.
    from safetensors.torch import load_file

    import ragtune.tune.questions as questions
    from ragtune.rag.types import Answer
    from ragtune.tune.train import train_adapter
    from test_train import config

    data = write_jsonl(tmp_path / "data.jsonl", chat_records() + [_question_record(i) for i in range(3)])
    evaluation, asked = iter([0, 0, 0, 1, 1, 1, 2, 2, 2]), []

    def scripted(gen, record, max_new_tokens=48):
        asked.append(record.meta["question"])
        right = next(evaluation) == 1
        return Answer(text=record.meta["answer"] if right else "something else", question=record.meta["question"])

    monkeypatch.setattr(questions, "ask_stored", scripted)
    result = train_adapter(data, tmp_path / "run", config(tiny_model, max_steps=6, eval_steps=2, save_steps=2,
                                                          select_by="answer_f1", early_stopping_patience=5,
                                                          f1_max_new_tokens=4))
    assert asked == ["question 0?", "question 1?", "question 2?"] * 3
    assert [r["eval_answer_f1"] for r in result.log if "eval_answer_f1" in r] == [0.0, 1.0, 0.0]
    assert result.metrics["best_step"] == 4
    kept = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    best = load_file(tmp_path / "run" / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors")
    assert all((kept[k] == best[k]).all() for k in kept)


def test_tune_data_cli_names_the_bad_questions_line_without_traceback(hash_index, tmp_path, capsys, monkeypatch):
    from ragtune.cli import main
    from ragtune.commands import tune as tune_cmd

    index = topic_index(hash_index(), tmp_path, 4, TOPICS)
    monkeypatch.setattr(tune_cmd, "_index", lambda path: index)
    bad = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Which?", "answer": "x"}])
    code = main(["tune", "data", "--out", str(tmp_path / "d.jsonl"), "--questions", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}:1:" in err and "source" in err and "Traceback" not in err
    assert not (tmp_path / "d.jsonl").exists()


def test_tune_data_cli_prints_what_the_questions_became(built, tiny_model, tmp_path, capsys, monkeypatch):
    from ragtune.cli import main
    from ragtune.commands import tune as tune_cmd

    index, report, _, _ = built
    monkeypatch.setattr(tune_cmd, "_index", lambda path: index)
    qa = _questions_file(tmp_path, 10)
    assert main(["tune", "data", "--out", str(tmp_path / "d2.jsonl"), "--questions", str(qa),
                 "--model", str(tiny_model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["questions"] == report.questions
    assert main(["tune", "data", "--out", str(tmp_path / "d3.jsonl"), "--questions", str(qa),
                 "--model", str(tiny_model)]) == 0
    q = report.questions
    assert (f"questions: {q['validation']} validation records ({q['gated']} abstained by the gates); skipped "
            f"{q['skipped_test']} test, {q['skipped_train']} training, 1 not in the index") in capsys.readouterr().out
