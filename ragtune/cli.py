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
import math
import os
import sys
import warnings

from ragtune import __version__
from ragtune.errors import ConfigError, RagtuneError, UnknownFilterKeyWarning

# Command groups in the order --help lists them; a missing optional one is skipped.
COMMANDS = ("index", "search", "ask", "eval", "advise", "tune", "ui")


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
    from ragtune.commands.help import finish

    return finish(parser)  # plain text, a description and an example on every command


# Arguments that are text (not paths): bytes that are not UTF-8 there are a user mistake, not a file name.
_TEXT_ARGS = ("query", "question", "filter", "message")


def check_args(args: argparse.Namespace) -> None:
    """Refuse what argparse lets through: NaN/inf numbers (``--min-score nan`` silently disabled
    abstention) and text arguments holding bytes that are not UTF-8 (``$'LoRA \\xff'``)."""
    for name, value in vars(args).items():
        option = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{option}: {value} is not a usable number; pass a finite value")
        if name in _TEXT_ARGS:
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str) and not _is_utf8(text):
                    shown = text.encode("utf-8", "backslashreplace").decode()
                    raise ConfigError(f"{name} {shown!r} holds bytes that are not valid UTF-8; pass the text in UTF-8")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 must print, not crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # A group without a verb (e.g. `ragtune index`) shows that group's help.
        (getattr(args, "_group_parser", None) or parser).print_help()
        return 0 if args.command is None else 2
    # The commands print their own one-line note for such a filter (commands/common.py), not Python's warning.
    warnings.filterwarnings("ignore", category=UnknownFilterKeyWarning)
    try:
        check_args(args)
        return int(args.func(args) or 0)
    except RagtuneError as exc:
        if os.environ.get("RAGTUNE_DEBUG"):
            raise
        print(f"ragtune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        resumes = getattr(args, "resumes", False)  # set by `tune run`, which continues from its last checkpoint
        hint = ": rerun the same command to resume from the last checkpoint" if resumes else ""
        print(f"ragtune: interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ragtune search ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
