"""One published index generation, opened for reading: a snapshot many threads may share.

A :class:`Generation` holds what one ``gen-NNNNNN`` folder describes -- its manifest, chunk table, vector
store and BM25 index -- and never changes after it is opened. :class:`~ragtune.rag.index.Index` swaps
in a new one when a newer generation is published and *retires* the old one: a retired generation is
closed only when the last reader that pinned it lets go. That is what makes one ``Index`` safe to share
between threads: the issue-14 battery crashed the process (rc 139, 2 runs of 3) when ``refresh()``
closed the SQLite connection other threads were still reading.

Opening verifies the generation against its manifest (:func:`verify`): every file present with its
recorded size (and SHA-256 for files up to :data:`CHECKSUM_MAX_BYTES`), the chunk, vector and BM25
counts equal, the BM25 ids equal to the chunk ids. A damaged generation is refused with a message that
says what is wrong and what to do; a missing or damaged BM25 index is rebuilt from the stored chunk
texts (cheap, and nothing is lost) and reported in :attr:`Generation.repairs`. Opened with
``allow_damaged_vectors`` (``index info``/``files``), damage confined to the vector files is recorded in
:attr:`Generation.vectors_damage` instead, and what needs a vector raises it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

import numpy as np

from ragtune.errors import ConfigError, IndexFormatError

from .chunkdb import REBUILD, ChunkDB
from .config import IndexConfig
from .ingest import sha256_file
from .lexical import BM25Index
from .store import VectorStore, open_store

log = logging.getLogger(__name__)

FORMAT = "ragtune-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Files up to this size are checksummed on every open (a 100k-chunk index: ~0.2 s); larger ones only
# have their size checked there, and are checksummed by Index.verify(full=True).
CHECKSUM_MAX_BYTES = 64 << 20


def read_manifest(root: Path, name: str) -> dict:
    """The validated manifest of generation ``name``; :class:`IndexFormatError` naming the field if not."""
    path = root / name / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing: the index generation {name} is damaged") from None
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise IndexFormatError(f"{path}: expected a JSON object, found a {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path} is not a ragtune manifest (format is {manifest.get('format')!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IndexFormatError(f"{path}: format_version must be a positive integer, found {version!r}")
    if version > FORMAT_VERSION:
        raise IndexFormatError(
            f"index {root} has format version {version}; this ragtune reads up to {FORMAT_VERSION}: upgrade ragtune"
        )
    embedder = manifest.get("embedder")
    if not isinstance(embedder, dict) or not isinstance(embedder.get("model_id"), str):
        raise IndexFormatError(f"{path}: 'embedder' must be a mapping with a 'model_id' string")
    dim = embedder.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise IndexFormatError(f"{path}: embedder.dim must be a positive integer, found {dim!r}")
    for key in ("chunks", "next_id"):
        value = manifest.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise IndexFormatError(f"{path}: {key} must be a non-negative integer, found {value!r}")
    manifest["generation"] = name
    return manifest


def manifest_config(root: Path, manifest: dict) -> IndexConfig:
    """The :class:`IndexConfig` a manifest records (a bad one is a damaged index, not a user setting)."""
    raw = manifest.get("config", {})
    if not isinstance(raw, dict):
        raise IndexFormatError(f"{root}/{manifest['generation']}/{MANIFEST}: 'config' must be a mapping")
    try:
        return IndexConfig.from_dict(raw)
    except (ConfigError, TypeError) as exc:
        raise IndexFormatError(f"{root}/{manifest['generation']}/{MANIFEST}: config: {exc}") from exc


def file_records(gen_dir: Path) -> dict[str, dict]:
    """``{relative path: {"size", "sha256"}}`` of every file in a generation except the manifest."""
    out = {}
    for p in sorted(gen_dir.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            out[p.relative_to(gen_dir).as_posix()] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def ids_digest(ids) -> str:
    """Order-independent identity of a set of chunk ids (recorded in the manifest, compared on open)."""
    arr = np.sort(np.asarray(ids, dtype=np.int64))
    return hashlib.sha256(arr.tobytes()).hexdigest()[:32]


class Generation:
    """A published generation opened for reading (see the module docstring). Thread-safe to read.

    The read methods below are the index's public read surface: the retriever uses them (never the
    private parts), and :class:`~ragtune.rag.index.Index` exposes the same names.
    """

    def __init__(self, root: Path, manifest: dict, config: IndexConfig, embedder, store=None, bm25=None, *,
                 allow_damaged_vectors: bool = False):
        self.root = root
        self.name: str = manifest["generation"]
        self.manifest = manifest
        self.config = config
        self.embedder = embedder
        self.repairs: list[str] = []
        # Why the vectors could not be opened (allow_damaged_vectors only); the store is then None, and every
        # read that needs a vector raises this instead of answering from nothing.
        self.vectors_damage: str | None = None
        self._refs = 0
        self._retired = False
        self._lock = threading.Lock()
        gen_dir = root / self.name
        verify_files(root, manifest, quick=True, vectors=False if allow_damaged_vectors else None)
        self.db = ChunkDB(gen_dir / "chunks.sqlite", readonly=True)
        try:
            self.store: VectorStore | None = (store if store is not None
                                              else self._open_store(gen_dir, allow_damaged_vectors))
            self.bm25 = bm25 if bm25 is not None else self._open_bm25(gen_dir)
            verify_counts(self, vectors=not allow_damaged_vectors)  # the tolerant open checked them already
        except BaseException:
            self.db.close()
            raise

    def _open_store(self, gen_dir: Path, tolerate: bool) -> VectorStore | None:
        """The generation's vector store. With ``tolerate``, damaged vector files (wrong size or checksum,
        unreadable, another vector count) give None and :attr:`vectors_damage` instead of refusing the whole
        generation: the chunk table, files record and BM25 do not depend on them, so `index info`/`files` can
        still show what the index holds and point at `index repair`."""
        dim = self.manifest["embedder"]["dim"]
        description = self.manifest.get("store") or {"backend": "faiss", "format_version": 1}
        if not tolerate:
            return open_store(description, gen_dir, dim, self.config.store)
        try:
            verify_files(self.root, self.manifest, quick=True, vectors=True)
            self.store = open_store(description, gen_dir, dim, self.config.store)
            verify_vectors(self)
            return self.store
        except IndexFormatError as exc:  # reported by info() and the CLI, not logged: it would be said twice
            self.vectors_damage = str(exc)
            return None

    def _check_vectors(self, what: str) -> None:
        if self.vectors_damage is not None:
            raise IndexFormatError(f"{what} needs the index's vectors, which are damaged: {self.vectors_damage}")

    def _open_bm25(self, gen_dir: Path) -> BM25Index:
        if not self.config.lexical.enabled:
            return BM25Index(self.config.lexical)
        try:
            if not (gen_dir / "bm25" / "ids.npy").is_file():
                raise IndexFormatError(f"{gen_dir / 'bm25'} is missing")
            bm25 = BM25Index.load(gen_dir / "bm25", self.config.lexical)
            if len(bm25) != self.db.count() or ids_digest(bm25.ids) != ids_digest(self.db.ids_array()):
                raise IndexFormatError(f"{gen_dir / 'bm25'} does not hold the same chunks as chunks.sqlite")
            return bm25
        except IndexFormatError as exc:
            # Repair, not refuse: BM25 is derived from the chunk texts alone (seconds per 100k chunks).
            message = f"{exc}; rebuilt the BM25 index from the {self.db.count()} stored chunk texts"
            log.warning("%s", message)
            self.repairs.append(message)
            bm25 = BM25Index(self.config.lexical)
            bm25.build_from(self.db.iter_texts())
            return bm25

    # -- sharing ----------------------------------------------------------------------------------
    def pin(self) -> Generation:
        with self._lock:
            self._refs += 1
        return self

    def unpin(self) -> None:
        with self._lock:
            self._refs -= 1
            close = self._retired and self._refs == 0
        if close:
            self.db.close()

    def retire(self) -> None:
        """Close as soon as no reader holds this generation (now, if none does)."""
        with self._lock:
            self._retired = True
            close = self._refs == 0
        if close:
            self.db.close()

    @property
    def shared_store(self) -> bool:
        """True when the vectors live in a server-side store shared across generations (no ``fork``)."""
        return not hasattr(self.store, "fork")

    # -- reading ----------------------------------------------------------------------------------
    def __bool__(self) -> bool:  # `if gen:` must not run a query (and must not touch a retired table)
        return True

    def __len__(self) -> int:
        return self.db.count()

    def files(self) -> dict[str, dict]:
        return self.db.files()

    def metadata_keys(self) -> set[str]:
        return self.db.metadata_keys()

    def file(self, source: str) -> dict | None:
        """One source's record (hash, size, type, chunks), or None when it is not indexed."""
        return self.db.file(source)

    def get_chunks(self, ids) -> dict:
        return self.db.get(ids)

    def get_sources(self, ids) -> dict:
        return self.db.sources(ids)

    def iter_chunks(self):
        return self.db.iter_chunks()

    def filter_ids(self, filters: dict) -> list[int]:
        return self.db.filter_ids(filters)

    def vector_search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
                      filters: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the ``k`` nearest chunks of *this* generation, -1 padded.

        A server-side store also holds vectors of newer (or crashed, unpublished) generations, so it is
        asked for more and the ids this generation's chunk table does not know are dropped.
        """
        self._check_vectors("a dense (or hybrid) search")
        queries = np.atleast_2d(queries)
        if not self.shared_store:
            return self.store.search(queries, k, allowed)
        extra = max(k, 16)
        scores, ids = self.store.search(queries, k + extra, allowed, filters if self.store.supports_filters else None)
        known = set(self.db.existing(np.unique(ids[ids >= 0]).tolist()))
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), -1, np.int64)
        for row in range(len(queries)):
            keep = [(s, i) for s, i in zip(scores[row], ids[row]) if i >= 0 and int(i) in known][:k]
            for col, (s, i) in enumerate(keep):
                out_s[row, col], out_i[row, col] = s, i
        return out_s, out_i

    def reconstruct(self, ids: list[int]) -> np.ndarray:
        self._check_vectors("reading stored vectors")
        return self.store.reconstruct(ids)


def _fix(root: Path) -> str:
    return f"rebuild it with `ragtune index repair --index {root}` (re-embeds the stored chunk texts)"


def _table_fix(root: Path) -> str:
    """What to do when the chunk table itself changed: not a plain re-embed, which would re-sign whatever the
    damage left; repair checks every chunk against its hash and drops the files it cannot trust."""
    return (f"run `ragtune index repair --index {root}`: it keeps the chunks whose text still matches its hash, "
            "drops the files whose chunks do not and names them to index again with `ragtune index add` "
            f"(if the table cannot be read at all, {REBUILD})")


def verify_files(root: Path, manifest: dict, quick: bool = True, *, vectors: bool | None = None) -> None:
    """Every file the manifest records is there with its size (and checksum; see :func:`verify`).

    ``vectors``: None checks every file, True only the vector store's, False all but the vector store's."""
    gen_dir, fix = root / manifest["generation"], _fix(root)
    files = manifest.get("files") or {}
    if not isinstance(files, dict):
        raise IndexFormatError(f"{gen_dir}/{MANIFEST}: 'files' must be a mapping")
    for rel, rec in files.items():
        path = gen_dir / rel
        if not isinstance(rec, dict):
            raise IndexFormatError(f"{gen_dir}/{MANIFEST}: files[{rel!r}] must be a mapping")
        if rel.startswith("bm25/"):
            continue  # derived data: checked (and rebuilt if needed) when BM25 is opened
        table = rel == "chunks.sqlite"  # the source of truth repair rebuilds the rest from
        if vectors is not None and vectors == table:
            continue  # every file but the table and BM25 is the vector store's (vectors.faiss)
        if not path.is_file():
            raise IndexFormatError(f"{path} is missing: the index generation is damaged; "
                                   f"{REBUILD if table else fix}")
        size = path.stat().st_size
        if size != rec.get("size"):
            raise IndexFormatError(f"{path} has {size} bytes, the manifest records {rec.get('size')}: damaged; "
                                   f"{_table_fix(root) if table else fix}")
        if (not quick or size <= CHECKSUM_MAX_BYTES) and rec.get("sha256") and sha256_file(path) != rec["sha256"]:
            raise IndexFormatError(f"{path} does not match its checksum in the manifest: damaged; "
                                   f"{_table_fix(root) if table else fix}")


def verify(gen: Generation, quick: bool = True) -> None:
    """Check a generation against its manifest; :class:`IndexFormatError` saying what is wrong and what to do.

    ``quick`` checksums only files up to :data:`CHECKSUM_MAX_BYTES` (sizes for the rest); a full check also
    checks every chunk's text against its stored hash (:meth:`ChunkDB.audit`), which the checksums cannot
    vouch for: a table damaged and then re-signed matches them (repair did that before it checked the hashes).
    Manifests written before these records existed (no ``files`` / ``ids_sha256``) get the count checks.
    """
    verify_files(gen.root, gen.manifest, quick)
    verify_counts(gen)
    verify_shared_vectors(gen)
    if not quick:
        damage = gen.db.audit()
        if damage:
            found = "; ".join(f"{source}: {why}" for source, why, _ in damage.describe()[:5])
            more = f" (and {len(damage.reasons) - 5} more files)" if len(damage.reasons) > 5 else ""
            raise IndexFormatError(f"{gen.root / gen.name}/chunks.sqlite holds chunks that no longer match what was "
                                   f"stored with them: {found}{more}: damaged; {_table_fix(gen.root)}")


def verify_counts(gen: Generation, vectors: bool = True) -> None:
    """Chunk table, vectors and manifest agree on how many chunks there are and which ids
    (``vectors=False``: leave the vectors out)."""
    gen_dir, fix = gen.root / gen.name, _fix(gen.root)
    count = gen.db.count()
    if "chunks" in gen.manifest and count != gen.manifest["chunks"]:
        raise IndexFormatError(f"{gen_dir}/chunks.sqlite holds {count} chunks, the manifest records "
                               f"{gen.manifest['chunks']}: damaged; {fix}")
    if vectors:
        verify_vectors(gen)
    if gen.manifest.get("ids_sha256") and ids_digest(gen.db.ids_array()) != gen.manifest["ids_sha256"]:
        raise IndexFormatError(f"{gen_dir}/chunks.sqlite holds other chunk ids than the manifest records: damaged; {fix}")


def verify_shared_vectors(gen: Generation) -> None:
    """A server-side store (Milvus) holds a vector for each chunk of this generation. Its size proves nothing
    (the collection is shared by every generation and may hold a crashed writer's ids), so :func:`verify_counts`
    leaves it out; here the store is asked about this generation's ids (a query per 10,000: `index verify`
    only, not every open)."""
    count_present = getattr(gen.store, "count_present", None)
    if not gen.shared_store or count_present is None:
        return
    ids = gen.db.ids_array()
    present = count_present(ids)
    if present != len(ids):
        where = f"Milvus collection {gen.store.collection!r} at {gen.store.config.uri}"
        raise IndexFormatError(f"{gen.root / gen.name}: {where} holds vectors for {present} of its {len(ids)} "
                               f"chunks: damaged; {_fix(gen.root)}")


def verify_vectors(gen: Generation) -> None:
    """The vector store opened and holds one vector per chunk (a server-side store is shared: not counted)."""
    if gen.vectors_damage is not None:
        raise IndexFormatError(gen.vectors_damage)
    count = gen.db.count()
    if not gen.shared_store and len(gen.store) != count:
        raise IndexFormatError(f"{gen.root / gen.name}: {len(gen.store)} vectors for {count} chunks: damaged; "
                               f"{_fix(gen.root)}")
