"""A persistent, incremental, crash-safe index directory.

Layout (each generation is complete and never modified once published)::

    DIR/
      CURRENT            name of the published generation, replaced atomically
      write.lock         held (flock) by the one process allowed to write
      gen-000007/
        manifest.json    format version, embedder id/dim, IndexConfig, counts
        chunks.sqlite    chunk texts + metadata, file hashes
        vectors.faiss    the vector index (ids = chunks.id)
        bm25/            the BM25 index

A write builds the next generation beside the current one and publishes it by replacing ``CURRENT``
(``os.replace`` is atomic), so a crash at any point (``kill -9`` included) leaves the previous index
loadable, and readers only ever see a complete generation. A second writer is refused while the lock is
held; the kernel drops the lock when its holder dies, so a crashed writer never blocks the next one.

    >>> index = Index.open(".ragtune/index", create=True)    # doctest: +SKIP
    >>> report = index.add(["corpora/"])                      # doctest: +SKIP
    >>> hits = index.search("What is QLoRA?", k=3)            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragtune.errors import ConfigError, IndexFormatError, IndexLockedError, IngestError, ModelMismatchError
from ragtune.rag.chunk import make_chunker
from ragtune.rag.chunkdb import ChunkDB
from ragtune.rag.config import IndexConfig
from ragtune.rag.embed import DEFAULT_EMBEDDING_MODEL, Embedder, make_embedder
from ragtune.rag.ingest import Problem, discover, parse_file, sha256_file
from ragtune.rag.lexical import BM25Index
from ragtune.rag.store import FaissStore
from ragtune.rag.types import Chunk, Document, Hit
from ragtune.progress import ProgressFn, emit

FORMAT = "ragtune-index"
FORMAT_VERSION = 1
_KEEP_GENERATIONS = 2  # the published one and its predecessor (a reader may still be opening it)


@dataclass
class AddReport:
    """What an :meth:`Index.add` call did. ``problems`` holds skipped files, ``warnings`` caveats."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def to_dict(self) -> dict:
        return {
            "added": self.added, "updated": self.updated, "unchanged": len(self.unchanged),
            "removed": self.removed, "chunks_added": self.chunks_added, "chunks_removed": self.chunks_removed,
            "problems": [p.to_dict() for p in self.problems], "warnings": [p.to_dict() for p in self.warnings],
            "skipped": [p.to_dict() for p in self.skipped],
            "timings": self.timings,
        }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for p in [*path.rglob("*"), path]:
        if p.is_dir():
            _fsync_dir(p)
        else:
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())


@contextlib.contextmanager
def _write_lock(root: Path) -> Iterator[None]:
    import fcntl

    lock_path = root / "write.lock"
    fh = open(lock_path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise IndexLockedError(
            f"index {root} is being written by {holder}; wait for it to finish and try again "
            "(only one writer at a time; searching is fine meanwhile)"
        ) from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        yield
    finally:
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


# Texts per embedding call when progress is reported: a multiple of the embedder's batch size (64), so
# batching is unchanged; it only adds one Python call per 512 texts (seconds of embedding on a CPU).
_EMBED_SLICE = 512


def _progress_fn(progress: ProgressFn | bool | None) -> ProgressFn | None:
    """A callback, None, or the old booleans (True: a terminal bar) for callers not yet converted."""
    if progress is True:
        from ragtune.progress import terminal_progress

        return terminal_progress(force=True)
    return progress or None


def _encode(embedder: Embedder, texts: list[str], progress: ProgressFn | None) -> np.ndarray:
    if progress is None or len(texts) <= _EMBED_SLICE:
        emit(progress, "embed", 0, len(texts), "")
        vectors = embedder.encode(texts)
        emit(progress, "embed", len(texts), len(texts), "")
        return vectors
    parts = []
    for start in range(0, len(texts), _EMBED_SLICE):
        emit(progress, "embed", start, len(texts), "")
        parts.append(embedder.encode(texts[start : start + _EMBED_SLICE]))
    emit(progress, "embed", len(texts), len(texts), "")
    return np.concatenate(parts, axis=0)


def is_index(path: Path) -> bool:
    return (Path(path) / "CURRENT").is_file()


class Index:
    """See the module docstring. Open with :meth:`open`; the constructor is internal."""

    def __init__(self, root: Path, config: IndexConfig, embedder: Embedder, generation: str | None):
        self.root = root
        self.config = config
        self.embedder = embedder
        self.generation = generation
        self._db: ChunkDB | None = None
        self._store: FaissStore | None = None
        self._bm25: BM25Index | None = None
        self.manifest: dict = {}
        self._retriever = None
        if generation:
            self._load(generation)

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
    ) -> Index:
        """Open the index at ``path``; with ``create=True`` make an empty one if there is none.

        ``embedder`` overrides the model named in the manifest (it must be the same model); ``config`` is
        used only when creating.
        """
        root = Path(path).expanduser().resolve()
        if is_index(root):
            manifest = cls._read_manifest(root, cls._current(root))
            stored = IndexConfig.from_dict(manifest["config"])
            if config is not None and (
                config.chunker != stored.chunker or config.embedder.model != stored.embedder.model
            ):
                raise ConfigError(
                    f"index {root} was built with other chunker/embedder settings; open it without a config, "
                    "or build a new index in another directory"
                )
            if embedder is None:
                embedder = make_embedder(stored.embedder.model, stored.embedder.device, stored.embedder.batch_size)
            cls._check_embedder(root, manifest, embedder)
            return cls(root, stored, embedder, manifest["generation"])
        if root.exists() and not root.is_dir():
            raise IndexFormatError(f"{root} is a file, not an index directory")
        if root.exists() and any(p.name != "write.lock" for p in root.iterdir()):
            raise IndexFormatError(
                f"{root} is not a ragtune index (no CURRENT file) and is not empty; point --index at an "
                "existing index or at a new/empty directory"
            )
        if not create:
            raise IndexFormatError(
                f"no index at {root}; build one with `ragtune index add PATH --index {root}`"
            )
        config = (config or IndexConfig()).validate()
        embedder = embedder or make_embedder(config.embedder.model, config.embedder.device, config.embedder.batch_size)
        # Record what reopens this embedder: the hash fake's id, or the model directory.
        if embedder.model_id.startswith("hash-"):
            config.embedder.model = embedder.model_id
        elif getattr(embedder, "model_path", None) is not None and embedder.model_id != DEFAULT_EMBEDDING_MODEL:
            config.embedder.model = str(embedder.model_path)
        root.mkdir(parents=True, exist_ok=True)
        return cls(root, config, embedder, None)

    @staticmethod
    def _current(root: Path) -> str:
        try:
            name = (root / "CURRENT").read_text().strip()
        except OSError as exc:
            raise IndexFormatError(f"{root} is not a readable ragtune index: {exc}") from exc
        if not name.startswith("gen-"):
            raise IndexFormatError(f"{root}/CURRENT is damaged (holds {name[:40]!r})")
        return name

    @staticmethod
    def _read_manifest(root: Path, generation: str) -> dict:
        path = root / generation / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"cannot read {path}: {exc}") from exc
        if manifest.get("format") != FORMAT:
            raise IndexFormatError(f"{path} is not a ragtune manifest")
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise IndexFormatError(
                f"index {root} has format version {manifest['format_version']}; this ragtune reads up to "
                f"{FORMAT_VERSION}: upgrade ragtune"
            )
        manifest["generation"] = generation
        return manifest

    @staticmethod
    def _check_embedder(root: Path, manifest: dict, embedder: Embedder) -> None:
        want = manifest["embedder"]
        got_fp = getattr(embedder, "fingerprint", None)
        if embedder.model_id != want["model_id"] or (got_fp and want.get("fingerprint") and got_fp != want["fingerprint"]):
            raise ModelMismatchError(
                f"index {root} was built with embedding model {want['model_id']!r} "
                f"(dimension {want['dim']}), not {embedder.model_id!r}: open it with the same model or build a "
                "new index for the other one"
            )

    def _load(self, generation: str, store: FaissStore | None = None, bm25: BM25Index | None = None) -> None:
        """Open a published generation; a writer passes the store and BM25 it just saved there, so they
        are not read back from disk (a 1M-vector index is ~1.5 GB)."""
        gen_dir = self.root / generation
        self.manifest = self._read_manifest(self.root, generation)
        if self._db is not None:
            self._db.close()
        self._db = ChunkDB(gen_dir / "chunks.sqlite", readonly=True)
        dim = self.manifest["embedder"]["dim"]
        if store is None:
            exists = (gen_dir / "vectors.faiss").exists()
            store = FaissStore.open(gen_dir / "vectors.faiss", dim, self.config.store) if exists else FaissStore(dim, self.config.store)
        if bm25 is None:
            exists = (gen_dir / "bm25").exists()
            bm25 = BM25Index.load(gen_dir / "bm25", self.config.lexical) if exists else BM25Index(self.config.lexical)
        self._store = store
        self._bm25 = bm25
        self.generation = generation
        self._retriever = None

    def refresh(self) -> bool:
        """Pick up a newer published generation (written by another process). True if one was loaded."""
        if is_index(self.root):
            current = self._current(self.root)
            if current != self.generation:
                self._load(current)
                return True
        return False

    # ------------------------------------------------------------------------------------------
    # reading
    def __len__(self) -> int:
        return self._db.count() if self._db else 0

    def files(self) -> dict[str, dict]:
        return self._db.files() if self._db else {}

    def chunks(self) -> Iterator[Chunk]:
        return self._db.iter_chunks() if self._db else iter(())

    def get_chunks(self, ids) -> dict[int, Chunk]:
        return self._db.get(ids) if self._db else {}

    def info(self) -> dict:
        files = self.files()
        types: dict[str, int] = {}
        for meta in files.values():
            types[meta["type"]] = types.get(meta["type"], 0) + 1
        return {
            "path": str(self.root),
            "generation": self.generation,
            "format_version": FORMAT_VERSION,
            "files": len(files),
            "file_types": types,
            "chunks": len(self),
            "embedder": {"model_id": self.embedder.model_id, "dim": self.manifest.get("embedder", {}).get("dim")},
            "vector_index": self._store.kind if self._store else None,
            "device": self._store.device if self._store else None,
            "chunker": self.config.chunker.__dict__,
            "updated": self.manifest.get("updated"),
        }

    @property
    def retriever(self):
        if self._retriever is None:
            from ragtune.rag.retrieve import Retriever

            self._retriever = Retriever(self)
        return self._retriever

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str | None = None, **options) -> list[Hit]:
        """The ``k`` best chunks for ``query``; see :meth:`ragtune.rag.retrieve.Retriever.search`."""
        return self.retriever.search(query, k=k, filters=filters, mode=mode, **options)

    # ------------------------------------------------------------------------------------------
    # writing
    def add(
        self,
        paths: list[str | Path],
        *,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        prune: bool = False,
        progress: ProgressFn | None = None,
    ) -> AddReport:
        """Index new and changed files under ``paths``; with ``prune``, drop indexed files under them that
        are gone. Unchanged files (same content hash) are not re-read or re-embedded.

        ``progress(stage, done, total, message)`` is called per file ("parse") and per embedding batch
        ("embed"), then once for "write" (see :mod:`ragtune.progress`; the CLI passes a terminal bar)."""
        started = time.perf_counter()
        progress = _progress_fn(progress)
        report = AddReport()
        exclude = list(self.config.ingest.exclude) + list(exclude or [])
        files, problems = discover(paths, include or self.config.ingest.include, exclude)
        for p in problems:
            {"warning": report.warnings, "skipped": report.skipped}.get(p.level, report.problems).append(p)
        known = self.files()
        docs: list[Document] = []
        t0 = time.perf_counter()
        for done, path in enumerate(files):
            emit(progress, "parse", done, len(files), path.name)
            source = str(path)
            try:
                digest = sha256_file(path)
            except OSError as exc:
                report.problems.append(Problem(source, f"cannot read: {exc.strerror or exc}"))
                continue
            if known.get(source, {}).get("sha256") == digest:
                report.unchanged.append(source)
                continue
            try:
                doc, warnings = parse_file(path, self.config.ingest)
            except IngestError as exc:
                report.problems.append(Problem(source, exc.reason))
                continue
            doc.source = source
            report.warnings.extend(warnings)
            docs.append(doc)
        emit(progress, "parse", len(files), len(files), "")
        report.timings["parse"] = time.perf_counter() - t0
        stale: list[str] = []
        if prune:
            seen = {str(f) for f in files}
            roots = [Path(p).expanduser().resolve() for p in paths]
            for source in known:
                inside = any(source == str(r) or source.startswith(str(r) + os.sep) for r in roots)
                if inside and source not in seen and not Path(source).exists():
                    stale.append(source)
        self._apply(docs, stale, report, progress)
        report.timings["total"] = time.perf_counter() - started
        return report

    def add_documents(self, documents: list[Document], *, prune: bool = False,
                      progress: ProgressFn | None = None) -> AddReport:
        """Index already-parsed documents (their ``source`` is kept verbatim as the key)."""
        import hashlib

        started = time.perf_counter()
        progress = _progress_fn(progress)
        report = AddReport()
        known = self.files()
        docs = []
        for doc in documents:
            if not doc.sha256:
                doc.sha256 = hashlib.sha256(doc.text.encode()).hexdigest()
            if known.get(doc.source, {}).get("sha256") == doc.sha256:
                report.unchanged.append(doc.source)
            elif not doc.text.strip():
                report.problems.append(Problem(doc.source, "no text"))
            else:
                docs.append(doc)
        stale = sorted(set(known) - {d.source for d in documents}) if prune else []
        self._apply(docs, stale, report, progress)
        report.timings["total"] = time.perf_counter() - started
        return report

    def remove(self, sources: list[str]) -> AddReport:
        """Drop the given sources (paths as listed by ``files()``) from the index."""
        report = AddReport()
        known = self.files()
        resolved = [s if s in known else str(Path(s).expanduser().resolve()) for s in sources]
        for s, r in zip(sources, resolved):
            if r not in known:
                report.problems.append(Problem(s, "not in the index"))
        self._apply([], [r for r in resolved if r in known], report, None)
        return report

    def _apply(self, docs: list[Document], stale: list[str], report: AddReport, progress: ProgressFn | None) -> None:
        """Chunk + embed ``docs``, replace their old chunks, drop ``stale``, publish a new generation."""
        if not docs and not stale:
            return
        t0 = time.perf_counter()
        chunker = make_chunker(self.config.chunker, self.embedder)
        per_doc: list[tuple[Document, list[Chunk]]] = []
        for doc in docs:
            try:
                chunks = chunker.chunk(doc)
            except Exception as exc:  # a chunking failure is this file's problem, not the batch's
                report.problems.append(Problem(doc.source, f"could not chunk: {exc}"))
                continue
            if not chunks:
                report.problems.append(Problem(doc.source, "no text left after chunking"))
                continue
            per_doc.append((doc, chunks))
        report.timings["chunk"] = time.perf_counter() - t0
        if not per_doc and not stale:
            return
        t0 = time.perf_counter()
        new_chunks = [c for _, cs in per_doc for c in cs]
        vectors = _encode(self.embedder, [c.text for c in new_chunks], progress)
        report.timings["embed"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        emit(progress, "write", 0, 1, "publishing a new generation")
        with _write_lock(self.root):
            self.refresh()  # another writer may have published since we read
            known = self.files()
            try:
                self._publish(per_doc, vectors, stale, known, report)
            except BaseException:
                # Nothing was published; drop the half-built generation and our in-memory edits.
                self._clean_debris()
                if self.generation:
                    self._load(self.generation)
                else:
                    self._store = None
                raise
        report.timings["write"] = time.perf_counter() - t0
        emit(progress, "write", 1, 1, "")

    def _publish(self, per_doc, vectors: np.ndarray, stale: list[str], known: dict, report: AddReport) -> None:
        number = int(self.generation[4:]) + 1 if self.generation else 1
        name = f"gen-{number:06d}"
        tmp = self.root / f"tmp-{name}-{os.getpid()}"
        self._clean_debris()
        tmp.mkdir()
        if self.generation:
            shutil.copyfile(self.root / self.generation / "chunks.sqlite", tmp / "chunks.sqlite")
        db = ChunkDB(tmp / "chunks.sqlite")
        dim = vectors.shape[1] if len(vectors) else self.manifest.get("embedder", {}).get("dim") or self.embedder.dim
        store = self._store if self._store is not None else FaissStore(dim, self.config.store)
        # Replace: drop the old chunks of every changed file and every stale file.
        replaced = [d.source for d, _ in per_doc if d.source in known]
        old_ids = db.delete_sources(replaced + stale)
        store.remove(np.asarray(old_ids, dtype=np.int64))
        next_id = int(self.manifest.get("next_id", 1))
        rows, ids = [], []
        for doc, chunks in per_doc:
            for c in chunks:
                rows.append((next_id, c))
                ids.append(next_id)
                next_id += 1
            db.upsert_file(doc.source, doc.sha256, doc.metadata.get("size"), doc.metadata.get("mtime"), doc.type, len(chunks))
            (report.updated if doc.source in known else report.added).append(doc.source)
        db.insert(rows)
        db.commit()
        store.add(np.asarray(ids, dtype=np.int64), vectors)
        store.save(tmp / "vectors.faiss")
        bm25 = BM25Index(self.config.lexical)
        if self.config.lexical.enabled:
            all_ids, texts = db.ids_and_texts()
            bm25.build(np.asarray(all_ids, dtype=np.int64), texts)
            bm25.save(tmp / "bm25")
        count = db.count()
        db.close()
        report.removed.extend(stale)
        report.chunks_added += len(ids)
        report.chunks_removed += len(old_ids)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": self.manifest.get("created", time.time()),
            "updated": time.time(),
            "embedder": {
                "model_id": self.embedder.model_id,
                "dim": int(dim),
                "fingerprint": getattr(self.embedder, "fingerprint", None),
            },
            "config": self.config.to_dict(),
            "chunks": count,
            "next_id": next_id,
            "vector_index": store.kind,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        _fsync_tree(tmp)
        os.replace(tmp, self.root / name)
        _fsync_dir(self.root)
        # Publishing is this one atomic rename; everything before it is invisible to readers.
        current_tmp = self.root / f"CURRENT.tmp-{os.getpid()}"
        current_tmp.write_text(name + "\n")
        with open(current_tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(current_tmp, self.root / "CURRENT")
        _fsync_dir(self.root)
        self._load(name, store=store, bm25=bm25)  # keep the in-memory copies (and the GPU twin)
        self._drop_old_generations()

    def _clean_debris(self) -> None:
        """Remove what a crashed writer left (we hold the lock, so no writer is live)."""
        current = int(self.generation[4:]) if self.generation else 0
        for p in self.root.iterdir():
            # A generation newer than CURRENT was renamed into place but never published.
            unpublished = p.name.startswith("gen-") and p.name[4:].isdigit() and int(p.name[4:]) > current
            if unpublished or p.name.startswith(("tmp-", "CURRENT.tmp-")):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    def _drop_old_generations(self) -> None:
        gens = sorted(p for p in self.root.glob("gen-*") if p.is_dir())
        for old in gens[:-_KEEP_GENERATIONS]:
            if old.name != self.generation:
                shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
