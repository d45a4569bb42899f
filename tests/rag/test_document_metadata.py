"""A document's own metadata reaches its chunks, so a filter can match it; bad metadata is refused by name."""

from __future__ import annotations

from ragtune.rag.types import Document, Element


def _doc(source: str, text: str, **metadata) -> Document:
    return Document(source=source, type="txt", elements=[Element(text)], metadata=metadata)


def test_document_metadata_is_on_every_chunk_and_filters_match_it(hash_index):
    index = hash_index()
    index.add_documents([_doc("a", "Widgets made in spring.", year="2024", team="red"),
                         _doc("b", "Widgets made in autumn.", year="2023")], progress=False)
    hits = index.search("widgets", k=5, filters={"year": "2024"})
    assert [h.source for h in hits] == ["a"]
    assert hits[0].chunk.metadata["team"] == "red" and hits[0].chunk.metadata["file_type"] == "txt"
    assert {h.source for h in index.search("widgets", k=5, filters={"year": ["2023", "2024"]})} == {"a", "b"}


def test_a_changed_label_reaches_the_chunks_though_the_text_did_not_change(hash_index):
    index = hash_index()
    index.add_documents([_doc("a", "Widgets made in spring.", year="2024")], progress=False)
    report = index.add_documents([_doc("a", "Widgets made in spring.", year="2025")], progress=False)
    assert report.updated == ["a"]
    assert index.search("widgets", k=1, filters={"year": "2025"})[0].source == "a"


def test_bad_metadata_is_refused_by_document_and_key_and_nothing_stored_is_lost(hash_index):
    index = hash_index()
    index.add_documents([_doc("a", "Widgets made in spring.", year="2024")], progress=False)
    report = index.add_documents([_doc("a", "Changed widgets.", year=["2024"]),
                                  _doc("b", "Gadgets.", page="7"),
                                  _doc("c", "Gizmos.", **{"bad key": "x"})], progress=False)
    reasons = {p.path: p.reason for p in report.problems}
    assert "list values cannot be filtered on" in reasons["a"]
    assert "'page' is the index's own" in reasons["b"]
    assert "use letters, digits" in reasons["c"]
    assert index.search("widgets", k=1)[0].chunk.text == "Widgets made in spring."  # the old version kept


def test_files_keep_their_size_and_time_out_of_chunk_metadata(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    meta = next(iter(index.chunks())).metadata
    assert "size" not in meta and "mtime" not in meta and meta["file_type"]
