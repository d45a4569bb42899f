"""The index directory: persistence, incremental updates, pruning, model mismatch, search API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.errors import ConfigError, ModelMismatchError
from ragtune.rag.embed import HashEmbedder
from ragtune.rag.index import Index
from ragtune.rag.types import Document, Element


def test_search_returns_hits_with_provenance(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    hits = index.search("What does QLoRA quantise the base model to?", k=3)
    assert hits[0].source.endswith("lora.md")
    assert hits[0].section == "QLoRA"
    assert "NormalFloat" in hits[0].text
    assert hits[0].chunk_id and isinstance(hits[0].score, float)


def test_index_reopens_from_disk_with_same_results(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    first = [h.chunk_id for h in index.search("lexical ranking function", k=3)]
    reopened = Index.open(index.root)
    assert [h.chunk_id for h in reopened.search("lexical ranking function", k=3)] == first
    manifest = json.loads((index.root / index.generation / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["embedder"] == {"model_id": "hash-64", "dim": 64, "fingerprint": "hash"}
    assert manifest["config"]["chunker"]["name"] == "structure"


def test_storage_has_no_pickle(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    names = {p.suffix for p in (index.root / index.generation).rglob("*") if p.is_file()}
    assert names <= {".json", ".sqlite", ".faiss", ".npy"}
    for npy in (index.root / index.generation).rglob("*.npy"):
        import numpy as np

        np.load(npy, allow_pickle=False)  # raises if an object array was stored


def test_readding_unchanged_directory_embeds_nothing(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    generation, count = index.generation, len(index)
    report = index.add([docs_dir], progress=False)
    assert sorted(report.unchanged) == sorted(str(p) for p in docs_dir.iterdir())
    assert not report.changed and report.chunks_added == 0
    assert index.generation == generation and len(index) == count


def test_changed_file_is_reembedded_once_and_replaces_its_chunks(hash_index, docs_dir, monkeypatch):
    index = hash_index()
    index.add([docs_dir], progress=False)
    before = {c.id: c for c in index.chunks()}
    (docs_dir / "rag.txt").write_text("Retrieval\n\nHybrid search fuses dense and sparse rankings.\n")
    encoded: list[str] = []
    original = index.embedder.encode
    monkeypatch.setattr(index.embedder, "encode", lambda texts, progress=False: encoded.extend(texts) or original(texts))
    report = index.add([docs_dir], progress=False)
    assert report.updated == [str(docs_dir / "rag.txt")] and len(report.unchanged) == 2
    assert encoded and all("Hybrid" in t or "Retrieval" in t for t in encoded)  # only the changed file
    texts = [c.text for c in index.chunks()]
    assert not any("BM25 is a lexical" in t for t in texts)  # old chunks gone
    assert sum("Hybrid search fuses" in t for t in texts) == 1  # new one present once
    unchanged_ids = {i for i, c in before.items() if not c.source.endswith("rag.txt")}
    assert unchanged_ids <= {c.id for c in index.chunks()}
    assert index.search("hybrid dense sparse", k=1, mode="bm25")[0].source.endswith("rag.txt")


def test_no_chunk_is_ever_duplicated(hash_index, docs_dir):
    index = hash_index()
    for _ in range(3):
        index.add([docs_dir], progress=False)
        index.add([docs_dir / "lora.md"], progress=False)
    ids = [c.id for c in index.chunks()]
    assert len(ids) == len(set(ids))
    assert len(index.store) == len(ids) == len(index.bm25)


def test_prune_removes_deleted_files_only_when_asked(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    (docs_dir / "quant.html").unlink()
    report = index.add([docs_dir], progress=False)
    assert not report.removed and str(docs_dir / "quant.html") in index.files()
    report = index.add([docs_dir], prune=True, progress=False)
    assert report.removed == [str(docs_dir / "quant.html")]
    assert str(docs_dir / "quant.html") not in index.files()
    assert all("Distillation" not in h.text for h in index.search("distillation student teacher", k=5))
    assert len(index.store) == len(index) == len(index.bm25)


def test_pruning_a_deleted_file_or_folder_named_by_a_relative_path_is_not_also_a_failure(hash_index, tmp_path,
                                                                                         monkeypatch):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/k.txt", "d/l.txt", "d/sub/m.txt"):
        (tmp_path / name).write_text(f"Notes {name}.\n")
    monkeypatch.chdir(tmp_path)
    index = hash_index()
    index.add(["d"], progress=False)
    (tmp_path / "d" / "l.txt").unlink()
    report = index.add(["d/l.txt"], prune=True, progress=False)
    assert [Path(p).name for p in report.removed] == ["l.txt"] and report.problems == []
    for f in (tmp_path / "d" / "sub").iterdir():
        f.unlink()
    (tmp_path / "d" / "sub").rmdir()
    report = index.add(["d/sub"], prune=True, progress=False)
    assert [Path(p).name for p in report.removed] == ["m.txt"] and report.problems == []
    # a path that never held anything indexed is still a failure
    assert [p.reason for p in index.add(["d/nothing"], prune=True, progress=False).problems] == \
        ["no such file or directory"]


def test_prune_is_limited_to_the_paths_given(hash_index, docs_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.md").write_text("# Keep\n\nKeep me around.")
    index = hash_index()
    index.add([docs_dir, other], progress=False)
    report = index.add([docs_dir], prune=True, progress=False)
    assert not report.removed and str(other / "keep.md") in index.files()


def test_opening_with_another_embedding_model_is_refused(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    with pytest.raises(ModelMismatchError, match="built with embedding model 'hash-64'"):
        Index.open(index.root, embedder=HashEmbedder(dim=32))


def test_opening_with_other_chunker_settings_is_refused(hash_index, docs_dir):
    from ragtune.rag.config import IndexConfig

    index = hash_index()
    index.add([docs_dir], progress=False)
    config = IndexConfig()
    config.chunker.max_tokens = 64
    config.embedder.model = "hash-64"
    with pytest.raises(ConfigError, match="other chunker/embedder settings"):
        Index.open(index.root, config=config)


def test_add_documents_keeps_source_and_skips_unchanged(hash_index):
    index = hash_index()
    docs = [Document(source="doc-1", type="beir", elements=[Element("Wings", "Title"), Element("Lift on swept wings.", section="Wings")])]
    assert index.add_documents(docs, progress=False).added == ["doc-1"]
    assert index.add_documents(docs, progress=False).unchanged == ["doc-1"]
    assert index.search("swept wings", k=1)[0].source == "doc-1"


def test_remove_sources(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    report = index.remove([str(docs_dir / "lora.md"), "nope.md"])
    assert report.removed == [str(docs_dir / "lora.md")]
    assert [p.path for p in report.problems] == ["nope.md"]
    assert str(docs_dir / "lora.md") not in index.files()


def test_removing_a_folder_removes_every_indexed_file_under_it(hash_index, docs_dir):
    (docs_dir / "sub").mkdir()
    (docs_dir / "sub" / "extra.md").write_text("# Extra\n\nA note about adapters.")
    (docs_dir / "subway.md").write_text("# Subway\n\nNot under sub/.")  # a shared prefix is not a folder
    index = hash_index()
    index.add([docs_dir], progress=False)
    report = index.remove([str(docs_dir / "sub")])
    assert report.removed == [str(docs_dir / "sub" / "extra.md")] and not report.problems
    assert str(docs_dir / "subway.md") in index.files() and str(docs_dir / "lora.md") in index.files()
    assert [p.reason for p in index.remove([str(docs_dir / "sub")]).problems] == [
        "not in the index (nor any indexed file under it)"]


def test_only_two_generations_are_kept(hash_index, docs_dir):
    index = hash_index()
    for i in range(4):
        (docs_dir / "rag.txt").write_text(f"Version {i} of the retrieval notes.")
        index.add([docs_dir], progress=False)
    gens = sorted(p.name for p in index.root.glob("gen-*"))
    assert len(gens) == 2 and gens[-1] == index.generation


def test_add_reports_progress_through_a_callback(hash_index, docs_dir):
    calls = []
    index = hash_index()
    index.add([docs_dir], progress=lambda stage, done, total, message: calls.append((stage, done, total)))
    stages = [c[0] for c in calls]
    assert {"parse", "chunk", "embed", "write"} <= set(stages)
    embeds = [c for c in calls if c[0] == "embed"]
    assert ("parse", 3, 3) in calls and embeds[-1][1] == embeds[-1][2]
    assert calls[-1] == ("write", 1, 1)  # the last word is the publish


def test_reading_pins_one_generation_across_a_publish(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    with index.reading() as gen:
        (docs_dir / "rag.txt").write_text("Rewritten notes on hybrid retrieval.")
        index.add([docs_dir], progress=False)  # publishes and swaps while `gen` is pinned
        assert index.generation != gen.name
        assert any("BM25 is a lexical" in c.text for c in gen.iter_chunks())  # still readable, unchanged
    assert not any("BM25 is a lexical" in c.text for c in index.chunks())


class LiveVectorEmbedder(HashEmbedder):
    """A HashEmbedder that counts how many of the vectors it returned are still alive (referenced
    anywhere: a queue, a list, the writer); vectors a store copied in and released do not count."""

    def __init__(self, dim: int = 64):
        super().__init__(dim)
        self.live = self.peak = 0
        self.calls: list[int] = []

    def encode(self, texts, progress=False):
        import weakref

        vectors = super().encode(texts)
        self.calls.append(len(texts))
        self.live += len(vectors)
        self.peak = max(self.peak, self.live)
        weakref.finalize(vectors, self._released, len(vectors))
        return vectors

    def _released(self, n: int) -> None:
        self.live -= n


def test_add_streams_vectors_so_at_most_three_batches_are_alive(hash_index):
    from ragtune.rag.writer import stream_batch_size

    index = hash_index()
    index.embedder = embedder = LiveVectorEmbedder(64)
    docs = [Document(source=f"note-{i}", type="txt", elements=[Element(f"Note {i} is about topic {i % 17} and word{i}.")])
            for i in range(1500)]
    report = index.add_documents(docs, progress=False)
    batch = stream_batch_size(embedder)
    assert report.chunks_added == len(index) == len(index.store) == 1500
    assert max(embedder.calls) <= batch and sum(embedder.calls) == 1500
    # One batch being embedded, one queued, one being written; before, all 1500 (and a concatenated copy).
    assert embedder.peak <= 3 * batch < 1500
    hit = index.search("Note 1234 word1234", k=1, mode="dense")[0]
    assert hit.source == "note-1234"


def test_filters_still_work_after_a_repair(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    before = [h.chunk_id for h in index.search("quantise the model", k=5, filters={"file_type": "md"}, mode="dense")]
    assert before
    repaired = Index.repair(index.root, progress=False)
    assert repaired.generation != index.generation and len(repaired.store) == len(repaired)
    hits = repaired.search("quantise the model", k=5, filters={"file_type": "md"}, mode="dense")
    assert [h.chunk_id for h in hits] == before and all(h.source.endswith(".md") for h in hits)
    by_source = repaired.search("ranking", k=3, filters={"source": "*rag.txt"}, mode="dense")
    assert by_source and {h.source for h in by_source} == {str(docs_dir / "rag.txt")}


def test_the_index_folder_inside_a_folder_added_is_not_read_as_documents(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("Notes about adapters.\n")
    index = Index.open(tmp_path / "idx", create=True, embedder=HashEmbedder(dim=64))
    index.add([tmp_path], progress=False)
    report = index.add([tmp_path], progress=False)  # the index folder now holds files
    assert [Path(p).name for p in report.unchanged] == ["notes.txt"]
    assert not report.problems and not report.skipped and not report.warnings
    assert list(index.files()) == [str(tmp_path / "notes.txt")]
