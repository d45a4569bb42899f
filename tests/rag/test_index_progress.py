"""Index.add and evaluation report progress through the (stage, done, total, message) callback."""

from __future__ import annotations

from ragtune.rag.evaluate import QAItem, evaluate_qa


def test_index_add_reports_parse_embed_and_write_stages(hash_index, docs_dir):
    calls = []
    index = hash_index()
    report = index.add([docs_dir], progress=lambda *c: calls.append(c))
    assert len(report.added) == 3
    stages = [c[0] for c in calls]
    assert stages[0] == "parse" and "embed" in stages and stages[-1] == "write"
    assert ("parse", 3, 3, "") in calls
    embed_total = [c for c in calls if c[0] == "embed"][-1]
    assert embed_total[1] == embed_total[2] == report.chunks_added


def test_a_second_add_of_unchanged_files_only_parses(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir])
    calls = []
    index.add([docs_dir], progress=lambda *c: calls.append(c))
    assert {c[0] for c in calls} == {"parse"}


def test_evaluate_qa_reports_each_query_per_mode(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir])
    qa = [QAItem(id="1", question="What is BM25?", answer="a ranking function", source="rag.txt"),
          QAItem(id="2", question="What does QLoRA quantise?", answer="4-bit", source="lora.md")]
    calls = []
    evaluate_qa(index, qa, modes=("bm25",), k=3, progress=lambda *c: calls.append(c))
    assert [c[:3] for c in calls] == [("search bm25", 0, 2), ("search bm25", 1, 2), ("search bm25", 2, 2)]
