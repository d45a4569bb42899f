"""The vector store seam: one protocol, FAISS built in, other backends (Milvus) by name.

:class:`VectorStore` is everything :class:`~ragtune.rag.index.Index` and the retriever may ask of a
store; :func:`create_store` / :func:`open_store` pick the backend from ``StoreConfig.backend`` and from
the description the manifest recorded (``describe()``), so an index directory says which backend holds
its vectors and a reader never has to guess.

Two kinds of store, and why the index treats them differently:

- *in-generation* (FAISS): the vectors are a file inside each generation folder, so they join that
  folder's atomic publish. Such a store implements ``fork()``: the writer edits a private copy, and
  readers of the published generation never see a half-applied edit.
- *server-side* (Milvus): one collection outlives generations and cannot join a rename. Consistency
  comes from ordering instead: chunk ids are never reused (the index keeps a monotonic high-water mark
  on disk, written before any vector is added), a writer ADDS new vectors before ``CURRENT`` moves and
  REMOVES replaced ids only after it moved, and readers over-fetch and drop ids that are not in their
  generation's chunk table. A crash therefore leaves the previous generation searchable, and the next
  writer removes what the crashed one added (ids above the last published high-water mark).

FAISS details: vectors are L2-normalised, so inner product = cosine similarity. ``index_type="auto"``
keeps ``IndexIDMap2(IndexFlatIP)`` (exact, add/remove by id) below ``ann_threshold`` vectors and an
``IndexIVFFlat`` with ``nlist ~ 4*sqrt(N)`` cells searched ``nprobe`` at a time above it (switched
when the store is persisted, trained on every vector it then holds). IVF supports
remove_ids (incremental updates keep working), trains in seconds, and has a faiss GPU implementation;
HNSW has none of the three. With faiss-gpu and CUDA present, a GPU copy answers searches; the CPU index
stays the master copy that is saved.

    >>> store = create_store(StoreConfig(), dim=4)
    >>> store.add(np.array([7]), np.array([[1, 0, 0, 0]], dtype=np.float32))
    >>> store.search(np.array([[1, 0, 0, 0]], dtype=np.float32), 1)[1].tolist()
    [[7]]
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ragtune.errors import IndexFormatError
from .config import StoreConfig

log = logging.getLogger(__name__)

#: The store description format this ragtune writes and reads (``describe()["format_version"]``).
STORE_FORMAT_VERSION = 1
#: backend name -> module holding ``create(config, dim)`` and ``open(description, gen_dir, dim, config)``;
#: imported only when an index uses it (pymilvus is an optional extra).
BACKENDS = {"faiss": __name__, "milvus": "ragtune.rag.milvus_store"}
FAISS_FILE = "vectors.faiss"


@runtime_checkable
class VectorStore(Protocol):
    """What the index and the retriever may ask of a vector store (see the module docstring).

    Optional: ``fork() -> VectorStore`` for in-generation stores (an independent copy the writer
    edits). A store without ``fork`` is treated as server-side (shared across generations).
    """

    dim: int
    supports_filters: bool  # True: search() applies `filters` itself (pushed down, e.g. Milvus expressions)

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict] | None = None) -> None:
        """Store ``vectors`` under ``ids``; ``metadata`` per row: source, file_type, page, section."""
        ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, filters: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) each of shape (len(queries), k'); id -1 pads missing results."""
        ...

    def reconstruct(self, ids: list[int]) -> np.ndarray: ...

    def describe(self) -> dict:
        """``{"backend": ..., "format_version": 1, ...settings}``: recorded in the manifest."""
        ...

    def persist(self, gen_dir: Path) -> dict:
        """Make the current state durable for generation ``gen_dir``; returns :meth:`describe`."""
        ...


def create_store(config: StoreConfig, dim: int) -> VectorStore:
    """A new, empty store of ``config.backend``."""
    return _backend(config.backend).create(config, dim)


def open_store(description: dict, gen_dir: Path, dim: int, config: StoreConfig) -> VectorStore:
    """Reopen the store a manifest describes; an unknown backend or a newer format is refused."""
    if not isinstance(description, dict):
        raise IndexFormatError(f"{gen_dir}/manifest.json: 'store' must be a mapping, got {type(description).__name__}")
    version = description.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise IndexFormatError(f"{gen_dir}/manifest.json: store format_version {version!r} is not an integer")
    if version > STORE_FORMAT_VERSION:
        raise IndexFormatError(
            f"{gen_dir}: the vector store has format version {version}; this ragtune reads up to "
            f"{STORE_FORMAT_VERSION}: upgrade ragtune"
        )
    return _backend(description.get("backend"), gen_dir).open(description, gen_dir, dim, config)


def _backend(name, where: Path | None = None):
    if name not in BACKENDS:
        place = f"{where}/manifest.json names" if where else "StoreConfig.backend is"
        raise IndexFormatError(
            f"{place} the vector-store backend {name!r}, which this ragtune does not know; "
            f"known: {', '.join(BACKENDS)} (upgrade ragtune if the index was built by a newer one)"
        )
    module_name = BACKENDS[name]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise IndexFormatError(
            f"the {name!r} vector-store backend is not installed ({exc}); install it with "
            f"`pip install 'ragtune[{name}]'`"
        ) from exc


def create(config: StoreConfig, dim: int) -> FaissStore:
    """The FAISS backend's factory (see :data:`BACKENDS`)."""
    return FaissStore(dim, config)


def open(description: dict, gen_dir: Path, dim: int, config: StoreConfig) -> FaissStore:  # noqa: A001
    """The FAISS backend's opener: ``vectors.faiss`` inside the generation folder."""
    return FaissStore.open(Path(gen_dir) / description.get("file", FAISS_FILE), dim, config)


def gpu_available() -> bool:
    try:
        import faiss

        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # pragma: no cover
        return False


def ivf_nlist(n: int) -> int:
    # ~4*sqrt(N) cells (faiss' guideline), but never fewer than 39 training points per cell.
    return int(max(16, min(65536, 4 * math.sqrt(n), n // 39)))


def default_nprobe(nlist: int) -> int:
    # Searching 1/16 of the cells (at least 32) keeps recall@10 above 0.95 on clustered data while
    # scanning a few per cent of the vectors: ~4 ms per query at 1M x 384 on 2 cores (bench/scale.py).
    return min(nlist, max(32, nlist // 16))


class FaissStore:
    """The in-generation FAISS store (see the module docstring).

    Searching is safe from many threads at once; edits are not, which is why the index edits a
    :meth:`fork` and never a store that readers hold.
    """

    supports_filters = False  # filters arrive as `allowed` ids (an IDSelector before the top-k cut)

    def __init__(self, dim: int, config: StoreConfig | None = None, index=None):
        import faiss

        self.dim = dim
        self.config = config or StoreConfig()
        self._faiss = faiss
        self.index = index if index is not None else self._new_flat()
        self._gpu_index = None
        self._gpu_dirty = True
        self._gpu_lock = threading.Lock()  # two first searches must not both build the GPU twin

    def fork(self) -> FaissStore:
        """An independent copy for a writer, which is what lets readers keep searching the published one
        while it is edited. Costs a copy of the vectors in memory for the write's duration (1.5 GB at
        1M x 384) and time: 200k x 384 took 2.1 s (flat) and 4.5 s (IVF) on the 2-core machine under a
        load average of 16."""
        return FaissStore(self.dim, self.config, index=self._faiss.clone_index(self.index))

    def describe(self) -> dict:
        return {"backend": "faiss", "format_version": STORE_FORMAT_VERSION, "file": FAISS_FILE,
                "kind": self.kind, "count": len(self), "index_type": self.config.index_type}

    def persist(self, gen_dir: Path) -> dict:
        self.seal()
        self.save(Path(gen_dir) / FAISS_FILE)
        return self.describe()

    def seal(self) -> None:
        """Switch a flat index to IVF once it holds enough vectors for its ``index_type``, training the
        cells on all of them. This happens here (``persist`` calls it) and not in :meth:`add` because
        writes arrive in streamed batches (rag/bulk_ingest.py): switching inside ``add`` trained an
        ``index_type="ivf"`` store on its first 1024 vectors, i.e. 16 cells for any collection size."""
        if self.kind == "flat" and self._wants_ivf(len(self)):
            ids, vectors = self.all_vectors()
            self.index = self._new_ivf(vectors)
            self.index.add_with_ids(vectors, ids)
            self._gpu_dirty = True

    # -- construction -------------------------------------------------------------------------
    def _new_flat(self):
        return self._faiss.IndexIDMap2(self._faiss.IndexFlatIP(self.dim))

    def _new_ivf(self, train: np.ndarray):
        faiss = self._faiss
        nlist = ivf_nlist(len(train))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # 64 points per cell is plenty for k-means to settle (faiss warns below 39).
        rng = np.random.default_rng(0)
        sample = train if len(train) <= 64 * nlist else train[rng.choice(len(train), 64 * nlist, replace=False)]
        sample = np.ascontiguousarray(sample)
        if self._use_gpu():
            try:  # k-means on the GPU: the build's costly part
                res = self._gpu_resources()
                gpu = faiss.index_cpu_to_gpu(res, 0, index)
                gpu.train(sample)
                index = faiss.index_gpu_to_cpu(gpu)
            except Exception as exc:  # pragma: no cover - needs a GPU
                log.warning("faiss GPU training failed (%s); training on CPU", exc)
        if not index.is_trained:
            index.train(sample)
        index.nprobe = self.config.nprobe or default_nprobe(nlist)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct() and remove by id
        return index

    @property
    def kind(self) -> str:
        return "ivf" if isinstance(self.index, self._faiss.IndexIVF) else "flat"

    def _wants_ivf(self, n: int) -> bool:
        if self.config.index_type == "ivf":
            return n >= 1000  # too few vectors to train cells: stay exact
        return self.config.index_type == "auto" and n >= self.config.ann_threshold

    # -- updates ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict] | None = None) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise IndexFormatError(f"vectors of dimension {vectors.shape[-1]} cannot go into a {self.dim}-d index")
        if len(ids) == 0:
            return
        self.index.add_with_ids(vectors, ids)  # a flat index becomes IVF in seal(), once all are in
        self._gpu_dirty = True

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return 0
        # IDSelectorArray: the only selector IVF's hashtable direct map accepts for removal.
        removed = int(self.index.remove_ids(self._faiss.IDSelectorArray(len(ids), self._faiss.swig_ptr(ids))))
        self._gpu_dirty = True
        return removed

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of everything stored."""
        faiss = self._faiss
        if self.kind == "flat":
            ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
            vecs = self.index.index.reconstruct_n(0, self.index.ntotal) if len(ids) else np.zeros((0, self.dim), "float32")
            return ids, vecs
        ids_list, vec_list = [], []
        invlists = self.index.invlists
        for list_no in range(self.index.nlist):
            size = invlists.list_size(list_no)
            if not size:
                continue
            ids_list.append(faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy())
            codes = faiss.rev_swig_ptr(invlists.get_codes(list_no), size * self.index.code_size).copy()
            vec_list.append(codes.view(np.float32).reshape(size, self.dim))
        if not ids_list:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        return np.concatenate(ids_list).astype(np.int64), np.concatenate(vec_list)

    def reconstruct(self, ids: list[int]) -> np.ndarray:
        return np.stack([self.index.reconstruct(int(i)) for i in ids]) if ids else np.zeros((0, self.dim), np.float32)

    # -- search -------------------------------------------------------------------------------
    def _use_gpu(self) -> bool:
        return self.config.use_gpu if self.config.use_gpu is not None else gpu_available()

    def _gpu_resources(self):
        if getattr(self, "_gpu_res", None) is None:
            self._gpu_res = self._faiss.StandardGpuResources()
        return self._gpu_res

    def _searcher(self):
        if not self._use_gpu():
            return self.index
        with self._gpu_lock:
            return self._gpu_searcher()

    def _gpu_searcher(self):
        if self._gpu_dirty:
            try:
                res = self._gpu_resources()
                self._gpu_index = self._faiss.index_cpu_to_gpu(res, 0, self.index)
            except Exception as exc:  # e.g. an index type without a GPU twin: stay correct on CPU
                log.warning("faiss GPU copy failed (%s); searching on CPU", exc)
                self._gpu_index = None
            self._gpu_dirty = False
        return self._gpu_index or self.index

    @property
    def device(self) -> str:
        return "gpu" if self._searcher() is not self.index else "cpu"

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, filters: dict | None = None):
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if len(self) == 0:
            return np.full((len(queries), 1), -np.inf, np.float32), np.full((len(queries), 1), -1, np.int64)
        k = max(1, min(k, len(self)))
        if allowed is not None:
            # Filters apply before the top-k cut: only allowed ids compete (CPU; selectors are CPU-only).
            params = (self._faiss.SearchParametersIVF if self.kind == "ivf" else self._faiss.SearchParameters)()
            params.sel = self._faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if self.kind == "ivf":
                params.nprobe = self.index.nprobe
            scores, ids = self.index.search(queries, k, params=params)
        else:
            scores, ids = self._searcher().search(queries, k)
        return scores, ids

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        self._faiss.write_index(self.index, str(path))

    @classmethod
    def open(cls, path: Path, dim: int, config: StoreConfig | None = None) -> FaissStore:
        import faiss

        if not Path(path).is_file():
            raise IndexFormatError(f"the vector index {path} is missing")
        try:
            index = faiss.read_index(str(path))
        except Exception as exc:
            raise IndexFormatError(f"cannot read the vector index {path}: {exc}") from exc
        if index.d != dim:
            raise IndexFormatError(f"vector index {path} has dimension {index.d}, the manifest says {dim}")
        return cls(dim, config, index=index)
