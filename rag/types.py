"""Plain data carried between the stages of the pipeline.

    files -> Document(elements) -> Chunk -> (embedding, index) -> Hit -> Answer(citations)

They are dataclasses of plain values (str, int, float, dict of JSON-able values) so that they can be
stored as JSON, shown in a UI, or sent over the wire without custom encoders: see ``to_dict``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Element:
    """One piece of a parsed file: a title, a paragraph, a list item, a table, ..."""

    text: str
    type: str = "NarrativeText"  # unstructured's category name
    page: int | None = None
    section: str | None = None  # the title of the enclosing section, if any
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Document:
    """A parsed file: where it came from and its elements in reading order."""

    source: str  # the path as stored in the index (absolute, resolved)
    type: str  # file type by extension: "pdf", "md", "html", ...
    elements: list[Element]
    sha256: str = ""  # content hash of the file's bytes
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(e.text for e in self.elements)

    def own_metadata(self) -> dict[str, Any]:
        """The document's own metadata (a filter can match it: ``filters={"year": "2024"}``). A file's size and
        modification time are the index's bookkeeping (its files table), not a description of the document."""
        return {k: v for k, v in self.metadata.items() if k not in FILE_BOOKKEEPING and v is not None}

    def chunk_metadata(self) -> dict[str, Any]:
        """What every chunk of this document carries: its own metadata and its file type."""
        return {**self.own_metadata(), "file_type": self.type}

    def metadata_problem(self) -> str | None:
        """Why this document's metadata cannot go onto its chunks, or None. A key must be a name a filter can
        address (letters, digits, ``_``, ``-``) and not one of the index's own; a value a string, number or
        boolean (what a filter compares with)."""
        if not isinstance(self.metadata, dict):
            return f"metadata must be a dict, got {type(self.metadata).__name__}"
        for key, value in self.metadata.items():
            if key in FILE_BOOKKEEPING or value is None:
                continue
            if not isinstance(key, str) or not key or not key.replace("_", "").replace("-", "").isalnum():
                return f"metadata key {key!r}: use letters, digits, '_' or '-' (a filter names it)"
            if key in RESERVED_METADATA:
                return f"metadata key {key!r} is the index's own; rename it (e.g. 'doc_{key}')"
            if not isinstance(value, (str, int, float, bool)):
                return (f"metadata {key!r}: {type(value).__name__} values cannot be filtered on; give a string, "
                        "number or boolean")
        return None


FILE_BOOKKEEPING = ("size", "mtime")
# Keys a chunk's metadata cannot take from its document: the index's columns and its own fields.
RESERVED_METADATA = frozenset({"source", "page", "section", "file_type", "ordinal", "id", "chunk_id", "text", "hash"})


@dataclass
class Chunk:
    """A retrievable unit of text with the provenance needed to cite it."""

    id: str
    text: str
    source: str
    page: int | None = None
    section: str | None = None
    hash: str = ""  # sha256 of ``text``
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Hit:
    """A chunk returned by a search, with its final score and the score of each retriever.

    ``scores`` holds what each stage saw, e.g. ``{"dense": 0.71, "bm25": 12.3, "rrf": 0.032}``,
    ``ranks`` the 1-based rank each retriever gave it (absent if that retriever did not return it).
    ``also_in``: the sources of lower-ranked hits with the same text (copies of a document under another name),
    when copies were collapsed into this hit (:func:`ragtune.rag.retrieve.collapse_copies`).
    """

    chunk: Chunk
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    also_in: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.chunk.text

    @property
    def source(self) -> str:
        return self.chunk.source

    @property
    def page(self) -> int | None:
        return self.chunk.page

    @property
    def section(self) -> str | None:
        return self.chunk.section

    @property
    def chunk_id(self) -> str:
        return self.chunk.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk.id,
            "score": self.score,
            "scores": dict(self.scores),
            "ranks": dict(self.ranks),
            "source": self.chunk.source,
            "page": self.chunk.page,
            "section": self.chunk.section,
            "text": self.chunk.text,
            "metadata": dict(self.chunk.metadata),
            "also_in": list(self.also_in),
        }


@dataclass
class Citation:
    """An inline marker ``[n]`` in an answer, resolved to the chunk it points to."""

    marker: int
    chunk_id: str
    source: str
    page: int | None = None
    section: str | None = None
    quote: str = ""  # a short excerpt of the cited chunk

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Answer:
    """What ``RAG.ask`` returns."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    abstained: bool = False
    question: str = ""
    query: str = ""  # the standalone query actually used for retrieval
    # The grounding check's verdict for generators that write their own words (empty for extractive):
    # {"supported", "support", "sources", "reason", "fallback": None | "extractive" | "abstain", "model_text"}
    grounding: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "query": self.query,
            "text": self.text,
            "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations],
            "hits": [h.to_dict() for h in self.hits],
            "timings": dict(self.timings),
            "grounding": dict(self.grounding),
        }
