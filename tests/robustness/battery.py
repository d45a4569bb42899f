"""The issue-14 battery as functions: each runs one family of hostile or unlucky trials against an index
and returns a :class:`Tally` of how many trials ran and how many lost, corrupted or crashed anything.

The suite (``tests/robustness/``) runs them at sizes that keep ``make test`` to a few minutes and asserts
zero; ``bench/robustness.py`` runs them bigger and prints the figures. Everything uses the HashEmbedder,
so a trial costs parsing, SQLite and FAISS, not a neural model.

Definitions used in every tally:
- *lost*: something stored before the trial, or a good file of the trial's batch, is missing after it;
- *corrupted*: the index does not open, fails ``verify(full=True)``, or its chunk, vector and BM25
  counts disagree;
- *crashed*: an exception other than a :class:`~ragtune.errors.RagtuneError`, a hang past its timeout,
  or a process that died by a signal it was not sent.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ragtune.errors import IndexLockedError, IndexWriteError, RagtuneError
from ragtune.rag.embed import HashEmbedder
from ragtune.rag.index import Index
from ragtune.rag.types import Document, Element


@dataclass
class Tally:
    name: str
    trials: int = 0
    lost: int = 0
    corrupted: int = 0
    crashed: int = 0
    notes: list[str] = field(default_factory=list)

    def bad(self, kind: str, note: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.notes.append(f"{kind}: {note}")

    @property
    def ok(self) -> bool:
        return not (self.lost or self.corrupted or self.crashed)

    def line(self) -> str:
        return (f"{self.name:<22} {self.trials:>6} trials  {self.lost} lost  {self.corrupted} corrupted  "
                f"{self.crashed} crashed")


def new_index(root: Path, n_docs: int = 20) -> Index:
    index = Index.open(root, create=True, embedder=HashEmbedder(dim=64))
    index.add_documents(base_docs(n_docs), progress=False)
    return index


def base_docs(n: int) -> list[Document]:
    return [Document(source=f"base-{i}", type="txt",
                     elements=[Element(f"Base document {i} explains adapters of rank {i} and their alpha.")])
            for i in range(n)]


def check(root: Path, tally: Tally, must_have: set[str], label: str) -> Index | None:
    """Open + full verify + counts + nothing of ``must_have`` missing; tallies what is wrong."""
    try:
        index = Index.open(root)
        index.verify(full=True)
    except RagtuneError as exc:
        tally.bad("corrupted", f"{label}: {exc}")
        return None
    n, store, bm25 = len(index), len(index.store), len(index.bm25)
    if not n == store == bm25:
        tally.bad("corrupted", f"{label}: {n} chunks, {store} vectors, {bm25} BM25 rows")
    missing = must_have - set(index.files())
    if missing:
        tally.bad("lost", f"{label}: {sorted(missing)[:3]}")
    return index


# ---------------------------------------------------------------------------------------------
# bad files


def _pdf_bytes() -> bytes:
    import io

    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(100, 700, "LoRA trains low-rank adapters.")
    c.save()
    return buf.getvalue()


def bad_file_kinds(folder: Path) -> list[str]:
    """Write one file of each hostile kind into ``folder``; returns the names that must get indexed."""
    import zipfile

    import pikepdf

    pdf = _pdf_bytes()
    (folder / "zero.txt").write_bytes(b"")
    (folder / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    with zipfile.ZipFile(folder / "renamed-zip.docx", "w") as z:
        z.writestr("hello.txt", "a zip, but not a Word document")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (folder / "utf16.txt").write_text("UTF-16 text about quantisation.", encoding="utf-16")
    (folder / "latin1.txt").write_bytes("Café naïve résumé about adapters.".encode("latin-1"))
    (folder / "deep.html").write_text("<html><body>" + "<div>" * 3000 + "<p>Deep LoRA.</p>" + "</div>" * 3000)
    (folder / "plain.pdf").write_bytes(pdf)
    with pikepdf.open(folder / "plain.pdf") as p:
        p.save(folder / "encrypted.pdf", encryption=pikepdf.Encryption(user="u", owner="o"))
    os.mkfifo(folder / "fifo.txt")
    outside = folder.parent / "outside-secret.txt"
    outside.write_text("root:x:0:0")
    (folder / "escape.txt").symlink_to(outside)
    with open(os.path.join(os.fsencode(folder), b"caf\xe9-not-utf8.txt"), "wb") as fh:
        fh.write(b"A file whose name is not UTF-8, about rerankers.")
    odd = ["name with spaces.md", "naïve résumé 📄.md", "$(touch pwned); rm -rf x `id` | & >.md", "-n.md", "'\".md"]
    for name in odd:
        (folder / name).write_text(f"# Odd name\n\nThe file {name!r} talks about retrieval.")
    (folder / "good.md").write_text("# Good\n\nCross-encoders rerank candidates.")
    return ["utf16.txt", "latin1.txt", "deep.html", "plain.pdf", "good.md", "caf\\xe9-not-utf8.txt", *odd]


def bad_files(tmp: Path) -> Tally:
    tally = Tally("bad files")
    index = new_index(tmp / "index")
    batch = tmp / "batch"
    batch.mkdir()
    good = bad_file_kinds(batch)
    n_files = len(list(batch.iterdir()))
    try:
        report = index.add([batch], progress=False)
    except RagtuneError as exc:
        tally.bad("crashed", f"add raised {exc}")
        return tally
    except Exception as exc:  # noqa: BLE001 - the point is to count these
        tally.bad("crashed", f"add raised {type(exc).__name__}: {exc}")
        return tally
    tally.trials = n_files
    must = {f"base-{i}" for i in range(20)} | {str(batch) + "/" + g for g in good}
    check(index.root, tally, must, "bad files")
    if (Path.cwd() / "pwned").exists() or (batch / "pwned").exists():
        tally.bad("crashed", "a file name was executed by a shell")
    named = {p.path for p in report.problems}
    for bad in ("zero.txt", "truncated.pdf", "renamed-zip.docx", "binary.txt", "encrypted.pdf", "fifo.txt", "escape.txt"):
        if str(batch / bad) not in named:
            tally.bad("lost", f"{bad} was not reported by name")
    return tally


def tiny_files(tmp: Path, n: int) -> Tally:
    """``n`` one-line files in one folder, indexed in one add (tests the many-small-files path)."""
    tally = Tally(f"{n} tiny files", trials=n)
    folder = tmp / "tiny"
    folder.mkdir()
    for i in range(n):
        (folder / f"t{i:05d}.txt").write_text(f"Tiny note {i} about adapters.")
    index = new_index(tmp / "tiny-index", n_docs=1)
    try:
        report = index.add([folder], progress=False)
    except Exception as exc:  # noqa: BLE001
        tally.bad("crashed", f"{type(exc).__name__}: {exc}")
        return tally
    if len(report.added) != n:
        tally.bad("lost", f"{n - len(report.added)} of {n} tiny files not indexed: {report.problems[:2]}")
    check(index.root, tally, {"base-0"}, "tiny files")
    return tally


# ---------------------------------------------------------------------------------------------
# bad queries

BAD_QUERIES: list[tuple[str, dict]] = [
    ("", {}), ("   \n\t", {}), ("LoRA \udcff", {}), ("\x00\x01\x02 control", {}), ("x" * 100_000, {}),
    ("LoRA", {"k": 0}), ("LoRA", {"k": -3}), ("LoRA", {"k": 10**9}), ("LoRA", {"mode": "sparse"}),
    ("LoRA", {"filters": {"a') OR 1=1 --": "x"}}), ("LoRA", {"filters": {"source": "*[!"}}),
    ("LoRA", {"filters": {"page": [1, 2, None]}}), ("LoRA", {"filters": {"file_type": "nope"}}),
    ("' OR 1=1; DROP TABLE chunks; --", {}), ("🦙 ünïcödé 日本語", {}), ("<source>evil</source>", {}),
    ("LoRA", {"nonsense_option": 1}), ("LoRA", {"candidates": 0}), ("LoRA", {"mmr": True, "k": 50}),
]


def bad_queries(index: Index) -> Tally:
    tally = Tally("bad queries")
    before = index.verify(full=True)
    for query, options in BAD_QUERIES:
        tally.trials += 1
        try:
            hits = index.search(query, **options)
            if not isinstance(hits, list):
                tally.bad("crashed", f"{query[:20]!r} {options}: returned {type(hits).__name__}")
        except RagtuneError:
            pass  # refused with a message: the promised outcome
        except Exception as exc:  # noqa: BLE001
            tally.bad("crashed", f"{query[:20]!r} {options}: {type(exc).__name__}: {exc}")
    if index.verify(full=True)["chunks"] != before["chunks"]:
        tally.bad("lost", "queries changed the index")
    return tally


# ---------------------------------------------------------------------------------------------
# faults: SIGKILL at random moments during index updates

def _context():
    """Writer processes come from a fork server that has already imported ragtune: a trial costs a
    fork, not a Python start-up (8 s per trial on a loaded 2-core machine), and nothing forked has
    run OpenMP or held a lock yet."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["ragtune.rag.index", "ragtune.rag.writer", "battery"])
    return ctx


def kill_writer(root: str, trial: int, ready, done) -> None:
    """Three publishes and a removal (new documents, a replaced one, removed ones): the update a kill
    interrupts, at any of its steps."""
    index = Index.open(root)
    ready.send(True)
    t0 = time.perf_counter()
    for n in range(3):
        docs = [Document(source=f"t{trial}-r{n}-{j}", type="txt",
                         elements=[Element(f"Trial {trial} round {n} part {j}: adapters and ranks {j}.")])
                for j in range(15)]
        docs.append(Document(source="moving", type="txt", elements=[Element(f"Moving text, trial {trial} round {n}.")]))
        index.add_documents(docs, progress=False)
        if n % 2:
            index.remove([f"t{trial}-r{n - 1}-{j}" for j in range(15)])
    done.value = time.perf_counter() - t0


def kill_trials(tmp: Path, n: int, seed: int = 0) -> Tally:
    """``n`` writers killed with SIGKILL at uniformly random moments of an update (:func:`kill_writer`)."""
    tally = Tally("SIGKILL mid-update")
    root = tmp / "kill-index"
    new_index(root)
    must = {f"base-{i}" for i in range(20)}
    rng = random.Random(seed)
    ctx = _context()

    def start(trial: int):
        # A pipe and a lock-free value: a SIGKILLed child must not leave a semaphore behind.
        receive, send = ctx.Pipe(duplex=False)
        done = ctx.Value("d", -1.0, lock=False)
        proc = ctx.Process(target=kill_writer, args=(str(root), trial, send, done))
        proc.start()
        if not receive.poll(120):
            proc.kill()
            raise RuntimeError("writer did not start")
        return proc, done

    proc, done = start(0)  # one uninterrupted run measures how long the update takes
    proc.join(300)
    if proc.exitcode != 0:
        tally.bad("crashed", f"uninterrupted writer exited {proc.exitcode}")
        return tally
    duration = done.value
    for trial in range(1, n + 1):
        tally.trials += 1
        proc, _ = start(trial)
        time.sleep(rng.uniform(0, duration * 1.05))
        proc.kill()  # SIGKILL
        proc.join(60)
        if proc.exitcode not in (-signal.SIGKILL, 0):
            tally.bad("crashed", f"trial {trial}: writer exited {proc.exitcode} before the kill")
        check(root, tally, must, f"kill trial {trial}")
    index = Index.open(root)
    index.add_documents([Document(source="after", type="txt", elements=[Element("After the kills.")])], progress=False)
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(("tmp-", "CURRENT.tmp"))]
    if leftovers:
        tally.bad("corrupted", f"debris survived the next write: {leftovers}")
    check(root, tally, must | {"after"}, "after the kills")
    return tally


# ---------------------------------------------------------------------------------------------
# faults: disk full


def _mount_tmpfs(path: Path, size_kb: int) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def disk_full_tmpfs(tmp: Path) -> Tally | None:
    """A real ENOSPC: the index on a small tmpfs, filled up, then updated. None if no tmpfs can be mounted."""
    mount = tmp / "small-disk"
    if not _mount_tmpfs(mount, 4096):
        return None
    tally = Tally("disk full (tmpfs)")
    try:
        index = new_index(mount / "index")
        must = {f"base-{i}" for i in range(20)}
        filler = mount / "filler"
        with open(filler, "wb") as fh:  # leave ~200 KB free
            free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
            fh.write(b"\0" * max(0, free - 200_000))
        big = [Document(source=f"big-{i}", type="txt",
                        elements=[Element(" ".join(f"word{j}x{i}" for j in range(400)))]) for i in range(300)]
        for attempt in range(3):
            tally.trials += 1
            try:
                index.add_documents(big, progress=False)
                tally.notes.append(f"attempt {attempt}: the write fitted")
            except IndexWriteError as exc:
                if "no space" not in str(exc):
                    tally.notes.append(f"attempt {attempt}: {exc}")
            except Exception as exc:  # noqa: BLE001
                tally.bad("crashed", f"{type(exc).__name__}: {exc}")
            check(mount / "index", tally, must, f"disk full {attempt}")
            if [p for p in (mount / "index").iterdir() if p.name.startswith("tmp-")]:
                tally.bad("corrupted", "a half-written generation was left on the full disk")
        filler.unlink()
        index.add_documents(big[:5], progress=False)  # space again: the next write succeeds
        check(mount / "index", tally, must | {"big-0"}, "after freeing space")
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
    return tally


def disk_full_injected(tmp: Path) -> Tally:
    """ENOSPC injected at each write step (monkeypatched): OSError 28, SQLite "disk is full", FAISS error."""
    import sqlite3
    from unittest import mock

    tally = Tally("disk full (injected)")
    index = new_index(tmp / "enospc-index")
    must = {f"base-{i}" for i in range(20)}
    faults = [
        ("ragtune.rag.lexical.BM25Index.save", OSError(errno.ENOSPC, "No space left on device")),
        ("ragtune.rag.chunkdb.ChunkDB.commit", sqlite3.OperationalError("database or disk is full")),
        ("ragtune.rag.store.FaissStore.save", RuntimeError("Error in faiss::FileIOWriter: write error, errno 28")),
        ("ragtune.rag.writer.shutil.copyfile", OSError(errno.ENOSPC, "No space left on device")),
        ("ragtune.rag.writer.file_records", OSError(errno.ENOSPC, "No space left on device")),
    ]
    for n, (target, exc) in enumerate(faults):
        tally.trials += 1
        doc = Document(source=f"new-{n}", type="txt", elements=[Element(f"New document {n}.")])
        with mock.patch(target, side_effect=exc):
            try:
                index.add_documents([doc], progress=False)
                tally.bad("lost", f"{target}: the fault did not surface")
            except IndexWriteError:
                pass
            except Exception as err:  # noqa: BLE001
                tally.bad("crashed", f"{target}: {type(err).__name__}: {err}")
        if [p for p in index.root.iterdir() if p.name.startswith("tmp-")]:
            tally.bad("corrupted", f"{target}: half-written generation left behind")
        check(index.root, tally, must, target)
    return tally


# ---------------------------------------------------------------------------------------------
# concurrency


def concurrent_readers(tmp: Path, rounds: int) -> Tally:
    """8 threads sharing one Index (refresh + search) while another process publishes ``rounds`` times."""
    import json

    from test_index_threads import READERS, WRITER

    tally = Tally("shared-Index readers")
    index = new_index(tmp / "shared-index")
    index.add_documents([Document(source="moving", type="txt", elements=[Element("Speculative decoding start.")])],
                        progress=False)
    proc = subprocess.run([sys.executable, "-c", READERS, str(index.root), WRITER, str(rounds)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tally.trials += 1
        tally.bad("crashed", f"reader process died (rc {proc.returncode}): {proc.stderr[-300:]}")
        return tally
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    tally.trials = result["searches"]
    tally.notes.append(f"{result['searches']} searches, {result['refreshes']} refreshes across {rounds} publishes")
    for error in result["errors"][: result["n_errors"]]:
        tally.bad("crashed", error.strip().splitlines()[-1])
    tally.crashed += max(0, result["n_errors"] - len(result["errors"]))
    if result["empty"]:
        tally.bad("lost", f"{result['empty']} searches found nothing")
    check(index.root, tally, {f"base-{i}" for i in range(20)}, "after concurrent reads")
    return tally


def racing_writer(root: str, name: str, go: float, refused_after) -> None:
    index = Index.open(root)
    time.sleep(max(0.0, go - time.time()))
    docs = [Document(source=f"{name}-{j}", type="txt", elements=[Element(f"{name} writes part {j}.")]) for j in range(40)]
    t0 = time.perf_counter()
    while True:
        try:
            index.add_documents(docs, progress=False)
            return
        except IndexLockedError:
            if refused_after.value < 0:
                refused_after.value = time.perf_counter() - t0
            time.sleep(0.05)


def two_writers(tmp: Path, trials: int) -> Tally:
    """Two processes start the same moment; one is refused at once and retries; both end up stored."""
    tally = Tally("two writers")
    root = tmp / "two-writers"
    new_index(root)
    must = {f"base-{i}" for i in range(20)}
    ctx = _context()
    for trial in range(trials):
        tally.trials += 1
        go = time.time() + 2.0
        refused = [ctx.Value("d", -1.0, lock=False) for _ in "ab"]
        procs = [ctx.Process(target=racing_writer, args=(str(root), f"w{trial}{x}", go, r))
                 for x, r in zip("ab", refused)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
            if p.exitcode != 0:
                tally.bad("crashed", f"writer exited {p.exitcode}")
        for r in refused:
            if r.value > 1.0:
                tally.bad("crashed", f"a second writer learnt it was refused only after {r.value:.1f} s")
        must |= {f"w{trial}{x}-{j}" for x in "ab" for j in range(40)}
        check(root, tally, must, f"two writers {trial}")
    return tally
