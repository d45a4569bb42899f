"""Deterministic fakes for the answering tests: a searcher over fixed chunks and a scripted generator."""

from __future__ import annotations

from collections.abc import Iterator

from ragtune.rag.types import Chunk, Hit


def make_hit(n: int, text: str, *, source: str = "", dense: float | None = 0.6, section: str | None = None,
             page: int | None = None) -> Hit:
    scores = {"dense": dense} if dense is not None else {"bm25": 3.0}
    return Hit(
        chunk=Chunk(id=f"c{n}", text=text, source=source or f"/docs/doc{n}.md", page=page, section=section),
        score=1.0 / n,
        scores=scores,
        ranks={"dense": n},
    )


class FakeSearcher:
    """Returns its hits (best first) for every query and records the queries it was asked."""

    def __init__(self, hits: list[Hit] | None = None, size: int | None = None):
        self.hits = list(hits or [])
        self.size = size
        self.queries: list[str] = []
        self.calls: list[dict] = []  # the filters, mode and options of each search

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str | None = None,
               **options) -> list[Hit]:
        self.queries.append(query)
        self.calls.append({"k": k, "filters": filters, "mode": mode, **options})
        return self.hits[:k]

    def __len__(self) -> int:
        return len(self.hits) if self.size is None else self.size


class FakeGenerator:
    """A Generator that replies with scripted text, in the given pieces; tokens are whitespace words."""

    def __init__(self, replies: list[str | list[str]] | None = None, *, context_window: int = 1000,
                 name: str = "fake"):
        self.replies = list(replies or ["An answer [1]."])
        self.context_window = context_window
        self.name = name
        self.calls: list[list[dict]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_message_tokens(self, messages: list[dict]) -> int:
        return sum(self.count_tokens(m["content"]) + 3 for m in messages)

    def stream(self, messages, *, max_new_tokens: int = 256, temperature: float = 0.0,
               stop=None) -> Iterator[str]:
        self.calls.append(messages)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        yield from ([reply] if isinstance(reply, str) else reply)

    def generate(self, messages, *, max_new_tokens: int = 256, temperature: float = 0.0, stop=None) -> str:
        return "".join(self.stream(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop))
