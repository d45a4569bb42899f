"""rag/langchain.py: a ragtune index as a LangChain retriever, and RAG as a Runnable inside LCEL."""

from __future__ import annotations

import sys

import pytest

from ragtune.errors import ConfigError
from ragtune.rag.answer import RAG

from _answer_fakes import FakeGenerator, FakeSearcher, make_hit

HITS = [make_hit(1, "LoRA trains low-rank matrices.", source="/d/lora.pdf", page=3, section="LoRA", dense=0.7),
        make_hit(2, "QLoRA uses 4-bit weights.", source="/d/qlora.md", dense=0.5)]


def test_retriever_returns_documents_with_provenance():
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from ragtune.rag.langchain import RagtuneRetriever

    searcher = FakeSearcher(HITS)
    retriever = RagtuneRetriever(searcher=searcher, k=1)
    docs = retriever.invoke("What does LoRA train?")

    assert isinstance(retriever, BaseRetriever)
    assert searcher.queries == ["What does LoRA train?"]
    assert docs == [Document(page_content="LoRA trains low-rank matrices.", metadata={
        "source": "/d/lora.pdf", "page": 3, "section": "LoRA", "chunk_id": "c1", "score": 1.0})]


def test_retriever_composes_in_an_lcel_chain():
    from langchain_core.runnables import RunnableLambda

    from ragtune.rag.langchain import as_retriever

    chain = as_retriever(FakeSearcher(HITS), k=2) | RunnableLambda(
        lambda docs: " | ".join(d.metadata["chunk_id"] for d in docs))
    assert chain.invoke("q") == "c1 | c2"


def test_runnable_answers_str_or_dict_and_feeds_the_next_step():
    from langchain_core.runnables import RunnableLambda

    from ragtune.rag.langchain import as_runnable

    gen = FakeGenerator(["LoRA trains matrices [1]."])
    runnable = as_runnable(RAG(FakeSearcher(HITS), gen))
    chain = runnable | RunnableLambda(lambda a: (a["text"], [c["source"] for c in a["citations"]]))

    assert chain.invoke("What does LoRA train?") == ("LoRA trains matrices [1].", ["/d/lora.pdf"])
    assert chain.invoke({"question": "What does LoRA train?"})[0] == "LoRA trains matrices [1]."
    out = runnable.invoke({"question": "What does LoRA train?"})
    assert out["question"] == "What does LoRA train?" and out["hits"][0]["chunk_id"] == "c1"
    with pytest.raises(ConfigError, match="question"):
        runnable.invoke({"q": "missing key"})


def test_langchain_is_not_imported_with_ragtune_rag():
    import subprocess

    code = ("import sys, ragtune.rag.answer, ragtune.rag.langchain; "
            "print(any(m.startswith('langchain_core') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
