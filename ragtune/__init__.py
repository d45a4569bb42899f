"""ragtune: documents and a question to a working LLM application.

    >>> from ragtune import Index
    >>> index = Index.open(".ragtune/index", create=True)   # doctest: +SKIP
    >>> index.add(["corpora/"])                              # doctest: +SKIP
    >>> index.search("What does LoRA train?", k=3)           # doctest: +SKIP

Importing ragtune is cheap: torch, transformers, faiss and unstructured load only when used. It does
set offline/no-telemetry environment defaults (see ``ragtune.rag.offline``), because the libraries it
drives would otherwise call out to the network on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragtune.errors import RagtuneError
from ragtune.rag.offline import configure_environment

configure_environment()

__version__ = "0.1.0"

_LAZY = {
    "Index": ("ragtune.rag.index", "Index"),
    "IndexConfig": ("ragtune.rag.config", "IndexConfig"),
    "RAG": ("ragtune.rag.answer", "RAG"),
    "load_generator": ("ragtune.rag.generators", "load_generator"),
    "advise": ("ragtune.advisor", "advise"),
    "corpus_index": ("ragtune.api", "corpus_index"),
}

if TYPE_CHECKING:  # pragma: no cover
    from ragtune.rag.index import Index  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ragtune' has no attribute {name!r}")


__all__ = ["RagtuneError", "__version__", *_LAZY]
