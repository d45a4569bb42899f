"""Evaluating an index end to end on a tiny BEIR fixture and a QA file, through the API and the CLI handler.

The index is a fake with ``add_documents`` and ``search(query, k, mode)`` (word overlap), so these tests
check the evaluation plumbing, not a retriever.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import pytest

from ragtune.commands import eval as eval_cmd
from ragtune.errors import ConfigError, DatasetError
from ragtune.rag.evaluate import (
    evaluate_index,
    evaluate_qa,
    load_beir,
    load_qa,
    run_from_hits,
    source_matches,
)
from ragtune.rag.types import Chunk, Document, Element, Hit

QA_LINE = {"id": "a1", "question": "What does LoRA train?", "answer": "Low-rank matrices.",
           "source": "guides/lora.md", "section": "How it works"}


def write_beir(root: Path, qrels: str = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq2\td2\t1\n") -> Path:
    """The tiny collection of test_evaluate_datasets.py: q1 -> d1 (2), d3 (1); q2 -> d2 (1)."""
    corpus = [
        {"_id": "d1", "title": "Wing flutter", "text": "flutter of swept wings at transonic speed"},
        {"_id": "d2", "title": "Heat transfer", "text": "heat conduction in composite slabs"},
        {"_id": "d3", "title": "", "text": "boundary layer transition on a flat plate"},
    ]
    queries = [{"_id": "q1", "text": "wing flutter at transonic speed"},
               {"_id": "q2", "text": "heat conduction slabs"}]
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


class OverlapIndex:
    """One chunk per element; score = words shared with the query. Mode "dense" finds nothing."""

    def __init__(self):
        self.chunks: list[Chunk] = []
        self.calls: list[tuple[str, int, str | None]] = []
        self.options: list[dict] = []

    def add_documents(self, docs: list[Document], progress=None) -> dict:
        for doc in docs:
            for i, el in enumerate(doc.elements):
                self.chunks.append(Chunk(id=f"{doc.source}#{i}", text=el.text, source=doc.source))
        return {"added": len(docs)}

    def files(self) -> dict[str, dict]:
        return {c.source: {} for c in self.chunks}

    def search(self, query: str, k: int = 5, filters=None, mode: str | None = None, **options) -> list[Hit]:
        self.calls.append((query, k, mode))
        self.options.append(options)
        if mode == "dense":
            return []
        words = set(re.findall(r"\w+", query.lower()))
        scored = [(len(words & set(re.findall(r"\w+", c.text.lower()))), c) for c in self.chunks]
        scored = sorted((s for s in scored if s[0] > 0), key=lambda s: -s[0])
        return [Hit(chunk=c, score=float(s)) for s, c in scored[:k]]


def test_evaluate_index_collapses_chunks_to_documents_and_scores_each_mode(tmp_path):
    ds = load_beir(write_beir(tmp_path / "tiny"))
    index = OverlapIndex()
    index.add_documents([
        Document(source=d, type="beir", elements=[Element(e["title"] or "-"), Element(e["text"])])
        for d, e in ds.corpus.items()
    ])
    results = evaluate_index(index, ds, modes=("bm25", "dense"), k=10)

    # q1 (d1: 2, d3: 1) retrieves d1 only (both its chunks, counted once); q2 (d2: 1) retrieves d2.
    ndcg_q1 = 2 / (2 + 1 / math.log2(3))
    bm25 = results["bm25"]
    assert bm25["ndcg@10"] == pytest.approx((ndcg_q1 + 1) / 2)
    assert bm25["recall@10"] == pytest.approx((0.5 + 1) / 2)
    assert bm25["mrr@10"] == pytest.approx(1.0)
    assert bm25["map"] == pytest.approx((0.5 + 1) / 2)
    assert bm25["queries"] == 2 and bm25["p50_ms"] >= 0
    assert results["dense"]["ndcg@10"] == 0.0
    assert {(k, mode) for _, k, mode in index.calls} == {(10, "bm25"), (10, "dense")}
    # k documents, each at its best chunk among the top k * 3 fused chunks (the index groups them)
    # (per mode: one untimed warm-up search, then the 2 queries)
    assert index.options == [{"per_source": 1, "candidates": 30}] * 6


def test_evaluate_index_hands_back_each_mode_s_run_for_paired_comparisons(tmp_path):
    ds = load_beir(write_beir(tmp_path / "tiny"))
    index = OverlapIndex()
    index.add_documents([Document(source=d, type="beir", elements=[Element(e["text"])]) for d, e in ds.corpus.items()])
    runs: dict = {}
    results = evaluate_index(index, ds, modes=("bm25", "dense"), k=10, runs=runs)
    assert set(runs) == {"bm25", "dense"}
    assert list(runs["bm25"]["q1"])[0] == "d1" and list(runs["bm25"]["q2"]) == ["d2"]
    assert runs["dense"] == {"q1": {}, "q2": {}}  # every query is in the run; the fake's dense finds nothing
    assert results["bm25"]["ndcg@10"] > 0


def test_evaluate_index_passes_search_options_to_every_query(tmp_path):
    ds = load_beir(write_beir(tmp_path / "tiny"))
    index = OverlapIndex()
    evaluate_index(index, ds, modes=("hybrid",), k=5, search_kwargs={"reranker": "/models/ce"})
    assert index.options == [{"per_source": 1, "candidates": 15, "reranker": "/models/ce"}] * 3  # with the warm-up


def test_evaluate_index_keeps_a_deeper_configured_candidate_pool(tmp_path):
    from types import SimpleNamespace

    ds = load_beir(write_beir(tmp_path / "tiny"))
    index = OverlapIndex()
    index.config = SimpleNamespace(retrieval=SimpleNamespace(candidates=500))
    evaluate_index(index, ds, modes=("bm25",), k=10)
    assert index.options == [{"per_source": 1, "candidates": 500}] * 3  # with the warm-up


def test_run_from_hits_keeps_first_rank_and_max_score_per_source():
    def hit(source, score):
        return Hit(chunk=Chunk(id=f"{source}-{score}", text="", source=source), score=score)

    run = run_from_hits({"q": [hit("a", 0.9), hit("b", 0.8), hit("a", 0.95), hit("c", 0.1)]})
    assert list(run["q"]) == ["a", "b", "c"]
    assert run["q"]["a"] == 0.95


@pytest.mark.parametrize(
    "hit_source, wanted, expected",
    [
        ("/home/u/corpora/guides/lora.md", "guides/lora.md", True),
        ("/home/u/corpora/guides/lora.md", "lora.md", True),
        ("/home/u/corpora/guides/lora.md", "./guides/lora.md", True),
        ("/home/u/corpora/guides/qlora.md", "lora.md", False),  # whole path components only
        ("/home/u/corpora/other/lora.md", "guides/lora.md", False),
        ("C:\\corpora\\guides\\lora.md", "guides/lora.md", True),
    ],
)
def test_source_matches_on_relative_path_suffix(hit_source, wanted, expected):
    assert source_matches(hit_source, wanted) is expected


def _qa_index() -> OverlapIndex:
    index = OverlapIndex()
    index.add_documents([
        Document(source="/x/corpora/guides/lora.md", type="md",
                 elements=[Element("LoRA trains low-rank matrices added to frozen weights")]),
        Document(source="/x/corpora/guides/rag.md", type="md",
                 elements=[Element("What does retrieval add? Retrieval adds fresh documents")]),
    ])
    return index


def test_evaluate_qa_reports_hit_rate_and_mrr_of_the_supporting_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [QA_LINE, {**QA_LINE, "id": "a2", "question": "what does retrieval add", "source": "guides/rag.md"},
            {**QA_LINE, "id": "a3", "question": "what does retrieval add", "source": "guides/lora.md"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = evaluate_qa(_qa_index(), load_qa(path), modes=("bm25",), k=5)["bm25"]
    # a1: lora.md at rank 2 (rag.md shares two words, lora.md one); a2: rag.md at rank 1;
    # a3: lora.md shares no word with the question, so it is not retrieved at all.
    assert results["hit_rate@5"] == pytest.approx(2 / 3)
    assert results["mrr@5"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert results["queries"] == 3


# ---------------------------------------------------------------- the CLI handler
def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ragtune")
    eval_cmd.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture
def fake_index(monkeypatch):
    opened: list[tuple[str, bool]] = []
    index = OverlapIndex()

    def open_index(path, create=False):
        opened.append((str(path), create))
        return index

    monkeypatch.setattr(eval_cmd, "open_index", open_index)
    return index, opened


def test_cli_evaluates_a_beir_dir_in_a_temporary_index_and_prints_json(tmp_path, capsys, fake_index):
    index, opened = fake_index
    root = write_beir(tmp_path / "tiny")
    args = _parse(["eval", "retrieval", "--dataset", str(root), "--modes", "bm25,hybrid", "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "beir" and report["queries"] == 2 and report["documents"] == 3
    assert set(report["results"]) == {"bm25", "hybrid"}
    assert report["results"]["bm25"]["mrr@10"] == pytest.approx(1.0)
    assert len(opened) == 1 and opened[0][1] is True and "ragtune-eval-" in opened[0][0]
    assert {c.source for c in index.chunks} == {"d1", "d2", "d3"}


def test_cli_prints_an_aligned_table_and_honours_limit_queries(tmp_path, capsys, fake_index):
    _, opened = fake_index
    root = write_beir(tmp_path / "tiny")
    keep = tmp_path / "idx"
    args = _parse(["eval", "retrieval", "--dataset", str(root), "--modes", "bm25",
                   "--limit-queries", "1", "--index", str(keep)])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiny: 1 queries")
    assert lines[1].split() == ["mode", "nDCG@10", "Recall@100", "MRR@10", "MAP", "p50", "ms"]
    assert lines[2].split()[0:2] == ["bm25", f"{2 / (2 + 1 / math.log2(3)):.4f}"]
    assert len(lines[1]) == len(lines[2])
    assert opened == [(str(keep), True)]


def test_cli_evaluates_a_qa_file_against_the_given_index(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(eval_cmd, "open_index", lambda path, create=False: _qa_index())
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(QA_LINE) + "\n")
    args = _parse(["eval", "retrieval", "--dataset", str(path), "--index", "somewhere", "--modes", "bm25",
                   "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "qa" and report["index"] == "somewhere"
    assert report["results"]["bm25"]["hit_rate@5"] == pytest.approx(1.0)


def test_cli_names_qa_sources_that_are_not_in_the_index(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(eval_cmd, "open_index", lambda path, create=False: _qa_index())
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(QA_LINE) + "\n" + json.dumps({**QA_LINE, "id": "a2", "source": "guides/gone.md"}) + "\n")
    args = _parse(["eval", "retrieval", "--qa", str(path), "--index", "somewhere", "--modes", "bm25", "--json"])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert "1 source(s) of qa.jsonl are not in the index" in captured.err and "guides/gone.md" in captured.err
    assert "guides/lora.md" not in captured.err
    json.loads(captured.out)  # stdout stays one JSON document


def test_latency_is_timed_after_one_untimed_warm_up_search(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(QA_LINE) + "\n")
    index = _qa_index()
    evaluate_qa(index, load_qa(path), modes=("bm25", "hybrid"), k=5)
    assert len(index.calls) == 4  # per mode: the warm-up (loads the embedding model) and the timed question


def test_cli_rejects_unknown_modes_and_reports_bad_datasets(tmp_path, fake_index):
    root = write_beir(tmp_path / "tiny", qrels="query-id\tcorpus-id\tscore\nq1\tnope\t1\n")
    with pytest.raises(ConfigError, match="unknown mode"):
        eval_cmd.run_retrieval(_parse(["eval", "retrieval", "--dataset", str(root), "--modes", "sparse"]))
    with pytest.raises(DatasetError, match=r"test\.tsv:2: corpus-id 'nope'"):
        eval_cmd.run_retrieval(_parse(["eval", "retrieval", "--dataset", str(root)]))
    with pytest.raises(ConfigError, match="--dataset DIR"):
        eval_cmd.run_retrieval(_parse(["eval", "retrieval"]))


def test_cli_on_a_real_index_with_the_hash_embedder_builds_once_then_reuses_it(tmp_path, capsys, monkeypatch):
    index_module = pytest.importorskip("ragtune.rag.index")
    from ragtune.rag.embed import HashEmbedder

    reports = []

    def open_index(path, create=False):
        index = index_module.Index.open(path, create=create, embedder=HashEmbedder())
        add_documents = index.add_documents
        index.add_documents = lambda docs, **kw: reports.append(add_documents(docs, **kw)) or reports[-1]
        return index

    monkeypatch.setattr(eval_cmd, "open_index", open_index)
    root, keep = write_beir(tmp_path / "tiny"), tmp_path / "idx"
    argv = ["eval", "retrieval", "--dataset", str(root), "--index", str(keep), "--json"]
    for _ in range(2):
        args = _parse(argv)
        assert args.func(args) == 0
        report = json.loads(capsys.readouterr().out)
        results = report["results"]
        assert set(results) == {"dense", "bm25", "hybrid"}
        # BM25 finds d1 for q1 (d3 shares no word with it) and d2 for q2, each at rank 1.
        assert results["bm25"]["ndcg@10"] == pytest.approx((2 / (2 + 1 / math.log2(3)) + 1) / 2)
        assert results["bm25"]["mrr@10"] == pytest.approx(1.0)
        assert results["hybrid"]["recall@100"] == pytest.approx(1.0)  # dense ranks every chunk
    assert len(reports[0].unchanged) == 0 and sorted(reports[1].unchanged) == ["d1", "d2", "d3"]
