"""MilvusStore against a real Milvus Lite started by the tests in a temporary directory."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.errors import ConfigError, IndexFormatError, RagtuneError

try:  # Milvus Lite is pure Python (milvus-lite >= 3): it runs wherever pymilvus installs
    import milvus_lite  # noqa: F401
    import pymilvus  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without the [milvus] extra
    pytest.skip(f"Milvus tests need `pip install -e .[milvus]` ({exc})", allow_module_level=True)

from ragtune.rag.milvus_expr import filter_expression, glob_to_like, quote
from ragtune.rag.milvus_store import (
    MilvusError,
    create_milvus_store,
    milvus_config,
    open_milvus_store,
)

DIM = 16


def _vectors(n, dim=DIM, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _meta(i):
    return {"source": f"/docs/{'a_b' if i % 3 == 0 else 'axb' if i % 3 == 1 else 'c'}.pdf",
            "file_type": "pdf" if i % 2 else "md", "page": i % 4, "section": f"sec {i % 5}"}


@pytest.fixture(scope="module")
def lite_uri(tmp_path_factory):
    return str(tmp_path_factory.mktemp("milvus") / "vectors.db")


@pytest.fixture
def store(lite_uri):
    made = create_milvus_store(milvus_config(uri=lite_uri), DIM)
    yield made
    made.drop()


def _exact(data, ids, query, k, mask=None):
    scores = data @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [int(ids[i]) for i in order if np.isfinite(scores[i])]


# Exact search against brute force, remove/reconstruct and `allowed` are the protocol's tests, run for
# Milvus too (tests/rag/test_store_protocol.py); this file keeps what only Milvus has.


def test_remove_counts_only_present_ids_and_removed_ids_are_never_returned(store):
    data = _vectors(50)
    store.add(np.arange(1, 51), data)
    assert store.remove(np.array([3, 4, 999])) == 2
    assert len(store) == 48
    _, found = store.search(data[2], 5)
    assert 3 not in found[0] and 4 not in found[0]


def test_writing_the_same_ids_again_overwrites_instead_of_duplicating(store):
    # A writer that crashed before publishing left ids 1..20; the retry reuses them with new vectors.
    store.add(np.arange(1, 21), _vectors(20, seed=5))
    fresh = _vectors(20, seed=6)
    store.add(np.arange(1, 21), fresh)
    assert len(store) == 20
    assert np.allclose(store.reconstruct([7, 1]), fresh[[6, 0]], atol=1e-6)


def test_filters_run_inside_milvus_before_the_top_k_cut(store):
    data = _vectors(120)
    store.add(np.arange(120), data, [_meta(i) for i in range(120)])
    q = _vectors(1, seed=9)[0]
    metas = [_meta(i) for i in range(120)]
    cases = [
        ({"file_type": "pdf"}, lambda m: m["file_type"] == "pdf"),
        ({"page": [1, 2]}, lambda m: m["page"] in (1, 2)),
        ({"section": "sec 3", "file_type": "md"}, lambda m: m["section"] == "sec 3" and m["file_type"] == "md"),
        # `_` is a literal here; LIKE would also take `axb.pdf`: the exact glob check removes it
        ({"source": "a_b.pdf"}, lambda m: m["source"].endswith("/a_b.pdf")),
        ({"source": "/docs/a?b.*"}, lambda m: m["source"] in ("/docs/a_b.pdf", "/docs/axb.pdf")),
    ]
    for filters, keep in cases:
        mask = np.array([keep(m) for m in metas])
        _, found = store.search(q, 10, filters=filters)
        assert list(found[0]) == _exact(data, np.arange(120), q, 10, mask), filters


def test_allowed_ids_and_filters_combine(store):
    data = _vectors(40)
    store.add(np.arange(40), data, [_meta(i) for i in range(40)])
    _, found = store.search(data[0], 10, allowed=np.array([0, 1, 2, 3, 4, 5]), filters={"file_type": "md"})
    assert sorted(i for i in found[0] if i >= 0) == [0, 2, 4]
    assert list(found[0][3:]) == [-1] * 7  # padded like FAISS
    _, none = store.search(data[0], 3, allowed=np.array([], dtype=np.int64))
    assert list(none[0]) == [-1, -1, -1]


def test_quotes_and_backslashes_in_values_cannot_inject_expressions(store):
    data = _vectors(10)
    tricky = 'x" or id >= 0 or section == "'
    metas = [{"source": f"/d/{i}.txt", "file_type": "txt", "page": 1, "section": tricky if i == 4 else 'back\\slash "q"'}
             for i in range(10)]
    store.add(np.arange(10), data, metas)
    _, found = store.search(data[0], 10, filters={"section": tricky})
    assert [i for i in found[0] if i >= 0] == [4]
    _, found = store.search(data[0], 10, filters={"section": 'back\\slash "q"'})
    assert sorted(i for i in found[0] if i >= 0) == [0, 1, 2, 3, 5, 6, 7, 8, 9]


def test_filter_translation_escapes_and_rejects_keys_milvus_cannot_evaluate():
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert glob_to_like("*/x?[ab].pdf") == "%/x__.pdf"
    assert filter_expression({"page": 2}, np.array([5, 6])) == "page in [2] and id in [5, 6]"
    with pytest.raises(ConfigError, match="author"):
        filter_expression({"author": "me"})
    with pytest.raises(ConfigError, match="page"):
        filter_expression({"page": "three"})


def test_persist_flushes_and_the_description_reopens_the_same_vectors(store, lite_uri):
    data = _vectors(30)
    store.add(np.arange(30), data)
    described = store.persist()
    assert described["backend"] == "milvus" and described["format_version"] == 1
    assert described["collection"] == store.collection and "token" not in described
    again = open_milvus_store(described, DIM)
    assert len(again) == 30 and again.search(data[11], 1)[1][0, 0] == 11


def test_an_unreadable_description_fails_with_a_clear_message(store):
    described = store.describe()
    with pytest.raises(IndexFormatError, match="format version 2.*upgrade"):
        open_milvus_store({**described, "format_version": 2}, DIM)
    with pytest.raises(IndexFormatError, match="dimension|-d vectors"):
        open_milvus_store(described, DIM * 2)
    with pytest.raises(IndexFormatError, match="missing"):
        open_milvus_store({**described, "collection": "ragtune_gone"}, DIM)


def test_empty_store_searches_to_padding_and_bad_settings_name_the_field(store):
    scores, ids = store.search(_vectors(2), 4)
    assert ids.shape == (2, 4) and (ids == -1).all() and np.isneginf(scores).all()
    with pytest.raises(ConfigError, match="store.uri"):
        milvus_config(uri="vectors.sqlite")
    with pytest.raises(ConfigError, match="store.consistency_level"):
        milvus_config(uri="http://localhost:19530", consistency_level="Sometimes")
    with pytest.raises(IndexFormatError, match="dimension 8"):
        store.add(np.arange(2), np.zeros((2, 8), np.float32))


def test_an_unreachable_server_is_one_clear_error():
    config = milvus_config(uri="http://127.0.0.1:9", collection="c", timeout=2)
    from ragtune.rag.milvus_store import MilvusStore

    with pytest.raises(MilvusError, match="127.0.0.1:9") as info:
        MilvusStore(DIM, config).create()
    assert isinstance(info.value, RagtuneError)


def test_server_defaults_to_hnsw_and_a_local_file_to_exact_search():
    assert milvus_config(uri="http://milvus:19530").resolved_index_type == "HNSW"
    assert milvus_config(uri="./x.db").resolved_index_type == "FLAT"
    assert milvus_config(uri="./x.db").uri.startswith("/")  # recorded absolute


def test_a_crashed_writers_contiguous_id_range_is_removed_in_one_expression(store):
    store.add(np.arange(1, 11), _vectors(10))
    store.add(np.arange(100, 20_100, 50), _vectors(400, seed=3))  # sparse ids inside a large range
    assert store.remove(np.arange(50, 30_000)) == 400  # present ones only
    assert len(store) == 10


def test_backend_entry_points_build_from_the_index_store_config(lite_uri):
    from types import SimpleNamespace

    from ragtune.rag import milvus_store

    with pytest.raises(ConfigError, match="store.uri.*--uri"):
        milvus_store.create(SimpleNamespace(uri=None, index_type="auto", nprobe=None), DIM)
    made = milvus_store.create(SimpleNamespace(uri=lite_uri, index_type="ivf", nprobe=8,
                                               milvus={"consistency_level": "Bounded"}), DIM)
    try:
        assert made.index_type == "IVF_FLAT" and made.describe()["nprobe"] == 8
        assert made.describe()["consistency_level"] == "Bounded"
        made.add(np.arange(3), _vectors(3))
        again = milvus_store.open(made.persist(), None, DIM, SimpleNamespace(uri="elsewhere.db"))
        assert again.collection == made.collection and len(again) == 3
    finally:
        made.drop()


def test_long_non_ascii_metadata_is_clipped_to_the_field_sizes(store):
    section = "é" * 1000  # 2000 bytes of UTF-8 for a 1024-byte field
    store.add(np.arange(2), _vectors(2), [{"source": "/d/ü.md", "file_type": "md", "page": None, "section": section}] * 2)
    rows = store.client.query(store.collection, filter="id >= 0", output_fields=["section", "page", "source"])
    assert {r["section"] for r in rows} == {"é" * 512} and {r["page"] for r in rows} == {-1}
    _, found = store.search(_vectors(1), 5, filters={"source": "ü.md"})
    assert sorted(found[0][:2]) == [0, 1]
