"""Settings, one validated dataclass per concern, saved in the index manifest.

An index directory records the settings that built it, so a later run reproduces it and a mismatch
(another embedding model, another chunker) is detected instead of silently mixing vectors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ragtune.errors import ConfigError

#: Exclusion globs applied to every directory walk (matched against each path component).
DEFAULT_EXCLUDE = (".*", "__pycache__", "node_modules", "_src", "*.egg-info")


@dataclass
class ChunkerConfig:
    """How text is cut into retrievable pieces.

    ``structure`` (default) keeps a section together with its heading and bounds every chunk in tokens of
    the embedding model; ``recursive`` is langchain-text-splitters' RecursiveCharacterTextSplitter,
    bounded in characters (``chunk_size``/``chunk_overlap``) and then, like every chunker here, clipped to
    the embedding model's window.
    """

    name: str = "structure"
    # None = the embedding model's own window (254 word pieces for all-MiniLM-L6-v2): the largest chunk
    # the model sees whole, and no tuned number. Set a smaller bound for finer-grained citations.
    max_tokens: int | None = None
    overlap_tokens: int = 32
    chunk_size: int = 1000  # characters, recursive splitter only
    chunk_overlap: int = 200
    prefix_section: bool = True  # repeat the section title at the top of each chunk

    def in_use(self, window: int | None = None) -> dict:
        """The settings the named chunker actually reads, with the token bound resolved against the embedding
        model's ``window``: the structure chunker ignores ``chunk_size``/``chunk_overlap``, the recursive one
        ignores ``max_tokens``/``overlap_tokens``/``prefix_section`` (it clips to the model's window)."""
        if self.name == "recursive":
            return {"name": self.name, "chunk_size": self.chunk_size, "chunk_overlap": self.chunk_overlap,
                    "max_tokens": window}
        bound = min(self.max_tokens or window, window) if window else self.max_tokens
        return {"name": self.name, "max_tokens": bound, "overlap_tokens": self.overlap_tokens,
                "prefix_section": self.prefix_section}

    def validate(self) -> None:
        if self.name not in ("structure", "recursive"):
            raise ConfigError(f"chunker.name: unknown chunker {self.name!r}; choose 'structure' or 'recursive'")
        if self.max_tokens is not None and self.max_tokens < 16:
            raise ConfigError(f"chunker.max_tokens: {self.max_tokens} is too small; use at least 16")
        check_overlap(self.overlap_tokens, self.max_tokens or 128)
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ConfigError("chunker.chunk_overlap must be >= 0 and smaller than chunk_size")


def check_overlap(overlap: int, max_tokens: int) -> None:
    if not 0 <= overlap < max_tokens // 2:
        raise ConfigError(
            f"chunker.overlap_tokens: {overlap} must be >= 0 and below half of the chunk size "
            f"({max_tokens} tokens)"
        )


@dataclass
class EmbedderConfig:
    """Which sentence-transformers model embeds chunks and queries."""

    model: str = "default"  # "default" = the shipped all-MiniLM-L6-v2, or a local model directory
    batch_size: int = 64
    device: str | None = None  # None = CUDA when available, else CPU

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"embedder.batch_size: {self.batch_size} must be >= 1")


@dataclass
class StoreConfig:
    """The vector index.

    ``index_type="auto"`` keeps an exact inner-product index below ``ann_threshold`` vectors and switches
    to an IVF index (inverted lists over k-means cells, searched with ``nprobe`` cells) above it. IVF
    rather than HNSW because it supports deletion (incremental updates), trains in seconds, and has a
    faiss GPU implementation.
    """

    backend: str = "faiss"  # faiss (in-process, built in) | milvus (server or Milvus Lite file; an extra)
    uri: str | None = None  # milvus: http://host:19530, or a local Milvus Lite file such as ./index.db
    index_type: str = "auto"  # auto | flat | ivf
    ann_threshold: int = 100_000
    nprobe: int | None = None  # None = chosen from the number of cells
    use_gpu: bool | None = None  # None = when faiss-gpu and CUDA are present

    def validate(self) -> None:
        from .store import BACKENDS  # the registry of backends (store.py imports this module)

        if self.backend not in BACKENDS:
            raise ConfigError(f"store.backend: unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.index_type not in ("auto", "flat", "ivf"):
            raise ConfigError(f"store.index_type: unknown {self.index_type!r}; choose auto, flat or ivf")
        if self.ann_threshold < 1000:
            raise ConfigError("store.ann_threshold must be at least 1000")


@dataclass
class LexicalConfig:
    """BM25 over the same chunks (bm25s with a Snowball stemmer and English stop words)."""

    enabled: bool = True
    language: str = "english"
    stemmer: str = "snowball"  # snowball (for `language`) | porter (English) | none
    stopwords: bool = True  # drop bm25s' English stop words
    method: str = "lucene"  # bm25s variant: lucene | robertson | atire | bm25l | bm25+
    min_token_chars: int = 1  # shorter words are not indexed (see bench/retrieval_study.py, fourth round)
    k1: float = 1.2
    b: float = 0.75

    def validate(self) -> None:
        if self.k1 <= 0 or not 0 <= self.b <= 1:
            raise ConfigError("lexical: k1 must be > 0 and b within [0, 1]")
        if not isinstance(self.min_token_chars, int) or self.min_token_chars < 1:
            raise ConfigError(f"lexical.min_token_chars must be an integer >= 1, got {self.min_token_chars!r}")
        if self.stemmer not in LEXICAL_STEMMERS:
            raise ConfigError(f"lexical.stemmer: unknown {self.stemmer!r}; choose one of {', '.join(LEXICAL_STEMMERS)}")
        if self.method not in BM25_METHODS:
            raise ConfigError(f"lexical.method: unknown {self.method!r}; choose one of {', '.join(BM25_METHODS)}")


LEXICAL_STEMMERS = ("snowball", "porter", "none")
BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
# An index written before these settings existed was tokenized like this; reading its manifest must not
# silently switch the queries to other tokens than the stored BM25 index holds.
LEXICAL_LEGACY = {"stemmer": "snowball", "stopwords": True, "method": "lucene", "min_token_chars": 1}


@dataclass
class IngestConfig:
    """Which files are read and how."""

    include: list[str] = field(default_factory=list)  # globs; empty = every supported type
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    max_file_mb: float = 25.0
    # Plain text above this size is split into paragraphs directly: unstructured classifies each
    # paragraph with spaCy (about 25 s per MB here), which would take many minutes on a big log file.
    fast_text_mb: float = 2.0

    def validate(self) -> None:
        if self.max_file_mb <= 0:
            raise ConfigError("ingest.max_file_mb must be > 0")


@dataclass
class RetrievalConfig:
    """Query-time defaults (each can be overridden per query).

    Hybrid = dense + BM25 fused by reciprocal rank fusion, score(d) = sum_r w_r / (rrf_k + rank_r(d)),
    with the customary k = 60 (Cormack, Clarke and Buettcher, 2009) and equal weights: no parameter is
    tuned on any benchmark's queries.
    """

    mode: str = "hybrid"  # dense | bm25 | hybrid
    # RM3 pseudo-relevance feedback on the BM25 side (customary 10 documents / 10 terms / 0.5): "on", "off",
    # "long" (only for queries of at least `feedback_min_terms` content terms) or "short" (only below it).
    # The feedback documents come from the best first pass available: in hybrid mode, BM25 fused with dense.
    # Default "long": feedback is only as good as the first pass it reads, and a query of many content terms
    # constrains its first pass; a short one's is ambiguous and 10 added terms at weight 0.5 drift from it.
    # Measured on Cranfield/CISI/CACM/MED (paired nDCG@10 vs always-on): +0.003/-0.003/+0.021/-0.010, mean
    # +0.003, no loss beyond 1.5 SE; always-off gained +0.050 on CACM but lost 0.028 (2.1 SE) on MED.
    bm25_feedback: str = "long"
    feedback_min_terms: int = 10  # RM3 adds 10 terms: from here on a query is as long as its expansion
    # Skip RM3 for a query whose feedback chunks hold on average fewer content terms than this (title-only
    # records cannot support a 10-term relevance model). 0 = never skip. A guard, off by default: at 20 it
    # changed no query's result on the four collections (their fused feedback chunks are long enough).
    feedback_min_doc_terms: int = 0
    # Dense pseudo-relevance feedback (vector Rocchio; hybrid mode): the dense side is searched again with
    # q' = alpha q + beta mean(vectors of the fused first pass's top `dense_feedback_chunks` chunks),
    # renormalised. Same modes as `bm25_feedback`, same length rule. The parameters are pyserini's Rocchio
    # defaults (k 3, alpha 0.9, beta 0.1), not tuned. Measured on Cranfield/CISI/CACM/MED (paired nDCG@10 vs
    # the default without it; bench/retrieval_study.py, fourth round): "long" +0.004/-0.004/+0.008/-0.004,
    # mean +0.0012 (0.0015), no loss beyond 1.3 SE; "on" lost 0.007 (2.3 SE) on CISI.
    dense_feedback: str = "long"
    dense_feedback_chunks: int = 3
    dense_feedback_alpha: float = 0.9
    dense_feedback_beta: float = 0.1
    candidates: int = 100  # depth each retriever contributes before fusion
    rrf_k: int = 60
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    reranker: str | None = None  # a local cross-encoder directory; off by default (none ships offline)
    rerank_depth: int = 50
    mmr: bool = False
    mmr_lambda: float = 0.7
    per_source: int = 0  # at most this many hits per source file (0: no limit); 1 ranks whole files

    def validate(self) -> None:
        if isinstance(self.bm25_feedback, bool):  # the setting was a bool before "long"/"short" existed
            self.bm25_feedback = "on" if self.bm25_feedback else "off"
        if self.bm25_feedback not in FEEDBACK_MODES:
            raise ConfigError(f"retrieval.bm25_feedback: unknown {self.bm25_feedback!r}; choose one of "
                              f"{', '.join(FEEDBACK_MODES)}")
        if isinstance(self.dense_feedback, bool):
            self.dense_feedback = "on" if self.dense_feedback else "off"
        if self.dense_feedback not in FEEDBACK_MODES:
            raise ConfigError(f"retrieval.dense_feedback: unknown {self.dense_feedback!r}; choose one of "
                              f"{', '.join(FEEDBACK_MODES)}")
        if self.dense_feedback_chunks < 1 or self.dense_feedback_alpha < 0 or self.dense_feedback_beta < 0:
            raise ConfigError("retrieval: dense_feedback_chunks must be >= 1, dense_feedback_alpha and "
                              "dense_feedback_beta >= 0")
        if self.feedback_min_doc_terms < 0:
            raise ConfigError("retrieval.feedback_min_doc_terms must be >= 0")
        if self.feedback_min_terms < 1:
            raise ConfigError("retrieval.feedback_min_terms must be >= 1")
        if self.mode not in MODES:
            raise ConfigError(f"retrieval.mode: unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.candidates < 1 or self.rrf_k < 0 or self.rerank_depth < 1:
            raise ConfigError("retrieval: candidates and rerank_depth must be >= 1, rrf_k >= 0")
        if self.dense_weight < 0 or self.bm25_weight < 0:
            raise ConfigError("retrieval: weights must be >= 0")
        if isinstance(self.per_source, bool) or not isinstance(self.per_source, int) or self.per_source < 0:
            raise ConfigError(f"retrieval.per_source must be an integer >= 0, got {self.per_source!r}")
        if not 0 <= self.mmr_lambda <= 1:
            raise ConfigError("retrieval.mmr_lambda must be within [0, 1]")


MODES = ("dense", "bm25", "hybrid")
FEEDBACK_MODES = ("on", "off", "long", "short")


@dataclass
class IndexConfig:
    """Everything that decides what an index contains; stored in its manifest."""

    chunker: ChunkerConfig = field(default_factory=ChunkerConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    lexical: LexicalConfig = field(default_factory=LexicalConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)

    def validate(self) -> IndexConfig:
        for part in (self.chunker, self.embedder, self.store, self.lexical, self.ingest, self.retrieval):
            part.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        parts = {}
        for f in dataclasses.fields(cls):
            sub_cls = f.default_factory  # type: ignore[misc]
            raw = data.get(f.name, {}) or {}
            if not isinstance(raw, dict):
                raise ConfigError(f"{f.name}: expected a mapping, got {type(raw).__name__}")
            known = {x.name for x in dataclasses.fields(sub_cls)}
            unknown = set(raw) - known
            if unknown:
                raise ConfigError(f"{f.name}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
            if f.name == "lexical" and raw:
                raw = {**{k: v for k, v in LEXICAL_LEGACY.items() if k not in raw}, **raw}
            parts[f.name] = sub_cls(**raw)
        return cls(**parts).validate()
