"""The VectorStore protocol, one set of tests for every backend (FAISS, Milvus), through create/open_store."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.rag import store as store_module
from ragtune.rag.config import StoreConfig

if not hasattr(store_module, "create_store"):
    pytest.skip("needs the vector-store seam (rag/store.py create_store/open_store)", allow_module_level=True)

DIM = 24


def _vectors(n, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, DIM))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _meta(i):
    return {"source": f"/d/{i % 5}.md", "file_type": "md" if i % 2 else "pdf", "page": i % 3, "section": "s"}


@pytest.fixture(params=["faiss", "milvus"])
def config(request):
    if request.param == "faiss":
        return StoreConfig(backend="faiss", index_type="flat", use_gpu=False)
    uri = request.getfixturevalue("milvus_server_uri")  # tests/rag/conftest.py: a Milvus Lite server
    return StoreConfig(backend="milvus", uri=uri, index_type="flat")


@pytest.fixture
def store(config):
    made = store_module.create_store(config, DIM)
    yield made
    if hasattr(made, "drop"):
        made.drop()


def test_store_follows_the_protocol_and_describes_its_backend(store, config):
    assert isinstance(store, store_module.VectorStore)
    described = store.describe()
    assert described["backend"] == config.backend and described["format_version"] == 1


def test_exact_search_returns_the_brute_force_order(store):
    data = _vectors(200)
    ids = np.arange(10, 210)
    store.add(ids, data, [_meta(i) for i in range(200)])
    assert len(store) == 200
    queries = _vectors(4, seed=1)
    scores, found = store.search(queries, 5)
    for row, q in enumerate(queries):
        truth = ids[np.argsort(-(data @ q), kind="stable")[:5]]
        assert list(found[row]) == list(truth)
        assert scores[row, 0] == pytest.approx(float(data[truth[0] - 10] @ q), abs=1e-5)


def test_remove_reconstruct_and_allowed(store):
    data = _vectors(30)
    store.add(np.arange(30), data, [_meta(i) for i in range(30)])
    assert store.remove(np.array([1, 2, 500])) == 2 and len(store) == 28
    assert np.allclose(store.reconstruct([5, 0]), data[[5, 0]], atol=1e-6)
    _, found = store.search(data[1], 3, allowed=np.array([7, 9, 11]))
    assert sorted(found[0]) == [7, 9, 11]


def test_filters_are_applied_by_stores_that_take_them(store):
    data = _vectors(40)
    store.add(np.arange(40), data, [_meta(i) for i in range(40)])
    if not store.supports_filters:
        pytest.skip("this backend takes filters as `allowed` ids (tested above)")
    _, found = store.search(data[0], 40, filters={"file_type": "md", "page": 1})
    kept = sorted(int(i) for i in found[0] if i >= 0)
    assert kept == [i for i in range(40) if i % 2 and i % 3 == 1]


def test_persisted_store_reopens_from_its_description(store, config, tmp_path):
    data = _vectors(20)
    store.add(np.arange(20), data, [_meta(i) for i in range(20)])
    described = store.persist(tmp_path)
    again = store_module.open_store(described, tmp_path, DIM, config)
    assert len(again) == 20 and again.search(data[3], 1)[1][0, 0] == 3


def test_an_empty_store_pads_with_minus_one(store):
    _, ids = store.search(_vectors(2), 3)
    assert (ids == -1).all()
