"""Evaluate page: a QA file against the index, or a BEIR folder in a temporary index; table and chart."""

from __future__ import annotations

import json

from ui_helpers import page, texts, wait_for_jobs


def evaluate(at, target: str):
    at.text_input[0].set_value(target)
    at.button[0].click()
    at.run()
    wait_for_jobs()
    return at.run()


def test_qa_file_is_scored_per_mode_against_the_index(ui_env):
    qa = ui_env / "qa.jsonl"
    qa.write_text(json.dumps({"id": "1", "question": "What does QLoRA quantise?", "answer": "4-bit", "source": "lora.md"}) + "\n"
                  + json.dumps({"id": "2", "question": "What is BM25?", "answer": "a ranking function", "source": "rag.txt"}) + "\n")
    at = evaluate(page("evaluate"), str(qa))
    assert not at.exception
    table = at.table[0].value  # a static table of metrics, not raw JSON
    assert list(table.index) == ["dense", "bm25", "hybrid"]
    assert table.loc["bm25", "hit_rate@5"] == 1.0  # both supporting files come back by keyword
    assert at.get("vega_lite_chart")
    assert not at.json


def test_beir_folder_is_indexed_and_scored(ui_env, monkeypatch):
    from ragtune.rag.embed import HashEmbedder
    from ragtune.rag.index import Index

    original = Index.open.__func__

    def with_hash(cls, path, **kwargs):  # the temporary index: the fast deterministic embedder
        kwargs.setdefault("embedder", HashEmbedder(dim=64))
        return original(cls, path, **kwargs)

    monkeypatch.setattr(Index, "open", classmethod(with_hash))
    beir = ui_env / "tiny-beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in [
        {"_id": "d1", "title": "LoRA", "text": "LoRA trains low-rank adapters."},
        {"_id": "d2", "title": "BM25", "text": "BM25 ranks documents by rare query terms."},
    ]) + "\n")
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "low-rank adapters"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    at = evaluate(page("evaluate"), str(beir))
    assert not at.exception, at.exception
    table = at.table[0].value
    assert "ndcg@10" in table.columns and table.loc["bm25", "ndcg@10"] == 1.0
    assert any("tiny-beir" in m for m in texts(at, "markdown"))


def test_a_malformed_qa_file_fails_with_one_readable_line(ui_env):
    bad = ui_env / "bad.jsonl"
    bad.write_text(json.dumps({"question": "no id"}) + "\n")
    at = evaluate(page("evaluate"), str(bad))
    errors = texts(at, "error")
    assert len(errors) == 1 and "bad.jsonl:1" in errors[0] and "id" in errors[0]


def test_a_missing_path_is_one_readable_error(ui_env):
    at = page("evaluate")
    at.text_input[0].set_value("/nonexistent/qa.jsonl")
    at.button[0].click()
    at.run()
    assert texts(at, "error") == ["/nonexistent/qa.jsonl: no such file or folder"]


def test_a_refused_path_does_not_show_the_previous_results_under_its_error(ui_env):
    qa = ui_env / "qa.jsonl"
    qa.write_text(json.dumps({"id": "1", "question": "What is BM25?", "answer": "a ranking function",
                              "source": "rag.txt"}) + "\n")
    at = evaluate(page("evaluate"), str(qa))
    assert at.table  # the first run's results
    at.text_input[0].set_value(str(ui_env / "nope.jsonl"))
    at.button[0].click()
    at.run()
    assert texts(at, "error") == [f"{ui_env / 'nope.jsonl'}: no such file or folder"]
    assert not at.table and not at.get("vega_lite_chart")  # they would read as the missing file's


def test_an_empty_path_asks_for_one_instead_of_scoring_the_working_folder(ui_env):
    at = page("evaluate")
    at.text_input[0].set_value("  ")
    at.button[0].click()
    at.run()
    assert texts(at, "error") == ["enter the path of a BEIR folder or a QA .jsonl file"]


def test_a_qa_file_submitted_while_the_index_opens_is_scored_once_it_is_open(ui_env, monkeypatch):
    import threading

    from streamlit.testing.v1 import AppTest

    from ragtune.ui import state

    gate = threading.Event()
    real = state._open_index
    monkeypatch.setattr(state, "_open_index", lambda job, index_dir: (gate.wait(30), real(job, index_dir))[1])
    qa = ui_env / "qa.jsonl"
    qa.write_text(json.dumps({"id": "1", "question": "What is BM25?", "answer": "a ranking function",
                              "source": "rag.txt"}) + "\n")
    at = AppTest.from_string("from ragtune.ui import evaluate\nevaluate.render()\n", default_timeout=60).run()
    at.text_input[0].set_value(str(qa))
    at.button[0].click()
    at.run()
    assert not texts(at, "error")  # not refused while the index is still opening
    gate.set()
    wait_for_jobs()
    at.run()
    assert at.table[0].value.loc["bm25", "hit_rate@5"] == 1.0
