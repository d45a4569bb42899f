"""Retrieval evaluation: standard IR metrics, and running an index over a BEIR collection or a QA file.

Metrics follow trec_eval / BEIR (pytrec_eval) and ``ranx``, and the tests check them against ``ranx``:

- ``ndcg@k``: graded gains, gain = rel, discount = log2(rank + 1) (Järvelin & Kekäläinen, the formula
  trec_eval's ``ndcg_cut`` and BEIR use; *not* the 2^rel - 1 "Burges" variant), ideal ranking from the qrels.
- ``recall@k``: relevant documents in the top k / all relevant documents of the query.
- ``mrr@k``: 1 / rank of the first relevant document in the top k (0 if none).
- ``map``: average precision over the whole run (every retrieved rank), divided by all relevant documents.

"Relevant" means a judgement > 0. Scores are averaged over the queries of the qrels that have a relevant
document; a query absent from the run counts as 0. A run given as ``{doc: score}`` is ranked by score,
descending, ties kept in insertion order; a run given as a list is already ranked.

    >>> from ragtune.rag.evaluate import evaluate_run
    >>> evaluate_run({"q1": ["d3", "d1", "d2"]}, {"q1": {"d1": 2, "d2": 1}})["ndcg@10"]  # doctest: +ELLIPSIS
    0.6696...
"""

from __future__ import annotations

import math
import statistics
import time
from numbers import Integral
from pathlib import PurePath
from typing import Any, Iterable, Mapping, Protocol, Sequence

from ragtune.errors import ConfigError
from ragtune.progress import ProgressFn, emit

from .datasets import (  # re-exported: one import for evaluation users
    BeirDataset,
    QAItem,
    docs_from_beir,
    is_beir_dir,
    load_beir,
    load_qa,
)
from .types import Hit

__all__ = [
    "BeirDataset", "QAItem", "load_beir", "load_qa", "docs_from_beir", "is_beir_dir",
    "ndcg_at_k", "recall_at_k", "mrr_at_k", "average_precision", "evaluate_run", "per_query_metrics",
    "run_from_hits", "check_depth", "missing_sources_note", "refuse_document_index", "index_corpus", "evaluate_index", "evaluate_qa", "source_matches",
    "SearchIndex",
]

Run = Mapping[str, Mapping[str, float]] | Mapping[str, Sequence[str]]
Qrels = Mapping[str, Mapping[str, int]]


class SearchIndex(Protocol):
    """What evaluation needs from an index (``ragtune.rag.index.Index`` satisfies it)."""

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str | None = None,
               **kwargs: Any) -> list[Hit]: ...


# ---------------------------------------------------------------- metrics, one query at a time
def ndcg_at_k(ranked: Sequence[str], rels: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with gain = rel and discount log2(rank + 1), rank 1-based (trec_eval / BEIR)."""
    dcg = sum(max(rels.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], rels: Mapping[str, int], k: int = 100) -> float:
    """Share of the query's relevant documents found in the top k."""
    relevant = {d for d, r in rels.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], rels: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within the top k, else 0."""
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def average_precision(ranked: Sequence[str], rels: Mapping[str, int]) -> float:
    """Average precision over the whole ranking (run depth), normalised by all relevant documents."""
    n_relevant = sum(1 for r in rels.values() if r > 0)
    if n_relevant == 0:
        return 0.0
    found, total = 0, 0.0
    for i, d in enumerate(ranked):
        if rels.get(d, 0) > 0:
            found += 1
            total += found / (i + 1)
    return total / n_relevant


def _ranked(entry: Mapping[str, float] | Sequence[str]) -> list[str]:
    if isinstance(entry, Mapping):
        # sorted() is stable: equal scores keep the order in which the run listed them.
        return [d for d, _ in sorted(entry.items(), key=lambda kv: -kv[1])]
    ranked, seen = [], set()
    for d in entry:  # a document listed twice counts once, at its best rank
        if d not in seen:
            seen.add(d)
            ranked.append(d)
    return ranked


def metric_names(ndcg_k: int = 10, recall_k: int = 100, mrr_k: int = 10) -> list[str]:
    return [f"ndcg@{ndcg_k}", f"recall@{recall_k}", f"mrr@{mrr_k}", "map"]


def per_query_metrics(
    run: Run, qrels: Qrels, *, ndcg_k: int = 10, recall_k: int = 100, mrr_k: int = 10
) -> dict[str, dict[str, float]]:
    """Metrics of each evaluated query (those with a relevant judgement), keyed by query id."""
    out: dict[str, dict[str, float]] = {}
    for qid, rels in qrels.items():
        if not any(r > 0 for r in rels.values()):
            continue
        ranked = _ranked(run.get(qid, []))
        out[qid] = {
            f"ndcg@{ndcg_k}": ndcg_at_k(ranked, rels, ndcg_k),
            f"recall@{recall_k}": recall_at_k(ranked, rels, recall_k),
            f"mrr@{mrr_k}": mrr_at_k(ranked, rels, mrr_k),
            "map": average_precision(ranked, rels),
        }
    return out


def evaluate_run(
    run: Run, qrels: Qrels, *, ndcg_k: int = 10, recall_k: int = 100, mrr_k: int = 10
) -> dict[str, float]:
    """Mean of each metric over the evaluated queries, plus ``queries`` (how many were averaged)."""
    per_query = per_query_metrics(run, qrels, ndcg_k=ndcg_k, recall_k=recall_k, mrr_k=mrr_k)
    names = metric_names(ndcg_k, recall_k, mrr_k)
    n = len(per_query)
    means = {m: (sum(q[m] for q in per_query.values()) / n if n else 0.0) for m in names}
    means["queries"] = float(n)
    return means


# ---------------------------------------------------------------- from index hits to a run
def run_from_hits(hits_per_query: Mapping[str, Iterable[Hit]]) -> dict[str, dict[str, float]]:
    """Collapse chunk hits to document ids (``hit.source``): first occurrence = best rank, score = max.

    The returned dicts list documents in rank order; as hits arrive sorted by score, the first occurrence
    also carries the maximum, so ranking the dict by score keeps that order.
    """
    run: dict[str, dict[str, float]] = {}
    for qid, hits in hits_per_query.items():
        docs: dict[str, float] = {}
        for hit in hits:
            score = float(hit.score)
            if hit.source not in docs:
                docs[hit.source] = score
            elif score > docs[hit.source]:
                docs[hit.source] = score
        run[qid] = docs
    return run


def _percentile_ms(seconds: Sequence[float], q: float) -> float:
    if not seconds:
        return 0.0
    if len(seconds) == 1:
        return seconds[0] * 1000
    return statistics.quantiles(seconds, n=100, method="inclusive")[round(q) - 1] * 1000


NDCG_K = 10  # the cutoff of nDCG and MRR in evaluate_index (and the CLI's columns), whatever k is


def check_depth(k: Any) -> None:
    """Refuse a retrieval depth ``k`` that is not a whole number of at least 1."""
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ConfigError(f"k must be a positive whole number (the retrieval depth), got {k!r}")


def missing_sources_note(name: str, missing: Sequence[str]) -> str:
    """What to tell the user about a QA file's sources the index does not hold (see :func:`missing_sources`)."""
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return f"{len(missing)} source(s) of {name} are not in the index, so their questions score 0: {shown}"


def refuse_document_index(index: Any, dataset: BeirDataset, option: str = "--index") -> None:
    """Raise :class:`ConfigError` when ``index`` holds files indexed from disk: that is someone's document
    index, not an evaluation index, and :func:`index_corpus` would replace its files with the collection's
    documents. ``option`` names the setting that chose the folder (``--index``, ``index_dir=``)."""
    from .ingest import is_file_source

    files = [source for source, record in index.files().items() if is_file_source(source, record)]
    if files:
        where = getattr(index, "root", None) or "the index"
        more = f" and {len(files) - 1} more" if len(files) > 1 else ""
        raise ConfigError(
            f"{where}: this index holds files indexed from disk ({files[0]}{more}); evaluating "
            f"{dataset.name or 'a BEIR collection'} in it would replace them with the collection's documents. "
            f"Use a separate {option} folder for evaluations (a new or empty folder; without {option} a "
            f"temporary index is used)."
        )


def index_corpus(index: Any, dataset: BeirDataset, *, progress: ProgressFn | None = None,
                 option: str = "--index") -> Any:
    """Make ``index`` hold exactly ``dataset``'s corpus: new and changed documents are added, unchanged ones
    skipped, and documents that are not in this corpus (an earlier dataset's) removed. An index of files
    indexed from disk is refused before anything is written (:func:`refuse_document_index`)."""
    refuse_document_index(index, dataset, option)
    # prune: documents an earlier dataset left in this index would be retrieved and scored as misses
    # (nDCG@10 0.63 where a fresh index gave 1.0).
    return index.add_documents(docs_from_beir(dataset), prune=True, progress=progress)


def evaluate_index(
    index: SearchIndex,
    dataset: BeirDataset,
    modes: Sequence[str] = ("dense", "bm25", "hybrid"),
    k: int = 100,
    *,
    chunks_per_doc: int = 3,
    search_kwargs: Mapping[str, Any] | None = None,
    progress: ProgressFn | None = None,
    runs: dict[str, dict[str, dict[str, float]]] | None = None,
) -> dict[str, dict[str, float]]:
    """Search every evaluated query of ``dataset`` in each mode and score the runs.

    Ranks documents at their best chunk among the top ``depth * chunks_per_doc`` fused chunks and keeps the
    top ``depth`` documents, ``depth = max(k, 10)`` (a document split into several chunks would otherwise
    crowd out others). Returns, per mode, the metrics of :func:`evaluate_run`: ``ndcg@10`` and ``mrr@10`` on
    those top ``depth``, ``recall@k`` and ``map`` on the top ``k``, plus ``p50_ms`` / ``p95_ms``: search
    latency per query. ``search_kwargs`` are passed to every ``index.search`` call (e.g. ``{"rerank": True}``);
    ``progress`` is called once per query with the stage ``search <mode>``. ``runs``, when given, receives
    each mode's run (query id -> {document id: score}, top ``depth``) so that callers can pair systems
    query by query.
    """
    check_depth(k)
    # nDCG@10 and MRR@10 need the top 10 whatever k is: with k=1 they were computed on one document and
    # still labelled @10 (nDCG@10 0.94 where the top 10 gave 1.0).
    depth = max(k, NDCG_K)
    # Documents at their best chunk among the top depth * chunks_per_doc fused chunks; the index does the
    # grouping so that it reads texts for the returned chunks only, not for the whole pool.
    # An index configured for a deeper pool keeps it (the pool was max(candidates, k * chunks_per_doc) before).
    configured = getattr(getattr(getattr(index, "config", None), "retrieval", None), "candidates", 0)
    extra = {"per_source": 1, "candidates": max(depth * chunks_per_doc, configured), **(search_kwargs or {})}
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        hits_per_query, latencies = {}, []
        queries = dataset.evaluated_queries
        _warm_up(index, next(iter(queries.values()), None), depth, mode, extra)
        for done, (qid, text) in enumerate(queries.items()):
            emit(progress, f"search {mode}", done, len(queries), "")
            t0 = time.perf_counter()
            hits = index.search(text, k=depth, mode=mode, **extra)
            latencies.append(time.perf_counter() - t0)
            hits_per_query[qid] = hits
        emit(progress, f"search {mode}", len(queries), len(queries), "")
        run = {qid: dict(list(docs.items())[:depth]) for qid, docs in run_from_hits(hits_per_query).items()}
        if runs is not None:
            runs[mode] = run
        metrics = evaluate_run(run, dataset.qrels, ndcg_k=NDCG_K, recall_k=k, mrr_k=NDCG_K)
        if depth > k:  # MAP is over the run the user asked for (k deep), as before; only the @10 look deeper
            top_k = {qid: dict(list(docs.items())[:k]) for qid, docs in run.items()}
            metrics["map"] = evaluate_run(top_k, dataset.qrels, recall_k=k)["map"]
        metrics["p50_ms"] = _percentile_ms(latencies, 50)
        metrics["p95_ms"] = _percentile_ms(latencies, 95)
        results[mode] = metrics
    return results


# ---------------------------------------------------------------- QA file: is the supporting file retrieved?
def _warm_up(index: Any, query: str | None, k: int, mode: str, extra: Mapping[str, Any]) -> None:
    """One untimed search first: p50/p95 measure searching, not the one-off load of the embedding model
    (with one question, p50 was that load: 8 s)."""
    if query is not None:
        index.search(query, k=k, mode=mode, **extra)


def missing_sources(index: Any, qa: Sequence[QAItem]) -> list[str]:
    """The ``source`` values of ``qa`` that match no file of ``index``: such questions can only score 0."""
    files = list(index.files())
    return sorted({item.source for item in qa if not any(source_matches(f, item.source) for f in files)})


def source_matches(hit_source: str, wanted: str) -> bool:
    """True when ``hit_source`` is the file ``wanted`` names: equal, or ending in ``/<wanted>``.

    ``wanted`` is relative to the corpus root ("guides/lora.md") or a bare file name ("lora.md"); the
    index stores absolute paths, so a path-suffix match on whole path components is what identifies it.
    """
    hit = PurePath(hit_source.replace("\\", "/")).as_posix()
    want = PurePath(wanted.replace("\\", "/")).as_posix().strip("/")  # PurePath drops "./" parts
    return want not in ("", ".") and (hit == want or hit.endswith("/" + want))


def evaluate_qa(
    index: SearchIndex,
    qa: Sequence[QAItem],
    modes: Sequence[str] = ("dense", "bm25", "hybrid"),
    k: int = 5,
    *,
    search_kwargs: Mapping[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, dict[str, float]]:
    """Hit rate@k and MRR@k of the supporting source over the top ``k`` chunks, per mode.

    Ranks are chunk ranks (what a generator would be shown), not distinct-file ranks.
    """
    extra = dict(search_kwargs or {})
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        hit_count, rr_sum, latencies = 0, 0.0, []
        _warm_up(index, qa[0].question if qa else None, k, mode, extra)
        for done, item in enumerate(qa):
            emit(progress, f"search {mode}", done, len(qa), "")
            t0 = time.perf_counter()
            hits = index.search(item.question, k=k, mode=mode, **extra)
            latencies.append(time.perf_counter() - t0)
            for rank, hit in enumerate(hits[:k], start=1):
                if source_matches(hit.source, item.source):
                    hit_count += 1
                    rr_sum += 1.0 / rank
                    break
        n = len(qa)
        emit(progress, f"search {mode}", n, n, "")
        results[mode] = {
            f"hit_rate@{k}": hit_count / n if n else 0.0,
            f"mrr@{k}": rr_sum / n if n else 0.0,
            "queries": float(n),
            "p50_ms": _percentile_ms(latencies, 50),
            "p95_ms": _percentile_ms(latencies, 95),
        }
    return results
