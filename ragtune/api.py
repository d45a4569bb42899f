"""The public Python API in one place: what ui/, the CLI and other applications import.

    >>> from ragtune.api import RAG, corpus_index, load_generator
    >>> index = corpus_index()                      # the shipped corpora/, indexed once   # doctest: +SKIP
    >>> RAG(index, load_generator("extractive")).ask("What is QLoRA?").text                # doctest: +SKIP

``import ragtune`` exposes the same names (``ragtune.Index is ragtune.api.Index``). Every name loads its
module on first use (the ``_LAZY`` table), so importing this module costs nothing: torch, transformers and
faiss load only when a model or an index is used.

What is here, by concern:

- **index**: ``Index`` (open/add/remove/search), ``IndexConfig``, ``AddReport``, ``corpus_index``;
- **answers**: ``RAG`` (``ask``, ``stream`` -> ``AnswerStream``), ``Conversation``, ``load_generator``,
  ``GeneratorConfig``, the data types ``Answer``, ``Citation``, ``Hit``, ``Chunk``, ``Document``;
- **advisor**: ``advise``, ``load_questions``, ``Recommendation``;
- **evaluation**: ``evaluate_dataset`` (a BEIR folder or a QA file), ``evaluate_index``, ``evaluate_qa``;
- **long-lived processes**: ``SharedGenerator``, ``SharedIndex``, ``index_paths``, ``remove_sources``,
  ``is_thread_safe`` (which objects may be shared across threads: see :mod:`ragtune.shared`) and ``jobs``
  (background work whose progress is readable from any thread: see :mod:`ragtune.jobs`);
- **progress**: ``ProgressFn``, ``emit``, ``terminal_progress``: every long operation takes
  ``progress(stage, done, total, message)``;
- **tuning**: ``TrainConfig``, ``build_training_data``, ``train_adapter``, ``evaluate_adapter``,
  ``merge_adapter`` (generator adapters) and ``tune_embedder``, ``reembed_index`` (the embedder);
  :func:`available` says whether a name is installed.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from ragtune.errors import (  # errors are cheap, so they are imported eagerly
    ConfigError,
    DatasetError,
    IndexFormatError,
    IndexLockedError,
    RagtuneError,
    UnknownFilterKeyWarning,
)
from ragtune.progress import ProgressFn

# name -> (module, attribute); attribute None means the module itself (``ragtune.api.jobs``).
_LAZY: dict[str, tuple[str, str | None]] = {
    # data types
    "Answer": ("ragtune.rag.types", "Answer"),
    "Chunk": ("ragtune.rag.types", "Chunk"),
    "Citation": ("ragtune.rag.types", "Citation"),
    "Document": ("ragtune.rag.types", "Document"),
    "Hit": ("ragtune.rag.types", "Hit"),
    # index
    "Index": ("ragtune.rag.index", "Index"),
    "AddReport": ("ragtune.rag.index", "AddReport"),
    "is_index": ("ragtune.rag.index", "is_index"),
    "IndexConfig": ("ragtune.rag.config", "IndexConfig"),
    "SUPPORTED_TYPES": ("ragtune.rag.ingest", "SUPPORTED_TYPES"),  # file suffix -> type
    # answers
    "RAG": ("ragtune.rag.answer", "RAG"),
    "AnswerStream": ("ragtune.rag.answer", "AnswerStream"),
    "Conversation": ("ragtune.rag.conversation", "Conversation"),
    "ABSTAIN_TEXT": ("ragtune.rag.prompt", "ABSTAIN_TEXT"),
    "FALLBACK_NOTES": ("ragtune.rag.answer", "FALLBACK_NOTES"),  # Answer.grounding["fallback"] -> what stands
    "load_generator": ("ragtune.rag.generators", "load_generator"),
    "GeneratorConfig": ("ragtune.rag.generators", "GeneratorConfig"),
    "LocalGenerator": ("ragtune.rag.generators", "LocalGenerator"),  # .load_adapter/.set_adapter/.set_adapter_scale
    "APIGenerator": ("ragtune.rag.generators", "APIGenerator"),
    "without_adapter": ("ragtune.rag.generators.adapters", "without_adapter"),  # RAG(fallback=...): the base model
    # advisor
    "advise": ("ragtune.advisor", "advise"),
    "load_questions": ("ragtune.advisor", "load_questions"),
    "Recommendation": ("ragtune.advisor", "Recommendation"),
    # evaluation
    "evaluate_index": ("ragtune.rag.evaluate", "evaluate_index"),
    "evaluate_qa": ("ragtune.rag.evaluate", "evaluate_qa"),
    "load_beir": ("ragtune.rag.evaluate", "load_beir"),
    "load_qa": ("ragtune.rag.evaluate", "load_qa"),
    "is_beir_dir": ("ragtune.rag.evaluate", "is_beir_dir"),
    # long-lived, multi-session processes
    "SharedGenerator": ("ragtune.shared", "SharedGenerator"),
    "SharedIndex": ("ragtune.shared", "SharedIndex"),
    "GeneratorBusyError": ("ragtune.shared", "GeneratorBusyError"),
    "index_paths": ("ragtune.shared", "index_paths"),
    "remove_sources": ("ragtune.shared", "remove_sources"),
    "reindex": ("ragtune.shared", "reindex"),
    "is_thread_safe": ("ragtune.shared", "is_thread_safe"),
    "jobs": ("ragtune.jobs", None),
    "Job": ("ragtune.jobs", "Job"),
    "JobCancelled": ("ragtune.jobs", "JobCancelled"),
    # progress
    "emit": ("ragtune.progress", "emit"),
    "terminal_progress": ("ragtune.progress", "terminal_progress"),
    # paths
    "cache_dir": ("ragtune.paths", "cache_dir"),
    "corpora_dir": ("ragtune.paths", "corpora_dir"),
    "default_index_dir": ("ragtune.paths", "default_index_dir"),
}

# answers: the grounding check every generator's answer goes through
_LAZY.update({"check_grounding": ("ragtune.rag.grounding", "check_grounding")})
# tuning: LoRA/QLoRA/DoRA adapters for the generator
_LAZY.update({
    "TrainConfig": ("ragtune.tune.config", "TrainConfig"),
    "build_training_data": ("ragtune.tune.synth", "build_training_data"),
    "DataReport": ("ragtune.tune.synth", "DataReport"),
    "train_adapter": ("ragtune.tune.train", "train_adapter"),
    "TrainResult": ("ragtune.tune.train", "TrainResult"),
    "evaluate_adapter": ("ragtune.tune.evaluate", "evaluate_adapter"),
    "merge_adapter": ("ragtune.tune.export", "merge_adapter"),
})
# tuning: the embedder, on the index's own chunks
_LAZY.update({
    "tune_embedder": ("ragtune.tune.embedder", "tune_embedder"),
    "reembed_index": ("ragtune.tune.embedder", "reembed_index"),
    "EmbedderResult": ("ragtune.tune.embedder", "EmbedderResult"),
    "EmbedderTuneConfig": ("ragtune.tune.embedder", "EmbedderTuneConfig"),
})


_EAGER = [
    "ConfigError", "DatasetError", "IndexFormatError", "IndexLockedError", "RagtuneError", "ProgressFn",
    "UnknownFilterKeyWarning",
    "available", "supports", "corpus_index", "corpus_index_fingerprint", "evaluate_dataset",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        loaded = importlib.import_module(module)
        value = loaded if attr is None else getattr(loaded, attr)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'ragtune.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _public(name: str) -> Any:
    return globals().get(name) or __getattr__(name)


def available(name: str) -> bool:
    """Whether ``name`` is part of this installation's API (a branch's module may not be installed)."""
    if name in _EAGER:
        return True
    if name not in _LAZY:
        return False
    try:
        __getattr__(name)
    except (ImportError, AttributeError):
        return False
    return True


def supports(function: Any, parameter: str) -> bool:
    """Whether ``function`` takes a keyword ``parameter`` (e.g. ``advise(weights=...)``)."""
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return parameter in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def corpus_index_fingerprint() -> str:
    """What the shipped corpus's index depends on: ragtune's version, its default index settings, when the
    chunker last changed what it makes of a file (``CHUNKS_CHANGED``) and where the corpus lies (two checkouts
    sharing one cache must not add their copies of corpora/ to one index: retrieval then returned every chunk
    once per checkout)."""
    import hashlib
    import json

    from ragtune import __version__
    from ragtune.paths import corpora_dir
    from ragtune.rag.chunk import CHUNKS_CHANGED

    config = _public("IndexConfig")()  # through this module, so a test can swap the defaults
    blob = json.dumps({"version": __version__, "config": config.to_dict(), "corpora": str(corpora_dir().resolve()),
                       "chunks": CHUNKS_CHANGED}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def corpus_index(path: str | Path | None = None, *, progress: ProgressFn | None = None) -> Any:
    """An index of the shipped corpora/, built under the user cache on first use and kept in step.

    Later calls only hash the files (nothing changed: no parsing, no embedding). The cached index lives in
    a folder named after :func:`corpus_index_fingerprint`, so a ragtune whose version or default settings
    differ builds a fresh one instead of serving an index made with other chunking or models; the
    folders of other fingerprints are then removed.
    """
    from ragtune.paths import cache_dir, corpora_dir
    from ragtune.rag.index import Index

    if path is None:
        path = cache_dir() / f"corpus-index-{corpus_index_fingerprint()}"
        fresh = not path.exists()
    else:
        path, fresh = Path(path), False
    index = Index.open(path, create=True)
    try:
        index.add([corpora_dir()], exclude=["README.md"], prune=True, progress=progress)
    except IndexLockedError:
        index.refresh()  # another process is building it; use what is published
    if fresh:
        _remove_other_corpus_indexes(path)
    return index


_CORPORA_MARK = "corpora-path.txt"


def _remove_other_corpus_indexes(keep: Path) -> None:
    """Drop the cached corpus indexes this one replaces: those built from the same corpora folder (an older
    version or other defaults), and unmarked ones from before the folder was part of the fingerprint.
    Another checkout's index is left alone."""
    import shutil

    from ragtune.paths import corpora_dir

    here = str(corpora_dir().resolve())
    try:
        (keep / _CORPORA_MARK).write_text(here + "\n", encoding="utf-8")
    except OSError:
        return
    for old in keep.parent.glob("corpus-index*"):
        if old == keep or not old.is_dir():
            continue
        mark = old / _CORPORA_MARK
        owner = mark.read_text(encoding="utf-8").strip() if mark.exists() else here
        if owner == here:
            shutil.rmtree(old, ignore_errors=True)


def evaluate_dataset(
    target: str | Path,
    *,
    index: Any = None,
    modes: str | tuple[str, ...] = ("dense", "bm25", "hybrid"),
    k: int | None = None,
    limit_queries: int | None = None,
    index_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Score retrieval on ``target``: a BEIR folder (indexed into ``index_dir`` or a temporary index) or a
    QA .jsonl file (searched in ``index``: an ``Index`` or the path of an index folder). Returns
    ``{"kind", "name", "queries", "k", "results": {mode: metrics}}``; ``progress`` sees the indexing and the
    per-query searches.

    ``modes`` is one mode ("bm25") or several; ``k`` the retrieval depth (default 100 for BEIR, 5 for QA;
    nDCG@10 and MRR@10 always look at the top 10 at least). ``index_dir`` is an evaluation index: it ends up
    holding exactly this corpus (documents of another dataset are removed), and an index of files indexed
    from disk is refused rather than overwritten.
    """
    import os
    import tempfile

    from ragtune.rag import evaluate as ev
    from ragtune.rag.index import Index

    # Every argument is checked before anything is read or indexed: a typo in modes used to surface only
    # after the whole BEIR corpus had been embedded.
    modes = _eval_modes(modes)
    if k is not None:  # None: the default depth
        ev.check_depth(k)
    if limit_queries is not None and limit_queries < 1:
        raise ConfigError(f"limit_queries must be a positive number, got {limit_queries}")
    target = Path(target).expanduser()
    if not target.exists():
        raise DatasetError(f"{target}: no such file or directory; pass a BEIR folder (corpus.jsonl, "
                           "queries.jsonl, qrels/test.tsv) or a QA .jsonl file")
    if ev.is_beir_dir(target):
        if index is not None:
            raise ConfigError(f"{target.name} is a BEIR folder: its corpus is indexed for the evaluation, so "
                              "index= (the index a QA file is searched in) is not used; pass index_dir= to keep "
                              "the evaluation index in a folder of its own, or neither for a temporary index")
        dataset = ev.load_beir(target).subset(limit_queries)
        k = k or 100
        with tempfile.TemporaryDirectory(prefix="ragtune-eval-") as tmp:
            built = Index.open(index_dir or tmp, create=True)
            try:
                ev.index_corpus(built, dataset, progress=progress, option="index_dir=")
                results = ev.evaluate_index(built, dataset, modes=modes, k=k, progress=progress)
            finally:
                built.close()
        return {"kind": "beir", "name": dataset.name, "queries": len(dataset.qrels), "k": k, "results": results}
    if target.is_dir():
        raise DatasetError(f"{target}: not a BEIR folder (no corpus.jsonl) and not a QA .jsonl file")
    if index is None:
        raise ConfigError(f"{target.name} is a QA file: it is scored against an index; pass index=")
    if index_dir is not None:
        raise ConfigError(f"{target.name} is a QA file: it is searched in index= (an Index or its folder); "
                          "index_dir= is where a BEIR folder's evaluation index is kept, so drop it")
    is_path = isinstance(index, (str, os.PathLike))
    if not is_path and not callable(getattr(index, "search", None)):
        raise ConfigError(f"index= must be an Index (ragtune.api.Index.open(folder)) or the path of an index "
                          f"folder, got {type(index).__name__}")
    qa = ev.load_qa(target)[: limit_queries or None]
    k = k or 5
    opened = None
    if is_path:
        index = opened = Index.open(index)  # a folder: opened here, closed when done
    try:
        # Questions about files the index does not hold score 0 whatever retrieval does: say which, in the
        # result and as a warning (the CLI printed a note; the API had returned silent zeros).
        missing = ev.missing_sources(index, qa)
        if missing:
            import warnings

            warnings.warn(ev.missing_sources_note(target.name, missing), stacklevel=2)
        results = ev.evaluate_qa(index, qa, modes=modes, k=k, progress=progress)
    finally:
        if opened is not None:
            opened.close()
    return {"kind": "qa", "name": target.name, "queries": len(qa), "k": k, "results": results,
            "missing_sources": missing}


def _eval_modes(modes: Any) -> tuple[str, ...]:
    """``modes`` of :func:`evaluate_dataset` as a tuple: one string is one mode (iterating "bm25" asked for
    modes 'b', 'm', ...); an empty choice or an unknown mode is refused."""
    from ragtune.rag.config import MODES

    if isinstance(modes, str):
        modes = (modes,)
    try:
        modes = tuple(modes)
    except TypeError:
        raise ConfigError(f"modes must be a mode or a sequence of modes among {', '.join(MODES)}, "
                          f"got {type(modes).__name__}") from None
    if not modes:
        raise ConfigError(f"modes is empty: choose at least one of {', '.join(MODES)}")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ConfigError(f"modes: unknown mode(s) {', '.join(map(repr, unknown))}; choose among "
                          f"{', '.join(MODES)}")
    return modes


__all__ = sorted([*_EAGER, *_LAZY])
