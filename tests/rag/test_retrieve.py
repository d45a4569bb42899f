"""Retrieval: fusion, modes, filters before the top-k cut, MMR, reranking, BM25 kept in sync."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.errors import ConfigError, ModelLoadError
from ragtune.rag.retrieve import mmr_select, rrf_fuse


def test_rrf_fusion_orders_by_reciprocal_rank_sum():
    fused = rrf_fuse({"dense": [1, 2, 3], "bm25": [3, 1, 4]}, {"dense": 1.0, "bm25": 1.0}, k=60)
    scores = dict(fused)
    assert [d for d, _ in fused] == [1, 3, 2, 4]
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[4] == pytest.approx(1 / 63)


def test_rrf_weights_and_tie_break():
    fused = rrf_fuse({"dense": [7, 8], "bm25": [8, 7]}, {"dense": 2.0, "bm25": 1.0}, k=0)
    assert [d for d, _ in fused] == [7, 8]
    tie = rrf_fuse({"a": [5], "b": [6]}, {}, k=60)
    assert [d for d, _ in tie] == [5, 6]  # equal scores and ranks: lower id first, deterministic


def test_mmr_prefers_novel_results():
    q = np.array([1.0, 0.0])
    vecs = np.array([[0.99, 0.14], [0.98, 0.2], [0.7, -0.71]])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    assert mmr_select(q, vecs, 2, lam=1.0) == [0, 1]  # pure relevance
    assert mmr_select(q, vecs, 2, lam=0.3) == [0, 2]  # diversity wins the second slot


@pytest.fixture
def built(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    return index


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_relevant_chunk(built, mode):
    hits = built.search("QLoRA NormalFloat quantises base model", k=3, mode=mode)
    assert hits and "NormalFloat" in hits[0].text
    assert len({h.chunk_id for h in hits}) == len(hits)


def test_hybrid_hits_explain_their_scores(built):
    hit = built.search("QLoRA NormalFloat", k=1, mode="hybrid")[0]
    assert set(hit.scores) == {"dense", "bm25", "rrf"}
    assert hit.ranks == {"dense": 1, "bm25": 1}
    assert hit.score == pytest.approx(hit.scores["rrf"]) == pytest.approx(2 / 61)
    assert hit.to_dict()["scores"]["bm25"] > 0


def test_filters_apply_before_the_top_k_cut(built):
    # The best match overall is in lora.md; filtered to txt, k=1 must still return a txt hit.
    hits = built.search("QLoRA NormalFloat quantises", k=1, filters={"file_type": "txt"})
    assert len(hits) == 1 and hits[0].source.endswith("rag.txt")
    hits = built.search("model", k=5, filters={"source": "*quant*"})
    # a relative path as a shell completes it ("./docs/lora.md") matches like "docs/lora.md"
    tail = "/".join(built.search("QLoRA", k=1)[0].source.split("/")[-2:])
    assert built.search("QLoRA", k=5, filters={"source": "./" + tail}) == built.search("QLoRA", k=5, filters={"source": tail})
    assert built.search("QLoRA", k=5, filters={"source": "./" + tail})
    assert hits and all(h.source.endswith("quant.html") for h in hits)
    hits = built.search("model", k=5, filters={"section": "Distillation"}, mode="bm25")
    assert hits and all(h.section == "Distillation" for h in hits)
    assert built.search("model", k=5, filters={"file_type": ["md", "html"]})
    assert built.search("model", k=5, filters={"file_type": "pdf"}) == []


def test_metadata_key_filter(hash_index, tmp_path):
    from ragtune.rag.types import Document, Element

    index = hash_index()
    docs = [
        Document(source=f"d{i}", type="beir", elements=[Element(f"Wing lift study {i}")], metadata={})
        for i in range(4)
    ]
    index.add_documents(docs, progress=False)
    # file_type is stored in chunk metadata; any metadata key filters the same way.
    assert {h.source for h in index.search("wing lift", k=10, filters={"file_type": "beir"})} == {f"d{i}" for i in range(4)}
    with pytest.raises(ConfigError):
        index.search("wing", filters={"bad key;": "x"})


def test_a_filter_key_no_chunk_has_warns_in_the_api(built, recwarn):
    import warnings

    from ragtune.errors import UnknownFilterKeyWarning

    with pytest.warns(UnknownFilterKeyWarning, match=r"'fle_type'.*matched nothing.*file_type"):
        assert built.search("QLoRA", filters={"fle_type": "md"}) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known key that matches nothing, or a match: no warning
        assert built.search("QLoRA", filters={"file_type": "pdf"}) == []
        assert built.search("QLoRA", filters={"file_type": "md"})


def test_bad_search_arguments_are_clear(built):
    with pytest.raises(ConfigError, match="unknown search mode 'semantic'"):
        built.search("x", mode="semantic")
    with pytest.raises(ConfigError, match="query is empty"):
        built.search("   ")
    with pytest.raises(ConfigError, match="unknown search option"):
        built.search("x", depth=3)


def _index_with_copies(hash_index, tmp_path, *others: str):
    """Three copies of one passage (copy0..2.txt), other.txt, and each of ``others`` as its own file."""
    d = tmp_path / "dup"
    d.mkdir()
    for i in range(3):
        (d / f"copy{i}.txt").write_text("LoRA adapters train low rank matrices for efficient tuning.")
    (d / "other.txt").write_text("LoRA adapters differ from prefix tuning, which learns virtual tokens.")
    for i, text in enumerate(others):
        (d / f"more{i}.txt").write_text(text)
    index = hash_index()
    index.add([d], progress=False)
    return index


def test_mmr_option_diversifies(hash_index, tmp_path):
    index = _index_with_copies(hash_index, tmp_path)
    plain = index.search("LoRA adapters low rank", k=2, mode="dense")
    diverse = index.search("LoRA adapters low rank", k=2, mode="dense", mmr=True, mmr_lambda=0.3)
    assert all("copy" in h.source for h in plain)
    assert any("other" in h.source for h in diverse)


def test_distinct_search_shows_each_text_once_and_names_the_copies(hash_index, tmp_path):
    index = _index_with_copies(hash_index, tmp_path, "Quantised base models with LoRA adapters save memory when tuning.")
    plain = index.search("LoRA adapters low rank", k=3, mode="dense")
    assert sorted(h.source.split("/")[-1] for h in plain) == ["copy0.txt", "copy1.txt", "copy2.txt"]
    assert all(h.also_in == [] for h in plain)
    distinct = index.search("LoRA adapters low rank", k=3, mode="dense", distinct=True)
    assert len(distinct) == 3  # asked again, so the copies did not cost places
    assert len({h.text for h in distinct}) == 3
    first = distinct[0]
    assert first.source == plain[0].source and first.score == plain[0].score  # the best-ranked copy is kept
    assert sorted(first.also_in) == sorted(h.source for h in plain[1:])
    assert first.to_dict()["also_in"] == first.also_in
    assert plain[0].also_in == []  # the retriever's own hits are not changed


def test_bm25_stays_in_sync_after_update_and_prune(built, docs_dir):
    assert built.search("lexical ranking rare terms", k=1, mode="bm25")[0].source.endswith("rag.txt")
    (docs_dir / "rag.txt").write_text("Retrieval\n\nColBERT uses late interaction over token embeddings.\n")
    built.add([docs_dir], progress=False)
    hits = built.search("lexical ranking rare terms", k=5, mode="bm25")
    assert all(not h.source.endswith("rag.txt") for h in hits)  # old text no longer matches
    assert built.search("ColBERT late interaction", k=1, mode="bm25")[0].source.endswith("rag.txt")
    (docs_dir / "rag.txt").unlink()
    built.add([docs_dir], prune=True, progress=False)
    assert built.search("ColBERT late interaction", k=5, mode="bm25") == []
    assert len(built.bm25) == len(built)


def _tiny_cross_encoder(path):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = "[PAD] [UNK] [CLS] [SEP] [MASK] lora qlora adapters quantises model base rank what is the a".split()
    (path / "vocab.txt").parent.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(words))
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128, num_labels=1)
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_reranker_from_a_local_directory_reorders_candidates(built, tmp_path):
    path = _tiny_cross_encoder(tmp_path / "ce")
    hits = built.search("what is qlora", k=3, reranker=str(path))
    assert hits and all("rerank" in h.scores for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].score == pytest.approx(hits[0].scores["rerank"])
    # the reranker's order is its own: it scores each (query, chunk) pair
    from ragtune.rag.retrieve import load_reranker

    model = load_reranker(str(path))
    direct = model.predict([("what is qlora", h.text) for h in hits])
    assert np.allclose(sorted(direct, reverse=True), [h.score for h in hits], atol=1e-5)


def test_missing_reranker_directory_is_a_clear_error(built, tmp_path):
    with pytest.raises(ModelLoadError, match="reranker directory not found"):
        built.search("qlora", reranker=str(tmp_path / "nope"))


def test_rm3_weights_by_hand():
    from ragtune.rag.lexical import rm3_weights, tokenize

    weights = rm3_weights("wing lift", [("wing flutter flutter", 3.0), ("lift drag", 1.0)], n_terms=2)
    wing, lift, flutter = tokenize("wing lift flutter")
    # query half: 0.25 each; model: flutter 0.75*2/3=0.5, wing 0.75/3=0.25, lift 0.25/2, drag 0.25/2
    assert weights[flutter] == pytest.approx(0.5 * 0.5 / 0.75)
    assert weights[wing] == pytest.approx(0.25 + 0.5 * 0.25 / 0.75)
    assert weights[lift] == pytest.approx(0.25)
    assert sum(weights.values()) == pytest.approx(1.0)


def _flutter_index(hash_index, tmp_path):
    """Three files: a.txt matches "swept wings"; b.txt shares only feedback terms ("flutter", "speed")."""
    d = tmp_path / "prf"
    d.mkdir()
    (d / "a.txt").write_text("Flutter of swept wings: flutter onset and flutter speed of swept wings.")
    (d / "b.txt").write_text("Aeroelastic flutter speed measured in the tunnel.")
    (d / "c.txt").write_text("Cooking pasta takes ten minutes.")
    index = hash_index()
    index.add([d], progress=False)
    return index


def _names(hits):
    return [h.source.rsplit("/", 1)[-1] for h in hits]


def test_bm25_feedback_finds_documents_sharing_no_query_term(hash_index, tmp_path):
    index = _flutter_index(hash_index, tmp_path)
    plain = index.search("swept wings", k=5, mode="bm25", bm25_feedback=False)
    expanded = index.search("swept wings", k=5, mode="bm25", bm25_feedback="on")
    assert _names(plain) == ["a.txt"]
    assert _names(expanded) == ["a.txt", "b.txt"]  # via "flutter", "speed"


def test_default_feedback_expands_long_queries_only(hash_index, tmp_path):
    index = _flutter_index(hash_index, tmp_path)
    assert _names(index.search("swept wings", k=5, mode="bm25")) == ["a.txt"]  # 2 terms: not expanded
    long = "swept wings onset wings swept wings planform sweep angle wing root wing tip chord"  # >= 10 terms
    assert _names(index.search(long, k=5, mode="bm25")) == ["a.txt", "b.txt"]
    assert _names(index.search(long, k=5, mode="bm25", bm25_feedback="off")) == ["a.txt"]


def test_bm25_feedback_can_take_its_documents_from_another_ranking():
    from ragtune.rag.lexical import BM25Index

    bm25 = BM25Index()
    texts = ["swept wings and flutter", "pasta cooking time", "pasta sauce with basil", "flutter speed", "tides"]
    bm25.build(np.arange(10, 15), texts)
    texts_of = {10 + i: t for i, t in enumerate(texts)}.__getitem__
    own = bm25.search("swept wings", 10, feedback_texts=lambda ids: [texts_of(i) for i in ids])
    assert [i for i, _ in own] == [10, 13]  # expanded by "flutter" from its own first pass
    seen = []

    def fused(first):  # another retriever put chunk 11 above BM25's own first pass
        seen.append([i for i, _ in first])
        return [(11, 1.0)] + first

    other = bm25.search("swept wings", 10, feedback_texts=lambda ids: [texts_of(i) for i in ids],
                        feedback_ranking=fused)
    assert seen == [[10]]
    assert 12 in [i for i, _ in other]  # "pasta" came from chunk 11, which BM25 alone never ranked
    assert other[0][0] == 10


def test_hybrid_feedback_uses_the_fused_first_pass(hash_index, tmp_path, monkeypatch):
    from ragtune.rag import lexical

    d = tmp_path / "fb"
    d.mkdir()
    (d / "a.txt").write_text("Flutter of swept wings: flutter onset and flutter speed of swept wings.")
    (d / "b.txt").write_text("Aeroelastic flutter speed measured in the tunnel.")
    index = hash_index()
    index.add([d], progress=False)
    calls = []
    original = lexical.BM25Index.search

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("feedback_ranking"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(lexical.BM25Index, "search", spy)
    index.search("swept wings", k=2, mode="hybrid")
    index.search("swept wings", k=2, mode="bm25")
    index.search("swept wings", k=2, mode="hybrid", bm25_feedback=False)
    assert callable(calls[0]) and calls[1] is None
    fused = calls[0]([])  # with no BM25 hits, the first pass is the dense ranking alone
    assert fused and all(score > 0 for _, score in fused)


@pytest.fixture
def multi_chunk(hash_index, tmp_path):
    """Twelve files of three sections each: every file is several chunks, as long documents are."""
    d = tmp_path / "multi"
    d.mkdir()
    topics = ["flutter wings", "heat slabs", "boundary layer", "shock waves", "pasta sauce", "tides moon"]
    for n in range(12):
        a, b = topics[n % 6], topics[(n + 1) % 6]
        (d / f"f{n:02d}.md").write_text(f"# Part one\n\n{a} {a} note {n}\n\n# Part two\n\n{b} and {a}\n\n"
                                        f"# Part three\n\nunrelated text {n} about {b}\n")
    index = hash_index(chunker__max_tokens=16, chunker__overlap_tokens=0)
    index.add([d], progress=False)
    assert len(index) >= 30
    return index


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_per_source_equals_collapsing_the_full_chunk_ranking(multi_chunk, mode):
    """What evaluation did before (ask k * 3 chunks, keep each file's best) is what per_source=1 returns."""
    for query in ("flutter wings heat", "boundary layer shock waves", "tides moon pasta sauce note 3"):
        full = multi_chunk.search(query, k=15, mode=mode)
        best: dict[str, object] = {}
        for hit in full:
            best.setdefault(hit.source, hit)
        grouped = multi_chunk.search(query, k=5, mode=mode, per_source=1, candidates=15)
        assert [h.to_dict() for h in grouped] == [h.to_dict() for h in list(best.values())[:5]]
        assert len({h.source for h in grouped}) == len(grouped)


def test_per_source_reads_texts_of_the_returned_hits_only(multi_chunk, monkeypatch):
    from ragtune.rag.generation import Generation

    asked = []
    original = Generation.get_chunks

    def spy(self, ids):
        asked.append(list(ids))
        return original(self, ids)

    monkeypatch.setattr(Generation, "get_chunks", spy)
    hits = multi_chunk.search("flutter wings heat slabs", k=3, per_source=1, candidates=30, bm25_feedback="off")
    assert len(hits) == 3
    assert len(asked) == 1 and len(asked[0]) == 3  # not the 30-chunk pool


def test_per_source_two_keeps_at_most_two_chunks_of_a_file(multi_chunk):
    hits = multi_chunk.search("flutter wings", k=10, per_source=2)
    counts: dict[str, int] = {}
    for h in hits:
        counts[h.source] = counts.get(h.source, 0) + 1
    assert hits and max(counts.values()) == 2


def test_per_source_must_be_a_count(multi_chunk):
    with pytest.raises(ConfigError, match="per_source"):
        multi_chunk.search("flutter", per_source=-1)


LONG = "swept wings onset wings swept wings planform sweep angle wing root wing tip chord"  # >= 10 content terms


def test_rocchio_query_is_the_unit_mix_of_query_and_feedback_mean():
    from ragtune.rag.retrieve import rocchio_query

    q = np.array([1.0, 0.0, 0.0], np.float32)
    feedback = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    mixed = rocchio_query(q, feedback, alpha=0.9, beta=0.1)
    expected = np.array([0.9, 0.05, 0.05]) / np.linalg.norm([0.9, 0.05, 0.05])
    assert mixed == pytest.approx(expected, abs=1e-6)
    assert rocchio_query(q, np.zeros((0, 3), np.float32), 0.9, 0.1) is q  # no feedback: the query itself


def _dense_of(index, query, **options):
    return {h.chunk_id: h.scores["dense"] for h in index.search(query, k=3, mode="hybrid", **options)}


def test_dense_feedback_requeries_with_the_fused_first_pass_top_chunks(hash_index, tmp_path):
    """The dense scores of a fed-back search are cosines to alpha q + beta mean(top-k first-pass vectors)."""
    from ragtune.rag.retrieve import rocchio_query

    index = _flutter_index(hash_index, tmp_path)
    # the first pass: dense and BM25 (no RM3) fused, i.e. the plain hybrid ranking
    plain = index.search(LONG, k=3, mode="hybrid", dense_feedback="off", bm25_feedback="off")
    fed = index.search(LONG, k=3, mode="hybrid", dense_feedback="on", bm25_feedback="off",
                       dense_feedback_alpha=0.5, dense_feedback_beta=0.5, dense_feedback_chunks=2)
    embed = index.embedder.encode
    q = rocchio_query(embed([LONG])[0], embed([h.text for h in plain[:2]]), 0.5, 0.5)
    expected = embed([h.text for h in fed]) @ q
    assert [h.scores["dense"] for h in fed] == pytest.approx(expected.tolist(), abs=1e-5)
    unfed = {h.chunk_id: h.scores["dense"] for h in plain}
    assert any(abs(h.scores["dense"] - unfed[h.chunk_id]) > 1e-4 for h in fed if h.chunk_id in unfed)


def test_default_dense_feedback_applies_to_long_queries_only(hash_index, tmp_path):
    index = _flutter_index(hash_index, tmp_path)
    assert _dense_of(index, "swept wings") == _dense_of(index, "swept wings", dense_feedback="off")
    assert _dense_of(index, LONG) != _dense_of(index, LONG, dense_feedback="off")
    assert _dense_of(index, LONG) == _dense_of(index, LONG, dense_feedback="on")


def test_dense_feedback_reembeds_where_the_store_cannot_return_vectors(hash_index, tmp_path, monkeypatch):
    from ragtune.rag.generation import Generation

    index = _flutter_index(hash_index, tmp_path)
    stored = _dense_of(index, LONG, dense_feedback="on")

    def refuse(self, ids):
        raise RuntimeError("this index type cannot reconstruct")

    monkeypatch.setattr(Generation, "reconstruct", refuse)
    assert _dense_of(index, LONG, dense_feedback="on") == pytest.approx(stored, abs=1e-5)


def test_dense_feedback_settings_are_validated(hash_index, tmp_path):
    index = _flutter_index(hash_index, tmp_path)
    with pytest.raises(ConfigError, match="dense_feedback"):
        index.search(LONG, dense_feedback="sometimes")
    with pytest.raises(ConfigError, match="dense_feedback_chunks"):
        index.search(LONG, dense_feedback_chunks=0)
