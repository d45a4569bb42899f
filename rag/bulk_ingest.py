"""Ingestion at scale: embed a stream of chunks batch by batch into any vector store, memory bounded.

Every index write (``Index.add``, ``add_documents``, ``repair``; rag/writer.py) goes through here, on both
backends, and so can a collection larger than RAM (tens of millions of chunks into a Milvus cluster), which
must never hold more than a few batches of vectors:
:func:`stream_into_store` pulls records lazily from an iterator, embeds ``batch_size`` texts at a time and
hands each batch to ``store.add`` on a writer thread, so embedding (CPU/GPU bound) overlaps the insert RPC
(network bound). At most ``queue_depth + 2`` batches exist at once: one being embedded, ``queue_depth``
waiting, one being written; memory does not grow with the collection.

Several processes can feed one Milvus collection: give each worker a disjoint slice of the records
(:func:`shard`, by chunk id) and the server's URI. Milvus serialises the writes; ids are primary keys, so
disjoint slices never collide, and an upsert of a retried batch overwrites instead of duplicating.

    >>> records = (Record(i, text, {"source": path}) for i, (path, text) in enumerate(my_chunks, 1))  # doctest: +SKIP
    >>> stream_into_store(store, shard(records, worker=0, workers=2), embedder.encode)                # doctest: +SKIP
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ragtune.progress import ProgressFn, emit

_DONE = object()


@dataclass
class Record:
    """One chunk to store: its id (the chunk DB's, unique across workers), text and filter metadata."""

    id: int
    text: str
    metadata: dict = field(default_factory=dict)


@dataclass
class StreamReport:
    rows: int = 0
    batches: int = 0
    embed_seconds: float = 0.0
    write_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**self.__dict__, "rows_per_second": self.rows_per_second}


def batched(records: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last may be shorter), pulling items only as needed."""
    if size < 1:
        raise ValueError("batch size must be >= 1")
    batch: list = []
    for item in records:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def shard(records: Iterable[Record], worker: int, workers: int) -> Iterator[Record]:
    """The records worker ``worker`` of ``workers`` writes: those whose id is ``worker`` modulo ``workers``.
    By id rather than by position, so every worker can read the same source in any order."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} is not within 0..{workers - 1}")
    return (r for r in records if r.id % workers == worker)


def stream_into_store(
    store,
    records: Iterable[Record],
    encode: Callable[[list[str]], np.ndarray],
    *,
    batch_size: int = 1024,
    queue_depth: int = 1,
    total: int | None = None,
    progress: ProgressFn | None = None,
) -> StreamReport:
    """Embed ``records`` with ``encode`` (e.g. ``embedder.encode``) and ``store.add`` them, batch by batch.

    An error in ``encode`` or ``store.add`` stops the stream and is raised here; the batches written before
    it stay in the store (ids are primary keys, so re-running the whole stream is safe with upserting stores).
    """
    report = StreamReport()
    started = time.perf_counter()
    pending: queue.Queue = queue.Queue(maxsize=max(1, queue_depth))
    failure: list[BaseException] = []

    def writer() -> None:
        while True:
            item = pending.get()
            if item is _DONE:
                return
            if failure:
                continue  # drain so the producer never blocks on a dead writer
            ids, vectors, metadata = item
            t0 = time.perf_counter()
            try:
                store.add(ids, vectors, metadata)
            except BaseException as exc:  # re-raised on the caller's thread
                failure.append(exc)
                continue
            report.write_seconds += time.perf_counter() - t0
            report.rows += len(ids)
            report.batches += 1
            emit(progress, "write", report.rows, total, "")

    thread = threading.Thread(target=writer, name="ragtune-store-writer", daemon=True)
    thread.start()
    try:
        for batch in batched(records, batch_size):
            if failure:
                break
            t0 = time.perf_counter()
            vectors = np.ascontiguousarray(encode([r.text for r in batch]), dtype=np.float32)
            report.embed_seconds += time.perf_counter() - t0
            ids = np.fromiter((r.id for r in batch), dtype=np.int64, count=len(batch))
            pending.put((ids, vectors, [r.metadata for r in batch]))
            del batch, vectors  # the texts go now, not when the next batch has been filled beside them
    finally:
        pending.put(_DONE)
        thread.join()
    if failure:
        raise failure[0]
    report.seconds = time.perf_counter() - started
    return report
