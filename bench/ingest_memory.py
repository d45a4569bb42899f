"""Peak RSS of `ragtune index add` on n vs 4n synthetic documents, this code and (optionally) an older commit.

Each run is a fresh `ragtune index add DIR --index NEW --embedder hash-64 --json` in its own process; its peak
resident memory is that process' ru_maxrss (os.wait4). The documents are plain-text files of Zipf-distributed
words in paragraphs, each above 2 MB so that ingest splits them into paragraphs directly (unstructured would
spend most of the time classifying them) and few files carry a lot of text. The hash embedder keeps the
runs about ingestion, not about a model's weights (the shipped MiniLM adds ~400 MB that do not grow).

    python bench/ingest_memory.py --files 2 --mb 2.5 --before-commit acb0591 --out /tmp/ingest_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = "import sys; from ragtune.cli import main; sys.exit(main(sys.argv[1:]))"


def write_corpus(folder: Path, files: int, mb: float, seed: int) -> int:
    """``files`` text files of ``mb`` MB each; returns the total bytes."""
    rng = random.Random(seed)
    vocab = [f"{w}{k}" for k, w in enumerate(["term", "wing", "flow", "heat", "cell", "dose", "query"] * 800)]
    weights = [1 / (k + 1) for k in range(len(vocab))]
    folder.mkdir(parents=True)
    total = 0
    for i in range(files):
        paragraphs, size = [], 0
        while size < mb * 1e6:
            words = rng.choices(vocab, weights, k=rng.randint(60, 160))
            paragraphs.append(" ".join(words) + ".")
            size += len(paragraphs[-1]) + 2
        path = folder / f"doc-{i:03d}.txt"
        path.write_text("\n\n".join(paragraphs))
        total += path.stat().st_size
    return total


def before_package(commit: str, where: Path) -> Path:
    """The package tree of ``commit`` laid out for PYTHONPATH (ragtune/ with rag/, tune/, ... inside)."""
    src, pkg = where / "src", where / "pkg"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    shutil.copytree(src / "ragtune", pkg / "ragtune")
    for part in ("rag", "tune", "advisor", "ui", "corpora"):
        shutil.copytree(src / part, pkg / "ragtune" / part)
    return pkg


def run_add(corpus: Path, index: Path, pythonpath: Path | None) -> dict:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    argv = [sys.executable, "-c", CLI, "index", "add", str(corpus), "--index", str(index), "--embedder", "hash-64",
            "--no-progress", "--json"]
    # cwd outside the repository: `python -c` puts the cwd first on sys.path, which would shadow PYTHONPATH
    cwd = corpus.parent
    where = subprocess.run([sys.executable, "-c", "import ragtune.rag.index as m; print(m.__file__)"], env=env,
                           cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    out = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out.seek(0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"index add failed ({status}) on {corpus}")
    report = json.loads(out.read())
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "seconds": seconds, "chunks": report["chunks_added"],
            "files": len(report["added"]), "code_path": where}


def traced(work):
    import tracemalloc

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = work()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def old_build(texts: list[str]) -> None:
    """What BM25Index.build did before (acb0591): every token list at once, then bm25s' own index."""
    import bm25s

    from ragtune.rag.lexical import tokenize

    tokens = [tokenize(t) or [""] for t in texts]
    bm25s.BM25(k1=1.2, b=0.75, method="lucene").index(tokens, show_progress=False)


def postings_on_beir(datasets: Path) -> list[dict]:
    """Text bytes vs what ragtune's BM25 keeps (postings while building, the saved CSC matrix) on real text:
    each document of the BEIR collections as one row."""
    from ragtune.rag.datasets import docs_from_beir, load_beir
    from ragtune.rag.lexical import BM25Index

    rows = []
    for path in sorted(p for p in datasets.iterdir() if (p / "corpus.jsonl").exists()):
        texts = [doc.text for doc in docs_from_beir(load_beir(path))]
        bm25 = BM25Index()
        bm25.build_from(enumerate(texts[:50]))  # warm: lazy imports and the stemmer's cache
        held, streamed_peak = traced(lambda: bm25.build_from(enumerate(texts)))
        matrix = sum(bm25._bm25.scores[k].nbytes for k in ("data", "indices", "indptr"))
        _, old_peak = traced(lambda: old_build(texts))
        rows.append({"collection": path.name, "rows": len(texts), "text_mb": sum(len(t.encode()) for t in texts) / 1e6,
                     "postings_mb": held / 1e6, "matrix_mb": matrix / 1e6, "vocab": len(bm25._bm25.vocab_dict),
                     "build_peak_mb": streamed_peak / 1e6, "old_build_peak_mb": old_peak / 1e6})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2, help="n: files in the small run (the large has 4n)")
    parser.add_argument("--mb", type=float, default=2.5, help="size of each file in MB (keep it above 2)")
    parser.add_argument("--before-commit", help="also run this older commit's code, for a before/after table")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--beir", type=Path, help="instead: BM25 postings vs text size on these BEIR collections")
    args = parser.parse_args()
    if args.beir:
        postings_on_beir(args.beir)
        return
    work = Path(tempfile.mkdtemp(prefix="ingest-memory-"))
    try:
        sizes = {args.files: write_corpus(work / "small", args.files, args.mb, 1),
                 4 * args.files: write_corpus(work / "large", 4 * args.files, args.mb, 2)}
        codes = {"after": None}
        if args.before_commit:
            codes = {"before": before_package(args.before_commit, work / "before"), **codes}
        rows = []
        for code, pythonpath in codes.items():
            for (n, text_bytes), corpus in zip(sizes.items(), (work / "small", work / "large")):
                result = run_add(corpus, work / f"index-{code}-{n}", pythonpath)
                rows.append({"code": code, "n_files": n, "text_mb": text_bytes / 1e6, **result})
                print(json.dumps(rows[-1]), flush=True)
        print("\n| code | files | text MB | chunks | peak RSS MB | s |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['code']} | {r['n_files']} | {r['text_mb']:.1f} | {r['chunks']:,} | {r['peak_rss_mb']:.0f} "
                  f"| {r['seconds']:.1f} |")
        if args.out:
            args.out.write_text(json.dumps(rows, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
