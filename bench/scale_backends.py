"""FAISS vs Milvus Lite behind the same VectorStore protocol, at 100k chunks, in one run.

For each backend, in a fresh child process (so memory is the backend's own): ingest throughput through
ragtune's streaming batcher (``rag/bulk_ingest.py``, batches of 1000, the same path for both), single-query
search latency p50/p99 (k=10) unfiltered and with a ``file_type`` filter (FAISS: an id selector built from
the chunk table, as the retriever does; Milvus: the filter expression pushed down), resident memory
added by the store, and overlap@10 between the two backends' exact-search result lists (target >= 0.95).
Optionally the ANN defaults too: ragtune's FAISS ``auto`` (IVF at this size) and Milvus HNSW, with
recall@10 against exact.

Data: (1) 100k synthetic 384-d unit vectors, a mixture of Gaussian clusters like bench/scale.py, queries
drawn from the same mixture but not indexed; (2) a real-text slice: every document of the four BEIR
collections in /work/shared/datasets embedded with the shipped all-MiniLM-L6-v2, their queries as queries.

    python bench/scale_backends.py                      # 100k synthetic + the real slice (~15 min here)
    python bench/scale_backends.py --n 20000 --no-real --no-ann --json
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import rss_mb, synthetic  # noqa: E402  (bench/scale.py: the same data generator)

DATASETS = Path("/work/shared/datasets")
TYPES = ("pdf", "md", "html", "txt")  # metadata so filtered search has something to filter


# -- child: one backend ---------------------------------------------------------------------------
def make_store(backend: str, dim: int, workdir: Path, variant: str):
    if backend == "faiss":
        from ragtune.rag.config import StoreConfig
        from ragtune.rag.store import FaissStore

        store = FaissStore(dim, StoreConfig(index_type="flat" if variant == "exact" else "auto", use_gpu=False))
        if "metadata" not in inspect.signature(store.add).parameters:  # FaissStore before the store seam
            plain_add = store.add
            store.add = lambda ids, vectors, metadata=None: plain_add(ids, vectors)
        return store
    from ragtune.rag.milvus_store import create_milvus_store, milvus_config

    index_type = "FLAT" if variant == "exact" else "HNSW"
    return create_milvus_store(milvus_config(uri=str(workdir / f"{variant}.db"), index_type=index_type), dim)


def run_child(args) -> dict:
    from ragtune.rag.bulk_ingest import Record, stream_into_store

    data = np.load(args.data)
    queries = np.load(args.query_file)
    n, dim = data.shape
    base = rss_mb()
    store = make_store(args.child, dim, Path(args.workdir), args.variant)
    records = (Record(i, str(i), {"source": f"/docs/{i % 997}.x", "file_type": TYPES[i % 4], "page": i % 50})
               for i in range(n))

    def lookup(texts):  # the "embedder": vectors were computed before; the store path is what is timed
        return data[[int(t) for t in texts]]

    t0 = time.perf_counter()
    stream_into_store(store, records, lookup, batch_size=1000)
    if hasattr(store, "persist") and args.child == "milvus":
        store.persist()  # flush: sealed and indexed, as an index publish does
    ingest = time.perf_counter() - t0
    result = {"ingest_s": round(ingest, 2), "rows_per_s": round(n / ingest, 1)}
    allowed = np.arange(0, n, 4, dtype=np.int64)  # ids whose file_type is "pdf"

    def timed(fn):
        times, ids = [], []
        for q in queries:
            t = time.perf_counter()
            _, found = fn(q[None, :])
            times.append(time.perf_counter() - t)
            ids.append(found[0][:10].tolist())
        ms = np.asarray(times) * 1000
        return {"p50_ms": round(float(np.median(ms)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}, ids

    result["search"], result["ids"] = timed(lambda q: store.search(q, 10))
    if args.child == "faiss":
        result["filtered"], result["filtered_ids"] = timed(lambda q: store.search(q, 10, allowed))
    else:
        result["filtered"], result["filtered_ids"] = timed(lambda q: store.search(q, 10, filters={"file_type": "pdf"}))
    result["memory_mb"] = round(rss_mb() - base, 1)
    result["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base, 1)
    result["index"] = getattr(store, "kind", "?")
    if args.child == "milvus":
        result["disk_mb"] = round(sum(p.stat().st_size for p in Path(args.workdir).rglob("*") if p.is_file()) / 2**20, 1)
        store.close()
    return result


# -- parent -----------------------------------------------------------------------------------------
def child(backend: str, variant: str, data: Path, queries: Path, workdir: Path, log) -> dict:
    out = workdir / f"{backend}-{variant}.json"
    cmd = [sys.executable, __file__, "--child", backend, "--variant", variant, "--data", str(data),
           "--query-file", str(queries), "--workdir", str(workdir), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{backend}/{variant} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    log(f"  {backend:<6} {variant:<5} ingest {result['rows_per_s']:>9.0f} rows/s  p50 {result['search']['p50_ms']} ms  "
        f"({time.perf_counter() - t0:.0f}s)")
    return result


def overlap(a: list[list[int]], b: list[list[int]], k: int = 10) -> float:
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / max(1, min(k, len(x))) for x, y in zip(a, b)]))


def real_slice(log) -> tuple[np.ndarray, np.ndarray]:
    from ragtune.rag.embed import make_embedder

    texts, qtexts = [], []
    for ds in sorted(p for p in DATASETS.iterdir() if (p / "corpus.jsonl").exists()):
        for line in (ds / "corpus.jsonl").open():
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')}\n{doc['text']}".strip())
        qtexts += [json.loads(line)["text"] for line in (ds / "queries.jsonl").open()]
    embedder = make_embedder("default")
    t0 = time.perf_counter()
    data = embedder.encode(texts)
    log(f"real slice: {len(texts)} documents, {len(qtexts)} queries embedded in {time.perf_counter() - t0:.0f}s")
    return data, embedder.encode(qtexts)


def run_suite(name: str, data: np.ndarray, queries: np.ndarray, ann: bool, log) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"ragtune-scale-{name}-"))
    try:
        np.save(work / "data.npy", data)
        np.save(work / "queries.npy", queries)
        log(f"{name}: {data.shape[0]} x {data.shape[1]}, {len(queries)} queries")
        res = {b: child(b, "exact", work / "data.npy", work / "queries.npy", work, log) for b in ("faiss", "milvus")}
        suite = {"n": int(data.shape[0]), "dim": int(data.shape[1]), "queries": int(len(queries))}
        suite["overlap_at_10"] = round(overlap(res["faiss"]["ids"], res["milvus"]["ids"]), 4)
        suite["filtered_overlap_at_10"] = round(overlap(res["faiss"]["filtered_ids"], res["milvus"]["filtered_ids"]), 4)
        if ann:
            for b in ("faiss", "milvus"):
                res[f"{b}-ann"] = child(b, "ann", work / "data.npy", work / "queries.npy", work, log)
                res[f"{b}-ann"]["recall_at_10"] = round(overlap(res[f"{b}-ann"]["ids"], res[b]["ids"]), 4)
        for r in res.values():
            r.pop("ids"), r.pop("filtered_ids")
        suite["backends"] = res
        return suite
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table(suite: dict) -> str:
    rows = ["| backend | index | ingest rows/s | p50 ms | p99 ms | filtered p50 ms | memory MB (peak) | recall@10 vs exact |",
            "|---|---|---|---|---|---|---|---|"]
    for name, r in suite["backends"].items():
        rows.append(f"| {name} | {r['index']} | {r['rows_per_s']:.0f} | {r['search']['p50_ms']} | {r['search']['p99_ms']} "
                    f"| {r['filtered']['p50_ms']} | {r['memory_mb']} ({r['peak_mb']}) | {r.get('recall_at_10', 1.0)} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--no-real", action="store_true", help="skip the real-text slice")
    parser.add_argument("--no-synthetic", action="store_true", help="only the real-text slice")
    parser.add_argument("--no-ann", action="store_true", help="exact search only")
    parser.add_argument("--json", action="store_true")
    for hidden in ("--child", "--variant", "--data", "--query-file", "--workdir", "--out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        Path(args.out).write_text(json.dumps(run_child(args)))
        return 0
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    data = None if args.no_synthetic else synthetic(args.n + args.queries, args.dim, args.clusters, 1.5, seed=0)
    result = {}
    if not args.no_synthetic:
        result["synthetic"] = run_suite("synthetic", data[: args.n], data[args.n :], not args.no_ann, log)
    if not args.no_real and DATASETS.is_dir():
        vecs, qvecs = real_slice(log)
        result["real_text"] = run_suite("real-text", vecs, qvecs, not args.no_ann, log)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, suite in result.items():
            print(f"\n{name}: {suite['n']} x {suite['dim']}, {suite['queries']} queries; overlap@10 FAISS vs Milvus "
                  f"exact {suite['overlap_at_10']}, filtered {suite['filtered_overlap_at_10']} (target >= 0.95)")
            print(table(suite))
    return 0


if __name__ == "__main__":
    sys.exit(main())
