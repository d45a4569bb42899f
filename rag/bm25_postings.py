"""BM25 built in one streaming pass: chunk texts are read one at a time, only the postings are kept.

bm25s' own ``BM25.index`` takes every document's token list at once (a Python list of strings per chunk:
several times the size of the text itself) and walks it three times. An index write reads the chunk
texts from the generation's chunk table instead (:meth:`ChunkDB.iter_texts`), tokenizes each once and
keeps, per chunk, only its distinct term ids and their counts, in typed arrays: 8 bytes per (chunk, term)
posting, plus the vocabulary. The scores are then computed vectorised and handed to bm25s as its
ready-made sparse matrix, so queries, ``save`` and ``load`` are bm25s' own and unchanged. The result equals
``bm25s.BM25.index`` on the same tokens (tests/rag/test_lexical.py checks every method).

    >>> postings = Postings()                                             # doctest: +SKIP
    >>> for chunk_id, text in db.iter_texts(): postings.add(chunk_id, tokenize(text))   # doctest: +SKIP
    >>> bm25 = postings.to_bm25s(LexicalConfig())                          # doctest: +SKIP
"""

from __future__ import annotations

from array import array
from collections import Counter

import numpy as np

from .config import LexicalConfig

_EMPTY = ""  # bm25s' placeholder token: a chunk with no terms is indexed as [""] (as before)


class Postings:
    """Term counts per chunk, appended chunk by chunk (typed arrays grow in place, no per-item objects)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self._ids = array("q")  # chunk ids, in the order added (= BM25 rows)
        self._lengths = array("i")  # tokens per chunk (duplicates counted), for the length normalisation
        self._n_terms = array("i")  # distinct terms per chunk
        self._terms = array("i")  # term id of each posting, chunk after chunk
        self._counts = array("f")  # how often that term occurs in that chunk

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, chunk_id: int, tokens: list[str]) -> None:
        tokens = tokens or [_EMPTY]
        counts = Counter(tokens)
        vocab = self.vocab
        for token in counts:
            if token not in vocab:
                vocab[token] = len(vocab)
        self._ids.append(int(chunk_id))
        self._lengths.append(len(tokens))
        self._n_terms.append(len(counts))
        self._terms.extend(vocab[t] for t in counts)
        self._counts.extend(counts.values())

    def ids(self) -> np.ndarray:
        return np.frombuffer(self._ids, dtype=np.int64).copy() if len(self._ids) else np.zeros(0, np.int64)

    def nbytes(self) -> int:
        """What the postings hold in RAM (the arrays; the vocabulary dict comes on top)."""
        return sum(a.itemsize * len(a) for a in (self._ids, self._lengths, self._n_terms, self._terms, self._counts))

    def to_bm25s(self, config: LexicalConfig):
        """A ``bm25s.BM25`` whose score matrix is built from these postings (same scores as its ``index``)."""
        import bm25s
        import scipy.sparse as sp

        if _EMPTY not in self.vocab:  # bm25s adds the empty token to every vocabulary
            self.vocab[_EMPTY] = len(self.vocab)
        n_docs, n_vocab = len(self._ids), len(self.vocab)
        terms = np.frombuffer(self._terms, dtype=np.int32) if len(self._terms) else np.zeros(0, np.int32)
        df = np.bincount(terms, minlength=n_vocab)
        idf = _idf(config.method, df, n_docs)
        lengths = np.frombuffer(self._lengths, dtype=np.int32)
        avg = float(lengths.mean(dtype=np.float64))
        scores = self._scores(config, terms, idf, avg)
        bm25 = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
        nonoccurrence = None
        if config.method in ("bm25l", "bm25+"):  # bm25s subtracts the absent-term score and adds it back per query
            nonoccurrence = (idf * _tfc(config.method, np.float32(0), avg, avg, config.k1, config.b)).astype(np.float32)
            nonoccurrence[df == 0] = 0.0
            scores -= nonoccurrence[terms]
        # int32 offsets when they fit, so scipy keeps the term ids as they are instead of widening a copy
        indptr = np.zeros(n_docs + 1, dtype=np.int32 if len(terms) < 2**31 else np.int64)
        np.cumsum(np.frombuffer(self._n_terms, dtype=np.int32), out=indptr[1:])
        self._counts = array("f")  # folded into the scores: free it before the conversion, the build's peak
        # Peak: term ids (4 B a posting) + scores (4) + the CSC matrix (8) = twice the postings' 8 B.
        matrix = sp.csr_matrix((scores, terms, indptr), shape=(n_docs, n_vocab), copy=False).tocsc()
        del scores, terms
        self._terms = array("i")
        bm25.scores = {"data": matrix.data.astype(np.float32, copy=False),
                       "indices": matrix.indices.astype(np.int32, copy=False), "indptr": matrix.indptr,
                       "num_docs": n_docs}
        bm25.vocab_dict = dict(self.vocab)
        bm25.unique_token_ids_set = set(self.vocab.values())
        bm25.nonoccurrence_array = nonoccurrence
        return bm25

    def _scores(self, config: LexicalConfig, terms: np.ndarray, idf: np.ndarray, avg: float) -> np.ndarray:
        """idf x tf component of every posting, in float32, a block of chunks at a time so the temporaries
        stay a few MB whatever the collection's size."""
        out = np.empty(len(terms), dtype=np.float32)
        tf = np.frombuffer(self._counts, dtype=np.float32) if len(self._counts) else np.zeros(0, np.float32)
        lengths = np.frombuffer(self._lengths, dtype=np.int32)
        n_terms = np.frombuffer(self._n_terms, dtype=np.int32)
        start = 0
        for first in range(0, len(lengths), _BLOCK):
            widths = n_terms[first:first + _BLOCK]
            stop = start + int(widths.sum())
            doc_len = np.repeat(lengths[first:first + _BLOCK].astype(np.float32), widths)
            part = _tfc(config.method, tf[start:stop], doc_len, np.float32(avg), config.k1, config.b)
            out[start:stop] = idf[terms[start:stop]] * part
            start = stop
        return out


_BLOCK = 1024  # chunks per scoring block: temporaries of a few MB (5 float32 arrays of ~200k postings)


def _idf(method: str, df: np.ndarray, n: int) -> np.ndarray:
    """bm25s' idf per term (bm25s/scoring.py, Kamphuis et al. 2020), vectorised; 0 for an unseen term."""
    d = df.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "robertson":
            out = np.log(np.maximum((n - d + 0.5) / (d + 0.5), 1.0))
        elif method == "lucene":
            out = np.log(1 + (n - d + 0.5) / (d + 0.5))
        elif method == "atire":
            out = np.log(n / d)
        elif method == "bm25l":
            out = np.log((n + 1) / (d + 0.5))
        elif method == "bm25+":
            out = np.log((n + 1) / d)
        else:
            raise ValueError(f"unknown BM25 method {method!r}")
    return np.where(df > 0, out, 0.0).astype(np.float32)


def _tfc(method: str, tf, doc_len, avg: float, k1: float, b: float, delta: float = 0.5):
    """bm25s' term-frequency component (its default delta 0.5 for BM25L/BM25+)."""
    norm = 1 - b + b * doc_len / avg
    if method in ("robertson", "lucene"):
        return tf / (k1 * norm + tf)
    if method == "atire":
        return tf * (k1 + 1) / (tf + k1 * norm)
    if method == "bm25l":
        c = tf / norm
        return (k1 + 1) * (c + delta) / (k1 + c + delta)
    if method == "bm25+":
        return (k1 + 1) * tf / (k1 * norm + tf) + delta
    raise ValueError(f"unknown BM25 method {method!r}")
