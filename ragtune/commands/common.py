"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError
from ragtune.paths import default_index_dir


def add_index_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index", metavar="DIR", type=Path, default=None,
        help="index directory (env RAGTUNE_INDEX; default .ragtune/index)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def index_path(args) -> Path:
    return args.index or default_index_dir()


def open_index(args, create: bool = False, config=None):
    from ragtune.rag.index import Index

    return Index.open(index_path(args), create=create, config=config)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def parse_filters(items: list[str] | None) -> dict | None:
    """``["file_type=pdf", "source=*lora*"]`` -> ``{"file_type": "pdf", "source": "*lora*"}``;
    a key given twice means "any of"."""
    if not items:
        return None
    filters: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--filter {item!r}: expected KEY=VALUE, e.g. file_type=pdf or source='*lora*'")
        key, value = key.strip(), _scalar(value.strip())
        if not key.replace("_", "").replace("-", "").isalnum():  # checked here, before any model loads
            raise ConfigError(f"--filter {item!r}: the key {key!r} may hold letters, digits, '_' or '-' only")
        if key in filters:
            prev = filters[key]
            filters[key] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            filters[key] = value
    return filters


def _scalar(value: str):
    if value.lstrip("-").isdigit():
        return int(value)
    return value


def group(sub, name: str, help: str) -> argparse._SubParsersAction:
    """A noun (``ragtune index``) whose verbs are added to the returned sub-parsers."""
    parser = sub.add_parser(name, help=help, description=help)
    parser.set_defaults(func=None, _group_parser=parser)
    return parser.add_subparsers(dest="verb", metavar="VERB")


NO_INDEX_BEHAVIOUR = (
    "Which index: --index DIR, else $RAGTUNE_INDEX, else ./.ragtune/index if it exists, else the shipped "
    "corpus's index (built in the user cache on first use). A named index that does not exist is an error."
)


def index_or_corpus(path: str | Path | None):
    """The index a reading command (search, ask, chat) uses: ``path``, else $RAGTUNE_INDEX, else
    ``.ragtune/index`` if it exists, else the shipped corpora's index (built under the user cache on first
    use). A named index that does not exist is an error (``Index.open`` names it and the fix), never an
    empty new index.

    Returns ``(index, label)``."""
    import os

    chosen = path or os.environ.get("RAGTUNE_INDEX")
    if chosen is None and Path(".ragtune/index").exists():
        chosen = ".ragtune/index"
    if chosen is not None:
        from ragtune.rag.index import Index

        return Index.open(chosen), str(chosen)
    from ragtune.api import corpus_index

    status("no --index given: using the shipped corpus's index (indexing it first if this is the first use)...")
    from ragtune.progress import terminal_progress

    with terminal_progress() as bar:
        return corpus_index(progress=bar), "corpora (shipped)"


def status(message: str) -> None:
    """One line on stderr before a step that can take more than a second or two."""
    print(message, file=sys.stderr, flush=True)


def warm_embedder(index: Any) -> None:
    """Load the index's embedding model now, after a status line: the first search would otherwise stall
    for seconds with nothing on the screen. A fresh CLI process has never loaded it; warm_up() is a no-op
    otherwise."""
    warm_up = getattr(getattr(index, "embedder", None), "warm_up", None)
    if warm_up is not None:
        status("loading the embedding model...")
        warm_up()


MODES = ("dense", "bm25", "hybrid")


def add_retrieval_options(parser: argparse.ArgumentParser, *, k_help: str = "results to return (default 5)") -> None:
    """The retrieval flags that search, ask and chat share, with one value name each."""
    parser.add_argument("--k", type=int, default=5, metavar="N", help=k_help)
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="retriever: dense, bm25 or hybrid (default: the index's, hybrid)")
    parser.add_argument("--filter", action="append", metavar="KEY=VALUE",
                        help="only chunks whose metadata matches: source=GLOB, file_type=pdf, page=3, section=..., "
                             "or any metadata key (repeatable; a key given twice means either value)")
    parser.add_argument("--reranker", "--rerank", dest="reranker", metavar="DIR",
                        help="rerank with a local cross-encoder model directory")
    parser.add_argument("--mmr", action="store_true", help="diversify results (maximal marginal relevance)")
    parser.add_argument("--per-source", type=int, metavar="N", default=None,
                        help="at most N results per file (1: a ranking of documents, each at its best chunk)")


def note_unknown_filter_keys(index, filters: dict | None) -> None:
    """A note on stderr for each --filter key that no chunk of ``index`` has: it matches nothing, so a typo
    ("--filter fle_type=pdf") would otherwise look like "no results"."""
    from ragtune.rag.retrieve import unknown_filter_keys

    missing, keys = unknown_filter_keys(index, filters)
    for key in missing:
        print(f"ragtune: note: no chunk has the metadata key {key!r}, so --filter {key}=... matches nothing; keys "
              f"in this index: {', '.join(sorted(keys))}", file=sys.stderr)


def retrieval_options(args) -> tuple[dict | None, dict]:
    """``(filters, search options)`` from the flags of :func:`add_retrieval_options`, checked."""
    if args.k < 1:
        raise ConfigError(f"--k must be a positive number, got {args.k}")
    options: dict[str, Any] = {}
    if args.mmr:
        options["mmr"] = True
    if args.per_source is not None:
        if args.per_source < 1:
            raise ConfigError(f"--per-source must be a positive number, got {args.per_source}")
        options["per_source"] = args.per_source
    if args.reranker:
        options["rerank"] = args.reranker
    return parse_filters(args.filter), options
