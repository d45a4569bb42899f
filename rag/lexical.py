"""BM25 over the chunks, with bm25s, a Snowball stemmer and English stop words.

bm25s has no incremental update, so the index is rebuilt from the chunk texts whenever the chunk set
changes; that costs well under a second per ten thousand chunks, far less than embedding the changed
file. It is saved with bm25s' own format (numpy arrays, loaded with ``allow_pickle=False``, and JSON).

Scores for every chunk are computed at query time (a sparse dot product), which lets metadata filters
apply *before* the top-k cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

from ragtune.errors import IndexFormatError

from .config import LexicalConfig

_TOKEN = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=4)
def _stemmer(language: str):
    import Stemmer

    return Stemmer.Stemmer(language)


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str, language: str = "english", stemmer: str = "snowball", stopwords: bool = True,
             min_chars: int = 1) -> list[str]:
    """Lower-case alphanumeric words, stop words removed (English list), stemmed.

    ``stemmer``: ``snowball`` (PyStemmer's algorithm for ``language``), ``porter`` (the original Porter
    algorithm, English only) or ``none``. ``min_chars``: shorter words are dropped before stemming.
    """
    words = _TOKEN.findall(text.lower())
    if min_chars > 1:
        words = [w for w in words if len(w) >= min_chars]
    if stopwords:
        stop = _stopwords()
        words = [w for w in words if w not in stop]
    if stemmer == "none":
        return words
    return _stemmer("porter" if stemmer == "porter" else language).stemWords(words)


def _settings(config: LexicalConfig) -> tuple:
    """:func:`tokenize`'s arguments after the text, from ``config``."""
    return config.language, config.stemmer, config.stopwords, config.min_token_chars


def config_tokenizer(config: LexicalConfig):
    """``text -> tokens`` with the settings of ``config`` (index and queries must use the same one)."""

    # Cached: RM3 re-reads the same top chunks for many queries (tokenizing them was half its time).
    @lru_cache(maxsize=8192)
    def cached(text: str) -> tuple[str, ...]:
        return tuple(tokenize(text, *_settings(config)))

    def run(text: str) -> list[str]:
        return list(cached(text))

    return run


def rm3_weights(
    query: str,
    feedback: list[tuple[str, float]],
    n_terms: int = 10,
    original_weight: float = 0.5,
    language: str = "english",
    tokenizer=None,
) -> dict[str, float]:
    """RM3 pseudo-relevance feedback (Lavrenko and Croft's relevance model, interpolated with the query).

    ``feedback`` holds the first-pass top documents as ``(text, score)``. Each term's weight in the
    relevance model is sum_d P(t|d) * P(d|q) with P(d|q) the normalised first-pass score; the ``n_terms``
    best terms are mixed with the original query, ``original_weight`` to the query. The defaults
    (10 feedback documents, 10 terms, 0.5) are the customary ones (e.g. Anserini's), not tuned here.
    ``tokenizer`` (text -> tokens) defaults to :func:`tokenize` in ``language``.
    """
    tokenizer = tokenizer or (lambda text: tokenize(text, language))
    query_terms = tokenizer(query)
    if not query_terms:
        return {}
    weights: dict[str, float] = {}
    for term in query_terms:
        weights[term] = weights.get(term, 0.0) + original_weight / len(query_terms)
    total = sum(max(score, 0.0) for _, score in feedback)
    if total <= 0:
        return weights
    model: dict[str, float] = {}
    for text, score in feedback:
        terms = tokenizer(text)
        if not terms or score <= 0:
            continue
        p_doc = score / total
        for term in terms:
            model[term] = model.get(term, 0.0) + p_doc / len(terms)
    best = sorted(model.items(), key=lambda kv: (-kv[1], kv[0]))[:n_terms]
    norm = sum(v for _, v in best)
    for term, value in best:
        weights[term] = weights.get(term, 0.0) + (1 - original_weight) * value / norm
    return weights


def _mean_terms(texts: list[str], tokenizer) -> float:
    return sum(len(tokenizer(t)) for t in texts) / len(texts) if texts else 0.0


class BM25Index:
    """BM25 scores over rows; ``ids[row]`` maps a row to the chunk's integer id."""

    def __init__(self, config: LexicalConfig | None = None):
        self.config = config or LexicalConfig()
        self.tokenize = config_tokenizer(self.config)
        self.ids = np.zeros(0, dtype=np.int64)
        self._bm25 = None

    def __len__(self) -> int:
        return len(self.ids)

    def build(self, ids: np.ndarray, texts: list[str]) -> None:
        """Index ``texts`` (row i has chunk id ``ids[i]``); see :meth:`build_from` for a stream of rows."""
        self.build_from(zip(np.asarray(ids, dtype=np.int64).tolist(), texts))

    def build_from(self, rows: Iterable[tuple[int, str]]) -> int:
        """Index (chunk id, text) pairs read once, one at a time (e.g. ``ChunkDB.iter_texts()``): only the
        postings stay in RAM, never the texts or their token lists (rag/bm25_postings.py). Returns the
        bytes the postings held, for the caller's report."""
        from .bm25_postings import Postings

        postings = Postings()
        settings = _settings(self.config)
        for chunk_id, text in rows:
            # The uncached tokenizer: the query cache (8192 entries) would otherwise fill with chunk texts.
            postings.add(chunk_id, tokenize(text, *settings))
        self.ids = postings.ids()
        held = postings.nbytes()
        self._bm25 = postings.to_bm25s(self.config) if len(postings) else None
        return held

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for ``query`` (zeros when no query term is indexed)."""
        if self._bm25 is None:
            return np.zeros(len(self.ids), dtype=np.float32)
        terms = [t for t in self.tokenize(query) if t in self._bm25.vocab_dict]
        if not terms:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)

    def weighted_scores(self, weights: dict[str, float]) -> np.ndarray:
        """BM25 score of every row for a weighted query: sum_t weight_t * bm25(t, row)."""
        out = np.zeros(len(self.ids), dtype=np.float32)
        if self._bm25 is None:
            return out
        for term, weight in weights.items():
            if term in self._bm25.vocab_dict:
                out += weight * np.asarray(self._bm25.get_scores([term]), dtype=np.float32)
        return out

    def search(
        self,
        query: str,
        k: int,
        allowed_rows: np.ndarray | None = None,
        feedback_texts=None,
        feedback_docs: int = 10,
        feedback_ranking=None,
        feedback_min_terms: int = 0,
    ) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, score) with a positive score, optionally among ``allowed_rows`` only.

        With ``feedback_texts`` (a function: list of chunk ids -> list of texts) the query is expanded by
        RM3 (see :func:`rm3_weights`) from the ``feedback_docs`` best chunks of a first pass. The first pass
        is this BM25 ranking, or ``feedback_ranking(first_pass)`` when given: a function from this ranking
        (best-first ``(chunk id, score)`` pairs) to another one, e.g. its fusion with dense retrieval.
        """
        scores = self._masked(self.scores(query), allowed_rows)
        if feedback_texts is not None and scores.any():
            ranking = self._top(scores, max(k, feedback_docs))
            if feedback_ranking is not None:
                ranking = feedback_ranking(ranking)
            top = [(doc, score) for doc, score in ranking[:feedback_docs] if score > 0]
            texts = feedback_texts([doc for doc, _ in top])
            if feedback_min_terms and _mean_terms(texts, self.tokenize) < feedback_min_terms:
                return self._top(scores, k)  # too little text to estimate a relevance model from
            weights = rm3_weights(query, [(text, score) for text, (_, score) in zip(texts, top)],
                                  tokenizer=self.tokenize)
            scores = self._masked(self.weighted_scores(weights), allowed_rows)
        return self._top(scores, k)

    def _top(self, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
        positive = np.flatnonzero(scores > 0)
        if not len(positive):
            return []
        if len(positive) > 2 * k:  # partial selection first: a full sort of every matching row is wasted
            keep = np.argpartition(-scores[positive], k - 1)[:k]
            cut = scores[positive][keep].min()
            positive = positive[scores[positive] >= cut]  # ties at the cut stay, so the order is exact
        top = positive[np.argsort(-scores[positive], kind="stable")[:k]]
        return [(int(self.ids[r]), float(scores[r])) for r in top]

    @staticmethod
    def _masked(scores: np.ndarray, allowed_rows: np.ndarray | None) -> np.ndarray:
        if allowed_rows is None:
            return scores
        mask = np.zeros(len(scores), dtype=bool)
        mask[allowed_rows] = True
        return np.where(mask, scores, 0.0).astype(np.float32)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "ids.npy", self.ids, allow_pickle=False)
        (directory / "config.json").write_text(json.dumps(self.config.__dict__))
        if self._bm25 is not None:
            self._bm25.save(str(directory / "bm25s"))

    @classmethod
    def load(cls, directory: Path, config: LexicalConfig | None = None) -> BM25Index:
        import bm25s

        index = cls(config)
        try:
            index.ids = np.load(directory / "ids.npy", allow_pickle=False)
            if (directory / "bm25s").exists():
                index._bm25 = bm25s.BM25.load(str(directory / "bm25s"), load_corpus=False)
        except Exception as exc:
            raise IndexFormatError(f"cannot read the BM25 index in {directory}: {exc}") from exc
        return index
