"""FaissStore: exact and IVF indexes behind one API, updates, persistence, GPU when present."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.rag.config import StoreConfig
from ragtune.rag.store import FaissStore, gpu_available


def _vectors(n, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, dim))
    v = centers[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_exact_store_add_remove_search(tmp_path):
    data = _vectors(200)
    store = FaissStore(32)
    store.add(np.arange(100, 300), data)
    scores, ids = store.search(data[5], 1)
    assert ids[0, 0] == 105 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert store.remove(np.array([105])) == 1
    assert store.search(data[5], 1)[1][0, 0] != 105
    store.save(tmp_path / "v.faiss")
    again = FaissStore.open(tmp_path / "v.faiss", 32)
    assert len(again) == 199 and again.kind == "flat"


def test_auto_switches_to_ivf_past_the_threshold_with_high_recall(tmp_path):
    data = _vectors(6000)
    store = FaissStore(32, StoreConfig(ann_threshold=5000))
    store.add(np.arange(3000), data[:3000])
    assert store.kind == "flat"
    store.add(np.arange(3000, 6000), data[3000:])  # crosses the threshold: IVF once sealed, ids kept
    assert store.kind == "flat"
    store.seal()
    assert store.kind == "ivf" and len(store) == 6000
    exact = FaissStore(32)
    exact.add(np.arange(6000), data)
    queries = _vectors(50, seed=1)
    _, got = store.search(queries, 10)
    _, truth = exact.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    assert recall >= 0.95
    assert store.remove(np.arange(100)) == 100 and len(store) == 5900
    store.save(tmp_path / "ivf.faiss")
    again = FaissStore.open(tmp_path / "ivf.faiss", 32, StoreConfig(ann_threshold=5000))
    assert again.kind == "ivf" and len(again) == 5900
    assert np.allclose(again.reconstruct([200])[0], data[200], atol=1e-6)


def test_filtered_search_only_returns_allowed_ids():
    data = _vectors(500)
    for config in (StoreConfig(), StoreConfig(index_type="ivf")):
        store = FaissStore(32, config)
        store.add(np.arange(500), data)
        allowed = np.arange(0, 500, 7)
        _, ids = store.search(data[3], 5, allowed=allowed)
        assert set(ids[0]) <= set(allowed) and len(ids[0]) == 5


def test_all_vectors_round_trip_for_both_kinds():
    data = _vectors(1500)
    for config in (StoreConfig(), StoreConfig(index_type="ivf")):
        store = FaissStore(32, config)
        store.add(np.arange(10, 1510), data)
        store.seal()
        assert store.kind == ("ivf" if config.index_type == "ivf" else "flat")
        ids, vecs = store.all_vectors()
        order = np.argsort(ids)
        assert np.array_equal(ids[order], np.arange(10, 1510))
        assert np.allclose(vecs[order], data, atol=1e-6)


def test_dimension_mismatch_is_refused(tmp_path):
    from ragtune.errors import IndexFormatError

    store = FaissStore(32)
    with pytest.raises(IndexFormatError, match="dimension 16"):
        store.add(np.arange(2), np.zeros((2, 16), np.float32))
    store.add(np.arange(2), _vectors(2))
    store.save(tmp_path / "v.faiss")
    with pytest.raises(IndexFormatError, match="has dimension 32"):
        FaissStore.open(tmp_path / "v.faiss", 64)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs faiss-gpu and a CUDA device")
def test_gpu_search_matches_cpu():
    data = _vectors(2000)
    cpu = FaissStore(32, StoreConfig(use_gpu=False))
    gpu = FaissStore(32, StoreConfig(use_gpu=True))
    for s in (cpu, gpu):
        s.add(np.arange(2000), data)
    assert gpu.device == "gpu"
    _, a = cpu.search(data[:20], 5)
    _, b = gpu.search(data[:20], 5)
    assert (a == b).mean() > 0.99


# -- the seam: create_store / open_store, descriptions in the manifest ----------------------------


def test_create_and_open_store_round_trip_through_the_description(tmp_path):
    from ragtune.rag.store import VectorStore, create_store, open_store

    store = create_store(StoreConfig(), 32)
    assert isinstance(store, VectorStore) and store.supports_filters is False
    store.add(np.arange(5, 10), _vectors(5), [{"source": "a"}] * 5)
    description = store.persist(tmp_path)
    assert description["backend"] == "faiss" and description["format_version"] == 1
    again = open_store(description, tmp_path, 32, StoreConfig())
    assert len(again) == 5 and again.search(_vectors(5)[2], 1)[1][0, 0] == 7


@pytest.mark.parametrize(
    "description, match",
    [
        ({"backend": "cassandra", "format_version": 1}, "backend 'cassandra'.*known: faiss, milvus"),
        ({"backend": "faiss", "format_version": 2}, "format version 2.*upgrade ragtune"),
        ({"backend": "faiss", "format_version": "1"}, "not an integer"),
        (["faiss"], "must be a mapping"),
    ],
)
def test_unknown_backend_or_newer_format_is_refused(tmp_path, description, match):
    from ragtune.errors import IndexFormatError
    from ragtune.rag.store import open_store

    with pytest.raises(IndexFormatError, match=match):
        open_store(description, tmp_path, 32, StoreConfig())


def test_milvus_backend_is_imported_only_when_used(monkeypatch):
    import sys

    from ragtune.errors import IndexFormatError
    from ragtune.rag.store import create_store

    import subprocess

    probe = "import sys, ragtune.rag.index; print('ragtune.rag.milvus_store' in sys.modules, 'faiss' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.split() == ["False", "False"]
    monkeypatch.setitem(sys.modules, "ragtune.rag.milvus_store", None)  # as if pymilvus were absent
    with pytest.raises(IndexFormatError, match=r"'milvus' vector-store backend is not installed.*ragtune\[milvus\]"):
        create_store(StoreConfig(backend="milvus", uri="./m.db"), 32)


def test_fork_is_independent_of_the_published_store():
    store = FaissStore(32)
    store.add(np.arange(10), _vectors(10))
    fork = store.fork()
    fork.remove(np.arange(5))
    fork.add(np.arange(100, 103), _vectors(3, seed=2))
    assert len(store) == 10 and len(fork) == 8


def test_manifest_records_the_store_description(hash_index, docs_dir):
    import json

    index = hash_index()
    index.add([docs_dir], progress=False)
    manifest = json.loads((index.root / index.generation / "manifest.json").read_text())
    assert manifest["store"]["backend"] == "faiss" and manifest["store"]["count"] == len(index)
    assert set(manifest["files"]) >= {"chunks.sqlite", "vectors.faiss", "bm25/ids.npy"}


def test_chunk_ids_are_never_reused_across_generations(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    first = set(index.filter_ids({}))
    index.remove([str(docs_dir / "rag.txt")])
    (docs_dir / "rag.txt").write_text("Retrieval notes, second edition.")
    index.add([docs_dir], progress=False)
    new = set(index.filter_ids({})) - first
    assert new and min(new) > max(first)


def test_server_side_store_is_edited_in_place_and_readers_drop_foreign_ids(tmp_path, docs_dir):
    import _shared_store

    from ragtune.rag.config import IndexConfig
    from ragtune.rag.embed import HashEmbedder
    from ragtune.rag.index import Index

    _shared_store.register()
    config = IndexConfig()
    config.store.backend, config.store.uri = "shared", str(tmp_path / "server.faiss")
    index = Index.open(tmp_path / "idx", create=True, config=config, embedder=HashEmbedder(dim=64))
    index.add([docs_dir], progress=False)
    server = index.store
    assert not (index.root / index.generation / "vectors.faiss").exists()  # the vectors live "in the server"
    assert server.ids() == set(index.filter_ids({}))
    reader = Index.open(index.root)  # pinned on this generation
    (docs_dir / "rag.txt").write_text("Hybrid search fuses dense and sparse rankings.")
    index.add([docs_dir], progress=False)
    assert server.ids() == set(index.filter_ids({}))  # replaced ids removed after the publish
    # The old reader's generation lost its rag.txt vectors to the server, but it never returns a ghost:
    hits = reader.search("hybrid dense sparse rankings", k=5, mode="dense")
    assert all(h.chunk_id in {c.id for c in reader.chunks()} for h in hits)


def test_streamed_ivf_store_trains_its_cells_on_every_vector_not_the_first_batch(tmp_path):
    from ragtune.rag.bulk_ingest import Record, stream_into_store
    from ragtune.rag.store import ivf_nlist

    data = _vectors(8000)
    store = FaissStore(32, StoreConfig(index_type="ivf"))
    records = (Record(i, str(i)) for i in range(8000))
    stream_into_store(store, records, lambda texts: data[[int(t) for t in texts]], batch_size=1024)
    store.persist(tmp_path)
    assert store.kind == "ivf" and store.index.nlist == ivf_nlist(8000) > ivf_nlist(1024)
    again = FaissStore.open(tmp_path / "vectors.faiss", 32)
    assert again.kind == "ivf" and len(again) == 8000
