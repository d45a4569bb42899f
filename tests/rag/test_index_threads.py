"""One Index shared by threads while another process publishes (issue 14, item 1: it segfaulted)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from ragtune.rag.types import Document, Element

# Publishes `rounds` generations, each changing one document, as fast as it can.
WRITER = textwrap.dedent(
    """
    import sys
    from ragtune.rag.index import Index
    from ragtune.rag.types import Document, Element
    root, rounds = sys.argv[1], int(sys.argv[2])
    index = Index.open(root)
    for n in range(rounds):
        doc = Document(source="moving", type="txt",
                       elements=[Element(f"Round {n}: speculative decoding drafts tokens with a small model.")])
        index.add_documents([doc], progress=False)
    print("WROTE", index.generation, flush=True)
    """
)

# 8 threads share ONE Index: refresh(), search(), get_chunks(), files() in a loop until the writer is done.
READERS = textwrap.dedent(
    """
    import json, subprocess, sys, threading
    from ragtune.rag.index import Index
    root, writer, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
    index = Index.open(root)
    proc = subprocess.Popen([sys.executable, "-c", writer, root, rounds], stdout=subprocess.PIPE, text=True)
    errors, counts, lock = [], {"searches": 0, "refreshes": 0, "empty": 0}, threading.Lock()

    def work():
        while proc.poll() is None:
            try:
                refreshed = index.refresh()
                hits = index.search("speculative decoding small model", k=3)
                index.get_chunks([1, 2, 3]) and index.files()
                sum(1 for _ in index.chunks())
                with lock:
                    counts["searches"] += 1
                    counts["refreshes"] += refreshed
                    counts["empty"] += not hits
            except Exception as exc:
                with lock:
                    import traceback; errors.append(traceback.format_exc())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    index.refresh()
    print(json.dumps({**counts, "errors": errors[:5], "n_errors": len(errors), "writer_rc": proc.returncode,
                      "final": index.generation, "writer": proc.stdout.read().strip()}))
    """
)


def test_threads_sharing_one_index_survive_another_process_publishing(hash_index):
    index = hash_index()
    docs = [Document(source=f"doc-{i}", type="txt", elements=[Element(f"Document {i} about LoRA rank {i}.")])
            for i in range(20)]
    docs.append(Document(source="moving", type="txt", elements=[Element("Speculative decoding, round start.")]))
    index.add_documents(docs, progress=False)
    for attempt in range(2):  # it crashed in 2 of 3 runs before the fix: run it more than once
        proc = subprocess.run([sys.executable, "-c", READERS, str(index.root), WRITER, "12"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"reader process died (rc {proc.returncode}): {proc.stderr[-2000:]}"
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["writer_rc"] == 0
        assert result["n_errors"] == 0, result["errors"]
        assert result["searches"] > 0 and result["empty"] == 0
        assert result["final"] == result["writer"].split()[-1]  # the readers ended on the last generation
