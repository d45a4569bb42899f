"""An index write streams: documents, chunk texts and vectors held at once are bounded by the batch size,
not by how many files one call indexes, on both backends; and its memory peak does not grow with the
collection beyond what the BM25 postings need."""

from __future__ import annotations

import random
import threading
import tracemalloc
import weakref

import pytest

from ragtune.rag import index as index_module
from ragtune.rag import writer as writer_module
from ragtune.rag.embed import HashEmbedder
from ragtune.rag.writer import stream_batch_size


class Live:
    """Counts objects alive now and at most (thread-safe: the store writer thread frees vectors)."""

    def __init__(self):
        self.now = self.peak = self.total = 0
        self._lock = threading.Lock()

    def track(self, obj, n: int = 1):
        with self._lock:
            self.now += n
            self.total += n
            self.peak = max(self.peak, self.now)
        weakref.finalize(obj, self._gone, n)
        return obj

    def _gone(self, n: int) -> None:
        with self._lock:
            self.now -= n


class TrackedText(str):
    """A chunk text whose lifetime can be watched (a plain str cannot be weakly referenced)."""


class LiveVectorEmbedder(HashEmbedder):
    def __init__(self, live: Live):
        super().__init__(64)
        self.live = live

    def encode(self, texts, progress=False):
        return self.live.track(super().encode(texts), len(texts))


def _instrument(monkeypatch, docs: Live, texts: Live, store_batches: list[int]) -> None:
    real_parse, real_chunker = index_module.parse_file, writer_module.make_chunker

    def parse(path, config):
        doc, warnings = real_parse(path, config)
        return docs.track(doc), warnings

    def make_chunker(config, embedder):
        chunker = real_chunker(config, embedder)

        class Tracking:
            def chunk(self, doc):
                chunks = chunker.chunk(doc)
                for c in chunks:
                    c.text = texts.track(TrackedText(c.text))
                return chunks

        return Tracking()

    monkeypatch.setattr(index_module, "parse_file", parse)
    monkeypatch.setattr(writer_module, "make_chunker", make_chunker)
    from ragtune.rag.store import FaissStore

    classes = [FaissStore]
    try:
        from ragtune.rag.milvus_store import MilvusStore
        classes.append(MilvusStore)
    except ImportError:  # pragma: no cover - the [milvus] extra is absent
        pass
    for cls in classes:
        real_add = cls.add

        def add(self, ids, vectors, metadata=None, _real=real_add):
            store_batches.append(len(ids))
            return _real(self, ids, vectors, metadata)

        monkeypatch.setattr(cls, "add", add)


def _write_notes(folder, n: int, words_per_note: int = 20, seed: int = 0):
    rng = random.Random(seed)
    vocab = [f"term{k}" for k in range(3000)]
    folder.mkdir()
    weights = [1 / (k + 1) for k in range(len(vocab))]  # Zipf, as in prose: a chunk repeats its common words
    for i in range(n):
        body = " ".join(rng.choices(vocab, weights, k=words_per_note))
        (folder / f"note-{i:05d}.txt").write_text(f"Note {i} on topic {i % 17}.\n\n{body} marker{i}.\n")
    return folder


@pytest.mark.parametrize("backend", ["faiss", "milvus"], indirect=True)
def test_documents_texts_and_vectors_held_at_once_stay_within_one_batch(hash_index, backend, tmp_path, monkeypatch):
    docs, texts, vectors, store_batches = Live(), Live(), Live(), []
    _instrument(monkeypatch, docs, texts, store_batches)
    index = hash_index(ingest__fast_text_mb=0.0)  # plain paragraph split: no spaCy pass per file
    index.embedder = LiveVectorEmbedder(vectors)
    batch = stream_batch_size(index.embedder)
    n_files = 4 * batch + 37
    report = index.add([_write_notes(tmp_path / "notes", n_files)], progress=False)

    assert len(report.added) == docs.total == n_files and not report.problems
    assert report.chunks_added == len(index) == texts.total == vectors.total >= n_files
    per_doc = max(index.files()[s]["n_chunks"] for s in report.added)
    # Before, the call held every document and chunk text at once (1061 of each here).
    print(f"peaks: documents {docs.peak}, texts {texts.peak} (batch {batch}, per doc {per_doc}), vectors {vectors.peak}")
    assert docs.peak == 1
    assert texts.peak <= batch + per_doc < texts.total
    assert vectors.peak <= 3 * batch and max(store_batches) <= batch and sum(store_batches) == report.chunks_added
    hit = index.search("marker777", k=1, mode="bm25")[0]
    assert hit.source.endswith("note-00777.txt")
    stored = next(c for c in index.chunks() if c.source == hit.source)  # its vector is the one stored for it
    assert index.search(stored.text, k=1, mode="dense")[0].chunk_id == stored.id


def _traced(work) -> tuple[int, object]:
    """(peak bytes Python allocated during ``work()`` beyond what was allocated before, its result)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = work()
        return tracemalloc.get_traced_memory()[1] - base, result
    finally:
        tracemalloc.stop()


def _bm25_build_peak(index) -> int:
    """What building this index's BM25 side alone peaks at (its postings and their conversion)."""
    from ragtune.rag.chunkdb import ChunkDB
    from ragtune.rag.lexical import BM25Index

    db = ChunkDB(index.root / index.generation / "chunks.sqlite", readonly=True)
    try:
        return _traced(lambda: BM25Index(index.config.lexical).build_from(db.iter_texts()))[0]
    finally:
        db.close()


@pytest.mark.parametrize("lexical", [True, False], ids=["bm25", "no-bm25"])
def test_adding_four_times_the_documents_grows_the_peak_only_by_what_bm25_needs(hash_index, tmp_path, lexical,
                                                                             monkeypatch):
    """tracemalloc peak of Index.add on n vs 4n files (~6 KB of text each). FAISS only: Milvus Lite runs
    in this process in the tests, and its own segments would be counted as the write's. A batch of 16 so that
    the n-file write already fills its (constant) batch buffers."""
    monkeypatch.setattr(writer_module, "stream_batch_size", lambda embedder: 16)
    hash_index("warm").add([_write_notes(tmp_path / "docs-warm", 20, seed=9)], progress=False)  # lazy imports
    n, peaks, bm25_peaks, text = 30, [], [], []
    for size, seed in ((n, 1), (4 * n, 2)):
        index = hash_index(f"index-{size}", ingest__fast_text_mb=0.0, lexical__enabled=lexical)
        folder = _write_notes(tmp_path / f"docs-{size}", size, words_per_note=900, seed=seed)
        peak, report = _traced(lambda: index.add([folder], progress=False))
        assert len(report.added) == size
        peaks.append(peak)
        bm25_peaks.append(_bm25_build_peak(index) if lexical else 0)
        text.append(sum(p.stat().st_size for p in folder.iterdir()))
    growth, bm25_growth, text_growth = peaks[1] - peaks[0], bm25_peaks[1] - bm25_peaks[0], text[1] - text[0]
    # Per added file the report keeps its name and a warning (<1 KB); 0.25 MB for the rest.
    allowed = bm25_growth + 3 * n * 1024 + 250_000
    print(f"peak {peaks[0] / 1e6:.2f} -> {peaks[1] / 1e6:.2f} MB; BM25 build alone {bm25_peaks[0] / 1e6:.2f} -> "
          f"{bm25_peaks[1] / 1e6:.2f} MB; text +{text_growth / 1e6:.2f} MB; allowed growth {allowed / 1e6:.2f} MB")
    assert growth <= allowed
    if not lexical:  # before, the write held every added text at least twice (documents and chunks)
        assert allowed < text_growth


def test_add_documents_reads_a_generator_once_and_prunes_what_it_did_not_yield(hash_index):
    from ragtune.rag.types import Document, Element

    def notes(numbers, pulled):
        for i in numbers:
            pulled.append(i)
            yield Document(source=f"note-{i}", type="txt", elements=[Element(f"Note {i} is about subject {i}.")])

    index, pulled = hash_index(), []
    first = index.add_documents(notes(range(5), pulled), progress=False)
    assert pulled == [0, 1, 2, 3, 4] and sorted(first.added) == [f"note-{i}" for i in range(5)]
    second = index.add_documents(notes([0, 1, 2, 4], pulled), prune=True, progress=False)
    assert second.removed == ["note-3"] and len(second.unchanged) == 4 and not second.added
    assert sorted(index.files()) == ["note-0", "note-1", "note-2", "note-4"]
    hits = index.search("note subject 3", k=5, mode="bm25")
    assert len(hits) == 4 and "note-3" not in {h.source for h in hits}
