"""The public Python API in one place: what ui/, the CLI and other applications import.

    >>> from ragtune.api import Index, RAG, load_generator, corpus_index
    >>> index = corpus_index()                      # the shipped corpora/, indexed once   # doctest: +SKIP
    >>> RAG(index, load_generator("extractive")).ask("What is QLoRA?").text                # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from ragtune.errors import IndexLockedError, RagtuneError
from ragtune.paths import cache_dir, corpora_dir, default_index_dir
from ragtune.rag.config import IndexConfig
from ragtune.rag.index import AddReport, Index
from ragtune.rag.types import Answer, Chunk, Citation, Document, Hit

__all__ = [
    "Answer", "AddReport", "Chunk", "Citation", "Document", "Hit", "Index", "IndexConfig", "RAG",
    "RagtuneError", "corpus_index", "default_index_dir", "load_generator", "corpora_dir",
]


def corpus_index_fingerprint() -> str:
    """What the shipped corpus's index depends on: ragtune's version and its default index settings."""
    import hashlib
    import json

    from ragtune import __version__

    blob = json.dumps({"version": __version__, "config": IndexConfig().to_dict()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def corpus_index(path: str | Path | None = None, *, progress: bool | None = None) -> Index:
    """An index of the shipped corpora/, built under the user cache on first use and kept in step.

    Later calls only hash the files (nothing changed: no parsing, no embedding). The cached index lives in
    a folder named after :func:`corpus_index_fingerprint`, so a ragtune whose version or default settings
    differ builds a fresh one instead of serving an index made with other chunking or models; the
    folders of other fingerprints are then removed.
    """
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


def _remove_other_corpus_indexes(keep: Path) -> None:
    import shutil

    for old in keep.parent.glob("corpus-index*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def __getattr__(name: str):
    if name == "RAG":
        from ragtune.rag.answer import RAG

        return RAG
    if name == "load_generator":
        from ragtune.rag.generators import load_generator

        return load_generator
    for table in (_ANSWERS_LAZY, _RETRIEVAL_LAZY):
        if name in table:
            import importlib

            module, attr = table[name]
            return getattr(importlib.import_module(module), attr)
    raise AttributeError(name)


# -- answers (issue 9): entries for the lazy table --------------------------------------------------------
_ANSWERS_LAZY = {
    "Conversation": ("ragtune.rag.conversation", "Conversation"),
    "check_grounding": ("ragtune.rag.grounding", "check_grounding"),
}
__all__ += list(_ANSWERS_LAZY)


# -- advisor (issue 13): lazily imported public names; the lead merges this block into the _LAZY table --------
_ADVISOR_LAZY = {
    "advise": ("ragtune.advisor", "advise"),
    "load_questions": ("ragtune.advisor", "load_questions"),
    "Recommendation": ("ragtune.advisor", "Recommendation"),
}
__all__ += list(_ADVISOR_LAZY)
_getattr_before_advisor = __getattr__


def __getattr__(name: str):  # noqa: F811 - extends the lookup above with the advisor's names
    if name in _ADVISOR_LAZY:
        import importlib

        module, attr = _ADVISOR_LAZY[name]
        return getattr(importlib.import_module(module), attr)
    return _getattr_before_advisor(name)


# --- retrieval (issue 10): embedder tuned on the user's corpus --------------------------------------
__all__ += ["tune_embedder", "reembed_index", "EmbedderResult", "EmbedderTuneConfig"]
_RETRIEVAL_LAZY = {
    "tune_embedder": ("ragtune.tune.embedder", "tune_embedder"),
    "reembed_index": ("ragtune.tune.embedder", "reembed_index"),
    "EmbedderResult": ("ragtune.tune.embedder", "EmbedderResult"),
    "EmbedderTuneConfig": ("ragtune.tune.embedder", "EmbedderTuneConfig"),
}


# ---- tune (issue 11): fine-tuning names, resolved lazily so `import ragtune.api` stays torch-free ----
_TUNE_LAZY = {
    "TrainConfig": ("ragtune.tune.config", "TrainConfig"),
    "build_training_data": ("ragtune.tune.synth", "build_training_data"),
    "DataReport": ("ragtune.tune.synth", "DataReport"),
    "train_adapter": ("ragtune.tune.train", "train_adapter"),
    "TrainResult": ("ragtune.tune.train", "TrainResult"),
    "evaluate_adapter": ("ragtune.tune.evaluate", "evaluate_adapter"),
    "merge_adapter": ("ragtune.tune.export", "merge_adapter"),
}
__all__ += list(_TUNE_LAZY)
_base_getattr = __getattr__


def __getattr__(name: str):  # noqa: F811 - extends the table above; the lead folds it into _LAZY at merge
    if name in _TUNE_LAZY:
        import importlib

        module, attr = _TUNE_LAZY[name]
        return getattr(importlib.import_module(module), attr)
    return _base_getattr(name)
