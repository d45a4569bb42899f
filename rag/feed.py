"""One index write as a stream: document -> chunks -> rows in the new generation's chunk table -> records
for the vector store, one document at a time.

``Index.add`` parses its files lazily (a generator), :func:`chunk_stream` chunks each document as it
arrives, and :meth:`Feed.records` writes its rows into the generation being built and yields one
:class:`~ragtune.rag.bulk_ingest.Record` per chunk, which ``stream_into_store`` embeds and stores batch by
batch. Nothing keeps a document, a chunk text or a vector once it has gone through, so what a write holds
at once is one document (and its chunks), one batch of texts and at most three batches of vectors, however
many files it indexes (tests/rag/test_index_streaming.py counts them). Before, a write held every parsed
document, every chunk and every chunk text of the call at once, and BM25 then read every text again.

Chunk ids are handed out from the high-water mark (``ids.reserved``) and the mark is raised *before* an id
reaches the vector store, ``step`` ids ahead at a time (one small fsync'd write per batch, not per chunk),
so an id is never handed out twice, even by a writer killed mid-way.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from .bulk_ingest import Record
from .chunkdb import ChunkDB
from .ingest import Problem
from .types import Chunk, Document


def chunk_stream(docs: Iterable[Document], chunker, report, emit) -> Iterator[tuple[Document, list[Chunk]]]:
    """(document, its chunks) for each document that yields any; a chunking failure is that file's
    problem (reported), never the batch's."""
    report.timings.setdefault("chunk", 0.0)
    n = 0
    for doc in docs:  # not enumerate(): it keeps its last (n, doc) tuple, and so the document, alive
        n += 1
        t0 = time.perf_counter()
        try:
            chunks = chunker.chunk(doc)
        except Exception as exc:
            report.problems.append(Problem(doc.source, f"could not chunk: {exc}"))
            continue
        finally:
            report.timings["chunk"] += time.perf_counter() - t0
        emit("chunk", n, None, "")
        if not chunks:
            report.problems.append(Problem(doc.source, "no text left after chunking"))
            continue
        yield doc, chunks
        del doc, chunks  # before the next document is parsed, not after


class Feed:
    """Writes each document's rows into ``db`` (the new generation's table) and yields its store records."""

    def __init__(self, db: ChunkDB, report, next_id: int, reserve: Callable[[int], None], step: int):
        self.db = db
        self.report = report
        self.next_id = next_id
        self.reserved = next_id  # the caller has written this mark already
        self._reserve = reserve
        self.step = max(1, step)
        self.old_ids = array("q")  # ids of the replaced chunks: compact, one 8-byte int each

    def records(self, chunked: Iterable[tuple[Document, list[Chunk]]]) -> Iterator[Record]:
        for doc, chunks in chunked:
            first = self._take_ids(len(chunks))
            self._write_rows(doc, chunks, first)
            file_type = doc.type
            for offset, c in enumerate(chunks):
                meta = {"source": c.source, "file_type": c.metadata.get("file_type", file_type), "page": c.page,
                        "section": c.section}
                yield Record(first + offset, c.text, meta)
            del doc, chunks, c

    def _take_ids(self, n: int) -> int:
        first = self.next_id
        self.next_id += n
        if self.next_id > self.reserved:  # raise the mark before any of these ids reaches the store
            self.reserved = self.next_id + self.step
            self._reserve(self.reserved)
        return first

    def _write_rows(self, doc: Document, chunks: list[Chunk], first: int) -> None:
        db, report = self.db, self.report
        known = db.file(doc.source) is not None
        if known:  # the new version replaces every old chunk of the file
            self.old_ids.extend(db.delete_sources([doc.source]))
        db.insert([(first + k, c) for k, c in enumerate(chunks)])
        db.upsert_file(doc.source, doc.sha256, doc.metadata.get("size"), doc.metadata.get("mtime"), doc.type,
                       len(chunks))
        (report.updated if known else report.added).append(doc.source)
        report.chunks_added += len(chunks)

    def remove_sources(self, sources: list[str]) -> None:
        self.old_ids.extend(self.db.delete_sources(sources))

    def removed_ids(self) -> np.ndarray:
        """The ids of every replaced or removed chunk, as int64 (what the vector store must drop)."""
        return np.frombuffer(self.old_ids, dtype=np.int64).copy() if len(self.old_ids) else np.zeros(0, np.int64)
