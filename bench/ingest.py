"""Ingestion benchmark: throughput of the whole pipeline, embedding efficiency, incremental re-index.

1. The shipped corpus (or --docs DIR) into a fresh index: files/s, chunks/s, and the embedding stage's
   texts/s against raw ``SentenceTransformer.encode`` on the same chunk texts in the same run
   (target: pipeline >= 0.9x raw).
2. The Cranfield collection (1400 documents, written out as .txt files): full build, then the time to
   re-index after changing one file (target: <= 5% of the full build).
3. Peak memory (max RSS) of the process.

    python bench/ingest.py [--docs DIR] [--datasets ../shared/datasets] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corpus_throughput(docs: Path, work: Path, log) -> dict:
    from ragtune.rag.index import Index

    # Warm-up pass into a throwaway index: model loading, library imports and the first-call kernel
    # set-up are not ingestion throughput (the raw baseline below is warmed the same way).
    warm = Index.open(work / "warm-index", create=True)
    warm.add([docs], exclude=["README.md"], progress=False)
    index = Index.open(work / "corpus-index", create=True, embedder=warm.embedder)
    t0 = time.perf_counter()
    report = index.add([docs], exclude=["README.md"], progress=False)
    total = time.perf_counter() - t0
    files, chunks = len(report.added), report.chunks_added
    texts = [c.text for c in index.chunks()]
    model = index.embedder.model
    model.encode(texts[:64], batch_size=index.embedder.batch_size)  # warm the kernels for both
    t1 = time.perf_counter()
    model.encode(texts, batch_size=index.embedder.batch_size, normalize_embeddings=True, show_progress_bar=False)
    raw = time.perf_counter() - t1
    embed = report.timings["embed"]
    out = {
        "files": files, "chunks": chunks, "seconds": round(total, 2),
        "files_per_s": round(files / total, 2), "chunks_per_s": round(chunks / total, 1),
        "stage_seconds": {k: round(v, 2) for k, v in report.timings.items()},
        "embed_texts_per_s_pipeline": round(chunks / embed, 1),
        "embed_texts_per_s_raw": round(len(texts) / raw, 1),
        "embed_ratio_pipeline_vs_raw": round((chunks / embed) / (len(texts) / raw), 3),
        "failed": [p.to_dict() for p in report.problems],
    }
    log(f"corpus: {files} files, {chunks} chunks in {total:.1f}s ({out['files_per_s']} files/s, "
        f"{out['chunks_per_s']} chunks/s); stages {out['stage_seconds']}")
    log(f"embedding: pipeline {out['embed_texts_per_s_pipeline']} texts/s vs raw encode "
        f"{out['embed_texts_per_s_raw']} texts/s -> {out['embed_ratio_pipeline_vs_raw']}x (target >= 0.9x)")
    return out


def cranfield_incremental(dataset: Path, work: Path, log) -> dict:
    from ragtune.rag.index import Index

    docs = work / "cranfield-docs"
    docs.mkdir()
    with open(dataset / "corpus.jsonl") as fh:
        for line in fh:
            rec = json.loads(line)
            (docs / f"{rec['_id']}.txt").write_text(f"{rec.get('title', '').strip()}\n\n{rec['text'].strip()}\n")
    index = Index.open(work / "cranfield-index", create=True)
    index.embedder.warm_up()
    t0 = time.perf_counter()
    full = index.add([docs], progress=False)
    full_s = time.perf_counter() - t0
    target = sorted(docs.iterdir())[10]
    target.write_text(target.read_text() + "\nAn added sentence about boundary layers in hypersonic flow.\n")
    t1 = time.perf_counter()
    inc = index.add([docs], progress=False)
    inc_s = time.perf_counter() - t1
    assert inc.updated == [str(target)], inc.to_dict()
    out = {
        "files": len(full.added), "chunks": full.chunks_added, "failed": len(full.problems),
        "full_build_s": round(full_s, 2), "full_stage_seconds": {k: round(v, 2) for k, v in full.timings.items()},
        "reindex_one_file_s": round(inc_s, 3), "reindex_stage_seconds": {k: round(v, 3) for k, v in inc.timings.items()},
        "reindex_fraction": round(inc_s / full_s, 4),
    }
    log(f"cranfield: full build of {out['files']} files ({out['chunks']} chunks) {full_s:.1f}s; "
        f"re-index after changing one file {inc_s:.2f}s = {100 * out['reindex_fraction']:.2f}% (target <= 5%)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=REPO / "corpora")
    parser.add_argument("--datasets", type=Path,
                        default=Path(os.environ.get("RAGTUNE_DATASETS", REPO.parent / "shared" / "datasets")))
    parser.add_argument("--skip-cranfield", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result["corpus"] = corpus_throughput(args.docs, work, log)
        cran = args.datasets / "cranfield"
        if args.skip_cranfield:
            pass
        elif (cran / "corpus.jsonl").exists():
            result["cranfield"] = cranfield_incremental(cran, work, log)
        else:
            log(f"cranfield: not available ({cran} missing)")
    result["peak_rss_mb"] = round(peak_mb(), 1)
    log(f"peak memory (max RSS): {result['peak_rss_mb']} MB")
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
