"""Objects safe to share across threads in one long-lived process (a Streamlit server, a web API).

Streamlit runs each browser session's script on its own thread, and a model or an index is too big to load
once per session. What may be shared, and how:

============================  ==============  =================================================================
object                        shared?         how
============================  ==============  =================================================================
:class:`SharedGenerator`      yes             one local model in memory; calls are served one at a time under
                                              a lock (a second session waits for the first answer to finish:
                                              SmolLM2-135M streams ~30 tokens/s on 2 CPU cores, and two
                                              concurrent ``generate`` calls on one model would only halve that
                                              while racing on the adapter switch and the tokenizer)
:class:`SharedIndex`          yes             searches and ``refresh()`` run under a lock, so a refresh never
                                              closes the chunk database under a running search; writes go to a
                                              separate writer ``Index`` (see :func:`index_paths`) and the reader
                                              picks the new generation up afterwards
:class:`~ragtune.jobs.Job`    yes             fields updated under the job's lock
``Index``, ``RAG``,           no              one per thread, or wrap (``SharedIndex``); ``RAG`` is cheap to
``LocalGenerator``                            build per question on top of shared parts
``ExtractiveGenerator``       yes             stateless
``APIGenerator``              yes             one HTTP request per call, no shared state
============================  ==============  =================================================================

Every object handed out here carries ``thread_safe = True``; :func:`is_thread_safe` answers for any object.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragtune.errors import RagtuneError
from ragtune.progress import ProgressFn, emit

# How long a caller waits for the shared model before it gets a "busy" error instead of hanging: a
# 256-token answer of SmolLM2-135M takes ~10 s on this class of machine, so 120 s means a queue of ~10.
BUSY_TIMEOUT_S = 120.0
_THREAD_SAFE_KINDS = ("ExtractiveGenerator", "APIGenerator")


class GeneratorBusyError(RagtuneError):
    """The shared local model stayed busy with other sessions for longer than the wait limit."""


def is_thread_safe(obj: Any) -> bool:
    """Whether ``obj`` may be used from several threads at once (see the table in this module)."""
    if getattr(obj, "thread_safe", None) is not None:
        return bool(obj.thread_safe)
    return type(obj).__name__ in _THREAD_SAFE_KINDS


class SharedGenerator:
    """A generator shared by every session; :meth:`view` gives a session its own adapter choice.

    ``generator`` is any :class:`~ragtune.rag.generators.base.Generator` (typically a ``LocalGenerator``).
    All calls into it hold one lock; a view with an adapter switches the model to that adapter inside the
    lock, so two sessions using different adapters never see each other's weights.

        >>> shared = SharedGenerator(load_generator("local"))          # doctest: +SKIP
        >>> gen = shared.view(adapter="adapters/support-v1")           # doctest: +SKIP
        >>> RAG(index, gen).ask("What is LoRA?")                       # doctest: +SKIP
    """

    thread_safe = True

    def __init__(self, generator: Any, *, busy_timeout: float = BUSY_TIMEOUT_S):
        self.generator = generator
        self.busy_timeout = busy_timeout
        # A plain Lock, not an RLock: a stream abandoned mid-answer is closed by the garbage collector,
        # possibly on another thread, and an RLock can only be released by its owner.
        self._lock = threading.Lock()
        self._adapter_names: dict[str, str] = {}  # adapter folder -> its name on the model

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def warm_up(self) -> None:
        """Load the model now (e.g. in a background job), so the first question does not wait for it."""
        with self._locked():
            warm = getattr(self.generator, "warm_up", None)
            if warm is not None:
                warm()

    @property
    def loaded(self) -> bool:
        return bool(getattr(self.generator, "loaded", True))

    def view(self, adapter: str | Path | None = None, scale: float = 1.0) -> GeneratorView:
        """A :class:`Generator` for one session: the base model, or the base model with ``adapter`` at
        strength ``scale`` (1: as trained; see ``LocalGenerator.set_adapter_scale``)."""
        if adapter is not None and not hasattr(self.generator, "load_adapter"):
            raise RagtuneError(f"adapters apply to local generators only, not {self.generator.name}")
        if adapter is not None:
            from ragtune.rag.generators.adapters import check_scale

            check_scale(scale, "scale")
        path = None if adapter is None else str(Path(adapter).expanduser().resolve())
        return GeneratorView(self, path, float(scale) if adapter is not None else 1.0)

    def _locked(self):
        shared = self

        class _Guard:
            def __enter__(self):
                if not shared._lock.acquire(timeout=shared.busy_timeout):
                    raise GeneratorBusyError(
                        f"the local model {shared.generator.name} is busy answering other sessions; "
                        f"try again in a moment (waited {shared.busy_timeout:.0f} s)"
                    )

            def __exit__(self, *exc):
                shared._lock.release()

        return _Guard()

    def _use_adapter(self, adapter: str | None, scale: float = 1.0) -> None:
        """Switch the model to ``adapter`` at strength ``scale`` (loaded once, then kept attached); call with
        the lock held. Sessions may use one adapter at different strengths: it is rescaled, not reloaded."""
        gen = self.generator
        if not hasattr(gen, "set_adapter"):
            return
        if adapter is None:
            if gen.active_adapter is not None:
                gen.set_adapter(None)
            return
        name = self._adapter_names.get(adapter)
        if name is None:
            name = self._adapter_names[adapter] = gen.load_adapter(adapter, name=_adapter_name(adapter, gen.adapters))
        elif gen.active_adapter != name:
            gen.set_adapter(name)
        if hasattr(gen, "set_adapter_scale") and gen.adapter_scale(name) != scale:
            gen.set_adapter_scale(name, scale)


def _adapter_name(path: str, taken: list[str]) -> str:
    import re

    base = re.sub(r"[^A-Za-z0-9_-]", "_", Path(path).name) or "adapter"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


class GeneratorView:
    """The :class:`Generator` protocol over a :class:`SharedGenerator`, with one session's adapter."""

    thread_safe = True

    def __init__(self, shared: SharedGenerator, adapter: str | None, scale: float = 1.0):
        self.shared = shared
        self.adapter = adapter
        self.scale = scale
        self.extractive = bool(getattr(shared.generator, "extractive", False))
        # RAG sizes answers by this (LocalGenerator: 128 tokens); without it a view answered with RAG's
        # generic 256, so the app wrote twice the answer the same question gets through the Python API.
        default = getattr(shared.generator, "default_max_new_tokens", None)
        if default is not None:
            self.default_max_new_tokens = default

    @property
    def name(self) -> str:
        base = self.shared.generator.name.split("+")[0]
        strength = f"@{self.scale:g}" if self.scale != 1 else ""
        return base + (f"+{Path(self.adapter).name}{strength}" if self.adapter else "")

    @property
    def context_window(self) -> int:
        with self.shared._locked():
            return self.shared.generator.context_window

    def count_tokens(self, text: str) -> int:
        with self.shared._locked():
            return self.shared.generator.count_tokens(text)

    def count_message_tokens(self, messages: list) -> int:
        with self.shared._locked():
            return self.shared.generator.count_message_tokens(messages)

    def generate(self, messages: list, **options: Any) -> str:
        return "".join(self.stream(messages, **options))

    def stream(self, messages: list, **options: Any) -> Iterator[str]:
        """Pieces of the answer; the model is held for this session until the stream ends or is closed."""
        from ragtune.rag.generators.common import relay

        shared = self.shared
        with shared._locked():
            shared._use_adapter(self.adapter, self.scale)
            yield from relay(shared.generator.stream(messages, **options))


class SharedIndex:
    """An ``Index`` that many threads search at once; see the module table for the rules.

    ``search`` (and the other reads) and :meth:`refresh` are serialised by one lock: a search takes
    ~5-30 ms on the shipped corpus, so sessions queueing behind each other is invisible, and it is what
    keeps a refresh from closing the chunk database under a running search. Writing happens elsewhere
    (:func:`index_paths`, :func:`remove_sources` open their own writer) and ends with :meth:`refresh`.
    """

    thread_safe = True

    def __init__(self, index: Any):
        self.index = index
        self.root = Path(index.root)
        self._lock = threading.Lock()

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str | None = None,
               **options: Any) -> list:
        with self._lock:
            return self.index.search(query, k=k, filters=filters, mode=mode, **options)

    def __len__(self) -> int:
        with self._lock:
            return len(self.index)

    def files(self) -> dict[str, dict]:
        with self._lock:
            return self.index.files()

    def info(self) -> dict:
        with self._lock:
            return self.index.info()

    def refresh(self) -> bool:
        """Load a newer published generation, if any (after a writer finished)."""
        with self._lock:
            return self.index.refresh()

    def get_chunks(self, ids) -> dict:
        with self._lock:
            return self.index.get_chunks(ids)


def _writer(shared: SharedIndex) -> Any:
    from ragtune.rag.index import Index

    # Its own Index (and embedder): the reader's sentence-transformers tokenizer is not safe to use from
    # two threads at once, and a writer holding the reader's lock for minutes would stall every search.
    return Index.open(shared.root, create=True)


def index_paths(shared: SharedIndex, paths: list[str | Path], *, prune: bool = False,
                exclude: list[str] | None = None, progress: ProgressFn | None = None) -> Any:
    """Index ``paths`` into the shared index's directory with a separate writer, then refresh the reader.

    Returns the writer's ``AddReport``. Meant to run as a job: ``jobs.start(lambda job: index_paths(...,
    progress=job.report))``.
    """
    writer = _writer(shared)
    try:
        report = writer.add(paths, prune=prune, exclude=exclude, progress=progress)
    finally:
        writer.close()
    emit(progress, "refresh", 0, 1, "loading the new index generation")
    shared.refresh()
    emit(progress, "refresh", 1, 1, "done")
    return report


def remove_sources(shared: SharedIndex, sources: list[str], *, progress: ProgressFn | None = None) -> Any:
    """Drop ``sources`` from the shared index's directory with a separate writer, then refresh the reader."""
    from ragtune.rag.ingest import as_list

    sources = as_list(sources, "sources")
    writer = _writer(shared)
    try:
        emit(progress, "remove", 0, len(sources), "")
        report = writer.remove(list(sources))
        emit(progress, "remove", len(sources), len(sources), "")
    finally:
        writer.close()
    shared.refresh()
    return report


def reindex(shared: SharedIndex, folders: list[str | Path] = (), *, progress: ProgressFn | None = None) -> Any:
    """Bring the index up to date with the disk: re-embed indexed files that changed, drop those that are
    gone, and add what is new under ``folders`` (e.g. the upload folder). Unchanged files cost one hash.

    Returns the ``AddReport`` of the update, with the dropped files in ``removed``.
    """
    from ragtune.rag.ingest import is_file_source, source_path

    # Only files are checked against the disk: a document added in code ("doc-1", a BEIR id) has no file,
    # and is not "gone" (reindex had dropped every such document, and files whose names are not UTF-8).
    on_disk = {s: source_path(s) for s, record in shared.files().items() if is_file_source(s, record)}
    present = [str(path) for path in on_disk.values() if path.is_file()]
    gone = [s for s, path in on_disk.items() if not path.is_file()]
    targets = present + [str(f) for f in folders if Path(f).is_dir()]
    report = index_paths(shared, targets, progress=progress) if targets else None
    if gone:
        removed = remove_sources(shared, gone, progress=progress)
        if report is None:
            return removed
        report.removed.extend(removed.removed)
        report.chunks_removed += removed.chunks_removed
    if report is None:
        from ragtune.rag.index import AddReport

        report = AddReport()
    return report
