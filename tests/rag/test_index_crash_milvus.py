"""kill -9 during a Milvus-backed update: the vectors live in a server, outside the generation's rename.

The writer adds the new vectors to the shared collection before ``CURRENT`` moves and deletes the
replaced ones only after; readers drop ids their generation's chunk table does not know. So a writer
killed before the move leaves extra vectors in Milvus that no reader returns, and one killed after it
leaves the replaced vectors that no reader returns either; the next writer removes both kinds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("milvus_lite", reason="needs the [milvus] extra")

# A writer that updates the index and pauses at a chosen point, so the test can kill it there.
WRITER = textwrap.dedent(
    """
    import os, sys, time
    from ragtune.rag import index as ix, writer as wr
    root, docs, stage = sys.argv[1], sys.argv[2], sys.argv[3]

    def pause():
        print("PAUSED", flush=True)
        time.sleep(120)

    real_replace = os.replace
    def replace(src, dst):
        if stage == "before-current" and str(dst).endswith("CURRENT"):
            pause()
        result = real_replace(src, dst)
        if stage == "after-current" and str(dst).endswith("CURRENT"):
            pause()  # published; the replaced vectors are not deleted yet
        return result
    wr.os.replace = replace
    if stage == "mid-ingest":  # some vectors are in Milvus, the stream has not finished, nothing published
        from ragtune.rag import milvus_store as ms
        real_add = ms.MilvusStore.add
        def add(self, *args, **kwargs):
            real_add(self, *args, **kwargs)
            pause()
        ms.MilvusStore.add = add
    ix.Index.open(root).add([docs], progress=False)
    print("DONE", flush=True)
    """
)

OLD = "# LoRA\n\nLoRA freezes the pretrained weights and trains low-rank matrices for each adapted layer.\n"
NEW = "# LoRA\n\nSpeculative decoding drafts several tokens with a small model and verifies them at once.\n"


def _writer(root, docs, stage):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(docs), stage],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "PAUSED":
        proc.kill()
        pytest.fail(f"writer did not pause: {line!r} {proc.stderr.read()[-3000:]}")
    return proc


def _dense_sources(index, query):
    return [h.source.rsplit("/", 1)[-1] for h in index.search(query, k=10, mode="dense")]


@pytest.mark.parametrize("backend", ["milvus"], indirect=True)
@pytest.mark.parametrize("stage", ["mid-ingest", "before-current", "after-current"])
def test_kill_9_during_a_milvus_backed_update(hash_index, backend, docs_dir, stage):
    from ragtune.rag.index import Index

    (docs_dir / "lora.md").write_text(OLD)
    index = hash_index()
    index.add([docs_dir], progress=False)
    before = Index.open(index.root)
    old_ids = sorted(c.id for c in before.chunks())
    assert before.manifest["store"]["backend"] == "milvus"
    (docs_dir / "lora.md").write_text(NEW)  # the update: lora.md's chunks are replaced
    proc = _writer(index.root, docs_dir, stage)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    after = Index.open(index.root)
    store = after.store
    if stage in ("mid-ingest", "before-current"):
        # The previous state, fully: same generation and chunks; the old text is found, the new is not,
        # although the dead writer's vectors sit in the collection.
        assert after.generation == before.generation and sorted(c.id for c in after.chunks()) == old_ids
        assert len(store) > len(after)
        assert "lora.md" in _dense_sources(after, "LoRA freezes the pretrained weights low-rank matrices")
        hits = after.search("speculative decoding drafts tokens", k=10, mode="dense")
        assert all("Speculative" not in h.chunk.text for h in hits)
    else:
        # Published: the new text is found; the replaced chunks' vectors are still in Milvus but no reader
        # returns them.
        assert after.generation != before.generation
        assert len(store) > len(after)
        hits = after.search("LoRA freezes the pretrained weights low-rank matrices", k=10, mode="dense")
        assert all("freezes" not in h.chunk.text for h in hits)
        assert any("Speculative" in h.chunk.text for h in after.search("speculative decoding", k=3, mode="dense"))
    # A reader that opened before the crash still answers from its own generation.
    assert "lora.md" in _dense_sources(before, "LoRA freezes the pretrained weights low-rank matrices")

    # The next writer (another file arrives) is not blocked, completes the update and cleans the collection:
    # exactly one vector per chunk again.
    (docs_dir / "extra.md").write_text("# Extra\n\nGrouped-query attention shares keys across heads.\n")
    Index.open(index.root).add([docs_dir], progress=False)
    final = Index.open(index.root)
    assert any("Speculative" in h.chunk.text for h in final.search("speculative decoding", k=3, mode="dense"))
    assert len(final.store) == len(final)
