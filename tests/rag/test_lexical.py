"""BM25 side settings: stemmer, stop words, BM25 variant, RM3 modes, and reading indexes built before them."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.errors import ConfigError
from ragtune.rag.config import IndexConfig, LexicalConfig, RetrievalConfig
from ragtune.rag.lexical import BM25Index, tokenize
from ragtune.rag.retrieve import wants_feedback


def test_stemmer_and_stop_word_settings_change_the_tokens():
    assert tokenize("the skies are generously wide") == ["sky", "generous", "wide"]
    assert tokenize("the skies are generously wide", stemmer="porter") == ["ski", "gener", "wide"]
    assert tokenize("the skies", stemmer="none", stopwords=False) == ["the", "skies"]


def test_an_index_and_its_queries_share_the_configured_tokenizer():
    index = BM25Index(LexicalConfig(stemmer="porter"))
    index.build(np.array([1, 2]), ["generously funded", "wide skies"])
    assert index.search("generous", 5)[0][0] == 1  # porter: generous -> gener = generously -> gener
    snowball = BM25Index(LexicalConfig(stemmer="snowball"))
    snowball.build(np.array([1, 2]), ["generously funded", "wide skies"])
    assert snowball.search("generous", 5)[0][0] == 1


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_every_bm25_variant_ranks_the_matching_row_first(method):
    index = BM25Index(LexicalConfig(method=method))
    index.build(np.array([10, 20, 30]), ["swept wing flutter", "heat transfer wall", "wing wing lift"])
    assert index.search("heat wall", 3)[0][0] == 20


def test_unknown_lexical_settings_are_config_errors():
    with pytest.raises(ConfigError, match="lexical.stemmer"):
        LexicalConfig(stemmer="lancaster").validate()
    with pytest.raises(ConfigError, match="lexical.method"):
        LexicalConfig(method="bm42").validate()


def test_an_index_written_before_the_tokenizer_settings_keeps_its_tokens():
    old = {"lexical": {"enabled": True, "language": "english", "k1": 1.2, "b": 0.75}}
    lexical = IndexConfig.from_dict(old).lexical
    assert (lexical.stemmer, lexical.stopwords, lexical.method) == ("snowball", True, "lucene")
    assert lexical.min_token_chars == 1  # one-character words stay indexed, as they were


def test_min_token_chars_drops_short_words_from_index_and_queries():
    text = "I'm reading Newton's method, e.g. in I/O x2 3"
    assert tokenize(text) == ["i", "m", "read", "newton", "s", "method", "e", "g", "i", "o", "x2", "3"]
    assert tokenize(text, min_chars=2) == ["read", "newton", "method", "x2"]
    index = BM25Index(LexicalConfig(min_token_chars=2))
    index.build(np.array([1, 2]), ["x y z vectors", "the s of it"])
    assert index.search("s vectors", 5) == index.search("vectors", 5) and index.search("s", 5) == []
    with pytest.raises(ConfigError, match="min_token_chars"):
        LexicalConfig(min_token_chars=0).validate()


def test_feedback_setting_accepts_the_old_bool_and_the_query_length_rule():
    cfg = RetrievalConfig(bm25_feedback=True)
    cfg.validate()
    assert cfg.bm25_feedback == "on"
    with pytest.raises(ConfigError, match="bm25_feedback"):
        RetrievalConfig(bm25_feedback="sometimes").validate()
    long = RetrievalConfig(bm25_feedback="long", feedback_min_terms=3)
    assert wants_feedback(long, ["a", "b", "c"]) and not wants_feedback(long, ["a", "b"])
    short = RetrievalConfig(bm25_feedback="short", feedback_min_terms=3)
    assert wants_feedback(short, ["a"]) and not wants_feedback(short, ["a", "b", "c"])
    assert not wants_feedback(RetrievalConfig(bm25_feedback="off"), ["a"] * 20)


def test_feedback_is_skipped_when_its_chunks_are_too_short_to_estimate_from():
    texts = ["wing flutter", "wing lift",
             "drag polar of a swept wing at transonic speed with shock induced separation and buffet onset"]
    index = BM25Index()
    index.build(np.arange(3), texts)
    def feedback(ids):
        return [texts[i] for i in ids]
    plain = index.search("wing", 3)
    assert index.search("wing", 3, feedback_texts=feedback, feedback_min_terms=50) == plain
    assert index.search("wing", 3, feedback_texts=feedback, feedback_min_terms=0) != plain


def test_retrieval_defaults_feed_back_long_queries_only():
    cfg = RetrievalConfig()
    assert (cfg.bm25_feedback, cfg.feedback_min_terms, cfg.feedback_min_doc_terms) == ("long", 10, 0)
    assert (cfg.mode, cfg.rrf_k, cfg.dense_weight, cfg.bm25_weight) == ("hybrid", 60, 1.0, 1.0)
    # dense PRF: the same length rule, pyserini's Rocchio parameters (bench/retrieval_study.py, fourth round)
    assert (cfg.dense_feedback, cfg.dense_feedback_chunks, cfg.dense_feedback_alpha, cfg.dense_feedback_beta) == (
        "long", 3, 0.9, 0.1)
    lexical = LexicalConfig()
    assert (lexical.stemmer, lexical.stopwords, lexical.method, lexical.min_token_chars) == (
        "snowball", True, "lucene", 1)
    with pytest.raises(ConfigError, match="feedback_min_doc_terms"):
        RetrievalConfig(feedback_min_doc_terms=-1).validate()


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_the_streamed_build_scores_exactly_like_bm25s_own_index(method, tmp_path):
    import bm25s

    texts = ["swept wing flutter wing", "heat transfer at the wall", "", "wing lift and drag of a swept wing",
             "boundary layer heat transfer", "the of and", "flutter of panels in supersonic flow"]
    config = LexicalConfig(method=method)
    streamed = BM25Index(config)
    held = streamed.build_from(iter(zip(range(100, 107), texts)))  # a one-pass iterator, as from the chunk table
    reference = bm25s.BM25(k1=config.k1, b=config.b, method=method)
    reference.index([tokenize(t) or [""] for t in texts], show_progress=False)
    assert held > 0 and streamed.ids.tolist() == list(range(100, 107))
    streamed.save(tmp_path / "bm25")
    reloaded = BM25Index.load(tmp_path / "bm25", config)
    for query in ["wing", "heat transfer wall", "flutter supersonic panel", "drag"]:
        terms = tokenize(query)
        want = reference.get_scores(terms)
        np.testing.assert_allclose(streamed.scores(query), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(reloaded.scores(query), want, rtol=1e-5, atol=1e-6)
    assert streamed.search("wing", 2)[0][0] in (100, 103)
