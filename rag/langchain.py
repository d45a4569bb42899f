"""LangChain adapters: a ``BaseRetriever`` over a ragtune index, and a RAG pipeline as a ``Runnable``.

langchain-core is imported only when one of these is used, so ``import ragtune`` does not pay for it.

    >>> from ragtune.rag.langchain import RagtuneRetriever, as_runnable
    >>> retriever = RagtuneRetriever(searcher=index, k=4)                  # doctest: +SKIP
    >>> retriever.invoke("What does LoRA train?")[0].metadata["source"]    # doctest: +SKIP
    >>> chain = as_runnable(rag) | (lambda a: a["text"])                   # doctest: +SKIP
    >>> chain.invoke({"question": "What does LoRA train?"})                # doctest: +SKIP
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ragtune.errors import ConfigError

from .types import Hit

if TYPE_CHECKING:  # pragma: no cover
    from .answer import RAG


def _import_core():
    try:
        import langchain_core  # noqa: F401
    except ImportError as exc:  # pragma: no cover - langchain-core is a dependency
        raise ConfigError(
            "the LangChain adapters need langchain-core: pip install 'langchain-core>=0.3'"
        ) from exc


def hit_to_document(hit: Hit):
    """A LangChain ``Document`` with the chunk's text and where it came from."""
    _import_core()
    from langchain_core.documents import Document

    return Document(
        page_content=hit.text,
        metadata={
            "source": hit.source,
            "page": hit.page,
            "section": hit.section,
            "chunk_id": hit.chunk_id,
            "score": hit.score,
        },
    )


@lru_cache(maxsize=1)
def _retriever_class() -> type:
    _import_core()
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict

    class RagtuneRetriever(BaseRetriever):
        """Search a ragtune index (anything with ``search(query, k, filters, mode)``) from LangChain.

        Documents carry ``metadata = {source, page, section, chunk_id, score}``.
        """

        model_config = ConfigDict(arbitrary_types_allowed=True)

        searcher: Any
        k: int = 5
        filters: dict | None = None
        mode: str | None = None

        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[Document]:
            hits = self.searcher.search(query, k=self.k, filters=self.filters, mode=self.mode)
            return [hit_to_document(h) for h in hits]

    return RagtuneRetriever


def as_retriever(searcher: Any, *, k: int = 5, filters: dict | None = None, mode: str | None = None):
    """``RagtuneRetriever(searcher=searcher, k=k, ...)``, spelled as a function."""
    return _retriever_class()(searcher=searcher, k=k, filters=filters, mode=mode)


def as_runnable(rag: RAG):
    """A ``RunnableLambda`` that answers with ``rag``: input a question string or a dict with
    ``question`` (and optionally ``history``, ``filters``); output ``Answer.to_dict()``."""
    _import_core()
    from langchain_core.runnables import RunnableLambda

    def answer(value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            return rag.ask(value).to_dict()
        if isinstance(value, dict) and isinstance(value.get("question"), str):
            return rag.ask(value["question"], history=value.get("history"), filters=value.get("filters")).to_dict()
        raise ConfigError(
            f"the ragtune runnable takes a question string or {{'question': ...}}, got {type(value).__name__}"
        )

    return RunnableLambda(answer, name="ragtune")


def __getattr__(name: str) -> Any:
    # The class derives from langchain's BaseRetriever, so it is built on first use, not at import.
    if name == "RagtuneRetriever":
        return _retriever_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
