"""A stand-in for a server-side vector store (Milvus) in tests: one file outside the generation folders,
every edit durable at once (as a server's would be), no ``fork``. Registered as the backend "shared"."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ragtune.rag.store import FaissStore


class SharedFileStore:
    supports_filters = False

    def __init__(self, dim: int, config):
        self.dim, self.config, self.path = dim, config, Path(config.uri)

    def _load(self) -> FaissStore:
        return FaissStore.open(self.path, self.dim) if self.path.exists() else FaissStore(self.dim)

    def _save(self, store: FaissStore) -> None:
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        store.save(tmp)
        os.replace(tmp, self.path)

    def __len__(self) -> int:
        return len(self._load())

    def add(self, ids, vectors, metadata=None) -> None:
        store = self._load()
        store.add(ids, vectors)
        self._save(store)

    def remove(self, ids) -> int:
        store = self._load()
        n = store.remove(np.asarray(ids, dtype=np.int64))
        self._save(store)
        return n

    def search(self, queries, k, allowed=None, filters=None):
        return self._load().search(queries, k, allowed)

    def reconstruct(self, ids):
        return self._load().reconstruct(ids)

    def ids(self) -> set[int]:
        return set(self._load().all_vectors()[0].tolist())

    def describe(self) -> dict:
        return {"backend": "shared", "format_version": 1, "uri": str(self.path)}

    def persist(self, gen_dir) -> dict:
        return self.describe()


def create(config, dim):
    return SharedFileStore(dim, config)


def open(description, gen_dir, dim, config):  # noqa: A001
    config.uri = description["uri"]
    return SharedFileStore(dim, config)


def register() -> None:
    from ragtune.rag import store

    store.BACKENDS["shared"] = __name__
