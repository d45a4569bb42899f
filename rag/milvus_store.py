"""The Milvus vector store: a Milvus server or cluster by URI, or Milvus Lite through a local ``.db`` path.

:class:`MilvusStore` implements the :class:`~ragtune.rag.store.VectorStore` protocol with pymilvus'
``MilvusClient``; ``Index`` keeps its chunk table and BM25 side, only the vectors move to Milvus.

    >>> store = create_milvus_store(MilvusConfig(uri="./vectors.db"), dim=384)   # doctest: +SKIP
    >>> store.add(ids, vectors, [{"source": "a.pdf", "file_type": "pdf", "page": 3, "section": ""}])  # doctest: +SKIP
    >>> scores, ids = store.search(query_vectors, k=10, filters={"file_type": "pdf"})                  # doctest: +SKIP

One collection per index, named in the store description the manifest records (a fresh
``ragtune_<hex>`` name per new index, so two indexes on one server never share vectors). Fields:
``id`` INT64 primary key (= the chunk DB's id), ``vector`` FLOAT_VECTOR, and ``source``, ``file_type``,
``page``, ``section`` so filters run inside Milvus (pushed down as filter expressions) instead of
shipping id lists across the network.

Choices, and why:

- Metric ``IP`` on L2-normalised vectors: equal to cosine, and the scores are the same numbers FAISS
  returns, so hybrid fusion and thresholds behave identically on both backends.
- Index type: ``FLAT`` (exact) for a local Milvus Lite file (the development/test case, and the overlap
  check against FAISS), ``HNSW`` (M=16, efConstruction=200, ef=max(64, k)) for a server: the usual
  recall/latency point, and Milvus' HNSW supports deletes. ``IVF_FLAT``/``AUTOINDEX`` (Zilliz Cloud)
  are selectable.
- Consistency ``Strong`` by default: a reader opens a generation after its writer moved ``CURRENT``, and
  must see every vector that writer added before the move. ``Bounded`` (Milvus' default) can hide the
  last seconds of writes; choose it on a busy cluster when that staleness is acceptable.
- Writes are ``upsert``: a writer that crashed before publishing may have left vectors under ids the
  next writer reuses (the manifest's ``next_id`` did not move); upsert overwrites them instead of
  leaving two rows with one primary key.
- ``persist`` = ``flush``: Milvus seals the segments, so the data survives a server restart.
- One writer folder per collection: the collection records the index folder that writes it (a collection
  property, claimed on the first write). A copied index folder (``cp -r idx idx2``) still names the same
  collection; writing through it removed and replaced the original's vectors. A store opened from a folder
  that is not the owner, while the owner folder still uses the collection, searches but refuses writes
  (see :meth:`MilvusStore._check_writable`); a folder that was *moved* takes the collection over, since its
  old path no longer holds an index naming it. ``ragtune index repair`` gives a copy its own collection.
- A moved collection: ``RAGTUNE_MILVUS_URI`` (``index add --uri``) is where an existing index looks for its
  collection first, before the URI the manifest recorded (see :func:`open_milvus_store`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ragtune.errors import ConfigError, IndexFormatError, RagtuneError

from .chunkdb import _source_match
from .milvus_expr import PUSHDOWN_KEYS, filter_expression  # noqa: F401  (PUSHDOWN_KEYS re-exported)

FORMAT_VERSION = 1
MAX_TOPK = 16384  # Milvus' limit on k per search
_SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
URI_ENV = "RAGTUNE_MILVUS_URI"
OWNER_PROPERTY = "ragtune.index"  # collection property: the index folder that writes the collection
_GENERATION = re.compile(r"^(tmp-)?gen-\d+")  # the index's generation folders (rag/index.py), built or published
_LITE_LOG_LOCK = threading.Lock()


class MilvusError(RagtuneError):
    """Milvus could not be reached, or refused an operation."""


class MilvusConfig(BaseModel):
    """Where the vectors live and how Milvus indexes them (recorded in the manifest, minus the token)."""

    model_config = ConfigDict(extra="forbid")

    uri: str  # http://host:19530 (server/cluster) or a local path ending in .db (Milvus Lite)
    collection: str | None = None  # None = a fresh ragtune_<hex> name when the store is created
    token: str | None = Field(default=None, repr=False)  # "user:password" or an API key; env MILVUS_TOKEN
    index_type: Literal["auto", "FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX"] = "auto"
    hnsw_m: int = Field(16, ge=4, le=64)
    hnsw_ef_construction: int = Field(200, ge=8)
    ef: int = Field(64, ge=1)  # HNSW search breadth; raised to k when k is larger
    nlist: int = Field(1024, ge=1)
    nprobe: int = Field(32, ge=1)
    consistency_level: Literal["Strong", "Bounded", "Session", "Eventually"] = "Strong"
    shards: int = Field(1, ge=1, le=64)  # server only: parallel write channels of the collection
    batch_size: int = Field(1000, ge=1, le=50_000)  # rows per insert RPC (1000 x 384 floats = 1.5 MB)
    timeout: float = Field(30.0, gt=0)

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, uri: str) -> str:
        uri = uri.strip()
        if not uri:
            raise ValueError("empty; pass http://host:19530 or a local file such as ./vectors.db")
        if not uri.startswith(_SERVER_SCHEMES) and not uri.endswith(".db"):
            raise ValueError(
                f"{uri!r} is neither a server URI (http://host:19530) nor a Milvus Lite file ending in .db"
            )
        return uri

    @field_validator("collection")
    @classmethod
    def _check_collection(cls, name: str | None) -> str | None:
        if name is not None and not _NAME.match(name):
            raise ValueError(f"{name!r}: use letters, digits and underscores, starting with a letter")
        return name

    @property
    def is_local(self) -> bool:
        return not self.uri.startswith(_SERVER_SCHEMES)

    @property
    def resolved_index_type(self) -> str:
        if self.index_type != "auto":
            return self.index_type
        return "FLAT" if self.is_local else "HNSW"


def milvus_config(**settings) -> MilvusConfig:
    """A validated :class:`MilvusConfig`; a bad setting raises one :class:`ConfigError` naming the field."""
    settings.setdefault("token", os.environ.get("MILVUS_TOKEN") or None)
    try:
        config = MilvusConfig(**settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "milvus"
        raise ConfigError(f"store.{field}: {err['msg'].removeprefix('Value error, ')}") from None
    if config.is_local:  # a relative Lite path would point elsewhere when the index is opened from another cwd
        config.uri = str(Path(config.uri).expanduser().resolve())
    return config


# -- the store -----------------------------------------------------------------------------------
def _clip(value, max_bytes: int) -> str:
    # VARCHAR max_length counts UTF-8 bytes; cut on a character boundary.
    return str(value or "").encode()[:max_bytes].decode(errors="ignore")


def _row_meta(meta: dict | None) -> dict:
    meta = meta or {}
    page = meta.get("page")
    return {
        "source": _clip(meta.get("source"), 4096),
        "file_type": _clip(meta.get("file_type"), 32),
        "page": int(page) if isinstance(page, (int, np.integer)) else -1,  # -1 = no page (INT64 has no null)
        "section": _clip(meta.get("section"), 1024),
    }


class MilvusStore:
    """See the module docstring. Create with :func:`create_milvus_store`, reopen with :func:`open_milvus_store`;
    the constructor only stores settings (the connection opens on first use)."""

    supports_filters = True

    def __init__(self, dim: int, config: MilvusConfig):
        if config.collection is None:
            raise ConfigError("store.collection: a MilvusStore needs a collection name")
        self.dim = int(dim)
        self.config = config
        self.collection = config.collection
        self.root: Path | None = None  # the index folder that opened this store (bind()); None: not known
        self._writable = False  # True once this folder is known to own the collection
        self._client = None

    # -- connection --------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            from pymilvus import MilvusClient

            cfg = self.config
            with _lite_failures(cfg.is_local) as causes:
                try:
                    # No keepalive pings on an idle connection: gRPC servers with the default policy (Milvus Lite's)
                    # answer a reader that idles ~30 s between searches with GOAWAY "too many pings".
                    self._client = MilvusClient(uri=cfg.uri, token=cfg.token or "", timeout=cfg.timeout,
                                                grpc_options={"grpc.keepalive_permit_without_calls": False})
                except Exception as exc:
                    raise MilvusError(_connect_failure(cfg, exc, causes)) from exc
        return self._client

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(self.collection, *args, **kwargs)
        except RagtuneError:
            raise
        except Exception as exc:
            raise MilvusError(f"Milvus {what} on collection {self.collection!r} at {self.config.uri} failed: {_short(exc)}") from exc

    def exists(self) -> bool:
        return bool(self._call("lookup", self.client.has_collection))

    def create(self) -> MilvusStore:
        """Create the collection with its schema and vector index (a no-op when it exists with this dim)."""
        from pymilvus import DataType

        if self.exists():
            owner = self._owner()
            if owner is not None and _uses_collection(owner, self.collection):
                # A new index given an existing collection name (store.milvus.collection) would write into it
                # before its first publish could check whose it is.
                raise MilvusError(
                    f"Milvus collection {self.collection!r} at {self.config.uri} already holds the vectors of the "
                    f"index at {owner}; choose another collection name, or leave it unset for a new one"
                )
            return self.check()
        client = self.client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("source", DataType.VARCHAR, max_length=4096)
        schema.add_field("file_type", DataType.VARCHAR, max_length=32)
        schema.add_field("page", DataType.INT64)
        schema.add_field("section", DataType.VARCHAR, max_length=1024)
        params = client.prepare_index_params()
        params.add_index("vector", index_type=self.index_type, metric_type="IP", params=self._build_params())
        extra = {} if self.config.is_local else {"num_shards": self.config.shards}
        self._call(
            "create", client.create_collection, schema=schema, index_params=params,
            consistency_level=self.config.consistency_level, **extra,
        )
        return self

    def check(self) -> MilvusStore:
        """Fail clearly when the collection is missing or holds vectors of another dimension."""
        if not self.exists():
            raise IndexFormatError(
                f"Milvus collection {self.collection!r} is missing at {self.config.uri}: it was dropped or "
                "the URI points at another server; `ragtune index repair` re-embeds the stored chunk texts into "
                "a new collection"
            )
        info = self._call("describe", self.client.describe_collection)
        dims = [int(f.get("params", {}).get("dim", 0)) for f in info["fields"] if f["name"] == "vector"]
        if dims != [self.dim]:
            raise IndexFormatError(
                f"Milvus collection {self.collection!r} holds vectors of dimension {dims[0] if dims else '?'}, "
                f"the index expects {self.dim}"
            )
        # A collection reopened by another process, or after the server restarted, is "released": search,
        # query and delete fail until it is loaded. Loading a loaded collection is a no-op.
        self._call("load", self.client.load_collection)
        return self

    # -- ownership: which index folder may write the collection ------------------------------
    def bind(self, root: Path) -> MilvusStore:
        """Tie this store to the index folder ``root`` it was opened or persisted for (its writes check it)."""
        root = Path(root).resolve()
        if root != self.root:
            self.root, self._writable = root, False
        return self

    def _owner(self) -> Path | None:
        """The index folder the collection records as its writer (None: not claimed, e.g. an older ragtune)."""
        info = self._call("describe", self.client.describe_collection)
        owner = (info.get("properties") or {}).get(OWNER_PROPERTY)
        return Path(owner) if owner else None

    def _check_writable(self) -> None:
        """Refuse a write from a folder that does not own the collection while its owner still uses it,
        and claim an unowned (or abandoned: the owner folder moved or was deleted) collection for this one.

        The owner is a folder path, not an id stored in the folder: ``cp -r`` copies any id along with the
        manifest, while a copy always has another path. A folder moved away leaves no index naming the
        collection at its old path, so the moved one may take it over; a copy leaves the original in place.
        (A copy made on another machine at the very same path is not told apart.)"""
        if self._writable or self.root is None:
            return  # a store not opened from an index folder: a new collection, or a tool's direct use
        owner = self._owner()
        if owner != self.root:
            if owner is not None and _uses_collection(owner, self.collection):
                raise MilvusError(
                    f"cannot write to the index at {self.root}: its vectors are in Milvus collection "
                    f"{self.collection!r} at {self.config.uri}, which belongs to the index at {owner} ({self.root} "
                    f"is probably a copy of it), and writing here would change the vectors {owner} searches. This "
                    f"copy can still be searched. To write to it, give it its own collection with `ragtune index "
                    f"repair --index {self.root}` (re-embeds its stored chunk texts); or, if {owner} is no longer "
                    "needed, delete it and write here again"
                )
            self._call("claim", self.client.alter_collection_properties, properties={OWNER_PROPERTY: str(self.root)})
        self._writable = True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- settings ----------------------------------------------------------------------------
    @property
    def index_type(self) -> str:
        return self.config.resolved_index_type

    @property
    def kind(self) -> str:
        return f"milvus-{self.index_type.lower()}"

    @property
    def device(self) -> str:
        return "milvus-lite" if self.config.is_local else "milvus-server"

    def _build_params(self) -> dict:
        if self.index_type == "HNSW":
            return {"M": self.config.hnsw_m, "efConstruction": self.config.hnsw_ef_construction}
        if self.index_type == "IVF_FLAT":
            return {"nlist": self.config.nlist}
        return {}

    def _search_params(self, k: int) -> dict:
        if self.index_type == "HNSW":
            return {"metric_type": "IP", "params": {"ef": max(self.config.ef, k)}}
        if self.index_type == "IVF_FLAT":
            return {"metric_type": "IP", "params": {"nprobe": min(self.config.nprobe, self.config.nlist)}}
        return {"metric_type": "IP"}

    def describe(self) -> dict:
        """What the manifest records to reopen this store (never the token)."""
        keep = ("uri", "collection", "index_type", "hnsw_m", "hnsw_ef_construction", "ef", "nlist", "nprobe",
                "consistency_level", "shards")
        settings = self.config.model_dump(include=set(keep))
        settings["index_type"] = self.index_type
        return {"backend": "milvus", "format_version": FORMAT_VERSION, "dim": self.dim, "metric": "IP", **settings}

    # -- the protocol ------------------------------------------------------------------------
    def __len__(self) -> int:
        rows = self._call("count", self.client.query, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def count_present(self, ids) -> int:
        """How many of ``ids`` have a vector in the collection (:meth:`Index.verify`: the collection is shared
        by every generation and may hold a crashed writer's ids, so its size alone proves nothing).
        :class:`IndexFormatError` when the collection is gone."""
        self.check()
        ids = [int(i) for i in np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))]
        present = 0
        for start in range(0, len(ids), 10_000):
            rows = self._call("count", self.client.query, filter=f"id in {ids[start : start + 10_000]}",
                              output_fields=["count(*)"])
            present += int(rows[0]["count(*)"]) if rows else 0
        return present

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict] | None = None) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise IndexFormatError(f"vectors of dimension {vectors.shape[-1]} cannot go into a {self.dim}-d index")
        if len(ids) != len(vectors) or (metadata is not None and len(metadata) != len(ids)):
            raise ValueError(f"{len(ids)} ids, {len(vectors)} vectors and {len(metadata or [])} metadata rows differ")
        self._check_writable()
        step = self.config.batch_size
        for start in range(0, len(ids), step):
            rows = [
                {"id": int(ids[i]), "vector": vectors[i], **_row_meta(metadata[i] if metadata else None)}
                for i in range(start, min(start + step, len(ids)))
            ]
            self._call("upsert", self.client.upsert, data=rows)

    def remove(self, ids: np.ndarray) -> int:
        """Delete by id; returns how many of the ids were present (Milvus' own count includes absent ids)."""
        self._check_writable()
        arr = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        if len(arr) > 10_000 and arr[-1] - arr[0] + 1 == len(arr):
            # A contiguous range (what a crashed writer reserved): one range expression, not id lists.
            expr = f"id >= {int(arr[0])} and id <= {int(arr[-1])}"
            rows = self._call("count", self.client.query, filter=expr, output_fields=["count(*)"])
            present = int(rows[0]["count(*)"]) if rows else 0
            if present:
                self._call("delete", self.client.delete, filter=expr)
            return present
        ids = [int(i) for i in arr]
        removed = 0
        for start in range(0, len(ids), 10_000):
            batch = ids[start : start + 10_000]
            present = self._call("query", self.client.query, ids=batch, output_fields=["id"])
            if present:
                self._call("delete", self.client.delete, ids=[int(r["id"]) for r in present])
                removed += len(present)
        return removed

    def reconstruct(self, ids: list[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        if not ids:
            return np.zeros((0, self.dim), np.float32)
        rows = self._call("query", self.client.query, ids=ids, output_fields=["vector"])
        found = {int(r["id"]): np.asarray(r["vector"], dtype=np.float32) for r in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"ids not in Milvus collection {self.collection!r}: {missing[:10]}")
        return np.stack([found[i] for i in ids])

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filters: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (len(queries), k), best first; id -1 / score -inf pad missing results.
        Filters run inside Milvus before the top-k cut, as with FAISS' id selector."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), MAX_TOPK))
        expr = filter_expression(filters, allowed)
        globs = (filters or {}).get("source")
        globs = None if globs is None else (list(globs) if isinstance(globs, (list, tuple, set)) else [globs])
        scores = np.full((len(queries), k), -np.inf, np.float32)
        out = np.full((len(queries), k), -1, np.int64)
        if globs is None:  # one request for all queries
            result = self._call("search", self.client.search, data=list(queries), limit=k, filter=expr,
                                output_fields=[], search_params=self._search_params(k))
            per_query = [[(int(h["id"]), float(h["distance"])) for h in hits] for hits in result]
        else:
            per_query = [self._search_one(query, k, expr, globs) for query in queries]
        for row, pairs in enumerate(per_query):
            for col, (i, s) in enumerate(pairs[:k]):
                out[row, col], scores[row, col] = i, s
        return scores, out

    def _search_one(self, query: np.ndarray, k: int, expr: str, globs: list[str] | None) -> list[tuple[int, float]]:
        # With a source glob, LIKE may over-match (see glob_to_like): fetch more and check exactly, widening
        # until k rows pass or Milvus has no more.
        limit = k if globs is None else min(MAX_TOPK, 2 * k)
        while True:
            result = self._call(
                "search", self.client.search, data=[query], limit=limit, filter=expr,
                output_fields=["source"] if globs else [], search_params=self._search_params(limit),
            )
            hits = list(result[0]) if result else []
            if globs is not None:
                kept = [h for h in hits if any(_source_match(h["entity"]["source"], p) for p in globs)]
            else:
                kept = hits
            if len(kept) >= k or len(hits) < limit or limit >= MAX_TOPK:
                return [(int(h["id"]), float(h["distance"])) for h in kept]
            limit = min(MAX_TOPK, limit * 4)

    def persist(self, gen_dir: Path | None = None) -> dict:
        """Flush: Milvus seals the growing segments so the vectors survive a server restart. Nothing is
        written to ``gen_dir``; the manifest records :meth:`describe`, which is returned. A generation folder
        as ``gen_dir`` binds the store to its index folder, which claims a new collection for it."""
        root = _index_root(gen_dir)
        if root is not None:
            self.bind(root)
        self._check_writable()
        self._call("flush", self.client.flush)
        return self.describe()

    def drop(self) -> None:
        """Delete the collection and every vector in it (tests, benchmarks, ``index`` deletion).

        Refused while the index folder that owns the collection still names it: the index drops a collection
        when none of *its* generations names it any more (after a repair), and a copied folder's old
        generations name the original's collection."""
        if not self.exists():
            return
        owner = self._owner()
        if owner is not None and owner != self.root and _uses_collection(owner, self.collection):
            raise MilvusError(f"not dropping Milvus collection {self.collection!r} at {self.config.uri}: the index "
                              f"at {owner} still uses it")
        self._call("drop", self.client.drop_collection)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


@contextlib.contextmanager
def _lite_failures(local: bool):
    """The exceptions Milvus Lite logs while pymilvus starts it for a local path. pymilvus then raises only
    "Open local milvus failed", while the real cause (a lock held, a file in the way) went to stderr as a
    traceback; collected here, it goes into the error message instead."""
    causes: list[BaseException] = []
    if not local:
        yield causes
        return
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: causes.append(record.exc_info[1]) if record.exc_info and record.exc_info[1] else None
    logger = logging.getLogger("milvus_lite")
    with _LITE_LOG_LOCK:  # propagate is the logger's, not the thread's
        propagate, logger.propagate = logger.propagate, False
        logger.addHandler(handler)
        try:
            yield causes
        finally:
            logger.removeHandler(handler)
            logger.propagate = propagate


def _connect_failure(cfg: MilvusConfig, exc: Exception, causes: list[BaseException]) -> str:
    """What failed and what to do. Every local failure used to be put down to "another process may hold this
    file", a missing folder or a file in the way included; that is said now only when its lock is held."""
    what = f"cannot connect to Milvus at {cfg.uri}: {_short(causes[-1] if causes else exc)}"
    if not cfg.is_local:
        return f"{what}; start the server, or check the URI (--uri / {URI_ENV}) and MILVUS_TOKEN"
    path = Path(cfg.uri)
    if _lock_held(path):
        return (f"{what}; another process has this Milvus Lite database open (a Lite database serves one process): "
                f"for several, run `milvus-lite server --data-dir {path} --port 19530` and use --uri "
                "http://127.0.0.1:19530")
    if not path.parent.is_dir():
        return f"{what}; the folder {path.parent} does not exist: create it, or check the URI (--uri / {URI_ENV})"
    if path.exists() and not path.is_dir():
        return f"{what}; {path} is a file, not a Milvus Lite database (a folder): check the URI (--uri / {URI_ENV})"
    return f"{what}; check that {path} is a Milvus Lite database folder this user can read and write"


def _lock_held(path: Path) -> bool:
    """Whether another process holds Milvus Lite's lock on the database folder ``path`` (its ``LOCK`` file)."""
    try:
        import fcntl

        fd = os.open(path / "LOCK", os.O_RDWR)
    except (ImportError, OSError):
        return False  # no lock file (no database there), or no flock (Windows): not known to be held
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _index_root(gen_dir) -> Path | None:
    """The index folder of a generation folder (``DIR/gen-N``, or ``DIR/tmp-gen-N-PID`` being built); None for
    any other ``gen_dir`` (a store used outside an index)."""
    if gen_dir is None or not _GENERATION.match(Path(gen_dir).name):
        return None
    return Path(gen_dir).resolve().parent


def _uses_collection(root: Path, collection: str) -> bool:
    """Whether a kept generation of the index folder ``root`` names ``collection`` (layout: rag/index.py)."""
    try:
        manifests = list(Path(root).glob("gen-*/manifest.json"))
    except OSError:
        return False
    for manifest in manifests:
        try:
            store = json.loads(manifest.read_text()).get("store")
        except (OSError, ValueError, AttributeError):
            continue  # a damaged generation names nothing
        if isinstance(store, dict) and store.get("collection") == collection:
            return True
    return False


def create_milvus_store(config: MilvusConfig, dim: int) -> MilvusStore:
    """A new, empty collection (named ``ragtune_<hex>`` unless ``config.collection`` is set)."""
    if config.collection is None:
        config = config.model_copy(update={"collection": f"ragtune_{uuid.uuid4().hex[:16]}"})
    return MilvusStore(dim, config).create()


def open_milvus_store(description: dict, dim: int, config=None, *, uri: str | None = None) -> MilvusStore:
    """Reopen the store a manifest describes; the collection, index settings and dimension come from the
    description. ``config`` (a :class:`MilvusConfig`, the index's ``StoreConfig``) may give the token.

    ``uri`` (else ``config.uri``) is where the collection is looked for first: a moved Milvus Lite database or
    server. The recorded URI is tried when the collection is not there, so one default URI for new indexes
    (``RAGTUNE_MILVUS_URI``) does not break the indexes that live elsewhere; found at neither, the error names
    both. A Lite database that is not there is never created (Milvus Lite would make an empty one)."""
    version = description.get("format_version", 0)
    if description.get("backend") != "milvus":
        raise IndexFormatError(f"store description names backend {description.get('backend')!r}, not 'milvus'")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise IndexFormatError(
            f"the Milvus store has format version {version}; this ragtune reads up to {FORMAT_VERSION}: upgrade ragtune"
        )
    settings = {k: v for k, v in description.items() if k in MilvusConfig.model_fields}
    if getattr(config, "token", None):
        settings["token"] = config.token
    if int(description.get("dim", dim)) != int(dim):
        raise IndexFormatError(f"the Milvus store holds {description['dim']}-d vectors, the manifest says {dim}")
    recorded = milvus_config(**settings)
    given = uri or getattr(config, "uri", None)
    if not given:
        return _reopen(dim, recorded)
    try:
        moved = milvus_config(**{**settings, "uri": given})
    except ConfigError as exc:
        raise ConfigError(f"the Milvus URI {given!r} (--uri / {URI_ENV}): {exc}") from None
    if moved.uri == recorded.uri:
        return _reopen(dim, recorded)
    try:
        return _reopen(dim, moved)
    except RagtuneError as exc:
        not_there = exc
    try:
        return _reopen(dim, recorded)
    except RagtuneError as exc:
        kind = IndexFormatError if isinstance(exc, IndexFormatError) else MilvusError
        raise kind(
            f"Milvus collection {recorded.collection!r} was found neither at {moved.uri} (--uri / {URI_ENV}: "
            f"{_short(not_there)}) nor at {recorded.uri}, where the index recorded it ({_short(exc)}); point "
            f"--uri / {URI_ENV} at the Milvus server or Milvus Lite database that holds it"
        ) from exc


def _reopen(dim: int, config: MilvusConfig) -> MilvusStore:
    if config.is_local and not Path(config.uri).exists():
        # Checked before connecting: Milvus Lite would create an empty database there, and the collection
        # "missing" from it sent users to `index repair`, which re-embedded into that stray database.
        raise IndexFormatError(
            f"the Milvus Lite database {config.uri} that holds collection {config.collection!r} is not there; if "
            f"it was moved, set {URI_ENV} (or pass --uri to `ragtune index add`) to its new path"
        )
    return MilvusStore(dim, config).check()


# -- the backend entry points rag/store.py dispatches to (BACKENDS["milvus"]) ------------------------
_INDEX_TYPES = {"auto": "auto", "flat": "FLAT", "ivf": "IVF_FLAT", "hnsw": "HNSW"}


def create(config, dim: int) -> MilvusStore:
    """A new collection for an index whose ``StoreConfig`` says ``backend="milvus"``.

    ``store.index_type`` maps to Milvus' (flat -> FLAT, ivf -> IVF_FLAT, auto -> FLAT on a Lite file and
    HNSW on a server); ``store.nprobe`` carries over to IVF; an optional ``store.milvus`` mapping sets any
    other :class:`MilvusConfig` field. The token comes from ``MILVUS_TOKEN``."""
    if not getattr(config, "uri", None):
        raise ConfigError(
            "store.uri: the milvus backend needs a URI: --uri http://host:19530 for a server, or a local "
            "Milvus Lite file such as --uri ./vectors.db"
        )
    settings = {"uri": config.uri, "index_type": _INDEX_TYPES.get(getattr(config, "index_type", "auto"), "auto")}
    if getattr(config, "nprobe", None):
        settings["nprobe"] = config.nprobe
    # Cluster settings (consistency_level, shards, hnsw_m, ef, ...) when StoreConfig carries a `milvus` mapping.
    settings.update(getattr(config, "milvus", None) or {})
    return create_milvus_store(milvus_config(**settings), dim)


def open(description: dict, gen_dir: Path, dim: int, config=None) -> MilvusStore:  # noqa: A001
    """Reopen the collection a manifest describes: first at ``RAGTUNE_MILVUS_URI`` when it is set (a moved
    database or server; see :func:`open_milvus_store`), else at the recorded URI (absolute for a Lite file,
    so the index opens from any directory). ``config`` (the index's ``StoreConfig``) is not asked for the
    URI: it holds the one typed at creation, maybe relative. A generation folder as ``gen_dir`` binds the
    store to its index folder, whose writes must own the collection; the vectors live in Milvus."""
    store = open_milvus_store(description, dim, uri=os.environ.get(URI_ENV) or None)
    root = _index_root(gen_dir)
    return store.bind(root) if root is not None else store
