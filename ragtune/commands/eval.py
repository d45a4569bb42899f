"""``ragtune eval retrieval``: score retrieval on a BEIR collection or on a QA file.

    ragtune eval retrieval --dataset ../shared/datasets/cranfield            # fresh temporary index
    ragtune eval retrieval --qa corpora/qa.jsonl --index .ragtune/index --json

A BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv) is indexed into a temporary index (or into
``--index DIR``, an evaluation index built there on first use and reused afterwards; it holds only this
corpus, and an index of your own files is refused) and scored with nDCG@10, Recall@k, MRR@10 and MAP per
mode. A QA jsonl file is scored against an existing index: hit rate@k and MRR@k of the file that supports
each answer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from ragtune.commands.common import group, print_json
from ragtune.errors import ConfigError, DatasetError
from ragtune.progress import terminal_progress

MODES = ("dense", "bm25", "hybrid")
DEFAULT_INDEX = ".ragtune/index"


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = group(subparsers, "eval", help="evaluate retrieval quality")
    p = verbs.add_parser(
        "retrieval",
        help="nDCG/Recall/MRR/MAP on a BEIR dataset, or hit rate/MRR on a QA file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", metavar="PATH",
                   help="a BEIR dataset directory, or a QA .jsonl file (e.g. corpora/qa.jsonl)")
    p.add_argument("--qa", metavar="FILE", help="a QA .jsonl file (same as --dataset FILE)")
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma-separated retrieval modes among dense,bm25,hybrid (default: all three)")
    p.add_argument("--index", metavar="DIR", default=None,
                   help="BEIR: keep the corpus's index in DIR, a folder for evaluations (built on first use, "
                        "reused after; documents of another dataset are removed from it; an index of your own "
                        "files is refused; default: a temporary index). QA: the index to search (default: "
                        f"$RAGTUNE_INDEX, then {DEFAULT_INDEX}, then the shipped corpora's index)")
    p.add_argument("--k", type=int, default=None,
                   help="retrieval depth: Recall@k and MAP for BEIR (default 100; nDCG@10 and MRR@10 always "
                        "look at the top 10, or the top k when k is larger), hit rate/MRR@k for QA (default 5)")
    p.add_argument("--limit-queries", type=int, default=None, metavar="N",
                   help="evaluate only the first N questions (a quick look, not a reportable figure)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.set_defaults(func=run_retrieval)


def open_index(path: str | Path, create: bool = False) -> Any:
    """Open (or create) an index; the one seam the tests replace with a fake."""
    from ragtune.rag.index import Index

    return Index.open(path, create=create)


def run_retrieval(args: argparse.Namespace) -> int:
    from ragtune.rag import evaluate as ev

    modes = _parse_modes(args.modes)
    if args.limit_queries is not None and args.limit_queries < 1:
        raise ConfigError(f"--limit-queries must be a positive number, got {args.limit_queries}")
    if args.k is not None and args.k < 1:
        raise ConfigError(f"--k must be a positive number, got {args.k}")
    target = args.qa or args.dataset
    if not target:
        raise ConfigError("give the data to evaluate on: --dataset DIR (BEIR layout) or --qa FILE (QA jsonl)")
    if not Path(target).exists():
        raise DatasetError(
            f"{target}: no such file or directory. Pass a BEIR dataset directory (corpus.jsonl, queries.jsonl, "
            f"qrels/test.tsv) or a QA .jsonl file."
        )
    if args.qa or not ev.is_beir_dir(target):
        return _run_qa(args, Path(target), modes)

    dataset = ev.load_beir(target).subset(args.limit_queries)
    k = args.k or 100
    with _beir_index(args.index, dataset) as (index, build_s), terminal_progress(force=_bars(args)) as bar:
        results = ev.evaluate_index(index, dataset, modes=modes, k=k, progress=bar)
    report = {
        "kind": "beir", "dataset": str(target), "name": dataset.name, "documents": len(dataset.corpus),
        "queries": len(dataset.qrels), "k": k, "index": args.index, "build_s": build_s, "results": results,
    }
    columns = [("nDCG@10", "ndcg@10"), (f"Recall@{k}", f"recall@{k}"), ("MRR@10", "mrr@10"), ("MAP", "map")]
    _print(report, columns, args.json)
    return 0


def _run_qa(args: argparse.Namespace, path: Path, modes: tuple[str, ...]) -> int:
    from ragtune.rag import evaluate as ev

    if path.is_dir():
        raise DatasetError(
            f"{path}: not a BEIR dataset (no corpus.jsonl) and not a QA file. Pass a BEIR directory or a "
            f".jsonl file of questions."
        )
    qa = ev.load_qa(path)
    if args.limit_queries:
        qa = qa[: args.limit_queries]
    k = args.k or 5
    index, index_name = _qa_index(args.index)
    missing = ev.missing_sources(index, qa)
    if missing:
        print(f"ragtune: note: {ev.missing_sources_note(path.name, missing)}", file=sys.stderr)
    with terminal_progress(force=_bars(args)) as bar:
        results = ev.evaluate_qa(index, qa, modes=modes, k=k, progress=bar)
    report = {"kind": "qa", "dataset": str(path), "name": path.name, "queries": len(qa), "k": k,
              "index": index_name, "results": results, "missing_sources": missing}
    _print(report, [(f"hit@{k}", f"hit_rate@{k}"), (f"MRR@{k}", f"mrr@{k}")], args.json)
    return 0


def _bars(args: argparse.Namespace) -> bool | None:
    """Progress bars on a terminal, never under --json (a script reads stdout; bars go to stderr anyway)."""
    return False if args.json else None


def _parse_modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ConfigError(f"--modes: unknown mode(s) {unknown or [text]}; choose among {','.join(MODES)}")
    return modes


@contextlib.contextmanager
def _beir_index(path: str | None, dataset: Any) -> Iterator[tuple[Any, float]]:
    """Index the dataset's corpus into ``path`` or a temp dir: incremental (unchanged documents are skipped),
    other documents removed, and an index of the user's own files refused (``index_corpus``)."""
    from ragtune.rag.evaluate import index_corpus, refuse_document_index

    with contextlib.ExitStack() as stack:
        if path is None:
            path = stack.enter_context(tempfile.TemporaryDirectory(prefix="ragtune-eval-"))
        index = open_index(path, create=True)
        if hasattr(index, "close"):
            stack.callback(index.close)
        refuse_document_index(index, dataset, "--index")  # before "indexing ...": nothing will be indexed
        print(f"indexing {len(dataset.corpus)} documents of {dataset.name} ...", file=sys.stderr)
        t0 = time.perf_counter()
        with terminal_progress() as bar:
            index_corpus(index, dataset, progress=bar, option="--index")
        yield index, time.perf_counter() - t0


def _qa_index(path: str | None) -> tuple[Any, str]:
    path = path or os.environ.get("RAGTUNE_INDEX")
    if path is not None:
        return open_index(path), str(path)
    from ragtune.commands.common import index_or_corpus

    return index_or_corpus(None)


def _print(report: dict[str, Any], columns: list[tuple[str, str]], as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    build = f", index built in {report['build_s']:.1f} s" if report.get("build_s") is not None else ""
    print(f"{report['name']}: {report['queries']} queries{build}")
    header = ["mode"] + [c for c, _ in columns] + ["p50 ms"]
    rows = [
        [mode] + [f"{m[key]:.4f}" for _, key in columns] + [f"{m['p50_ms']:.1f}"]
        for mode, m in report["results"].items()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
