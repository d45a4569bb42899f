"""Streaming ingestion: bounded memory, errors surface, and two worker processes fill one Milvus collection."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ragtune.rag.bulk_ingest import Record, batched, shard, stream_into_store
from ragtune.rag.embed import HashEmbedder

REPO = Path(__file__).resolve().parents[2]


class RecordingStore:
    """Keeps what it was given and, per add, how far the producer had read the source by then."""

    def __init__(self, source_position, fail_at: int | None = None):
        self.position = source_position
        self.fail_at = fail_at
        self.ids: list[int] = []
        self.read_ahead: list[int] = []

    def add(self, ids, vectors, metadata=None):
        if self.fail_at is not None and len(self.ids) >= self.fail_at:
            raise RuntimeError("server went away")
        self.read_ahead.append(self.position[0] - len(self.ids) - len(ids))
        self.ids.extend(int(i) for i in ids)
        assert vectors.shape == (len(ids), 32) and len(metadata) == len(ids)


def _counting_records(n, position):
    for i in range(n):
        position[0] += 1
        yield Record(i + 1, f"chunk number {i} about topic {i % 7}", {"source": f"f{i % 3}.txt"})


def test_stream_reads_the_source_lazily_so_memory_stays_bounded():
    position = [0]
    store = RecordingStore(position)
    report = stream_into_store(store, _counting_records(5000, position), HashEmbedder(32).encode,
                               batch_size=100, queue_depth=1)
    assert report.rows == 5000 and report.batches == 50 and store.ids == list(range(1, 5001))
    # Never more than queue_depth + 2 batches beyond what was written: one embedding, one queued, one writing.
    assert max(store.read_ahead) <= 3 * 100


def test_a_failing_write_stops_the_stream_and_raises_to_the_caller():
    position = [0]
    store = RecordingStore(position, fail_at=300)
    with pytest.raises(RuntimeError, match="server went away"):
        stream_into_store(store, _counting_records(100_000, position), HashEmbedder(32).encode, batch_size=100)
    assert len(store.ids) == 300 and position[0] < 1000  # stopped early, did not embed the rest


def test_shards_partition_the_records_by_id():
    records = [Record(i, "t") for i in range(1, 11)]
    parts = [[r.id for r in shard(records, w, 3)] for w in range(3)]
    assert sorted(sum(parts, [])) == list(range(1, 11)) and not set(parts[0]) & set(parts[1])
    assert [len(b) for b in batched(range(7), 3)] == [3, 3, 1]
    with pytest.raises(ValueError):
        list(shard(records, 3, 3))


WORKER = textwrap.dedent(
    """
    import sys
    from ragtune.rag.bulk_ingest import Record, shard, stream_into_store
    from ragtune.rag.embed import HashEmbedder
    from ragtune.rag.milvus_store import MilvusStore, milvus_config

    uri, collection, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = MilvusStore(64, milvus_config(uri=uri, collection=collection)).check()
    records = (Record(i, f"document {i} talks about subject {i % 13}", {"source": f"w{worker}/{i}.txt"})
               for i in range(1, 1201))
    report = stream_into_store(store, shard(records, worker, 2), HashEmbedder(64).encode, batch_size=128)
    print(report.rows)
    """
)


def test_two_worker_processes_write_disjoint_shards_into_one_collection(tmp_path):
    pytest.importorskip("milvus_lite", reason="needs the [milvus] extra")
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    from ragtune.rag.milvus_store import create_milvus_store, milvus_config

    # A Milvus Lite file belongs to one process; several writers talk to a server, as with a real cluster.
    server, db, port = start_server_in_thread(str(tmp_path / "shared.db"), port=0)
    try:
        uri = f"http://127.0.0.1:{port}"
        store = create_milvus_store(milvus_config(uri=uri, index_type="FLAT"), 64)
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        procs = [subprocess.Popen([sys.executable, str(script), uri, store.collection, str(w)], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in (0, 1)]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
        assert [int(o[0].split()[-1]) for o in outs] == [600, 600]
        assert len(store) == 1200
        rows = store.client.query(store.collection, filter="id >= 0", output_fields=["id", "source"], limit=5000)
        assert sorted(r["id"] for r in rows) == list(range(1, 1201))  # each id exactly once
        assert all(r["source"].startswith(f"w{r['id'] % 2}/") for r in rows)  # written by its own worker
        emb = HashEmbedder(64)
        for i in (7, 8):  # one chunk from each worker holds its own text's vector and is found by it
            vec = emb.encode([f"document {i} talks about subject {i % 13}"])
            assert np.allclose(store.reconstruct([i]), vec, atol=1e-6)
            assert i in store.search(vec, 5)[1][0]
        store.drop()
        store.close()
    finally:
        server.stop(grace=0)
        db.close()
