"""Query -> ranked :class:`Hit` list: dense, BM25, or both fused; filters, reranking, MMR.

    >>> index.search("how does QLoRA save memory", k=5)                       # doctest: +SKIP
    >>> index.search("LoRA rank", mode="bm25", filters={"file_type": "pdf"})  # doctest: +SKIP

Filters restrict the candidates *before* the top-k cut (a filtered search returns k hits whenever k
matching chunks exist). Every hit carries each retriever's score and rank in ``Hit.scores`` /
``Hit.ranks`` so a result can be explained.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from functools import lru_cache

import numpy as np

from ragtune.errors import ConfigError, ModelLoadError

from .config import MODES, RetrievalConfig
from .types import Hit


def rrf_fuse(rankings: dict[str, list[int]], weights: dict[str, float], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: ``score(d) = sum_r weights[r] / (k + rank_r(d))`` with 1-based ranks.

    Ties are broken by the best single rank, then by id, so the order is deterministic.
    """
    scores: dict[int, float] = {}
    best: dict[int, int] = {}
    for name, ids in rankings.items():
        w = weights.get(name, 1.0)
        for rank, doc in enumerate(ids, start=1):
            scores[doc] = scores.get(doc, 0.0) + w / (k + rank)
            best[doc] = min(best.get(doc, rank), rank)
    return sorted(scores.items(), key=lambda item: (-item[1], best[item[0]], item[0]))


def check_filters(filters: dict | None) -> dict | None:
    """``filters`` checked, with the forms people type made canonical: a file type as a suffix (".md",
    ".markdown", "PDF") becomes the type the index stores ("md", "pdf"), a page number given as text becomes
    a number. A filter that is not a dict, or a page or type of the wrong kind, is refused naming it (each
    would otherwise match nothing and the search would return nothing, silently)."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise ConfigError(f"filters must be a dict such as {{'file_type': 'pdf', 'source': '*lora*'}}, "
                          f"got {type(filters).__name__} {filters!r}")
    out = {}
    for key, value in filters.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"filters: a key must be a non-empty string, got {key!r}")
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        if key == "file_type":
            values = [_file_type_value(v) for v in values]
        elif key == "source":
            # "./docs/a.md" as a shell completes it: the index stores absolute paths, matched by their tail
            values = [re.sub(r"^(?:\./)+", "", v) if isinstance(v, str) else v for v in values]
        elif key == "page":
            values = [_page_value(v) for v in values]
        out[key] = values if isinstance(value, (list, tuple, set)) else values[0]
    return out


def unknown_filter_keys(index, filters: dict | None) -> tuple[list[str], set[str]]:
    """The keys of ``filters`` that no chunk of ``index`` has (they match nothing), and the keys it has. The
    usual keys (``source`` and the chunk table's columns) exist in every index: no scan of the metadata."""
    from .chunkdb import COLUMN_KEYS

    asked = set(filters or ()) - {"source", *COLUMN_KEYS}
    known = getattr(index, "metadata_keys", None)
    if not asked or known is None:
        return [], set()
    keys = known()
    return sorted(asked - keys), keys


def _warn_unknown_keys(index, filters: dict) -> None:
    """Warn (UnknownFilterKeyWarning) when a filter that matched nothing names a key no chunk has."""
    missing, keys = unknown_filter_keys(index, filters)
    if missing:
        import warnings

        from ragtune.errors import UnknownFilterKeyWarning

        warnings.warn(UnknownFilterKeyWarning(
            f"no chunk has the metadata key(s) {', '.join(map(repr, missing))}, so the filter matched nothing; "
            f"keys in this index: {', '.join(sorted(keys))}"), stacklevel=4)


def _file_type_value(value) -> str:
    """A file type as people type it: ".md", ".markdown", "MD" -> "md". A type ragtune's readers never write
    ("beir", set by add_documents) is kept, lower-cased."""
    from .ingest import SUPPORTED_TYPES

    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"filters: file_type must be a type such as 'pdf' or 'md', got {value!r}")
    text = value.strip().lower()
    return SUPPORTED_TYPES.get(text if text.startswith(".") else "." + text, text.lstrip("."))


def _page_value(value):
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"filters: page must be a page number, got {value!r}")
    return value


def mmr_select(query_vec: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance: positions of ``vectors`` balancing relevance and novelty."""
    if len(vectors) == 0:
        return []
    relevance = vectors @ query_vec
    chosen: list[int] = []
    remaining = list(range(len(vectors)))
    while remaining and len(chosen) < k:
        if chosen:
            redundancy = (vectors[remaining] @ vectors[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(len(remaining))
        values = lam * relevance[remaining] - (1 - lam) * redundancy
        pick = remaining[int(np.argmax(values))]
        chosen.append(pick)
        remaining.remove(pick)
    return chosen


@lru_cache(maxsize=2)
def load_reranker(path: str):
    """A sentence-transformers CrossEncoder from a local directory (e.g. ms-marco-MiniLM-L-6-v2)."""
    from pathlib import Path

    if not Path(path).is_dir():
        raise ModelLoadError(f"reranker directory not found: {path} (pass a local cross-encoder model folder)")
    try:
        import torch
        from sentence_transformers import CrossEncoder

        device = "cuda" if torch.cuda.is_available() else "cpu"
        return CrossEncoder(path, device=device, local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"could not load the reranker from {path}: {exc}") from exc


def wants_feedback(cfg: RetrievalConfig, query_terms: list[str], setting: str | None = None) -> bool:
    """Whether feedback expands this query: always, never, or by the query's number of content terms.
    ``setting`` is the mode to apply (default ``cfg.bm25_feedback``, RM3's; dense PRF passes its own)."""
    setting = setting or cfg.bm25_feedback
    if setting in ("on", "off"):
        return setting == "on"
    long = len(query_terms) >= cfg.feedback_min_terms
    return long if setting == "long" else not long


def rocchio_query(query_vec: np.ndarray, feedback: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """``alpha * q + beta * mean(feedback rows)``, renormalised to unit length (the stores score by inner
    product over unit vectors); ``query_vec`` unchanged when there is no feedback."""
    if not len(feedback):
        return query_vec
    q = alpha * np.asarray(query_vec, dtype=np.float32) + beta * np.asarray(feedback, dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(q))
    return (q / norm).astype(np.float32) if norm > 0 else query_vec


class Retriever:
    """Search over an :class:`~ragtune.rag.index.Index`'s vector store, BM25 index and chunk table.

    ``index`` is an Index or one pinned :class:`~ragtune.rag.generation.Generation` (what ``Index.search``
    passes, so one search reads one generation); only their public read methods are used.
    """

    def __init__(self, index, config: RetrievalConfig | None = None):
        self.index = index
        self.config = config or index.config.retrieval

    def search(
        self,
        query: str,
        k: int = 5,
        filters: dict | None = None,
        mode: str | None = None,
        **options,
    ) -> list[Hit]:
        """Options (each defaults to the index's :class:`RetrievalConfig`): ``candidates``, ``rrf_k``,
        ``dense_weight``, ``bm25_weight``, ``reranker`` (a path, or ``rerank=True`` to use the configured
        one), ``rerank_depth``, ``mmr``, ``mmr_lambda``, ``per_source`` (at most that many hits per source
        file, taken from the top ``candidates`` fused chunks: ``per_source=1`` ranks documents by their best
        chunk), ``bm25_feedback`` (RM3) and ``dense_feedback`` (vector Rocchio; where it ran, a hit's
        ``scores["dense"]`` is its cosine to the fed-back query)."""
        filters = check_filters(filters)
        cfg, mode = self._settings(query, k, mode, options)
        if len(self.index) == 0:
            return []
        allowed = None
        if filters:
            allowed = np.asarray(self.index.filter_ids(filters), dtype=np.int64)
            if not len(allowed):
                _warn_unknown_keys(self.index, filters)
                return []
        depth = max(cfg.candidates, k, cfg.rerank_depth if cfg.reranker else 0)
        rankings, scores, query_vec = self._rankings(query, mode, cfg, depth, allowed, filters)
        if mode == "hybrid":
            fused = rrf_fuse(rankings, {"dense": cfg.dense_weight, "bm25": cfg.bm25_weight}, cfg.rrf_k)
            scores["rrf"] = dict(fused)
        else:
            (name,) = rankings
            fused = [(i, scores[name][i]) for i in rankings[name]]
        ranks = {name: {doc: r for r, doc in enumerate(ids, 1)} for name, ids in rankings.items()}
        if cfg.reranker:
            fused = self._rerank(query, fused[: cfg.rerank_depth], cfg.reranker, scores)
        pool = fused[: max(depth, k)]  # the candidates; hits are only ever taken from here
        if cfg.per_source:
            pool = self._per_source(pool, cfg.per_source)
        if cfg.mmr and pool:
            pool = self._mmr(query, query_vec, pool, k, cfg.mmr_lambda)
        return self._hits(pool[:k], scores, ranks)

    def _settings(self, query: str, k: int, mode: str | None, options: dict) -> tuple[RetrievalConfig, str]:
        """The index's retrieval config with this call's options applied, and the mode; every argument checked."""
        rerank = options.pop("rerank", None)
        unknown = set(options) - {f.name for f in dataclasses.fields(RetrievalConfig)}
        if unknown:
            raise ConfigError(f"unknown search option(s) {sorted(unknown)}")
        cfg = dataclasses.replace(self.config, **options)
        mode = mode or cfg.mode
        if mode not in MODES:
            raise ConfigError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
        if not isinstance(query, str):
            raise ConfigError(f"the query must be text (a str), got {type(query).__name__}")
        if not query.strip():
            raise ConfigError("the query is empty; ask something")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ConfigError(f"k must be a whole number >= 1, got {k!r}")
        if rerank is False:
            cfg.reranker = None
        elif rerank is True and not cfg.reranker:
            raise ConfigError("rerank=True but no reranker is configured; pass reranker=PATH")
        elif isinstance(rerank, str):
            cfg.reranker = rerank
        cfg.validate()
        return cfg, mode

    def _rankings(self, query: str, mode: str, cfg: RetrievalConfig, depth: int, allowed, filters):
        """Each retriever's ranking and scores (``{"dense": [...], "bm25": [...]}``), feedback included, and
        the query's vector (None in BM25 mode)."""
        rankings: dict[str, list[int]] = {}
        scores: dict[str, dict[int, float]] = {}
        query_vec = None
        if mode in ("dense", "hybrid"):
            query_vec = self.index.embedder.encode([query])[0]
            pairs = list(zip(*self._dense_pairs(query_vec, depth, allowed, filters)))
            rankings["dense"], scores["dense"] = [i for i, _ in pairs], dict(pairs)
        if mode in ("bm25", "hybrid"):
            pairs, first_pass = self._bm25_side(query, cfg, depth, allowed, rankings.get("dense"))
            rankings["bm25"], scores["bm25"] = [i for i, _ in pairs], dict(pairs)
            if mode == "hybrid" and wants_feedback(cfg, self.index.bm25.tokenize(query), cfg.dense_feedback):
                if not first_pass:  # RM3 did not run: BM25's ranking is its own first pass
                    weights = {"dense": cfg.dense_weight, "bm25": cfg.bm25_weight}
                    first_pass = rrf_fuse({"dense": rankings["dense"], "bm25": rankings["bm25"]}, weights, cfg.rrf_k)
                pairs = self._dense_feedback(query_vec, first_pass, cfg, depth, allowed, filters)
                rankings["dense"], scores["dense"] = [i for i, _ in pairs], dict(pairs)
        return rankings, scores, query_vec

    def _hits(self, top: list[tuple[int, float]], scores: dict, ranks: dict) -> list[Hit]:
        """``Hit``s for the returned chunks, each with every retriever's score and rank.

        Text and metadata are read for these only: on MED (loaded CPU, query embedding aside) a hybrid
        search returning 300 hits took 9.3 ms p50 against 3.3 ms for 10 (SQLite rows, JSON, Hits)."""
        chunks = self.index.get_chunks([i for i, _ in top])
        return [
            Hit(
                chunk=chunks[doc],
                score=float(score),
                scores={name: table[doc] for name, table in scores.items() if doc in table},
                ranks={name: table[doc] for name, table in ranks.items() if doc in table},
            )
            for doc, score in top
            if doc in chunks  # the stores disagree (never seen): never return a ghost
        ]

    def _bm25_side(self, query: str, cfg: RetrievalConfig, depth: int, allowed, dense: list[int] | None):
        """BM25's ranking (with RM3 where ``cfg`` wants it) and, when RM3 ran in hybrid mode (``dense``
        given), the fused first pass it read, so dense feedback can read the same one."""
        bm25 = self.index.bm25
        rows = None if allowed is None else np.flatnonzero(np.isin(bm25.ids, allowed))
        feedback = self._texts if wants_feedback(cfg, bm25.tokenize(query)) else None
        weights = {"dense": cfg.dense_weight, "bm25": cfg.bm25_weight}
        first_pass: list[tuple[int, float]] = []
        fuse_first_pass = None
        if dense is not None:
            # RM3 feeds on the best first pass there is: in hybrid mode, BM25 fused with dense.
            def fuse_first_pass(first: list[tuple[int, float]]) -> list[tuple[int, float]]:
                first_pass[:] = rrf_fuse({"dense": dense, "bm25": [i for i, _ in first]}, weights, cfg.rrf_k)
                return first_pass
        pairs = bm25.search(query, depth, rows, feedback_texts=feedback, feedback_ranking=fuse_first_pass,
                            feedback_min_terms=cfg.feedback_min_doc_terms)
        return pairs, first_pass

    def _dense_feedback(self, query_vec, first_pass, cfg: RetrievalConfig, depth: int, allowed, filters):
        """The dense side searched again with the Rocchio query built from the first pass's top chunks
        (their stored vectors; embedded again where the store cannot return them)."""
        ids = [i for i, _ in first_pass[: cfg.dense_feedback_chunks]]
        try:
            vectors = self.index.reconstruct(ids)
        except Exception:  # a store or index type without reconstruct
            vectors = self.index.embedder.encode(self._texts(ids))
        q = rocchio_query(query_vec, vectors, cfg.dense_feedback_alpha, cfg.dense_feedback_beta)
        return list(zip(*self._dense_pairs(q, depth, allowed, filters)))

    def _dense_pairs(self, query_vec, depth: int, allowed, filters) -> tuple[list[int], list[float]]:
        sims, ids = self.index.vector_search(np.asarray(query_vec)[None, :], depth, allowed, filters)
        keep = ids[0] >= 0
        return [int(i) for i in ids[0][keep]], [float(s) for s in sims[0][keep]]

    def _per_source(self, ranked: list[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
        """The best ``limit`` chunks of each source file, in rank order (reads sources, not texts)."""
        source = self.index.get_sources([i for i, _ in ranked])
        seen: dict[str, int] = {}
        out = []
        for doc, score in ranked:
            name = source.get(doc)
            if name is not None and seen.get(name, 0) < limit:
                seen[name] = seen.get(name, 0) + 1
                out.append((doc, score))
        return out

    def _texts(self, ids: list[int]) -> list[str]:
        chunks = self.index.get_chunks(ids)
        return [chunks[i].text if i in chunks else "" for i in ids]

    def _rerank(self, query: str, candidates: list[tuple[int, float]], path: str, scores) -> list[tuple[int, float]]:
        if not candidates:
            return candidates
        model = load_reranker(path)
        chunks = self.index.get_chunks([i for i, _ in candidates])
        ids = [i for i, _ in candidates if i in chunks]
        values = model.predict([(query, chunks[i].text) for i in ids], show_progress_bar=False)
        scores["rerank"] = {i: float(v) for i, v in zip(ids, values)}
        return sorted(scores["rerank"].items(), key=lambda item: -item[1])

    def _mmr(self, query: str, query_vec, candidates, k: int, lam: float) -> list[tuple[int, float]]:
        if query_vec is None:
            query_vec = self.index.embedder.encode([query])[0]
        ids = [i for i, _ in candidates]
        try:
            vectors = self.index.reconstruct(ids)
        except Exception:  # an index type without reconstruct: embed the candidates again
            chunks = self.index.get_chunks(ids)
            vectors = self.index.embedder.encode([chunks[i].text for i in ids])
        order = mmr_select(query_vec, vectors, k, lam)
        return [candidates[p] for p in order]


def collapse_copies(hits: list[Hit]) -> list[Hit]:
    """``hits`` with each text (whitespace aside) once, at its best rank; the sources of the dropped copies
    are listed on the kept hit's ``also_in``. Two files with the same content (a copy under another name)
    would otherwise fill two places of the k with one passage."""
    kept: dict[str, Hit] = {}
    for hit in hits:
        key = " ".join(hit.text.split())
        first = kept.get(key)
        if first is None:
            kept[key] = dataclasses.replace(hit, also_in=list(hit.also_in))
        elif hit.source != first.source and hit.source not in first.also_in:
            first.also_in.append(hit.source)
    return list(kept.values())


def search_distinct(search, k: int) -> list[Hit]:
    """The ``k`` best distinct passages from ``search(n)`` (a function returning the n best hits): when copies
    took places among the first k, ask once more for enough hits to fill k distinct ones."""
    hits = search(k)
    distinct = collapse_copies(hits)
    if len(distinct) < len(hits):
        distinct = collapse_copies(search(2 * k + len(hits) - len(distinct)))
    return distinct[:k]
