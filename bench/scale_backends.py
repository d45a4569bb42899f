"""FAISS vs Milvus Lite behind the same VectorStore protocol, exact and ANN, in one run.

Two data sets: (1) 100k synthetic 384-d unit vectors, a mixture of Gaussian clusters as in bench/scale.py,
queries drawn from the same mixture but not indexed; (2) the real-text slice: every document of the four
BEIR collections in /work/shared/datasets, chunked by ragtune's default chunker and embedded with the shipped
all-MiniLM-L6-v2 (through the text-keyed cache of bench/embcache.py, so only texts not cached are embedded),
every judged query of the four as queries.

For each backend, in a fresh child process (so memory is the backend's own):

- exact search: ingest throughput through ragtune's streaming batcher (``rag/bulk_ingest.py``, batches of
  1000, the path ``Index.add`` takes), single-query latency p50/p99 at k=10, unfiltered and with a
  ``file_type`` filter (FAISS: an id selector from the chunk table, as the retriever builds it; Milvus: the
  expression pushed down), resident memory added; overlap@10 of the two exact lists (target >= 0.95);
- ANN variants, recall@10 against FAISS' exact lists, p50/p99, build time: FAISS IVF (ragtune's ``ivf``:
  nlist ~ 4 sqrt(N), nprobe nlist/16, trained on every vector) and FAISS HNSW (M=16, efConstruction 200,
  efSearch 64; bench only, ragtune's FAISS store offers flat and IVF); Milvus Lite's HNSW and IVF_FLAT with
  the same parameters (and optionally its quantised IVF_SQ8 / HNSW_SQ), built on the collection ingested for
  exact search (release, drop the index, create the new one, load: the build time is that).

    python bench/scale_backends.py --prepare-real       # embed what the cache lacks (not timed; heavy slot)
    python bench/scale_backends.py                      # both data sets, all variants (~10 min, quiet machine)
    python bench/scale_backends.py --n 20000 --no-real --no-ann --json
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from scale import rss_mb, synthetic  # noqa: E402  (bench/scale.py: the same data generator)

DATASETS = Path("/work/shared/datasets")
CACHE_DIR = BENCH / "out" / "embcache"
REAL_FILE = BENCH / "out" / "real_slice.npz"
TYPES = ("pdf", "md", "html", "txt")  # synthetic metadata, so filtered search has something to filter
HNSW = {"M": 16, "efConstruction": 200, "ef": 64}


# -- the real-text slice ------------------------------------------------------------------------------
def real_slice(log) -> dict:
    """Chunk texts' and queries' vectors of the four BEIR collections, and each chunk's collection name
    (the filter value). Saved to bench/out/real_slice.npz; vectors come from the embedding cache."""
    if REAL_FILE.is_file():
        with np.load(REAL_FILE, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    from embcache import CachedEmbedder

    from ragtune.rag.chunk import make_chunker
    from ragtune.rag.config import IndexConfig
    from ragtune.rag.datasets import docs_from_beir, load_beir
    from ragtune.rag.embed import make_embedder

    embedder = CachedEmbedder(make_embedder("default"), CACHE_DIR)
    embedder.bypass_single = False
    chunker = make_chunker(IndexConfig().chunker, embedder)
    texts, labels, qtexts = [], [], []
    for path in sorted(p for p in DATASETS.iterdir() if (p / "corpus.jsonl").exists()):
        dataset = load_beir(path)
        for doc in docs_from_beir(dataset):
            chunks = chunker.chunk(doc)
            texts += [c.text for c in chunks]
            labels += [path.name] * len(chunks)
        qtexts += list(dataset.evaluated_queries.values())
    cached = len(embedder.cache)
    t0 = time.perf_counter()
    data, queries = embedder.encode(texts), embedder.encode(qtexts)
    log(f"real slice: {len(texts)} chunks, {len(qtexts)} queries; {len(embedder.cache) - cached} texts were not "
        f"cached and were embedded in {time.perf_counter() - t0:.0f}s")
    out = {"data": np.asarray(data, np.float32), "queries": np.asarray(queries, np.float32),
           "labels": np.asarray(labels)}
    REAL_FILE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(REAL_FILE, **out)
    return out


# -- child: one backend, every variant --------------------------------------------------------------
def timed(fn, queries: np.ndarray) -> tuple[dict, list[list[int]]]:
    times, ids = [], []
    for q in queries:
        t = time.perf_counter()
        _, found = fn(q[None, :])
        times.append(time.perf_counter() - t)
        ids.append([int(i) for i in found[0][:10]])
    ms = np.asarray(times) * 1000
    return {"p50_ms": round(float(np.median(ms)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}, ids


def ingest(store, data: np.ndarray, labels: np.ndarray) -> float:
    from ragtune.rag.bulk_ingest import Record, stream_into_store

    records = (Record(i, str(i), {"source": f"/docs/{i % 997}.x", "file_type": str(labels[i]), "page": i % 50})
               for i in range(len(data)))
    t0 = time.perf_counter()
    stream_into_store(store, records, lambda texts: data[[int(t) for t in texts]], batch_size=1000)
    if hasattr(store, "seal"):
        store.seal()  # FAISS: the switch to IVF (trained on all vectors), as an index publish does
    else:
        store.persist()  # Milvus: flush, sealed and indexed, as an index publish does
    return time.perf_counter() - t0


def exact_variant(store, data, queries, labels, filter_value) -> dict:
    base = rss_mb()
    seconds = ingest(store, data, labels)
    out = {"index": store.kind, "build_s": round(seconds, 2), "rows_per_s": round(len(data) / seconds, 1)}
    out["search"], out["ids"] = timed(lambda q: store.search(q, 10), queries)
    if getattr(store, "supports_filters", False):
        out["filtered"], out["filtered_ids"] = timed(lambda q: store.search(q, 10, filters={"file_type": filter_value}),
                                                     queries)
    else:
        allowed = np.flatnonzero(labels == filter_value).astype(np.int64)  # what the chunk table's filter_ids gives
        out["filtered"], out["filtered_ids"] = timed(lambda q: store.search(q, 10, allowed), queries)
    out["memory_mb"] = round(rss_mb() - base, 1)
    return out


def faiss_child(data, queries, labels, filter_value, ann: bool) -> dict:
    import faiss

    from ragtune.rag.config import StoreConfig
    from ragtune.rag.store import FaissStore

    res = {"exact": exact_variant(FaissStore(data.shape[1], StoreConfig(index_type="flat", use_gpu=False)),
                                  data, queries, labels, filter_value)}
    if not ann:
        return res
    store = FaissStore(data.shape[1], StoreConfig(index_type="ivf", use_gpu=False))
    seconds = ingest(store, data, labels)
    res["ivf"] = {"index": f"IVF nlist {store.index.nlist} nprobe {store.index.nprobe}", "build_s": round(seconds, 2)}
    res["ivf"]["search"], res["ivf"]["ids"] = timed(lambda q: store.search(q, 10), queries)
    del store
    gc.collect()
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(data.shape[1], HNSW["M"], faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = HNSW["efConstruction"]
    hnsw.add(data)
    hnsw.hnsw.efSearch = HNSW["ef"]
    res["hnsw"] = {"index": f"HNSW M {HNSW['M']} ef {HNSW['ef']} (bench only)",
                   "build_s": round(time.perf_counter() - t0, 2)}
    res["hnsw"]["search"], res["hnsw"]["ids"] = timed(lambda q: hnsw.search(q, 10), queries)
    return res


def milvus_child(data, queries, labels, filter_value, ann_types: list[str], workdir: Path) -> dict:
    from ragtune.rag.milvus_store import MilvusStore, create_milvus_store, milvus_config
    from ragtune.rag.store import default_nprobe, ivf_nlist

    store = create_milvus_store(milvus_config(uri=str(workdir / "bench.db"), index_type="FLAT"), data.shape[1])
    res = {"exact": exact_variant(store, data, queries, labels, filter_value)}
    res["exact"]["disk_mb"] = round(sum(p.stat().st_size for p in workdir.rglob("*") if p.is_file()) / 2**20, 1)
    nlist = ivf_nlist(len(data))
    client, name = store.client, store.collection
    for index_type in ann_types:
        config = milvus_config(uri=store.config.uri, collection=name, index_type="HNSW" if "HNSW" in index_type else "IVF_FLAT",
                               hnsw_m=HNSW["M"], hnsw_ef_construction=HNSW["efConstruction"], ef=HNSW["ef"],
                               nlist=nlist, nprobe=default_nprobe(nlist))
        params = client.prepare_index_params()
        build = ({"M": HNSW["M"], "efConstruction": HNSW["efConstruction"]} if "HNSW" in index_type else {"nlist": nlist})
        params.add_index("vector", index_type=index_type, metric_type="IP", params=build)
        label = f"{index_type} " + (f"M {HNSW['M']} ef {HNSW['ef']}" if "HNSW" in index_type
                                    else f"nlist {nlist} nprobe {default_nprobe(nlist)}")
        t0 = time.perf_counter()
        try:
            swap_index(client, name, params)
        except Exception as exc:  # report the variant that could not be built and go on with the others
            res[index_type] = {"index": label, "error": str(exc).splitlines()[0][:200]}
            continue
        variant = MilvusStore(data.shape[1], config)
        variant._client = client
        variant.search(queries[:1], 10)  # a lazily built index is built by now
        res[index_type] = {"index": label, "build_s": round(time.perf_counter() - t0, 2)}
        res[index_type]["search"], res[index_type]["ids"] = timed(lambda q: variant.search(q, 10), queries)
    store.drop()
    store.close()
    return res


def swap_index(client, name: str, params) -> None:
    """Release, drop the vector index, create ``params``', load. Long timeouts: at 100k rows Milvus Lite's
    create_index waits for its background segment maintenance after the flush, which outlasted pymilvus'
    30 s and made it retry a create that had gone through ("index already exists")."""
    from pymilvus.exceptions import MilvusException

    client.release_collection(name, timeout=900)
    client.drop_index(name, "vector", timeout=900)
    try:
        client.create_index(name, params, timeout=900)
    except MilvusException as exc:
        if "already exists" not in str(exc):
            raise
    client.load_collection(name, timeout=900)


def run_child(args) -> dict:
    with np.load(args.data, allow_pickle=False) as z:
        data, queries, labels = z["data"], z["queries"], z["labels"]
    filter_value = str(args.filter_value)
    started = rss_mb()
    if args.child == "faiss":
        res = faiss_child(data, queries, labels, filter_value, not args.no_ann)
    else:
        ann = [] if args.no_ann else [t for t in args.milvus_ann.split(",") if t]
        res = milvus_child(data, queries, labels, filter_value, ann, Path(args.workdir))
    res["exact"]["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - started, 1)
    return res


# -- parent -----------------------------------------------------------------------------------------
def child(backend: str, data_file: Path, filter_value: str, workdir: Path, args, log) -> dict:
    out = workdir / f"{backend}.json"
    cmd = [sys.executable, __file__, "--child", backend, "--data", str(data_file), "--filter-value", filter_value,
           "--workdir", str(workdir), "--out", str(out), "--milvus-ann", args.milvus_ann]
    cmd += ["--no-ann"] if args.no_ann else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{backend} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    log(f"  {backend:<6} " + ", ".join(f"{v} p50 {r['search']['p50_ms']} ms" if "search" in r else f"{v} failed"
                                       for v, r in result.items())
        + f" ({time.perf_counter() - t0:.0f}s)")
    return result


def overlap(a: list[list[int]], b: list[list[int]], k: int = 10) -> float:
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / max(1, min(k, len(x))) for x, y in zip(a, b)]))


def run_suite(name: str, data: np.ndarray, queries: np.ndarray, labels: np.ndarray, filter_value: str, args,
              log) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"ragtune-scale-{name}-"))
    try:
        np.savez(work / "data.npz", data=data, queries=queries, labels=labels)
        log(f"{name}: {data.shape[0]} x {data.shape[1]}, {len(queries)} queries, filter file_type == {filter_value!r} "
            f"({np.mean(labels == filter_value):.0%} of rows)")
        res = {b: child(b, work / "data.npz", filter_value, work, args, log) for b in ("faiss", "milvus")}
        truth = dict(res["faiss"]["exact"])
        suite = {"n": int(data.shape[0]), "dim": int(data.shape[1]), "queries": int(len(queries)),
                 "filter": f"file_type == {filter_value!r}",
                 "overlap_at_10": round(overlap(truth["ids"], res["milvus"]["exact"]["ids"]), 4),
                 "filtered_overlap_at_10": round(overlap(truth["filtered_ids"], res["milvus"]["exact"]["filtered_ids"]), 4)}
        rows = {}
        for backend, variants in res.items():
            for variant, r in variants.items():
                if "error" in r:
                    rows[f"{backend} {variant}"] = r
                    continue
                r["recall_at_10"] = round(overlap(r.pop("ids"), truth["ids"]), 4)
                r.pop("filtered_ids", None)
                rows[f"{backend} {variant}"] = r
        suite["rows"] = rows
        return suite
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table(suite: dict) -> str:
    out = ["| backend, variant | index | build s | ingest rows/s | p50 ms | p99 ms | filtered p50 ms | memory MB (peak) "
           "| recall@10 vs FAISS exact |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in suite["rows"].items():
        if "error" in r:
            out.append(f"| {name} | {r['index']} | failed: {r['error']} | | | | | | |")
            continue
        mem = f"{r['memory_mb']} ({r['peak_mb']})" if "memory_mb" in r else ""
        out.append(f"| {name} | {r['index']} | {r['build_s']} | {r.get('rows_per_s', '')} | {r['search']['p50_ms']} | "
                   f"{r['search']['p99_ms']} | {r.get('filtered', {}).get('p50_ms', '')} | {mem} | {r['recall_at_10']} |")
    return "\n".join(out)


def report(name: str, suite: dict, args) -> None:
    text = (f"\n{name}: {suite['n']} x {suite['dim']}, {suite['queries']} queries; overlap@10 FAISS vs Milvus exact "
            f"{suite['overlap_at_10']}, filtered ({suite['filter']}) {suite['filtered_overlap_at_10']} (target >= 0.95)\n"
            + table(suite))
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--no-real", action="store_true", help="skip the real-text slice")
    parser.add_argument("--no-synthetic", action="store_true", help="only the real-text slice")
    parser.add_argument("--no-ann", action="store_true", help="exact search only")
    parser.add_argument("--milvus-ann", default="HNSW,IVF_FLAT", help="Milvus Lite index types to build, in order")
    parser.add_argument("--prepare-real", action="store_true", help="only embed and save the real-text slice")
    parser.add_argument("--json", action="store_true")
    for hidden in ("--child", "--data", "--filter-value", "--workdir", "--out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.child:
        Path(args.out).write_text(json.dumps(run_child(args)))
        return 0
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    if args.prepare_real:
        real_slice(log)
        return 0
    result = {}
    # The real-text slice first: it is the short one, so a run cut short still reports it.
    if not args.no_real and DATASETS.is_dir():
        real = real_slice(log)
        result["real_text"] = run_suite("real-text", real["data"], real["queries"], real["labels"], "cacm", args, log)
        report("real_text", result["real_text"], args)
    if not args.no_synthetic:
        data = synthetic(args.n + args.queries, args.dim, args.clusters, 1.5, seed=0)
        labels = np.asarray([TYPES[i % 4] for i in range(args.n)])
        result["synthetic"] = run_suite("synthetic", data[: args.n], data[args.n :], labels, "pdf", args, log)
        report("synthetic", result["synthetic"], args)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
