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


def index_or_corpus(path: str | Path | None):
    """The index a reading command uses: ``path``, else $RAGTUNE_INDEX, else ``.ragtune/index`` if it
    exists, else the shipped corpora's index (built under the user cache on first use).

    Returns ``(index, label)``."""
    import os

    from ragtune.rag.index import Index

    chosen = path or os.environ.get("RAGTUNE_INDEX")
    if chosen is None and Path(".ragtune/index").exists():
        chosen = ".ragtune/index"
    if chosen is not None:
        return Index.open(chosen), str(chosen)
    from ragtune.api import corpus_index

    print("no --index given: using the shipped corpora's index", file=sys.stderr)
    from ragtune.progress import terminal_progress

    with terminal_progress() as bar:
        return corpus_index(progress=bar), "corpora (shipped)"
