"""The rag/ test matrix: the index, crash and retrieval tests run against FAISS and against Milvus.

Every test in :data:`MATRIX_MODULES` that uses the ``hash_index`` factory runs twice, ``[faiss]`` and
``[milvus]``. The Milvus leg talks to a Milvus Lite *server* the session starts in a temporary directory
(``milvus-lite``'s gRPC server on a free port), not to a Lite file: the crash tests run writers in child
processes, and a Lite file can be opened by one process only, exactly like a real deployment where every
process reaches one server by URI. Each index gets its own collection on that server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# tests/rag is on the pythonpath, so `from conftest import CORPORA` (tests/rag/test_ingest.py) finds this file
# first: keep the root conftest's constants importable from here too.
REPO = Path(__file__).resolve().parents[2]
CORPORA = REPO / "corpora"

MATRIX_MODULES = {"test_index.py", "test_index_crash.py", "test_retrieve.py"}
#: Tests whose assertions are FAISS-specific (none now: the crash tests compare what a reader sees).
FAISS_ONLY: set[str] = set()


def pytest_generate_tests(metafunc):
    module = metafunc.module.__name__.rsplit(".", 1)[-1] + ".py"
    if module in MATRIX_MODULES and "hash_index" in metafunc.fixturenames:
        backends = ["faiss"] if f"{module}::{metafunc.function.__name__}" in FAISS_ONLY else ["faiss", "milvus"]
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture(scope="session")
def milvus_server_uri(tmp_path_factory):
    pytest.importorskip("milvus_lite", reason="the milvus leg needs `pip install -e .[milvus]`")
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    server, db, port = start_server_in_thread(str(tmp_path_factory.mktemp("milvus") / "matrix.db"), port=0)
    yield f"http://127.0.0.1:{port}"
    server.stop(grace=0)
    db.close()


@pytest.fixture
def backend(request):
    name = getattr(request, "param", "faiss")
    if name == "milvus":
        from ragtune.rag import store

        if not hasattr(store, "create_store"):
            pytest.skip("the milvus leg needs the vector-store seam (rag/store.py create_store/open_store)")
    return name


@pytest.fixture
def hash_index(hash_index, backend, request):
    """The root ``hash_index`` factory, building Milvus-backed indexes on the milvus leg (exact FLAT
    search, so results compare with FAISS' exact index)."""
    if backend == "faiss":
        return hash_index
    uri = request.getfixturevalue("milvus_server_uri")

    def make(name: str = "index", **config_overrides):
        config_overrides.setdefault("store__backend", "milvus")
        config_overrides.setdefault("store__uri", uri)
        config_overrides.setdefault("store__index_type", "flat")
        return hash_index(name, **config_overrides)

    return make
