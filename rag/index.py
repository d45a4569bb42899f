"""A persistent, incremental, crash-safe index directory, safe to share between threads.

Layout (each generation is complete and never modified once published)::

    DIR/
      CURRENT            name of the published generation, replaced atomically
      write.lock         held (filelock) by the one process allowed to write
      ids.reserved       high-water mark of chunk ids handed out (never reused, even after a crash)
      gen-000007/
        manifest.json    format version, embedder, IndexConfig, store description, counts, ids digest,
                         size + SHA-256 of every file
        chunks.sqlite    chunk texts + metadata, file hashes
        vectors.faiss    the vector index (ids = chunks.id); absent for a server-side store (Milvus)
        bm25/            the BM25 index

A write takes the writer lock *first* (a second writer is refused at once, before any parsing or
embedding), builds the next generation beside the current one, verifies it, and publishes it by
replacing ``CURRENT`` (``os.replace`` is atomic), so a crash at any point (``kill -9`` included) leaves the
previous index loadable, and readers only ever see a complete generation. The kernel drops the lock
when its holder dies, so a crashed writer never blocks the next one; the next one removes its debris.
With a server-side vector store see :mod:`ragtune.rag.store` for the ordering that keeps it consistent.

Threads: one ``Index`` may be shared by any number of threads that search, read and ``refresh()``, and
one of them may write. Each read pins the published :class:`~ragtune.rag.generation.Generation` it
started on; a newer one is swapped in atomically and the old one is closed when its last reader is
done (closing it under a running query crashed the process before, issue 14).

    >>> index = Index.open(".ragtune/index", create=True)    # doctest: +SKIP
    >>> report = index.add(["corpora/"])                      # doctest: +SKIP
    >>> hits = index.search("What is QLoRA?", k=3)            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ragtune.errors import ConfigError, IndexFormatError, IngestError, ModelLoadError, ModelMismatchError, RagtuneError

from .chunkdb import ChunkDB, Damage, copy_without
from .config import IndexConfig
from .embed import DEFAULT_EMBEDDING_MODEL, Embedder, make_embedder
from .generation import FORMAT_VERSION, Generation, manifest_config, read_manifest, verify
from .ingest import Problem, _inside, discover, display_path, parse_file, read_again, sha256_file, source_path
from .types import Chunk, Document, Hit
from .writer import AddReport, Writer, clean_debris, drop_old_generations, progress_fn, try_write_lock, write_lock

__all__ = ["AddReport", "Index", "is_index"]
_OPEN_ATTEMPTS = 3  # CURRENT may move (and an old generation be dropped) while a reader opens it


def is_index(path: Path) -> bool:
    return (Path(path) / "CURRENT").is_file()


def read_current(root: Path) -> str:
    try:
        name = (root / "CURRENT").read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{root} is not a readable ragtune index: {exc}") from exc
    if not (name.startswith("gen-") and name[4:].isdigit()):
        raise IndexFormatError(f"{root}/CURRENT is damaged (holds {name[:40]!r}); it should name a gen-* folder")
    return name


class Index:
    """See the module docstring. Open with :meth:`open`; the constructor is internal."""

    def __init__(self, root: Path, config: IndexConfig, embedder: Embedder, generation: Generation | None = None):
        self.root = root
        self.config = config
        self.embedder = embedder
        self._gen = generation.pin() if generation else None  # the Index's own reference
        self._swap_lock = threading.Lock()  # one loader at a time; readers never wait on it
        self._closed = False
        self._allow_damaged_vectors = False  # see open(); refresh() opens newer generations the same way

    # ------------------------------------------------------------------------------------------
    # opening
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        create: bool = False,
        config: IndexConfig | None = None,
        embedder: Embedder | None = None,
        allow_damaged_vectors: bool = False,
    ) -> Index:
        """Open the index at ``path``; with ``create=True`` make an empty one if there is none.

        ``embedder`` overrides the model named in the manifest (it must be the same model); ``config`` is
        used only when creating. A damaged generation is refused with :class:`IndexFormatError`.

        ``allow_damaged_vectors``: open it anyway when only its vector files are damaged, to read what it
        holds (``info()``, whose ``vectors_damaged`` says what is wrong; ``files()``, ``chunks()``, a BM25
        search). A dense or hybrid search and every write then raise :class:`IndexFormatError`;
        :meth:`repair` rebuilds the vectors from the stored chunk texts.

            >>> Index.open(".ragtune/index", allow_damaged_vectors=True).info()["vectors_damaged"]  # doctest: +SKIP
        """
        root = Path(path).expanduser().resolve()
        if is_index(root):
            manifest = read_manifest(root, read_current(root))
            stored = manifest_config(root, manifest)
            if config is not None and (
                config.chunker != stored.chunker or config.embedder.model != stored.embedder.model
            ):
                raise ConfigError(
                    f"index {root} was built with other chunker/embedder settings; open it without a config, "
                    "or build a new index in another directory"
                )
            from .embed import UnavailableEmbedder

            made = embedder is None
            if made:
                try:
                    embedder = make_embedder(stored.embedder.model, stored.embedder.device, stored.embedder.batch_size)
                except ModelLoadError as exc:  # the model's folder is gone: the index can still be read
                    embedder = UnavailableEmbedder(manifest["embedder"], exc)
            try:
                _check_embedder(root, manifest, embedder)
            except ModelMismatchError as exc:
                if not made:  # a model the caller chose: refused, as always
                    raise
                # The folder the index names now holds another model (retuned into it): still readable.
                embedder = UnavailableEmbedder(manifest["embedder"], exc)
            _tidy(root)
            index = cls(root, stored, embedder)
            index._allow_damaged_vectors = allow_damaged_vectors
            index._gen = index._open_published().pin()
            return index
        if root.exists() and not root.is_dir():
            raise IndexFormatError(f"{root} is a file, not an index directory")
        if root.exists() and any(p.name not in ("write.lock", "ids.reserved") for p in root.iterdir()):
            raise IndexFormatError(
                f"{root} is not a ragtune index (no CURRENT file) and is not empty; point --index at an "
                "existing index or at a new/empty directory"
            )
        if not create:
            raise IndexFormatError(f"no index at {root}; build one with `ragtune index add PATH --index {root}`")
        config = (config or IndexConfig()).validate()
        embedder = embedder or make_embedder(config.embedder.model, config.embedder.device, config.embedder.batch_size)
        # Record what reopens this embedder: the hash fake's id, or the model directory.
        if embedder.model_id.startswith("hash-"):
            config.embedder.model = embedder.model_id
        elif getattr(embedder, "model_path", None) is not None and embedder.model_id != DEFAULT_EMBEDDING_MODEL:
            config.embedder.model = str(embedder.model_path)
        root.mkdir(parents=True, exist_ok=True)
        return cls(root, config, embedder)

    def _open_published(self) -> Generation:
        """The generation ``CURRENT`` names, retrying when a writer moves it while we open."""
        for attempt in range(_OPEN_ATTEMPTS):
            name = read_current(self.root)
            try:
                return Generation(self.root, read_manifest(self.root, name), self.config, self.embedder,
                                  allow_damaged_vectors=self._allow_damaged_vectors)
            except IndexFormatError:
                if attempt + 1 == _OPEN_ATTEMPTS or read_current(self.root) == name:
                    raise  # CURRENT did not move: the generation really is damaged
        raise AssertionError("unreachable")  # pragma: no cover

    def refresh(self) -> bool:
        """Pick up a newer published generation (written by another process). True if one was loaded.

        Safe to call from many threads while others search: readers finish on the generation they started.
        """
        self._check_open()
        if not is_index(self.root) or read_current(self.root) == self.generation:
            return False
        with self._swap_lock:
            if read_current(self.root) == self.generation:
                return False  # another thread loaded it while we waited
            self._swap(self._open_published())
        return True

    def _swap(self, new: Generation) -> None:
        old, self._gen = self._gen, new.pin()  # one reference assignment: readers see old or new
        if old is not None:
            old.unpin()
            old.retire()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Generation | None]:
        """Pin the published generation for a multi-step read (it stays open until the block ends)."""
        self._check_open()
        gen = self._gen
        while gen is not None:
            gen.pin()
            if not gen._retired:
                break
            gen.unpin()  # swapped out between the read and the pin: take the new one
            gen = self._gen
        try:
            yield gen
        finally:
            if gen is not None:
                gen.unpin()

    # ------------------------------------------------------------------------------------------
    # reading (each call pins one generation; use `reading()` to keep one across several calls)
    @property
    def generation(self) -> str | None:
        gen = self._gen
        return gen.name if gen else None

    @property
    def manifest(self) -> dict:
        gen = self._gen
        return gen.manifest if gen else {}

    @property
    def store(self):
        """The published generation's vector store (a :class:`~ragtune.rag.store.VectorStore`)."""
        gen = self._gen
        return gen.store if gen else None

    @property
    def bm25(self):
        gen = self._gen
        return gen.bm25 if gen else None

    @property
    def repairs(self) -> list[str]:
        """What opening the published generation repaired (e.g. a rebuilt BM25 index)."""
        gen = self._gen
        return list(gen.repairs) if gen else []

    def _read(self, method: str, *args, default=None):
        with self.reading() as gen:
            return default if gen is None else getattr(gen, method)(*args)

    def __len__(self) -> int:
        return self._read("__len__", default=0)

    def files(self) -> dict[str, dict]:
        return self._read("files", default={})

    def chunks(self) -> Iterator[Chunk]:
        with self.reading() as gen:
            if gen is not None:
                yield from gen.iter_chunks()

    def get_chunks(self, ids) -> dict[int, Chunk]:
        return self._read("get_chunks", ids, default={})

    def get_sources(self, ids) -> dict[int, str]:
        """Chunk id -> source file (no text, no metadata)."""
        return self._read("get_sources", ids, default={})

    def metadata_keys(self) -> set[str]:
        """The keys a search filter can match on in this index (an unknown key matches nothing)."""
        return self._read("metadata_keys", default=set())

    def filter_ids(self, filters: dict) -> list[int]:
        return self._read("filter_ids", filters, default=[])

    def vector_search(self, queries: np.ndarray, k: int, allowed=None, filters: dict | None = None):
        with self.reading() as gen:
            if gen is None:
                q = np.atleast_2d(queries)
                return np.full((len(q), 1), -np.inf, np.float32), np.full((len(q), 1), -1, np.int64)
            return gen.vector_search(queries, k, allowed, filters)

    def reconstruct(self, ids: list[int]) -> np.ndarray:
        return self._read("reconstruct", ids)

    def info(self) -> dict:
        with self.reading() as gen:
            files = gen.files() if gen else {}
            types: dict[str, int] = {}
            for meta in files.values():
                types[meta["type"]] = types.get(meta["type"], 0) + 1
            store = gen.store if gen else None
            return {
                "path": str(self.root),
                "generation": gen.name if gen else None,
                "format_version": FORMAT_VERSION,
                "files": len(files),
                "file_types": types,
                "chunks": len(gen) if gen else 0,
                "embedder": {"model_id": self.embedder.model_id, "dim": (gen.manifest["embedder"]["dim"] if gen else None)},
                "store": (gen.manifest.get("store") or {"backend": "faiss"}) if gen else {"backend": self.config.store.backend},
                "vector_index": getattr(store, "kind", None),
                "device": getattr(store, "device", None),
                # Only the settings the chunker that ran reads (no splitter numbers for the structure chunker).
                "chunker": self.config.chunker.in_use(_window(self.embedder)),
                "updated": gen.manifest.get("updated") if gen else None,
                "repairs": list(gen.repairs) if gen else [],
                # None when the vectors are sound; what is wrong with them and the fix when an index opened
                # with allow_damaged_vectors could not load them (dense search and writes are refused then).
                "vectors_damaged": gen.vectors_damage if gen else None,
            }

    @property
    def retriever(self):
        from .retrieve import Retriever

        return Retriever(self)

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str | None = None, *,
               distinct: bool = False, **options) -> list[Hit]:
        """The ``k`` best chunks for ``query``; see :meth:`ragtune.rag.retrieve.Retriever.search`.

        ``distinct``: each text once (copies of a document under other names are collapsed into the best-ranked
        hit, their sources on its ``also_in``), still ``k`` hits when there are enough. Off by default, so the
        ranking is the retriever's own (the retrieval benchmarks rank every document id).
        One search reads one generation from start to end, even if another is published meanwhile.
        """
        from .retrieve import Retriever, search_distinct

        if isinstance(query, str) and _has_surrogates(query):
            raise ConfigError(
                f"the query {_display(query)!r} holds bytes that are not valid UTF-8; pass the text in UTF-8"
            )
        with self.reading() as gen:
            retriever = Retriever(gen if gen is not None else self, self.config.retrieval)
            if distinct:
                return search_distinct(
                    lambda n: retriever.search(query, k=n, filters=filters, mode=mode, **options), k)
            return retriever.search(query, k=k, filters=filters, mode=mode, **options)

    def verify(self, full: bool = True) -> dict:
        """Check the published generation against its manifest (``full``: every checksum); raises
        :class:`IndexFormatError` on damage, returns :meth:`info` otherwise."""
        with self.reading() as gen:
            if gen is not None:
                verify(gen, quick=not full)
        return self.info()

    # ------------------------------------------------------------------------------------------
    # writing: each entry point takes the writer lock before any work, so a second writer is refused at once
    def add(
        self,
        paths: list[str | Path],
        *,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        prune: bool = False,
        follow_symlinks: bool = False,
        progress=None,
    ) -> AddReport:
        """Index new and changed files under ``paths``; with ``prune``, drop indexed files under them that
        are gone. Unchanged files (same content hash) are not re-read or re-embedded. Symbolic links that
        lead outside a folder given are not followed unless ``follow_symlinks``.

        ``progress``: a ``ProgressFn`` (stage, done, total, message), or True/False for a terminal bar
        (None: a bar when stderr is a terminal)."""
        from .ingest import as_list

        paths = as_list(paths, "paths")
        include, exclude = as_list(include, "include", "a glob"), as_list(exclude, "exclude", "a glob")
        with write_lock(self.root):
            self.refresh()  # another writer may have published since we opened
            started = time.perf_counter()
            report = AddReport()
            exclude = list(self.config.ingest.exclude) + exclude
            files, problems = discover(paths, include or self.config.ingest.include, exclude,
                                       follow_symlinks=follow_symlinks)
            # The index's own folder inside a folder given ("ragtune index add . --index .ragtune") is not a
            # document: its files (CURRENT, write.lock, chunks.sqlite) were listed as unsupported ones.
            files = [f for f in files if not _inside_root(f, self.root)]
            problems = [p for p in problems if not _inside_root(Path(p.path), self.root)]
            for p in problems:
                {"warning": report.warnings, "skipped": report.skipped}.get(p.level, report.problems).append(p)
            with progress_fn(progress) as emit:
                docs = self._parse(files, report, emit)
                stale = self._stale(paths, files) if prune else []
                # A deleted file or folder named with --prune is what pruning is for: removed, not also a
                # failure. The path as typed ("docs/a.md") is compared as the index stores it (absolute).
                report.problems = [p for p in report.problems
                                   if not (p.reason == "no such file or directory" and _pruned(p.path, stale))]
                self._writer(report, emit).apply(docs, stale)
            report.timings["total"] = time.perf_counter() - started
            return report

    def _parse(self, files: list[Path], report: AddReport, emit) -> Iterator[Document]:
        """The new and changed files' documents, parsed one at a time as the writer asks for them (a write
        never holds more than one parsed document; rag/feed.py). Unchanged files are not parsed."""
        report.timings.setdefault("parse", 0.0)
        for n, path in enumerate(files):
            source = display_path(path)
            emit("parse", n, len(files), Path(source).name)
            t0 = time.perf_counter()
            doc = self._parse_one(path, source, report)
            report.timings["parse"] += time.perf_counter() - t0
            if doc is not None:
                yield doc
                del doc  # before the next file is read
        emit("parse", len(files), len(files), "")

    def _parse_one(self, path: Path, source: str, report: AddReport) -> Document | None:
        try:
            digest = sha256_file(path)
        except OSError as exc:
            report.problems.append(Problem(source, f"cannot read: {exc.strerror or exc}"))
            return None
        stored = self._read("file", source) or {}  # one lookup, not the whole table
        if stored.get("sha256") == digest and not read_again(stored):
            report.unchanged.append(source)
            return None
        try:
            doc, warnings = parse_file(path, self.config.ingest)
        except IngestError as exc:
            # Nothing stored is lost, but say that searches still find the text read before the change.
            kept = (f"; the version indexed before is kept and still searchable (`ragtune index remove {source}`"
                    " drops it)") if stored else ""
            report.problems.append(Problem(source, exc.reason + kept))
            return None
        doc.source = source
        report.warnings.extend(warnings)
        return doc

    def _stale(self, paths, files: list[Path]) -> list[str]:
        seen = {display_path(f) for f in files}
        roots = [display_path(Path(p).expanduser().resolve()) for p in paths]
        stale = []
        for source in self.files():
            inside = any(_under(source, r) for r in roots)
            if inside and source not in seen and not os.path.lexists(source_path(source)):
                stale.append(source)
        return stale

    def add_documents(self, documents: Iterable[Document], *, prune: bool = False, progress=None) -> AddReport:
        """Index already-parsed documents (their ``source`` is kept verbatim as the key). ``documents`` may be
        any iterable, a generator included: it is read one document at a time, during the write."""
        with write_lock(self.root):
            self.refresh()
            started = time.perf_counter()
            report = AddReport()
            seen: set[str] = set()
            stale = (lambda: sorted(set(self.files()) - seen)) if prune else ()
            with progress_fn(progress) as emit:
                self._writer(report, emit).apply(self._fresh(documents, report, seen), stale)
            report.timings["total"] = time.perf_counter() - started
            return report

    def _fresh(self, documents: Iterable[Document], report: AddReport, seen: set[str]) -> Iterator[Document]:
        """The documents that are new or changed (by content hash), lazily."""
        import hashlib
        import json

        for doc in documents:
            seen.add(doc.source)
            if not doc.sha256:
                # The text, and the metadata when there is any: a changed label must reach the chunks.
                own = doc.own_metadata()
                keyed = doc.text + ("\x00" + json.dumps(own, sort_keys=True, default=str) if own else "")
                doc.sha256 = hashlib.sha256(keyed.encode("utf-8", "surrogatepass")).hexdigest()
            problem = doc.metadata_problem()
            if problem:
                report.problems.append(Problem(doc.source, problem))
            elif (self._read("file", doc.source) or {}).get("sha256") == doc.sha256:
                report.unchanged.append(doc.source)
            elif not doc.text.strip():
                report.problems.append(Problem(doc.source, "no text"))
            else:
                yield doc
            del doc

    def remove(self, sources: list[str]) -> AddReport:
        """Drop the given sources (paths as listed by ``files()``) from the index; a folder drops every
        indexed file under it."""
        from .ingest import as_list

        sources = [str(s) for s in as_list(sources, "sources")]
        with write_lock(self.root):
            self.refresh()
            report = AddReport()
            known = self.files()
            drop: dict[str, None] = {}
            for s in sources:
                r = s if s in known else str(Path(s).expanduser().resolve())
                files = [r] if r in known else [f for f in known if f.startswith(r.rstrip("/") + "/")]
                if not files:
                    report.problems.append(Problem(s, "not in the index (nor any indexed file under it)"))
                drop.update(dict.fromkeys(files))
            self._writer(report, lambda *a: None).apply([], list(drop))
            return report

    @classmethod
    def repair(cls, path: str | Path, *, embedder: Embedder | None = None, progress=None) -> Index:
        """Rebuild a damaged published generation's vectors and BM25 index from its chunk texts (which
        are the source of truth) and publish the result as a new generation. Returns the opened index.

        The chunk table is checked first (:meth:`ChunkDB.audit`): a file whose stored chunks no longer
        match their hashes is dropped with its ``files`` record, so the next ``index add`` reads it again
        instead of calling it unchanged; :attr:`repairs` names each one. A table that cannot be read at
        all is refused (:class:`IndexFormatError`): there is nothing to rebuild from but the documents."""
        root = Path(path).expanduser().resolve()
        if not is_index(root):
            raise IndexFormatError(f"no index at {root}")
        with write_lock(root):
            manifest = read_manifest(root, read_current(root))
            config = manifest_config(root, manifest)
            if embedder is None:
                embedder = make_embedder(config.embedder.model, config.embedder.device, config.embedder.batch_size)
            _check_embedder(root, manifest, embedder)
            damage, notes = _audit_table(root, manifest)
            index = cls(root, config, embedder)
            with progress_fn(progress) as emit:
                _RepairWriter(index, AddReport(), emit, manifest, damage).rebuild()
            index._gen.repairs.extend(notes)  # what this repair dropped: Index.repairs and info() report it
            return index

    def _writer(self, report: AddReport, emit) -> Writer:
        damage = self._gen.vectors_damage if self._gen is not None else None
        if damage is not None:  # a write forks the vectors: it would publish the damage as the next generation
            raise IndexFormatError(f"cannot write to {self.root}: its vectors are damaged: {damage}")
        return Writer(self, report, emit)

    def close(self) -> None:
        """Release the index's files. Reading or writing through this object afterwards raises (a closed index
        would otherwise answer every search with nothing); open the directory again with :meth:`open`."""
        self._closed = True
        gen, self._gen = self._gen, None
        if gen is not None:
            gen.unpin()
            gen.retire()

    def _check_open(self) -> None:
        if self._closed:
            raise RagtuneError(f"the index at {self.root} was closed; open it again with Index.open({str(self.root)!r})")


def _audit_table(root: Path, manifest: dict) -> tuple[Damage, list[str]]:
    """Index.repair's check of the published chunk table: what to drop, and a note for the user per file."""
    path = root / manifest["generation"] / "chunks.sqlite"
    try:
        db = ChunkDB(path, readonly=True)
        try:
            damage = db.audit()
        finally:
            db.close()
    except IndexFormatError as exc:
        # Re-embedding is all repair does: without readable chunk texts it would publish nothing true.
        raise IndexFormatError(f"cannot repair {root}: {exc}") from exc
    notes = [f"dropped {source}: {why} (the chunk table was damaged), with its files record; index it again: "
             f"`ragtune index add {shlex.quote(source)} --index {shlex.quote(str(root))}`" if indexed else
             f"dropped the chunks stored under {source}: {why}; no indexed file has that name (the damage reached "
             "the name itself), so there is nothing to index again for it"
             for source, why, indexed in damage.describe()]
    recorded = ((manifest.get("files") or {}).get("chunks.sqlite") or {}).get("sha256")
    if not damage and recorded and sha256_file(path) != recorded:
        notes.append(f"{path} did not match its checksum, but every chunk text still matches its hash and every "
                     "file its chunk count: kept every row")
    return damage, notes


class _RepairWriter(Writer):
    """Writer.rebuild() over a clean copy of the chunk table: the damaged files' rows are left out before
    anything is re-embedded (a damaged text may not even decode), and the copy's indexes are rebuilt (a
    damaged entry in the source index hid a file's old chunks from the next add, which left them beside
    the new ones)."""

    def __init__(self, index: Index, report: AddReport, emit, manifest: dict, damage: Damage):
        super().__init__(index, report, emit, base_manifest=manifest)
        self.damage = damage

    def _begin(self, name: str) -> Path:
        tmp = super()._begin(name)
        table, clean = tmp / "chunks.sqlite", tmp / "chunks.clean.sqlite"
        dropped = copy_without(table, clean, list(self.damage.reasons))
        os.replace(clean, table)
        self.report.removed.extend(self.damage.sources)
        self.report.chunks_removed += dropped
        return tmp


def _check_embedder(root: Path, manifest: dict, embedder: Embedder) -> None:
    want = manifest["embedder"]
    got_fp, want_fp = getattr(embedder, "fingerprint", None), want.get("fingerprint")
    other_content = bool(got_fp and want_fp and got_fp != want_fp)
    folder = getattr(embedder, "model_path", None)
    if folder is not None and got_fp and got_fp == want_fp:
        return  # a model folder with the same content: the same model, whatever the folder is called now
    if embedder.model_id == want["model_id"] and other_content:
        where = folder or want["model_id"]
        raise ModelMismatchError(
            f"index {root} was built with embedding model {want['model_id']!r}, and the folder {str(where)!r} now "
            "holds another model of that name (its files changed since): give the index the model it was built "
            "with, or re-embed it with this one (`ragtune tune embedder ... --reembed`, reembed_index)")
    if embedder.model_id != want["model_id"] or other_content:
        raise ModelMismatchError(
            f"index {root} was built with embedding model {want['model_id']!r} "
            f"(dimension {want['dim']}), not {embedder.model_id!r}: open it with the same model or build a "
            "new index for the other one"
        )


def _tidy(root: Path) -> None:
    """Remove what a writer killed before its cleanup left (stale generations, tmp folders). Only when
    there is some (so opening an index normally takes no lock at all), only if no writer is running
    now, and a read-only index directory is left as it is."""
    try:
        current = read_current(root)
        names = [p.name for p in root.iterdir()]
        gens = [n for n in names if n.startswith("gen-") and n[4:].isdigit()]
        debris = any(n.startswith(("tmp-", "CURRENT.tmp-")) for n in names)
        if not debris and len(gens) <= 2 and all(int(n[4:]) <= int(current[4:]) for n in gens):
            return
        with try_write_lock(root) as locked:
            if locked:
                clean_debris(root, current)
                drop_old_generations(root, current)
    except (OSError, sqlite3.Error, IndexFormatError):
        pass


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _display(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")[:80]


def _window(embedder) -> int | None:
    """The embedding model's token window, without loading the model when its folder declares it."""
    declared = getattr(embedder, "declared_max_tokens", None)
    if declared is not None:
        return declared()
    return getattr(embedder, "max_tokens", None)


def _pruned(typed: str, stale: list[str]) -> bool:
    """Whether the path ``typed`` (as given to add) is a pruned source or a folder that held pruned ones."""
    if not stale:
        return False
    where = display_path(Path(typed).expanduser().resolve())
    return any(_under(source, where) for source in stale)


def _under(source: str, root: str) -> bool:
    """Whether the stored source ``source`` is ``root`` or lies under it (both as the index stores paths)."""
    return source == root or source.startswith(root + os.sep)


def _inside_root(path: Path, root: Path) -> bool:
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return False
    return _inside(resolved, root)
