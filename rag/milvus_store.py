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
"""

from __future__ import annotations

import os
import re
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
        self._client = None

    # -- connection --------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            from pymilvus import MilvusClient

            cfg = self.config
            try:
                # No keepalive pings on an idle connection: gRPC servers with the default policy (Milvus Lite's)
                # answer a reader that idles ~30 s between searches with GOAWAY "too many pings".
                self._client = MilvusClient(uri=cfg.uri, token=cfg.token or "", timeout=cfg.timeout,
                                            grpc_options={"grpc.keepalive_permit_without_calls": False})
            except Exception as exc:
                hint = (
                    "another process may hold this Milvus Lite file; for several processes run "
                    f"`milvus-lite server --data-dir {cfg.uri} --port 19530` and use --uri http://127.0.0.1:19530"
                    if cfg.is_local else "start the server or check --uri and MILVUS_TOKEN"
                )
                raise MilvusError(f"cannot connect to Milvus at {cfg.uri}: {_short(exc)}; {hint}") from exc
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

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict] | None = None) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise IndexFormatError(f"vectors of dimension {vectors.shape[-1]} cannot go into a {self.dim}-d index")
        if len(ids) != len(vectors) or (metadata is not None and len(metadata) != len(ids)):
            raise ValueError(f"{len(ids)} ids, {len(vectors)} vectors and {len(metadata or [])} metadata rows differ")
        step = self.config.batch_size
        for start in range(0, len(ids), step):
            rows = [
                {"id": int(ids[i]), "vector": vectors[i], **_row_meta(metadata[i] if metadata else None)}
                for i in range(start, min(start + step, len(ids)))
            ]
            self._call("upsert", self.client.upsert, data=rows)

    def remove(self, ids: np.ndarray) -> int:
        """Delete by id; returns how many of the ids were present (Milvus' own count includes absent ids)."""
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
        written to ``gen_dir``; the manifest records :meth:`describe`, which is returned."""
        self._call("flush", self.client.flush)
        return self.describe()

    def drop(self) -> None:
        """Delete the collection and every vector in it (tests, benchmarks, ``index`` deletion)."""
        if self.exists():
            self._call("drop", self.client.drop_collection)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def create_milvus_store(config: MilvusConfig, dim: int) -> MilvusStore:
    """A new, empty collection (named ``ragtune_<hex>`` unless ``config.collection`` is set)."""
    if config.collection is None:
        config = config.model_copy(update={"collection": f"ragtune_{uuid.uuid4().hex[:16]}"})
    return MilvusStore(dim, config).create()


def open_milvus_store(description: dict, dim: int, config=None) -> MilvusStore:
    """Reopen the store a manifest describes. ``config`` (a :class:`MilvusConfig` or the index's
    ``StoreConfig``) may override the URI and token (a moved server); the collection, index settings and
    dimension come from the description."""
    version = description.get("format_version", 0)
    if description.get("backend") != "milvus":
        raise IndexFormatError(f"store description names backend {description.get('backend')!r}, not 'milvus'")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise IndexFormatError(
            f"the Milvus store has format version {version}; this ragtune reads up to {FORMAT_VERSION}: upgrade ragtune"
        )
    settings = {k: v for k, v in description.items() if k in MilvusConfig.model_fields}
    if getattr(config, "uri", None):
        settings["uri"] = config.uri
    if getattr(config, "token", None):
        settings["token"] = config.token
    if int(description.get("dim", dim)) != int(dim):
        raise IndexFormatError(f"the Milvus store holds {description['dim']}-d vectors, the manifest says {dim}")
    return MilvusStore(dim, milvus_config(**settings)).check()


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
    """Reopen the collection a manifest describes. The URI is the recorded one (absolute for a Lite file,
    so the index opens from any directory); ``gen_dir`` is unused, the vectors live in Milvus."""
    return open_milvus_store(description, dim)
