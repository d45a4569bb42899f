"""The ``ragtune`` command line: noun-verb sub-commands, thin over the Python API.

    ragtune index add corpora/            ragtune search "what is LoRA" --json
    ragtune ask "what is QLoRA?"          ragtune eval retrieval --dataset DIR
    ragtune advise --answers a.yaml       ragtune index info

Each command group lives in ``ragtune/commands/<noun>.py`` and exposes ``register(subparsers)``.
Library errors (:class:`ragtune.errors.RagtuneError`) are printed as one clean line with a non-zero exit
code; tracebacks are kept for bugs (or shown for everything with ``RAGTUNE_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ragtune import __version__
from ragtune.errors import RagtuneError

# Command groups in the order --help lists them; a missing optional one is skipped.
COMMANDS = ("index", "search", "ask", "eval", "advise", "ui")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragtune",
        description="Index documents, search and answer with citations, evaluate, and get advice on API vs RAG vs fine-tuning.",
    )
    parser.add_argument("--version", action="version", version=f"ragtune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"ragtune.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"ragtune.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # A group without a verb (e.g. `ragtune index`) shows that group's help.
        (getattr(args, "_group_parser", None) or parser).print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except RagtuneError as exc:
        if os.environ.get("RAGTUNE_DEBUG"):
            raise
        print(f"ragtune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ragtune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ragtune search ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
