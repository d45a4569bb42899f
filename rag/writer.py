"""Writing an index generation: the writer lock, the streamed write, and the publish sequence.

One write streams (rag/feed.py): files are parsed one at a time, each document is chunked, its rows go into
the new generation's chunk table and its chunk texts into batches that are embedded and stored, then dropped;
BM25 is built afterwards by streaming the table's texts (only its postings stay in RAM). What a write holds
at once is one document, one batch of texts and three batches of vectors, not the whole call.

The order of the publish steps is the crash-safety argument, so it lives in one place
(:meth:`Writer._publish`, one method per stage):

1. take the chunk ids from the high-water mark (``ids.reserved``) and raise the mark *before* an id reaches
   the vector store (a batch ahead at a time, exact at the end), so an id is never handed out twice, even by
   a writer killed mid-way;
2. build ``tmp-gen-N-PID/``: a copy of the chunk table with the changes, the vectors (embedded and stored
   batch by batch through rag/bulk_ingest.py), BM25, the manifest (counts, ids digest, size + SHA-256 of
   every file, the store's description); verify it by opening it;
3. rename it to ``gen-N`` and replace ``CURRENT`` (atomic): the publish;
4. for a server-side store only, remove the replaced ids now (a reader of the previous generation may
   still need them until this point), and record them as ``pending_remove`` so a writer killed between
   3 and 4 has its removals redone by the next one.

An in-generation store (FAISS) is edited as a private fork, so readers never see a half-applied edit.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragtune.errors import IndexFormatError, IndexLockedError, IndexWriteError, RagtuneError

from .bulk_ingest import Record, stream_into_store
from .chunk import make_chunker
from .chunkdb import ChunkDB
from .feed import Feed, chunk_stream
from .generation import FORMAT, FORMAT_VERSION, MANIFEST, Generation, file_records, ids_digest, read_manifest
from .ingest import Problem
from .lexical import BM25Index
from .store import create_store, open_store
from .types import Document

log = logging.getLogger(__name__)
_KEEP_GENERATIONS = 2  # the published one and its predecessor (a reader may still be opening it)
RESERVED = "ids.reserved"
LOCK = "write.lock"


@dataclass
class AddReport:
    """What an :meth:`Index.add` call did. ``problems`` holds files that could not be indexed (missing, empty,
    corrupt, too large, or named explicitly with an unsupported type), ``skipped`` files of an unsupported type
    found while walking a folder, ``warnings`` caveats; each names its file and the cause."""

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
    bm25_postings_bytes: int = 0  # what the BM25 build held in RAM (its postings); not in to_dict

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


# ---------------------------------------------------------------------------------------------
# the writer lock


def _lock(root: Path):
    from filelock import FileLock

    def stamp(fd: int) -> None:  # who holds it, for the refused writer's message
        os.write(fd, f"pid {os.getpid()}".encode())

    return FileLock(str(root / LOCK), timeout=0, thread_local=False, on_acquired=stamp)


def _acquire(root: Path) -> object | None:
    """The held lock, or None when another writer holds it. Refuses a ``write.lock`` that is a symlink:
    following it would truncate its target (issue 14 found one clobbering a file outside the index)."""
    from filelock import Timeout

    path = root / LOCK
    if path.is_symlink():
        raise IndexFormatError(
            f"{path} is a symbolic link; ragtune will not write through it (that would truncate "
            f"{os.path.realpath(path)}). Remove the link (rm {path}) and run again"
        )
    lock = _lock(root)
    try:
        lock.acquire()
    except Timeout:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a symlink between the check and the open
            raise IndexFormatError(f"{path} is a symbolic link; remove it (rm {path}) and run again") from None
        raise IndexWriteError(f"cannot create the writer lock {path}: {exc.strerror or exc}") from exc
    return lock


@contextlib.contextmanager
def write_lock(root: Path) -> Iterator[None]:
    """Hold the index's writer lock, or raise :class:`IndexLockedError` at once."""
    root.mkdir(parents=True, exist_ok=True)
    lock = _acquire(root)
    if lock is None:
        try:
            holder = (root / LOCK).read_text(errors="replace").strip() or "another process"
        except OSError:
            holder = "another process"
        raise IndexLockedError(
            f"index {root} is being written by {holder}; wait for it to finish and try again "
            "(only one writer at a time; searching is fine meanwhile)"
        )
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def try_write_lock(root: Path) -> Iterator[bool]:
    """Like :func:`write_lock` but yields False instead of raising when another writer holds it."""
    lock = _acquire(root)
    try:
        yield lock is not None
    finally:
        if lock is not None:
            lock.release()


# ---------------------------------------------------------------------------------------------
# housekeeping (only with the lock held)


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


def _number(name: str) -> int:
    return int(name[4:]) if name.startswith("gen-") and name[4:].isdigit() else -1


def clean_debris(root: Path, current: str | None) -> None:
    """Remove what a crashed writer left: tmp folders and generations never published."""
    newest = _number(current) if current else 0
    for p in root.iterdir():
        unpublished = _number(p.name) > newest
        if unpublished or p.name.startswith(("tmp-", "CURRENT.tmp-", f"{RESERVED}.tmp")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)


def drop_old_generations(root: Path, current: str) -> None:
    gens = sorted((p for p in root.glob("gen-*") if p.is_dir() and _number(p.name) >= 0), key=lambda p: _number(p.name))
    dropped = [old for old in gens[:-_KEEP_GENERATIONS] if old.name != current]
    named_by_dropped = _server_stores(dropped)
    still_named = _server_stores([g for g in gens if g not in dropped])
    for old in dropped:
        shutil.rmtree(old, ignore_errors=True)
    for key, (description, dim) in named_by_dropped.items():
        if key not in still_named:
            _drop_server_store(description, dim)


def _server_stores(gens: list[Path]) -> dict:
    """(uri, collection) -> (store description, dim) for the server-side stores these generations name."""
    found = {}
    for gen in gens:
        try:
            manifest = json.loads((gen / MANIFEST).read_text())
            store, dim = manifest.get("store") or {}, int(manifest["embedder"]["dim"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # a damaged old generation: it names nothing we can free
        if isinstance(store, dict) and store.get("collection"):
            found[(store.get("uri"), store["collection"])] = (store, dim)
    return found


def _drop_server_store(description: dict, dim: int) -> None:
    """Drop a server-side collection no kept generation names any more. Only a repair moves an index to a
    new collection; the old one stays while the generation before the repair is kept (readers may still be
    on it) and goes with that generation. Best effort: an unreachable server must not fail a write that is
    already published; the collection is then left behind."""
    from .config import StoreConfig

    try:
        store = open_store(description, Path("."), dim, StoreConfig())  # gen_dir is unused by server stores
    except (RagtuneError, OSError):
        return  # already gone (the damage a repair fixed), or the server is not reachable
    try:
        store.drop()
    except (RagtuneError, OSError) as exc:
        log.warning("could not drop the replaced collection %s: %s", description.get("collection"), exc)
    finally:
        getattr(store, "close", lambda: None)()


def read_reserved(root: Path) -> int:
    try:
        return int(json.loads((root / RESERVED).read_text())["next_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _reserve(root: Path, next_id: int) -> None:
    tmp = root / f"{RESERVED}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(json.dumps({"next_id": int(next_id)}))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / RESERVED)
    _fsync_dir(root)


# ---------------------------------------------------------------------------------------------
# progress


@contextlib.contextmanager
def progress_fn(progress) -> Iterator:
    """``progress`` (a ProgressFn, True/False/None for a terminal bar) -> an ``emit(stage, done, total, msg)``."""
    from ragtune.progress import emit, terminal_progress

    if callable(progress):
        yield lambda stage, done, total=None, message="": emit(progress, stage, done, total, message)
        return
    bar = terminal_progress(force=sys.stderr.isatty() if progress is None else bool(progress))
    try:
        yield lambda stage, done, total=None, message="": emit(bar, stage, done, total, message)
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------------
# the writer


def stream_batch_size(embedder) -> int:
    """Texts embedded (and vectors handed to the store) per batch: a few of the embedder's own batches,
    at least 256 so the per-batch store call (an RPC for Milvus) stays amortised."""
    return max(256, 4 * int(getattr(embedder, "batch_size", 64) or 64))


class Writer:
    """One write to an :class:`~ragtune.rag.index.Index` (the caller holds the writer lock)."""

    def __init__(self, index, report: AddReport, emit, base_manifest: dict | None = None):
        self.index = index
        self.root: Path = index.root
        self.report = report
        self.emit = emit
        self.base_manifest = base_manifest if base_manifest is not None else index.manifest

    def apply(self, docs: Iterable[Document], stale: list[str] | Callable[[], list[str]] = ()) -> None:
        """Chunk + embed ``docs``, replace their old chunks, drop ``stale``, publish a new generation.

        ``docs`` is read lazily, one document at a time, inside the write (rag/feed.py); ``stale`` is a list,
        or a function called once ``docs`` is exhausted (a pruning caller knows what is gone only then).
        Nothing is published when no document yields chunks and nothing is stale."""
        started = time.perf_counter()
        chunked = chunk_stream(docs, make_chunker(self.index.config.chunker, self.index.embedder), self.report,
                               self.emit)
        first = next(chunked, None)  # parse until the first change: an unchanged tree publishes nothing
        if first is None:
            stale = stale() if callable(stale) else list(stale)
            if not stale:
                return
            feed = iter(())
        else:
            feed = _prepend(first, chunked)
            del first
        self._guarded(lambda: self._publish(feed, stale), started)

    def rebuild(self) -> None:
        """Re-embed every stored chunk text of the published generation into a fresh store (repair),
        with the metadata a server-side store filters on (a Milvus repair without it broke filters)."""
        self._guarded(lambda: self._publish(iter(()), [], rebuild=True), time.perf_counter())

    def _guarded(self, publish, started: float) -> None:
        current = self.base_manifest.get("generation")
        self._published: str | None = None
        try:
            publish()
        except RagtuneError:
            # Once CURRENT names the new generation it is the index: cleaning up "as if nothing was published"
            # deleted it and left CURRENT pointing at nothing (every later command refused the index).
            clean_debris(self.root, self._published or current)
            raise
        except (OSError, sqlite3.Error, RuntimeError, MemoryError) as exc:
            clean_debris(self.root, self._published or current)
            if self._published:
                # Failed after the publish (dropping old generations): the write landed, and "nothing was
                # changed" sent users to redo it. What is left, _tidy() on the next open removes (when more
                # than two generations remain), and so does the next write that publishes.
                raise IndexWriteError(
                    f"the write was saved: {self._published} is published in {self.root} and searchable, but "
                    f"finishing up after it failed: {_reason(exc)}. Older generations may be left on disk; opening "
                    "the index while no writer runs, or the next write that changes it, removes them. Nothing "
                    "needs to be written again; fix the cause if this repeats"
                ) from exc
            # Disk full, I/O error, FAISS write error: nothing was published, the previous generation stands.
            raise IndexWriteError(
                f"could not write the new index generation in {self.root}: {_reason(exc)}; nothing was "
                "changed (the previous generation is intact). Free space or fix the cause and run again"
            ) from exc
        except BaseException:
            clean_debris(self.root, self._published or current)
            raise
        # Parsing, chunking and embedding stream inside the publish; "write" is the rest of it.
        timings = self.report.timings
        streamed = sum(timings.get(stage, 0.0) for stage in ("parse", "chunk", "embed"))
        timings["write"] = max(0.0, time.perf_counter() - started - streamed)
        self.emit("write", 1, 1, "published")

    def _stream(self, store, records: Iterable[Record]) -> int:
        """Embed ``records`` batch by batch straight into ``store`` (rag/bulk_ingest.py): at most
        ``queue_depth + 2`` = 3 batches of vectors exist at once, whatever the size of the write, and
        embedding overlaps the store's insert (an RPC for Milvus). Before, a write held every new vector
        at once and then a second copy of them (the concatenation): 2 x 1.5 GB for 1M chunks at 384-d.
        A FAISS store switches to IVF only when persisted (``FaissStore.seal``), so its cells are still
        trained on every vector of the write, not on the first batch. Returns the rows stored."""
        embedder = self.index.embedder
        done = [0]

        def encode(texts: list[str]) -> np.ndarray:
            self.emit("embed", done[0], None, "")  # the total is known only at the end: documents stream in
            vectors = embedder.encode(texts)
            done[0] += len(texts)
            return vectors

        stream = stream_into_store(store, records, encode, batch_size=stream_batch_size(embedder))
        if stream.rows:
            self.emit("embed", stream.rows, stream.rows, "")
        self.report.timings["embed"] = self.report.timings.get("embed", 0.0) + stream.embed_seconds
        return stream.rows

    # -- publish: one method per stage, in the order the module docstring argues ----------------------
    def _store(self, dim: int):
        """The store this write edits: a fork of the published in-generation store, the shared server
        store (after undoing what a crashed writer left in it), or a new one."""
        index, manifest = self.index, self.base_manifest
        base = index._gen
        if base is not None and base.name == manifest.get("generation"):
            store = base.store
        elif manifest:
            store = open_store(manifest.get("store") or {"backend": "faiss"}, self.root / manifest["generation"],
                               dim, index.config.store)
        else:
            store = create_store(index.config.store, dim)
            return store, not hasattr(store, "fork")
        if hasattr(store, "fork"):
            return store.fork(), False
        published, reserved = int(manifest.get("next_id", 1)), read_reserved(self.root)
        if reserved > published:  # ids a crashed writer added but never published
            store.remove(np.arange(published, reserved, dtype=np.int64))
        if manifest.get("pending_remove"):  # removals a writer killed after its publish did not finish
            store.remove(np.asarray(manifest["pending_remove"], dtype=np.int64))
        return store, True

    def _publish(self, chunked, stale, rebuild: bool = False) -> None:
        manifest = self.base_manifest
        current = manifest.get("generation")
        name = f"gen-{(_number(current) if current else 0) + 1:06d}"
        tmp = self._begin(name)
        db = ChunkDB(tmp / "chunks.sqlite")
        try:
            dim = (manifest.get("embedder") or {}).get("dim") or self.index.embedder.dim
            if rebuild:  # a fresh store (for Milvus a new collection: the old one may be the damage)
                store, shared = create_store(self.index.config.store, dim), False
                self._stream(store, (Record(*row) for row in db.iter_store_rows()))
            else:
                store, shared = self._store(dim)
            feed = self._ingest(db, store, chunked, stale)
            old_ids = feed.removed_ids()
            self.emit("write", 0, 1, "writing and verifying the new generation")
            bm25, description = self._seal(tmp, db, store, old_ids, shared)
            self._write_manifest(tmp, db, store, description, int(dim), feed.next_id, old_ids if shared else None)
        finally:
            db.close()
        self._verify_and_point(tmp, name, store, bm25, old_ids if shared else None)

    def _begin(self, name: str) -> Path:
        """``tmp-gen-N-PID/`` with a copy of the published chunk table: the generation being built."""
        current = self.base_manifest.get("generation")
        clean_debris(self.root, current)
        tmp = self.root / f"tmp-{name}-{os.getpid()}"
        tmp.mkdir()
        if current:
            shutil.copyfile(self.root / current / "chunks.sqlite", tmp / "chunks.sqlite")
        return tmp

    def _ingest(self, db: ChunkDB, store, chunked, stale) -> Feed:
        """Rows into the table and vectors into the store, document by document (rag/feed.py); then the
        stale files' rows go. The id mark is exact afterwards (the feed reserves a batch ahead)."""
        manifest = self.base_manifest
        next_id = max(int(manifest.get("next_id", 1)), read_reserved(self.root), 1)
        reserve = functools.partial(_reserve, self.root)
        reserve(next_id)
        feed = Feed(db, self.report, next_id, reserve, step=stream_batch_size(self.index.embedder))
        self._stream(store, feed.records(chunked))
        stale = stale() if callable(stale) else list(stale)
        feed.remove_sources(stale)
        self.report.removed.extend(stale)
        self.report.chunks_removed += len(feed.old_ids)
        db.commit()
        reserve(feed.next_id)  # every id below it is stored or dropped; a crash from here undoes [published, next_id)
        return feed

    def _seal(self, tmp: Path, db: ChunkDB, store, old_ids: np.ndarray, shared: bool) -> tuple[BM25Index, dict]:
        """Finish the data files: the in-generation store loses the replaced vectors and is written; BM25
        is built by streaming the new table's texts (only its postings stay in RAM: rag/bm25_postings.py)."""
        if not shared:
            store.remove(old_ids)
        description = store.persist(tmp)
        bm25 = BM25Index(self.index.config.lexical)
        if self.index.config.lexical.enabled:
            t0 = time.perf_counter()
            self.report.bm25_postings_bytes = bm25.build_from(db.iter_texts())
            bm25.save(tmp / "bm25")
            self.report.timings["bm25"] = time.perf_counter() - t0
        return bm25, description

    def _write_manifest(self, tmp: Path, db: ChunkDB, store, description: dict, dim: int, next_id: int,
                        pending_remove: np.ndarray | None) -> None:
        index, manifest = self.index, self.base_manifest
        count, digest = db.count(), ids_digest(db.ids_array())
        db.close()  # the table's bytes are final: its size and checksum go into the manifest
        new_manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": manifest.get("created", time.time()),
            "updated": time.time(),
            "embedder": {"model_id": index.embedder.model_id, "dim": dim,
                         "fingerprint": getattr(index.embedder, "fingerprint", None)},
            "config": index.config.to_dict(),
            "chunks": count,
            "next_id": next_id,
            "ids_sha256": digest,
            "store": description,
            "vector_index": getattr(store, "kind", description.get("backend")),
            "pending_remove": pending_remove.tolist() if pending_remove is not None else [],
            "files": file_records(tmp),
        }
        (tmp / MANIFEST).write_text(json.dumps(new_manifest, indent=2))
        _fsync_tree(tmp)

    def _verify_and_point(self, tmp: Path, name: str, store, bm25: BM25Index, shared_old_ids) -> None:
        """Reopen the generation (one that does not open cleanly is never published), publish it, and for a
        server-side store only now remove the replaced vectors (no published generation refers to them)."""
        index = self.index
        gen = Generation(self.root, read_manifest(self.root, tmp.name), index.config, index.embedder,
                         store=store, bm25=bm25)
        try:
            self._rename_and_point(tmp, name)
        except BaseException:
            gen.retire()
            raise
        self._published = name  # from here on the new generation is the index, whatever fails next
        gen.name = gen.manifest["generation"] = name
        index._swap(gen)
        if shared_old_ids is not None:
            try:
                store.remove(shared_old_ids)
                store.persist(self.root / name)
            except Exception as exc:  # the manifest's pending_remove lets the next write finish it
                from .ingest import Problem

                self.report.warnings.append(Problem(str(self.root), (
                    f"published {name}, but removing {len(shared_old_ids)} replaced vectors from the store failed "
                    f"({_reason(exc)}); searches ignore them and the next write removes them"), level="warning"))
        drop_old_generations(self.root, name)

    def _rename_and_point(self, tmp: Path, name: str) -> None:
        os.replace(tmp, self.root / name)
        _fsync_dir(self.root)
        # Publishing is this one atomic rename; everything before it is invisible to readers.
        current_tmp = self.root / f"CURRENT.tmp-{os.getpid()}"
        current_tmp.write_text(name + "\n")
        with open(current_tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(current_tmp, self.root / "CURRENT")
        # Published from here: an error in the fsync below must not have the new generation removed as
        # debris (that left CURRENT naming a deleted folder, and every later command refused the index).
        self._published = name
        _fsync_dir(self.root)


def _prepend(first, rest: Iterator) -> Iterator:
    yield first
    first = None  # noqa: F841 - drop it: the stream must not pin the first document for the whole write
    yield from rest


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on the device"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "disk is full" in text or "No space left" in text or "errno 28" in text.lower():
        return f"no space left on the device ({text[:120]})"
    return text[:200]
