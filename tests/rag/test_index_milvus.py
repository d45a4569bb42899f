"""Milvus-specific index behaviour: a repair moves the vectors to a new collection, with the filter metadata,
and the old collection is dropped together with the last generation that names it."""

from __future__ import annotations

import pytest

pytest.importorskip("milvus_lite", reason="needs the [milvus] extra")


@pytest.mark.parametrize("backend", ["milvus"], indirect=True)
def test_repair_moves_to_a_new_collection_and_drops_the_old_one_with_its_generation(hash_index, backend, docs_dir):
    from ragtune.rag.index import Index

    index = hash_index()
    index.add([docs_dir], progress=False)
    old = index.manifest["store"]["collection"]
    client = index.store.client
    repaired = Index.repair(index.root, progress=False)
    new = repaired.manifest["store"]["collection"]
    assert new != old and client.has_collection(new)
    assert client.has_collection(old)  # the generation before the repair is still kept: readers may be on it
    assert index.search("QLoRA", k=2, filters={"file_type": "md"}, mode="dense")  # and it still answers
    (docs_dir / "extra.md").write_text("# Extra\n\nGrouped-query attention shares keys across heads.\n")
    repaired.add([docs_dir], progress=False)  # the pre-repair generation is dropped now, and its collection
    assert not client.has_collection(old) and client.has_collection(new)
    hits = Index.open(index.root).search("grouped-query attention", k=3, filters={"file_type": "md"}, mode="dense")
    assert hits and hits[0].source.endswith("extra.md")


@pytest.mark.parametrize("backend", ["milvus"], indirect=True)
def test_a_released_collection_is_loaded_again_when_the_index_is_reopened(hash_index, backend, docs_dir):
    # Another process, or a restarted server, finds the collection "released": dense search, updates and removes
    # all failed ("call load() before search") in every process but the one that built the index.
    from ragtune.rag.index import Index

    index = hash_index()
    index.add([docs_dir], progress=False)
    collection, client = index.manifest["store"]["collection"], index.store.client
    client.release_collection(collection)
    reopened = Index.open(index.root)
    assert reopened.search("QLoRA", k=2, mode="dense")
    (docs_dir / "lora.md").write_text("# LoRA\n\nChanged text about LoRA ranks.\n")
    assert reopened.add([docs_dir], progress=False).updated  # an update removes the old vectors: it needs a load


@pytest.mark.parametrize("backend", ["milvus"], indirect=True)
def test_a_failure_after_publishing_keeps_the_published_generation(hash_index, backend, docs_dir, monkeypatch):
    # The replaced vectors are removed from a shared store only after CURRENT names the new generation. A failure
    # there used to clean up as if nothing was published: it deleted the new generation, CURRENT named nothing,
    # and every later command refused the index.
    from ragtune.rag.index import Index

    index = hash_index()
    index.add([docs_dir], progress=False)
    (docs_dir / "lora.md").write_text("# LoRA\n\nChanged text about LoRA ranks.\n")
    store_type = type(index.store)
    real_remove = store_type.remove
    calls = []

    def failing_remove(self, ids):
        import sys

        if sys._getframe(1).f_code.co_name == "_verify_and_point":  # the remove that runs after the publish
            calls.append(len(ids))
            raise RuntimeError("connection reset")
        return real_remove(self, ids)

    monkeypatch.setattr(store_type, "remove", failing_remove)
    report = index.add([docs_dir], progress=False)
    monkeypatch.setattr(store_type, "remove", real_remove)
    assert calls and report.updated and any("removing" in w.reason and "connection reset" in w.reason for w in report.warnings)
    again = Index.open(index.root)  # the published generation stands
    assert any("ranks" in h.chunk.text for h in again.search("LoRA ranks", k=3, mode="bm25"))
    (docs_dir / "rag.txt").write_text("Retrieval notes, changed again.\n")
    again.add([docs_dir], progress=False)  # the next write finishes the pending removes
