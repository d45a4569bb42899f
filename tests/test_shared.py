"""Objects shared by the sessions of one process: the local generator behind a lock, the index under refresh."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ragtune.api import SharedGenerator, SharedIndex, index_paths, is_thread_safe, reindex


class FakeLocal:
    """A generator that notices overlapping calls and remembers which adapter each answer used."""

    name = "local:fake"
    context_window = 2048
    extractive = False

    def __init__(self):
        self.active = 0
        self.overlaps = 0
        self._adapters: list[str] = []
        self.active_adapter = None
        self.loaded_paths = []

    @property
    def adapters(self):
        return list(self._adapters)

    def count_tokens(self, text):
        return len(text.split())

    def count_message_tokens(self, messages):
        return sum(self.count_tokens(m["content"]) for m in messages)

    def load_adapter(self, path, name=None):
        self.loaded_paths.append(path)
        self._adapters.append(name)
        self.active_adapter = name
        return name

    def set_adapter(self, name):
        self.active_adapter = name

    def stream(self, messages, **options):
        self.active += 1
        self.overlaps += self.active > 1
        try:
            for piece in ("answer ", "from ", str(self.active_adapter)):
                time.sleep(0.005)
                yield piece
        finally:
            self.active -= 1


def test_concurrent_sessions_never_run_the_local_model_at_once():
    fake = FakeLocal()
    shared = SharedGenerator(fake)
    results = []

    def session():
        results.append("".join(shared.view().stream([{"role": "user", "content": "hi"}])))

    threads = [threading.Thread(target=session) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert fake.overlaps == 0 and results == ["answer from None"] * 6


def test_each_session_answers_with_its_own_adapter(tmp_path):
    fake = FakeLocal()
    shared = SharedGenerator(fake)
    a, b = tmp_path / "support-v1", tmp_path / "support v2"
    with_a, with_b, base = shared.view(a), shared.view(b), shared.view()
    messages = [{"role": "user", "content": "hi"}]
    assert with_a.generate(messages) == "answer from support-v1"
    assert base.generate(messages) == "answer from None"
    assert with_b.generate(messages) == "answer from support_v2"
    assert with_a.generate(messages) == "answer from support-v1"
    assert fake.loaded_paths == [str(a.resolve()), str(b.resolve())]  # each loaded once, then switched
    assert with_a.name == "local:fake+support-v1"


def test_an_abandoned_stream_releases_the_model_for_the_next_session():
    shared = SharedGenerator(FakeLocal(), busy_timeout=1.0)
    stream = shared.view().stream([{"role": "user", "content": "hi"}])
    next(stream)
    assert shared.busy
    stream.close()  # a browser tab closed mid-answer
    assert not shared.busy
    assert shared.view().generate([{"role": "user", "content": "again"}]) == "answer from None"


def test_a_session_waiting_too_long_gets_a_busy_error_not_a_hang():
    from ragtune.api import GeneratorBusyError

    shared = SharedGenerator(FakeLocal(), busy_timeout=0.05)
    holding = shared.view().stream([{"role": "user", "content": "hi"}])
    next(holding)
    with pytest.raises(GeneratorBusyError, match="busy"):
        shared.view().generate([{"role": "user", "content": "hi"}])
    holding.close()


def test_searches_from_many_threads_survive_a_writer_publishing_and_refreshing(hash_index, docs_dir, tmp_path):
    index = hash_index()
    index.add([docs_dir])
    shared = SharedIndex(index)
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher():
        while not stop.is_set():
            try:
                assert shared.search("low-rank adapters", k=3)
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)
                return

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    more = tmp_path / "more"
    more.mkdir()
    try:
        for i in range(3):
            (more / f"note{i}.md").write_text(f"# Note {i}\n\nSpeculative decoding note number {i}.\n")
            report = index_paths(shared, [more])
            assert report.added == [str((more / f"note{i}.md").resolve())]
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == []
    assert len(shared.files()) == 6


def test_reindex_updates_changed_files_and_drops_deleted_ones(hash_index, docs_dir, tmp_path):
    index = hash_index()
    index.add([docs_dir])
    shared = SharedIndex(index)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "new.md").write_text("# New\n\nA new uploaded note about speculative decoding.\n")
    (docs_dir / "rag.txt").unlink()
    (docs_dir / "lora.md").write_text("# LoRA\n\nChanged text about LoRA ranks.\n")
    report = reindex(shared, [uploads])
    assert [p.rsplit("/", 1)[-1] for p in report.added] == ["new.md"]
    assert [p.rsplit("/", 1)[-1] for p in report.updated] == ["lora.md"]
    assert [p.rsplit("/", 1)[-1] for p in report.removed] == ["rag.txt"]
    assert sorted(p.rsplit("/", 1)[-1] for p in shared.files()) == ["lora.md", "new.md", "quant.html"]


def test_reindex_keeps_documents_added_in_code_and_files_whose_names_are_not_utf8(hash_index, tmp_path):
    import os

    from ragtune.rag.types import Document, Element

    folder = tmp_path / "docs"
    folder.mkdir()
    odd = os.fsdecode(bytes(folder) + b"/caf\xe9.txt")  # a Latin-1 file name, not UTF-8
    Path(odd).write_text("Notes about the cafe menu.\n")
    (folder / "x.txt").write_text("Notes about x.\n")
    index = hash_index()
    index.add([folder])
    index.add_documents([Document(source="doc-1", type="txt", elements=[Element("A document given in code.")])])
    shared = SharedIndex(index)
    report = reindex(shared)
    assert report.removed == [] and len(report.unchanged) == 2  # both files found on disk, unchanged
    assert len(shared.files()) == 3 and "doc-1" in shared.files()
    Path(odd).unlink()
    assert [Path(p).name for p in reindex(shared).removed] == ["caf\\xe9.txt"]  # a file really gone is dropped
    assert "doc-1" in shared.files()


def test_objects_say_whether_they_may_be_shared_across_threads(hash_index):
    from ragtune.api import jobs, load_generator

    index = hash_index()
    assert is_thread_safe(SharedIndex(index)) and not is_thread_safe(index)
    assert is_thread_safe(SharedGenerator(FakeLocal()).view())
    assert is_thread_safe(load_generator("extractive"))
    assert not is_thread_safe(load_generator("local"))  # constructing it loads nothing
    assert is_thread_safe(jobs.start(lambda job: None, name="noop").wait(5))


def test_a_view_answers_with_the_generators_own_answer_length():
    from ragtune.api import RAG

    class Sized(FakeLocal):
        default_max_new_tokens = 128

    index = type("Idx", (), {"search": lambda self, *a, **k: []})()
    assert RAG(index, SharedGenerator(Sized()).view()).max_new_tokens == 128
    assert RAG(index, Sized()).max_new_tokens == 128  # the same as the bare generator
    assert not hasattr(SharedGenerator(FakeLocal()).view(), "default_max_new_tokens")


def test_sessions_use_one_adapter_at_their_own_strengths(tmp_path):
    class ScaledLocal(FakeLocal):
        def __init__(self):
            super().__init__()
            self.scales = {}
            self.rescaled = 0

        def load_adapter(self, path, name=None):
            self.scales[name] = 1.0
            return super().load_adapter(path, name)

        def adapter_scale(self, name):
            return self.scales[name]

        def set_adapter_scale(self, name, scale):
            self.scales[name] = scale
            self.rescaled += 1

        def stream(self, messages, **options):
            yield f"{self.active_adapter}@{self.scales.get(self.active_adapter)}"

    fake = ScaledLocal()
    shared = SharedGenerator(fake)
    a = tmp_path / "support-v1"
    full, half, base = shared.view(a), shared.view(a, scale=0.5), shared.view()
    messages = [{"role": "user", "content": "hi"}]
    assert half.generate(messages) == "support-v1@0.5"
    assert full.generate(messages) == "support-v1@1.0"
    assert base.generate(messages) == "None@None"
    assert half.generate(messages) == "support-v1@0.5"
    assert fake.loaded_paths == [str(a.resolve())] and fake.rescaled == 3  # loaded once, rescaled on each change
    assert half.name == "local:fake+support-v1@0.5" and full.name == "local:fake+support-v1"
    with pytest.raises(Exception, match="scale must be a number"):
        shared.view(a, scale=3)
