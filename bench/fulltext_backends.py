"""The BM25 side with a Milvus backend: ragtune's own BM25 (bm25s) vs Milvus' full-text search.

Milvus (2.5+, and Milvus Lite 3) can compute BM25 itself: a VARCHAR field with an analyzer, a
``FunctionType.BM25`` function into a sparse vector, searched with metric ``BM25``. This script measures
it against what ragtune keeps: bm25s with a Snowball stemmer and English stop words, plain and with RM3
feedback (ragtune's default in bm25 mode). Each of the four BEIR collections in /work/shared/datasets,
every judged query, nDCG@10 and single-query latency p50; no parameter is tuned on these queries.

    python bench/fulltext_backends.py [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATASETS = Path("/work/shared/datasets")


def ndcg(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    from ragtune.rag.evaluate import ndcg_at_k

    return ndcg_at_k(ranked, rels, k)


def ragtune_runs(ds, doc_ids: list[str], texts: list[str]) -> dict[str, tuple[float, float]]:
    from ragtune.rag.lexical import BM25Index

    bm25 = BM25Index()
    bm25.build(np.arange(len(texts)), texts)
    out = {}
    for name, feedback in (("ragtune bm25s", None), ("ragtune bm25s + RM3", lambda ids: [texts[i] for i in ids])):
        scores, times = [], []
        for qid, query in ds.evaluated_queries.items():
            t0 = time.perf_counter()
            pairs = bm25.search(query, 10, feedback_texts=feedback)
            times.append(time.perf_counter() - t0)
            scores.append(ndcg([doc_ids[i] for i, _ in pairs], ds.qrels[qid]))
        out[name] = (float(np.mean(scores)), float(np.median(times) * 1000))
    return out


def milvus_run(ds, doc_ids: list[str], texts: list[str], stop_words: list[str] | None, workdir: Path):
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    client = MilvusClient(str(workdir / f"{ds.name}-{bool(stop_words)}.db"))
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    analyzer = {"tokenizer": "standard", "filter": ["lowercase"] + ([{"type": "stop", "stop_words": stop_words}] if stop_words else [])}
    schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True, analyzer_params=analyzer)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                 output_field_names=["sparse"]))
    params = client.prepare_index_params()
    params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection("docs", schema=schema, index_params=params, consistency_level="Strong")
    for start in range(0, len(texts), 500):
        client.insert("docs", [{"id": i, "text": texts[i][:60000]} for i in range(start, min(len(texts), start + 500))])
    client.flush("docs")
    scores, times = [], []
    for qid, query in ds.evaluated_queries.items():
        t0 = time.perf_counter()
        hits = client.search("docs", data=[query], anns_field="sparse", limit=10, output_fields=[],
                             search_params={"metric_type": "BM25"})[0]
        times.append(time.perf_counter() - t0)
        scores.append(ndcg([doc_ids[int(h["id"])] for h in hits], ds.qrels[qid]))
    client.close()
    return float(np.mean(scores)), float(np.median(times) * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from ragtune.rag.datasets import load_beir
    from ragtune.rag.lexical import _stopwords

    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    work = Path(tempfile.mkdtemp(prefix="ragtune-fulltext-"))
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for path in sorted(p for p in DATASETS.iterdir() if (p / "corpus.jsonl").exists()):
            ds = load_beir(path)
            doc_ids = list(ds.corpus)
            texts = [f"{d.get('title', '')}\n{d.get('text', '')}".strip() for d in ds.corpus.values()]
            runs = ragtune_runs(ds, doc_ids, texts)
            runs["Milvus BM25 (standard analyzer)"] = milvus_run(ds, doc_ids, texts, None, work)
            runs["Milvus BM25 (+ English stop words)"] = milvus_run(ds, doc_ids, texts, sorted(_stopwords()), work)
            results[ds.name] = {name: {"ndcg_at_10": round(s, 4), "p50_ms": round(ms, 2)} for name, (s, ms) in runs.items()}
            log(f"{ds.name}: " + ", ".join(f"{n} {r['ndcg_at_10']}" for n, r in results[ds.name].items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    systems = list(next(iter(results.values())))
    print("\n| system | " + " | ".join(results) + " | mean nDCG@10 | p50 ms (mean) |")
    print("|---|" + "---|" * (len(results) + 2))
    for s in systems:
        vals = [results[d][s]["ndcg_at_10"] for d in results]
        lat = np.mean([results[d][s]["p50_ms"] for d in results])
        print(f"| {s} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {np.mean(vals):.3f} | {lat:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
