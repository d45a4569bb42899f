"""``ragtune index add|info|files|remove``: build and inspect an index."""

from __future__ import annotations

import os
import sys

from ragtune.commands.common import add_index_option, add_json_option, group, index_path, open_index, print_json


def register(sub) -> None:
    verbs = group(sub, "index", "build and inspect an index (incremental, crash-safe)")

    add = verbs.add_parser(
        "add", help="index files and directories (only new or changed files are processed)",
        description="Parse, chunk and embed files into the index. Re-running it processes only new or "
        "changed files (content hash); --prune also drops indexed files under PATH that are gone.",
    )
    add.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    add_index_option(add)
    add.add_argument("--prune", action="store_true", help="remove indexed files under PATH that no longer exist")
    add.add_argument("--include", action="append", metavar="GLOB", help="only files matching GLOB (repeatable)")
    add.add_argument("--exclude", action="append", metavar="GLOB", help="skip files/dirs matching GLOB (repeatable)")
    add.add_argument("--max-file-mb", type=float, metavar="MB", help="skip files larger than this (default 25)")
    add.add_argument("--chunker", choices=["structure", "recursive"], help="chunker for a NEW index (default structure)")
    add.add_argument("--chunk-tokens", type=int, metavar="N", help="max tokens per chunk for a NEW index (default: the embedding model's window)")
    add.add_argument("--embedder", metavar="DIR", help="sentence-transformers model directory for a NEW index")
    add.add_argument("--backend", choices=["faiss", "milvus"], help="vector store for a NEW index (default faiss)")
    add.add_argument("--uri", default=os.environ.get("RAGTUNE_MILVUS_URI"), metavar="URI",
                     help="with --backend milvus: a server (http://host:19530) or a Milvus Lite file (./vectors.db); "
                     "env RAGTUNE_MILVUS_URI")
    add.add_argument("--strict", action="store_true", help="exit 1 if any file was skipped for an error")
    add.add_argument("--follow-symlinks", action="store_true",
                     help="follow symbolic links that lead outside the folders given (default: refuse them)")
    add.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_json_option(add)
    add.set_defaults(func=cmd_add)

    info = verbs.add_parser("info", help="what the index holds and how it was built")
    add_index_option(info)
    add_json_option(info)
    info.set_defaults(func=cmd_info)

    files = verbs.add_parser("files", help="list indexed files")
    add_index_option(files)
    add_json_option(files)
    files.set_defaults(func=cmd_files)

    verify = verbs.add_parser("verify", help="check every file of the index against its manifest (checksums, counts)")
    add_index_option(verify)
    add_json_option(verify)
    verify.set_defaults(func=cmd_verify)

    repair = verbs.add_parser(
        "repair", help="rebuild a damaged index's vectors and BM25 from its stored chunk texts",
        description="Re-embed every stored chunk text into a new vector index and BM25 index and publish "
        "them as a new generation (the chunk table is the source of truth; nothing is re-parsed). A file "
        "whose stored chunks no longer match their hashes is dropped and named: index it again with "
        "`ragtune index add`.",
    )
    add_index_option(repair)
    repair.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_json_option(repair)
    repair.set_defaults(func=cmd_repair)

    remove = verbs.add_parser("remove", help="drop files (or every indexed file under a folder) from the index")
    remove.add_argument("sources", nargs="+", metavar="PATH")
    add_index_option(remove)
    add_json_option(remove)
    remove.set_defaults(func=cmd_remove)


def _new_index_config(args):
    from ragtune.errors import ConfigError
    from ragtune.rag.config import IndexConfig

    config = IndexConfig()
    if args.chunker:
        config.chunker.name = args.chunker
    if args.chunk_tokens is not None:  # 0 was taken as "not given" and ignored silently
        config.chunker.max_tokens = args.chunk_tokens
    if args.embedder:
        config.embedder.model = args.embedder
    if args.backend == "milvus" and not args.uri:
        raise ConfigError("--backend milvus needs --uri http://host:19530 (a server) or --uri ./vectors.db (Milvus Lite)")
    if args.backend:
        config.store.backend = args.backend
        config.store.uri = args.uri if args.backend == "milvus" else None
    return config.validate()


def cmd_add(args) -> int:
    from ragtune.errors import ConfigError
    from ragtune.rag.index import is_index

    # Checked before the index is opened (or created): 0 used to be ignored silently, -1 to skip every file.
    if args.max_file_mb is not None and not args.max_file_mb > 0:
        raise ConfigError(f"--max-file-mb must be a positive number of megabytes, got {args.max_file_mb:g}")
    path = index_path(args)
    creating = not is_index(path)
    if not creating and args.uri:  # an existing index looks for its Milvus collection there first (it moved)
        os.environ["RAGTUNE_MILVUS_URI"] = args.uri
    index = open_index(args, create=True, config=_new_index_config(args) if creating else None)
    # The window only when --chunk-tokens asks for a new index: reading it loads the embedding model (seconds),
    # which an add of unchanged files never needs.
    window = index.embedder.max_tokens if creating and args.chunk_tokens is not None else None
    if window and args.chunk_tokens > window:
        print(f"ragtune: note: --chunk-tokens {args.chunk_tokens} is above the embedding model's window; chunks are "
              f"bounded by the window, {window} tokens (the model would not see past it)", file=sys.stderr)
    if not creating and (args.chunker or args.chunk_tokens is not None or args.embedder or args.backend):
        print("ragtune: note: --chunker/--chunk-tokens/--embedder/--backend apply to a new index only; ignored",
              file=sys.stderr)
    if args.max_file_mb is not None:
        index.config.ingest.max_file_mb = args.max_file_mb
    from ragtune.progress import terminal_progress

    with terminal_progress(force=False if (args.no_progress or args.json) else None) as bar:
        report = index.add(args.paths, include=args.include, exclude=args.exclude, prune=args.prune,
                           follow_symlinks=args.follow_symlinks, progress=bar)
    if args.json:
        print_json({**report.to_dict(), "index": index.info()})
    else:
        _print_report(report, index)
    if args.include and not (report.changed or report.unchanged or report.problems or report.skipped):
        print(f"ragtune: note: no file under {', '.join(map(str, args.paths))} matched --include "
              f"{' '.join(args.include)} (globs match the path relative to the folder, or the file name)",
              file=sys.stderr)
    if creating and not is_index(path):  # nothing published: "-> DIR (0 chunks)" read as if DIR were an index now
        from ragtune.rag.ingest import SUPPORTED_TYPES

        why = ("every file failed (above)" if report.problems else
               f"no supported file was found under {', '.join(map(str, args.paths))} (types: "
               f"{' '.join(sorted(SUPPORTED_TYPES))})")
        print(f"ragtune: note: nothing was indexed, so no index was created at {path}: {why}", file=sys.stderr)
    nothing_done = not report.changed and not report.unchanged
    if report.problems and (args.strict or nothing_done):
        return 1
    return 0


def _print_report(report, index) -> None:
    err = sys.stderr
    for p in report.problems:
        print(f"skipped {p.path}: {p.reason}", file=err)
    for p in report.warnings:
        print(f"warning {p.path}: {p.reason}", file=err)
    if report.skipped:
        names = ", ".join(p.path.rsplit("/", 1)[-1] for p in report.skipped[:5])
        more = f" and {len(report.skipped) - 5} more" if len(report.skipped) > 5 else ""
        print(f"ignored {len(report.skipped)} file(s) of unsupported type: {names}{more}", file=err)
    t = report.timings.get("total", 0.0)
    print(
        f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
        f"{len(report.removed)} removed, {len(report.problems)} failed; +{report.chunks_added} "
        f"-{report.chunks_removed} chunks in {t:.1f}s -> {index.root} ({len(index)} chunks)"
    )


def _open_to_list(args):
    """The index for `info` and `files`, which read only its chunk table and manifest: damaged vectors do not
    stop them (they showed nothing of what the index holds), they are named on stderr with the way out."""
    from ragtune.rag.index import Index

    index = Index.open(index_path(args), allow_damaged_vectors=True)
    with index.reading() as gen:
        damage = gen.vectors_damage if gen is not None else None
    if damage is not None:
        print(f"ragtune: warning: the index's vectors are damaged: {damage}. Search and ask refuse the index "
              "until it is repaired; listing what it holds still works (`ragtune index verify` checks every file)",
              file=sys.stderr)
    return index


def cmd_info(args) -> int:
    info = _open_to_list(args).info()
    if args.json:
        print_json(info)  # "vectors_damaged": null, or what is wrong with the vectors and the fix
        return 0
    info.pop("vectors_damaged")  # said on stderr when there is damage; a "-" row on every sound index is noise
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {_readable(key, value)}")
    return 0


def _readable(key: str, value) -> str:
    """One value of ``index info`` for a person: times as dates with their age, settings as key=value."""
    if key == "updated":
        return when(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def when(timestamp: float | None, now: float | None = None) -> str:
    """``2026-11-30 10:41 UTC (3 minutes ago)``: UTC so that it reads the same on a server and a laptop.

    >>> when(0, now=150)
    '1970-01-01 00:00 UTC (2 minutes ago)'
    """
    import time

    if not timestamp:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
    age = (time.time() if now is None else now) - timestamp
    return f"{stamp} ({_age(age)})"


def _age(seconds: float) -> str:
    if seconds < 0:
        return "in the future: check the clock"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def cmd_verify(args) -> int:
    from ragtune.errors import IndexFormatError

    try:
        info = open_index(args).verify(full=True)
    except IndexFormatError as exc:
        if not args.json:
            raise
        # A script reads the verdict from stdout: {"ok": false} with the reason, and the same exit status.
        print_json({"ok": False, "error": str(exc)})
        print(f"ragtune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print_json({"ok": True, **info})
    else:
        print(f"ok: {info['chunks']} chunks in {info['files']} files, every checksum, count and chunk hash matches "
              f"({info['generation']})")
    return 0


def cmd_repair(args) -> int:
    from ragtune.rag.index import Index

    index = Index.repair(index_path(args), progress=False if (args.no_progress or args.json) else None)
    info = index.info()
    if args.json:
        print_json(info)  # its "repairs" name each file dropped for damage
    else:
        # Each file dropped because its stored chunks were damaged, with the command that indexes it again:
        # the summary alone read as if every stored text had been kept.
        for note in info["repairs"]:
            print(f"warning: {note}", file=sys.stderr)
        print(f"repaired: {info['chunks']} chunks re-embedded into {info['generation']} -> {index.root}")
    return 0


def cmd_files(args) -> int:
    files = _open_to_list(args).files()
    if args.json:
        print_json(files)
        return 0
    for source, meta in sorted(files.items()):
        print(f"{meta['n_chunks']:>5} chunks  {meta['type']:<5} {source}")
    return 0


def cmd_remove(args) -> int:
    index = open_index(args)
    report = index.remove(args.sources)
    if args.json:
        print_json(report.to_dict())
    elif report.problems and not report.removed:  # nothing done: one error line, as for any other mistake
        reasons = "; ".join(f"{p.path}: {p.reason}" for p in report.problems)
        print(f"ragtune: error: nothing removed: {reasons} (`ragtune index files` lists what is indexed)",
              file=sys.stderr)
    else:
        for p in report.problems:
            print(f"ragtune: error: not removed {p.path}: {p.reason}", file=sys.stderr)
        print(f"removed {len(report.removed)} file(s), {report.chunks_removed} chunks")
    return 1 if report.problems else 0
