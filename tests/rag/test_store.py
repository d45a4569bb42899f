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
    store.add(np.arange(3000, 6000), data[3000:])  # crosses the threshold: rebuilt as IVF, ids kept
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
