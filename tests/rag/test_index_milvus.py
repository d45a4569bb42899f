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
