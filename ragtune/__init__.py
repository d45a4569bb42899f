"""ragtune: documents and a question to a working LLM application.

    >>> from ragtune import Index
    >>> index = Index.open(".ragtune/index", create=True)   # doctest: +SKIP
    >>> index.add(["corpora/"])                              # doctest: +SKIP
    >>> index.search("What does LoRA train?", k=3)           # doctest: +SKIP

``ragtune`` and ``ragtune.api`` are one public surface: every name of :mod:`ragtune.api` is available here
too (``ragtune.RAG is ragtune.api.RAG``), loaded on first use. Importing ragtune is cheap: torch,
transformers, faiss and unstructured load only when used. It does set offline/no-telemetry environment
defaults (see ``ragtune.rag.offline``), because the libraries it drives would otherwise call out to the
network on their own.
"""

from __future__ import annotations

from typing import Any

from ragtune.errors import RagtuneError
from ragtune.rag.offline import configure_environment

configure_environment()

__version__ = "0.1.0"


def _api() -> Any:
    # import_module, not `from ragtune import api`: that form asks this module for `api` first, which
    # would land back in __getattr__ before the submodule is imported.
    import importlib

    return importlib.import_module("ragtune.api")


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return ["RagtuneError", "__version__", *_api().__all__]
    # Dunder and submodule lookups (__path__, "api", "ui") must fail fast, not recurse into the API.
    if name.startswith("__") or name in ("api", "jobs", "shared", "ui"):
        raise AttributeError(name)
    api = _api()
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module 'ragtune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_api().__all__))
