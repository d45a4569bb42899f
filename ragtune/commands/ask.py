"""`ragtune ask` and `ragtune chat`: grounded answers with numbered sources, streamed to the terminal.

    ragtune ask "What does LoRA train?"                       # local SmolLM2, streamed, sources after
    ragtune ask "What does LoRA train?" --generator extractive --json
    echo "What does LoRA train?" | ragtune ask -              # the question from standard input
    ragtune ask "..." --generator api --base-url http://localhost:8000/v1 --api-model my-model
    ragtune chat                                              # follow-ups use the history; /reset, /exit
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ragtune.commands.common import (
    NO_INDEX_BEHAVIOUR,
    add_retrieval_options,
    note_unknown_filter_keys,
    retrieval_options,
    status,
    warm_embedder,
)
from ragtune.errors import ConfigError, ModelLoadError, RagtuneError

DEFAULT_INDEX = ".ragtune/index"
GENERATORS = ("local", "api", "extractive")
_CHAT_HELP = "/reset forgets the conversation, /exit (or Ctrl-D) leaves"

_ENVIRONMENT = """Generators: local (SmolLM2-135M-Instruct shipped with ragtune, or --model DIR), api (any
OpenAI-compatible endpoint) or extractive (quotes the best sentences; no model). Every answer of a model is
checked against the passages it cites; an unsupported one is withdrawn and replaced by the quoted passage,
or by "The documents do not say." If the local model cannot be loaded and no generator was asked for,
the extractive generator answers, with a note on stderr.

Environment: RAGTUNE_INDEX (--index), RAGTUNE_GENERATOR (--generator), OPENAI_BASE_URL or
RAGTUNE_API_BASE (--base-url), RAGTUNE_API_MODEL (--api-model), OPENAI_API_KEY (the key; another
variable with --api-key-env).

""" + NO_INDEX_BEHAVIOUR

ASK_DESCRIPTION = "Answer QUESTION from the indexed documents, with numbered citations.\n\n" + _ENVIRONMENT
ASK_EXAMPLES = """examples:
  ragtune ask "What does QLoRA quantise the base model to?"
  ragtune ask "What does LoRA train?" --generator extractive --json
  echo "How is LoRA initialised?" | ragtune ask - --filter file_type=pdf"""
CHAT_DESCRIPTION = ("Ask questions and follow-ups; a follow-up (\"and for QLoRA?\", \"how much memory does it "
                    "save?\") is rewritten into a standalone question, shown before its answer. Questions are "
                    "read one per line from standard input when it is not a terminal.\n\n" + _ENVIRONMENT)
CHAT_EXAMPLES = """examples:
  ragtune chat --generator extractive
  printf 'What is LoRA?\\nWhat rank does it use?\\n' | ragtune chat --json"""


def register(subparsers: argparse._SubParsersAction) -> None:
    ask = subparsers.add_parser(
        "ask", help="answer a question from the indexed documents, with citations",
        description=ASK_DESCRIPTION, epilog=ASK_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ask.add_argument("question", help="the question to answer; - reads it from standard input")
    _add_common(ask)
    ask.add_argument("--no-stream", action="store_true", help="print the answer once it is complete")
    ask.add_argument("--json", action="store_true", help="print the whole answer (text, citations, hits, "
                                                         "timings, grounding) as JSON on stdout")
    ask.set_defaults(func=run_ask)

    chat = subparsers.add_parser(
        "chat", help="interactive questions and follow-ups over the indexed documents",
        description=CHAT_DESCRIPTION, epilog=CHAT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(chat)
    chat.add_argument("--history-turns", type=int, default=3, metavar="N",
                      help="earlier turns a follow-up may refer to (default 3)")
    chat.add_argument("--json", action="store_true", help="write one JSON object per turn (one line each)")
    chat.set_defaults(func=run_chat)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", metavar="DIR", default=None, help="the index to search (see above)")
    add_retrieval_options(p, k_help="chunks to retrieve (default 5)")
    p.add_argument("--generator", choices=GENERATORS, default=None,
                   help="who writes the answer (default: $RAGTUNE_GENERATOR, then local)")
    p.add_argument("--model", metavar="DIR", default=None,
                   help="local model folder or .gguf file (default: the shipped SmolLM2-135M-Instruct)")
    p.add_argument("--adapter", metavar="DIR", default=None, help="a LoRA adapter folder for the local model")
    p.add_argument("--adapter-scale", type=float, default=None, metavar="X",
                   help="the adapter's strength: 1 as trained (default), 0 the base model, 0.5 halfway (WiSE-FT)")
    p.add_argument("--check-adapter", action="store_true",
                   help="keep the adapter's answer only where the extractive reader, over the same passages, says the "
                        "same; elsewhere the base model answers (nothing reloads)")
    p.add_argument("--base-url", metavar="URL", default=None,
                   help="API base URL (default: $OPENAI_BASE_URL, then $RAGTUNE_API_BASE)")
    p.add_argument("--api-model", metavar="NAME", default=None, help="API model name (default: $RAGTUNE_API_MODEL)")
    p.add_argument("--api-key-env", metavar="VAR", default=None,
                   help="environment variable holding the API key (default: OPENAI_API_KEY)")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help="answer length limit (default: the generator's, 128 for the local model)")
    p.add_argument("--min-score", type=float, default=None, metavar="X",
                   help="abstain when the best chunk's cosine similarity is below X (default 0.25)")
    p.add_argument("--min-support", type=float, default=None, metavar="X",
                   help="abstain when no retrieved sentence holds a share X of the question's words "
                        "(default 0.525; 0 turns it off)")


# -- seams the tests replace ----------------------------------------------------------------------------
def open_index(path: str | Path) -> Any:
    from ragtune.rag.index import Index

    return Index.open(path)


def load_generator(config: dict[str, Any]) -> Any:
    from ragtune.rag.generators import load_generator as load

    return load(config)


# -- commands -------------------------------------------------------------------------------------------
def run_ask(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    question = args.question
    if question == "-":
        question = (stdin or sys.stdin).read().strip()
        if not question:
            raise ConfigError("ask -: standard input held no question")
    rag, filters = build_rag(args)
    if args.json:
        print(json.dumps(rag.ask(question, filters=filters).to_dict(), indent=2, ensure_ascii=False))
        return 0
    _print_answer(rag.stream(question, filters=filters), live=not args.no_stream, out=sys.stdout)
    return 0


def run_chat(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    if args.history_turns < 0:
        raise ConfigError(f"--history-turns must be 0 or more, got {args.history_turns}")
    rag, filters = build_rag(args, history_turns=args.history_turns)
    chat = rag.conversation(filters=filters)
    interactive = stdin is None and sys.stdin.isatty()
    if not args.json:
        print(f"ragtune chat ({rag.generator.name}); {_CHAT_HELP}", file=sys.stderr)
    while True:
        try:
            if interactive:
                line = input("you> ")
            else:
                line = (stdin or sys.stdin).readline()
                if not line:
                    break
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            break
        question = line.strip()
        if not question:
            continue
        if question in ("/exit", "/quit"):
            break
        if question == "/reset":
            chat.reset()
            print("(conversation forgotten)", file=sys.stderr)
            continue
        if question.startswith("/"):
            print(f"unknown command {question}; {_CHAT_HELP}", file=sys.stderr)
            continue
        _chat_turn(chat, question, echo=not interactive, as_json=args.json)
    return 0


def _chat_turn(chat, question: str, *, echo: bool, as_json: bool) -> None:
    """One question of a chat: its rewrite shown, its answer streamed (or one JSON line); errors reported."""
    try:
        if as_json:
            answer = chat.ask(question)
            print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
            return
        if echo:  # questions read from a pipe: the transcript shows what was asked
            print(f"you> {question}")
        stream = chat.stream(question)
        if stream.query != question:
            print(f"(understood as: {stream.query})")
        _print_answer(stream, live=True, out=sys.stdout)
    except RagtuneError as err:  # one failed question does not end the conversation
        if as_json:
            print(json.dumps({"question": question, "error": str(err)}, ensure_ascii=False), flush=True)
        else:
            print(f"error: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\n(interrupted)", file=sys.stderr)


def build_rag(args: argparse.Namespace, history_turns: int = 3):
    """The RAG the flags describe, and the metadata filters to search with."""
    from ragtune.rag.answer import DEFAULT_MIN_SCORE, DEFAULT_MIN_SUPPORT, RAG

    filters, options = retrieval_options(args)
    # Flags that cannot work together are refused before the index is opened (or the corpus index built).
    _generator_kind(args)
    if getattr(args, "check_adapter", False) and args.adapter is None:
        raise ConfigError("--check-adapter needs --adapter DIR (the adapter whose answers it checks)")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens must be a positive number, got {args.max_new_tokens}")
    # A cosine-like retrieval score may be negative; support is a share of the answer's words.
    for flag, value, low in (("--min-score", args.min_score, -1.0), ("--min-support", args.min_support, 0.0)):
        if value is not None and not low <= value <= 1.0:
            raise ConfigError(f"{flag} must be between {low:g} and 1, got {value:g}")
    index = _resolve_index(args.index)
    note_unknown_filter_keys(index, filters)
    warm_embedder(index)
    generator = _resolve_generator(args)
    fallback = None
    if getattr(args, "check_adapter", False):
        from ragtune.rag.generators.adapters import without_adapter

        fallback = without_adapter(generator)
    rag = RAG(
        index, generator, k=args.k, mode=args.mode, max_new_tokens=args.max_new_tokens,
        min_score=DEFAULT_MIN_SCORE if args.min_score is None else args.min_score,
        min_support=DEFAULT_MIN_SUPPORT if args.min_support is None else (args.min_support or None),
        history_turns=history_turns, search_options=options, fallback=fallback,
    )
    return rag, filters


def generator_config(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The ``load_generator`` config for the options given (unset options are left out)."""
    config: dict[str, Any] = {"kind": kind}
    if kind == "local":
        config.update(model_path=args.model, adapter=args.adapter, adapter_scale=args.adapter_scale)
        if args.adapter_scale is not None and args.adapter is None:
            raise ConfigError("--adapter-scale needs --adapter DIR (the adapter it scales)")

    elif kind == "api":
        config.update(
            base_url=args.base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("RAGTUNE_API_BASE"),
            model=args.api_model or os.environ.get("RAGTUNE_API_MODEL"),
            api_key_env=args.api_key_env,
        )
    return {k: v for k, v in config.items() if v is not None}


def _generator_kind(args: argparse.Namespace) -> tuple[str, str | None]:
    """The generator kind the flags and environment ask for, and whether it was asked for explicitly; the
    local model's flags with another kind are refused (before any index is opened or built)."""
    explicit = args.generator or os.environ.get("RAGTUNE_GENERATOR")
    kind = (explicit or "local").strip().lower()
    if kind not in GENERATORS:
        raise ConfigError(f"unknown generator {kind!r} (from $RAGTUNE_GENERATOR?); use one of {', '.join(GENERATORS)}")
    given = [flag for flag, value in (("--adapter", args.adapter), ("--adapter-scale", args.adapter_scale),
                                      ("--check-adapter", getattr(args, "check_adapter", False) or None),
                                      ("--model", args.model)) if value is not None]
    if kind != "local" and given:
        source = "--generator" if args.generator else "$RAGTUNE_GENERATOR"
        raise ConfigError(f"{' and '.join(given)} need(s) the local model, but {source} is {kind!r}; "
                          "use --generator local")
    return kind, explicit


def _resolve_generator(args: argparse.Namespace) -> Any:
    kind, explicit = _generator_kind(args)
    if kind == "extractive":
        from ragtune.rag.generators.extractive import ExtractiveGenerator

        return ExtractiveGenerator()
    try:
        generator = load_generator(generator_config(args, kind))
        warm_up = getattr(generator, "warm_up", None)
        if warm_up is not None:  # load now, so a missing model falls back here rather than mid-answer
            if kind == "local":
                status("loading the local model...")
            warm_up()
        return generator
    except (ModelLoadError, ImportError) as err:
        if explicit or args.model or args.adapter:
            raise
        from ragtune.rag.generators.extractive import ExtractiveGenerator

        print(f"note: the local model could not be loaded ({err}); answering extractively instead "
              "(--generator extractive to silence this)", file=sys.stderr)
        return ExtractiveGenerator()


def _resolve_index(path: str | None) -> Any:
    path = path or os.environ.get("RAGTUNE_INDEX")
    if path is not None:
        return open_index(path)  # the seam tests replace
    from ragtune.commands.common import index_or_corpus

    return index_or_corpus(None)[0]


def _print_answer(answer_stream, *, live: bool, out: TextIO):
    """Write the answer (piece by piece if ``live``), then its numbered sources. Returns the Answer."""
    for piece in answer_stream:
        if live:
            out.write(piece)
            out.flush()
    answer = answer_stream.answer
    if not live:
        out.write(answer.text)
        if answer.grounding.get("fallback"):
            print(f"note: the model's answer was withdrawn ({answer.grounding['reason']})", file=sys.stderr)
    out.write("\n")
    out.write(format_sources(answer))
    out.flush()
    return answer


def format_sources(answer) -> str:
    """The numbered source list printed under an answer: what was cited, else what was retrieved."""
    if answer.citations:
        lines = [f"  [{c.marker}] {_where(c.source, c.page, c.section)}" for c in answer.citations]
        return "\nSources:\n" + "\n".join(lines) + "\n"
    if answer.hits and not answer.abstained:
        lines = [f"  [{n}] {_where(h.source, h.page, h.section)}" for n, h in enumerate(answer.hits, 1)]
        return "\nRetrieved (not cited):\n" + "\n".join(lines) + "\n"
    return ""


def _where(source: str, page: int | None, section: str | None) -> str:
    parts = [source]
    if page is not None:
        parts.append(f"page {page}")
    if section:
        parts.append(f'section "{section}"')
    return ", ".join(parts)
