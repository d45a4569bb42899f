"""Crash safety and concurrency: kill -9 mid-write, a second writer, readers during a write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ragtune.errors import IndexLockedError
from ragtune.rag.index import Index

# A writer that pauses at a chosen point of the publish sequence, so the test can kill it there.
WRITER = textwrap.dedent(
    """
    import os, sys, time
    from ragtune.rag import index as ix, writer as wr
    root, new_file, stage = sys.argv[1], sys.argv[2], sys.argv[3]
    if os.environ.get("SHARED_STORE"):
        import _shared_store
        _shared_store.register()

    def pause():
        print("PAUSED", flush=True)
        time.sleep(120)

    if stage == "files-written":      # the new generation is on disk, not yet published
        original = wr._fsync_tree
        wr._fsync_tree = lambda p: (original(p), pause())
    elif stage == "before-current":   # generation renamed into place, CURRENT not yet replaced
        real_replace = os.replace
        def replace(src, dst):
            if str(dst).endswith("CURRENT"):
                pause()
            return real_replace(src, dst)
        wr.os.replace = replace
    index = ix.Index.open(root)
    index.add([new_file], progress=False)
    print("DONE", flush=True)
    """
)


def _start_writer(root, new_file, stage, shared=False):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    if shared:
        env["SHARED_STORE"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(new_file), stage],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    line = proc.stdout.readline()
    if line.strip() != "PAUSED":
        proc.kill()
        pytest.fail(f"writer did not pause: {line!r} {proc.stderr.read()}")
    return proc


def _state(root):
    """What a reader sees. An in-generation store (FAISS) holds exactly its generation's vectors, so their
    count is compared; a shared one (Milvus) may also hold a killed writer's vectors, which no reader
    returns (test_index_crash_milvus.py), so there every chunk of the generation must have its vector."""
    index = Index.open(root)
    ids = index.filter_ids({})
    vectors = len(index.store) if hasattr(index.store, "fork") else len(index.reconstruct(ids))
    return index.generation, sorted(index.files()), sorted(c.id for c in index.chunks()), vectors


@pytest.mark.parametrize("stage", ["files-written", "before-current"])
def test_kill_9_mid_update_leaves_previous_index_loadable(hash_index, docs_dir, tmp_path, stage):
    index = hash_index()
    index.add([docs_dir], progress=False)
    before = _state(index.root)
    new = tmp_path / "new.md"
    new.write_text("# New\n\nSpeculative decoding drafts tokens with a small model.")
    proc = _start_writer(index.root, new, stage)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _state(index.root) == before  # previous index intact and loadable
    hits = Index.open(index.root).search("speculative decoding", k=3)
    assert all(not h.source.endswith("new.md") for h in hits)
    # The next writer is not blocked by the dead one and cleans up its debris.
    again = Index.open(index.root)
    report = again.add([new], progress=False)
    assert report.added == [str(new)]
    assert not [p for p in index.root.iterdir() if p.name.startswith(("tmp-", "CURRENT.tmp"))]
    assert Index.open(index.root).search("speculative decoding", k=1)[0].source.endswith("new.md")


def test_second_writer_is_refused_while_readers_keep_working(hash_index, docs_dir, tmp_path):
    index = hash_index()
    index.add([docs_dir], progress=False)
    before = _state(index.root)
    new = tmp_path / "new.md"
    new.write_text("# New\n\nGrouped-query attention shares keys and values across heads.")
    proc = _start_writer(index.root, new, "files-written")
    try:
        other = tmp_path / "other.md"
        other.write_text("# Other\n\nA second writer's document.")
        with pytest.raises(IndexLockedError, match=r"being written by pid \d+.*wait for it"):
            Index.open(index.root).add([other], progress=False)
        # Readers see the complete previous generation during the write.
        assert _state(index.root) == before
        assert Index.open(index.root).search("retrieval", k=2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_concurrent_reader_sees_old_then_new_generation(hash_index, docs_dir, tmp_path):
    index = hash_index()
    index.add([docs_dir], progress=False)
    reader = Index.open(index.root)
    old_generation = reader.generation
    new = tmp_path / "new.md"
    new.write_text("# New\n\nFlash attention tiles the attention computation.")
    writer = Index.open(index.root)
    writer.add([new], progress=False)
    assert reader.generation == old_generation and len(reader.search("flash attention tiles", k=5)) > 0
    assert reader.refresh() and reader.generation == writer.generation
    assert reader.search("flash attention tiles", k=1, mode="bm25")[0].source.endswith("new.md")


@pytest.mark.parametrize("stage", ["files-written", "before-current"])
def test_kill_9_with_a_server_side_store_leaves_the_previous_generation_searchable(tmp_path, docs_dir, stage):
    import _shared_store

    from ragtune.rag.config import IndexConfig
    from ragtune.rag.embed import HashEmbedder

    _shared_store.register()
    config = IndexConfig()
    config.store.backend, config.store.uri = "shared", str(tmp_path / "server.faiss")
    index = Index.open(tmp_path / "idx", create=True, config=config, embedder=HashEmbedder(dim=64))
    index.add([docs_dir], progress=False)
    before = set(index.filter_ids({}))
    new = tmp_path / "new.md"
    new.write_text("# New\n\nSpeculative decoding drafts tokens with a small model.")
    proc = _start_writer(index.root, new, stage, shared=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    server = index.store
    assert server.ids() > before  # the crashed writer's vectors reached the "server" before the publish
    reader = Index.open(index.root)
    assert set(reader.filter_ids({})) == before
    hits = reader.search("speculative decoding drafts tokens", k=10, mode="dense")
    assert hits and all(not h.source.endswith("new.md") for h in hits)  # orphans are never returned
    # The next writer removes the orphans (ids above the published high-water mark) and reuses no id.
    crashed = server.ids() - before
    reader.add([new], progress=False)
    assert server.ids() == set(reader.filter_ids({}))
    assert not (set(reader.filter_ids({})) & crashed)
