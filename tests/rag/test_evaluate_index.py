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

    def add_documents(self, docs: list[Document], prune: bool = False, progress=None) -> dict:
        docs = list(docs)
        if prune:
            keep = {d.source for d in docs}
            self.chunks = [c for c in self.chunks if c.source in keep]
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
    # k 5 still retrieves 10 documents for nDCG@10 / MRR@10: 10 * 3 candidate chunks
    assert index.options == [{"per_source": 1, "candidates": 30, "reranker": "/models/ce"}] * 3  # with the warm-up


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


# ---------------------------------------------------------------- the @10 metrics whatever k is
def test_ndcg_and_mrr_at_10_look_at_the_top_10_even_when_k_is_smaller():
    from ragtune.rag.evaluate import BeirDataset

    # "alpha beta gamma" ranks d1 (3 shared words), d2 (2), d3 (1); only d2 is relevant.
    corpus = {"d1": "alpha beta gamma", "d2": "alpha beta", "d3": "alpha"}
    ds = BeirDataset(corpus={d: {"title": "", "text": t} for d, t in corpus.items()},
                     queries={"q1": "alpha beta gamma"}, qrels={"q1": {"d2": 1}}, name="three")
    index = OverlapIndex()
    index.add_documents([Document(source=d, type="beir", elements=[Element(t)]) for d, t in corpus.items()])
    at_1 = evaluate_index(index, ds, modes=("bm25",), k=1)["bm25"]
    at_10 = evaluate_index(index, ds, modes=("bm25",), k=10)["bm25"]
    # k=1 used to cut the run to d1 before nDCG@10 and MRR@10 were computed (both 0, still labelled @10)
    assert at_1["ndcg@10"] == pytest.approx(1 / math.log2(3)) == at_10["ndcg@10"]
    assert at_1["mrr@10"] == pytest.approx(0.5) == at_10["mrr@10"]
    # Recall and MAP stay at the depth asked for: d2 is not in the top 1
    assert at_1["recall@1"] == 0.0 and at_1["map"] == 0.0
    assert at_10["recall@10"] == 1.0 and at_10["map"] == pytest.approx(0.5)
    assert {k for _, k, _ in index.calls} == {10}


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_evaluate_index_refuses_a_depth_below_one(tmp_path, k):
    ds = load_beir(write_beir(tmp_path / "tiny"))
    with pytest.raises(ConfigError, match="k must be a positive whole number"):
        evaluate_index(OverlapIndex(), ds, modes=("bm25",), k=k)


# ---------------------------------------------------------------- the evaluation index holds one corpus
def write_foreign_beir(root: Path) -> Path:
    """Another collection whose documents match the tiny collection's queries better than its own do."""
    corpus = [{"_id": "x1", "title": "", "text": "wing flutter at transonic speed, wing flutter"},
              {"_id": "x2", "title": "", "text": "heat conduction in slabs, heat conduction"}]
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "f1", "text": "wing flutter"}) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nf1\tx1\t1\n")
    return root


TINY_BM25_NDCG = (2 / (2 + 1 / math.log2(3)) + 1) / 2  # q1 finds d1 (d3 not), q2 finds d2


@pytest.fixture
def hash_open(monkeypatch):
    from ragtune.rag.embed import HashEmbedder
    from ragtune.rag.index import Index

    def open_index(path, create=False):
        return Index.open(path, create=create, embedder=HashEmbedder(dim=64))

    monkeypatch.setattr(eval_cmd, "open_index", open_index)
    return open_index


def test_cli_index_reused_for_another_dataset_holds_only_that_dataset(tmp_path, capsys, hash_open):
    keep = tmp_path / "idx"
    reports = []
    for root in (write_foreign_beir(tmp_path / "foreign"), write_beir(tmp_path / "tiny")):
        args = _parse(["eval", "retrieval", "--dataset", str(root), "--index", str(keep), "--modes", "bm25",
                       "--json"])
        assert args.func(args) == 0
        reports.append(json.loads(capsys.readouterr().out))
    # the foreign x1/x2 used to stay in the index, outrank d1/d2 and score as misses
    assert reports[1]["results"]["bm25"]["ndcg@10"] == pytest.approx(TINY_BM25_NDCG)
    index = hash_open(keep)
    try:
        assert set(index.files()) == {"d1", "d2", "d3"}
    finally:
        index.close()


def test_cli_refuses_to_evaluate_in_an_index_of_the_user_s_files(tmp_path, docs_dir, hash_index, hash_open):
    mine = hash_index("mine")
    mine.add([docs_dir])
    before = set(mine.files())
    mine.close()
    args = _parse(["eval", "retrieval", "--dataset", str(write_beir(tmp_path / "tiny")),
                   "--index", str(tmp_path / "mine"), "--modes", "bm25"])
    with pytest.raises(ConfigError, match=r"files indexed from disk .*separate --index folder"):
        args.func(args)
    index = hash_open(tmp_path / "mine")
    try:
        assert set(index.files()) == before  # nothing written: no BEIR document, no file pruned
    finally:
        index.close()


# ---------------------------------------------------------------- the Python API: ragtune.api.evaluate_dataset
def test_api_index_dir_holds_one_corpus_and_an_index_of_the_user_s_files_is_refused(tmp_path, docs_dir,
                                                                                       hash_index):
    from ragtune import api

    hash_index("evalidx").close()  # an index with the hash embedder, which evaluate_dataset reopens
    keep = tmp_path / "evalidx"
    api.evaluate_dataset(write_foreign_beir(tmp_path / "foreign"), index_dir=keep, modes="bm25")
    report = api.evaluate_dataset(write_beir(tmp_path / "tiny"), index_dir=keep, modes="bm25")
    assert set(report["results"]) == {"bm25"}  # one string is one mode, not the modes 'b', 'm', '2', '5'
    assert report["results"]["bm25"]["ndcg@10"] == pytest.approx(TINY_BM25_NDCG)
    index = api.Index.open(keep)
    try:
        assert set(index.files()) == {"d1", "d2", "d3"}
    finally:
        index.close()

    mine = hash_index("mine")
    mine.add([docs_dir])
    before = set(mine.files())
    mine.close()
    with pytest.raises(ConfigError, match=r"files indexed from disk .*separate index_dir= folder"):
        api.evaluate_dataset(tmp_path / "tiny", index_dir=tmp_path / "mine", modes="bm25")
    index = api.Index.open(tmp_path / "mine")
    try:
        assert set(index.files()) == before
    finally:
        index.close()


@pytest.mark.parametrize("kwargs, pattern", [
    ({"modes": ()}, "modes is empty"),
    ({"modes": ("bm25", "sparse")}, "unknown mode.*'sparse'"),
    ({"modes": "sparse"}, "unknown mode.*'sparse'"),
    ({"k": 0}, "k must be a positive whole number"),
    ({"k": -3}, "k must be a positive whole number"),
    ({"index": "some/folder"}, "BEIR folder.*pass index_dir="),
])
def test_api_refuses_bad_arguments_before_indexing_a_beir_folder(tmp_path, monkeypatch, kwargs, pattern):
    from ragtune import api
    from ragtune.rag.index import Index

    def no_index(*args, **kw):
        raise AssertionError("the corpus was indexed before the arguments were checked")

    monkeypatch.setattr(Index, "open", no_index)
    with pytest.raises(ConfigError, match=pattern):
        api.evaluate_dataset(write_beir(tmp_path / "tiny"), **kwargs)


def test_api_scores_a_qa_file_in_an_index_given_by_its_folder(tmp_path, docs_dir, hash_index):
    from ragtune import api

    mine = hash_index("mine")
    mine.add([docs_dir])
    mine.close()
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({**QA_LINE, "question": "What does LoRA freeze and train?", "source": "lora.md"}) + "\n")
    report = api.evaluate_dataset(qa, index=str(tmp_path / "mine"), modes="bm25")  # was an AttributeError
    assert report["kind"] == "qa" and set(report["results"]) == {"bm25"}
    assert report["results"]["bm25"]["hit_rate@5"] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="index= must be an Index"):
        api.evaluate_dataset(qa, index=42)
    with pytest.raises(ConfigError, match="index_dir= is where a BEIR folder"):
        api.evaluate_dataset(qa, index=str(tmp_path / "mine"), index_dir=tmp_path / "elsewhere")


def test_api_names_qa_sources_the_index_does_not_hold(tmp_path, docs_dir, hash_index):
    from ragtune import api

    index = hash_index("held")
    index.add([docs_dir])
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({**QA_LINE, "id": "h1", "question": "What does the handbook say?",
                              "source": "handbook.pdf"}) + "\n"
                  + json.dumps({**QA_LINE, "id": "l1", "question": "What does LoRA freeze?", "source": "lora.md"}) + "\n")
    with pytest.warns(UserWarning, match=r"1 source\(s\) of qa.jsonl are not in the index.*handbook.pdf"):
        report = api.evaluate_dataset(qa, index=index, modes="bm25")
    assert report["missing_sources"] == ["handbook.pdf"]  # its question scores 0 whatever retrieval does
