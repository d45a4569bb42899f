"""Documents -> chunks that fit the embedding model.

Two chunkers, selected by name (``ChunkerConfig.name``):

- ``structure`` (default): sections stay together with their heading; a section longer than the budget
  is packed element by element (then sentence by sentence, then by token windows) into chunks of at
  most ``max_tokens`` tokens of the embedding model (default: the model's whole window), consecutive chunks of a section overlapping by up
  to ``overlap_tokens``; the section title is repeated at the top of each chunk so that it carries its
  context into the embedding.
- ``recursive``: langchain-text-splitters' RecursiveCharacterTextSplitter (character-bounded), offered
  for comparison with the usual LangChain pipeline.

Whatever the chunker, the last step re-counts every chunk with the embedder's tokenizer and splits any
chunk still over the model's window, so no chunk is ever silently truncated at embedding time.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .config import ChunkerConfig, check_overlap
from .embed import Embedder
from .types import Chunk, Document

# When the structure chunker last changed the chunks it makes of unchanged elements (a date): the shipped
# corpus's cached index is rebuilt when it moves (ragtune.api.corpus_index_fingerprint). A user's index keeps
# a file's chunks until the file changes (or is removed and added again): re-embedding every unchanged file of
# a large index for a small chunking change would cost more than the stale chunks do.
# 2026-12-01 (late): a heading directly followed by a subheading opens the subsection's prefix, not a chunk alone.
CHUNKS_CHANGED = "2026-12-01T23:50"

# A sentence ends at . ! ? (optionally followed by a closing quote/bracket) before whitespace and an
# upper-case letter, digit or opening bracket; good enough for packing, no model needed.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9(\[\"'])")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


@dataclass
class _Unit:
    text: str
    tokens: int
    page: int | None


def chunk_id(source: str, text: str) -> str:
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:20]


class StructureChunker:
    """Section-aware, token-bounded chunking (see module docstring)."""

    def __init__(self, config: ChunkerConfig, embedder: Embedder):
        self.config = config
        self.embedder = embedder
        self.max_tokens = min(config.max_tokens or embedder.max_tokens, embedder.max_tokens)
        check_overlap(config.overlap_tokens, self.max_tokens)

    def chunk(self, doc: Document) -> list[Chunk]:
        sections: list[tuple[str | None, list, int | None]] = []  # (title, elements, the title's page)
        last_title: str | None = None
        for el in doc.elements:
            # A Title opens a section even when the caller did not fill ``section`` in (documents built
            # by hand or from records); elements without a section belong to the last title seen.
            if el.type == "Title":
                last_title = el.section if el.section is not None else el.text.strip()[:200]
            section = el.section if el.section is not None else last_title
            if not sections or section != sections[-1][0]:
                sections.append((section, [], el.page))
            # The heading itself becomes the prefix of every chunk of its section.
            if self.config.prefix_section and el.type == "Title" and el.text.strip()[:200] == (section or ""):
                continue
            sections[-1][1].append(el)
        chunks: list[Chunk] = []
        pending: list[str] = []  # headings with nothing under them, carried into the next section's prefix
        for i, (title, elements, page) in enumerate(sections):
            if not elements and not title:
                continue
            if not elements:
                # A heading directly followed by another heading on the same page ("Pre-training", then
                # "Objective") is the next section's context, not content: it opens that section's prefix,
                # so no chunk holds a heading alone (the shipped corpus had two, which retrieval and the
                # extractive answer could pick). A heading with nothing after it on its page (a slide
                # title, a document's last heading) is still content and stays a chunk of its own.
                if self.config.prefix_section and i + 1 < len(sections) and sections[i + 1][2] == page:
                    pending.append(title)
                    continue
                text = "\n".join([*pending, title])
                pending = []
                chunks.extend(self._emit(doc, title, "", [_Unit(text, self._count([text])[0], page)]))
                continue
            heads = [*pending, title] if title and self.config.prefix_section else pending
            pending = []
            prefix = "".join(f"{h}\n" for h in heads)
            chunks.extend(self._pack_section(doc, title, prefix, elements))
        return finalize(chunks, self.embedder, self.max_tokens)

    def _count(self, texts: list[str]) -> list[int]:
        return self.embedder.count_tokens(texts)

    def _pack_section(self, doc: Document, title, prefix: str, elements) -> list[Chunk]:
        budget = self.max_tokens - (self._count([prefix])[0] if prefix else 0)
        budget = max(budget, self.max_tokens // 2)  # an absurdly long title is clipped by finalize()
        counts = self._count([e.text for e in elements])
        units: list[_Unit] = []
        for el, n in zip(elements, counts):
            if n <= budget:
                units.append(_Unit(el.text, n, el.page))
                continue
            sentences = split_sentences(el.text)
            for sent, m in zip(sentences, self._count(sentences)):
                if m <= budget:
                    units.append(_Unit(sent, m, el.page))
                else:
                    for piece in self.embedder.split_tokens(sent, budget, self.config.overlap_tokens):
                        units.append(_Unit(piece, self._count([piece])[0], el.page))
        return self._emit(doc, title, prefix, units, budget)

    def _emit(self, doc, title, prefix, units: list[_Unit], budget: int | None = None) -> list[Chunk]:
        budget = budget or self.max_tokens
        groups: list[list[_Unit]] = []
        current: list[_Unit] = []
        size = 0
        for unit in units:
            # +1: the newline joining two units can cost a token in some tokenizers.
            if current and size + unit.tokens + 1 > budget:
                groups.append(current)
                current, size = self._overlap_tail(current, budget - unit.tokens - 1)
            current.append(unit)
            size += unit.tokens + 1
        if current:
            groups.append(current)
        return [
            Chunk(
                id="",
                text=prefix + "\n".join(u.text for u in group),
                source=doc.source,
                page=next((u.page for u in group if u.page is not None), None),
                section=title,
                metadata=doc.chunk_metadata(),
            )
            for group in groups
        ]

    def _overlap_tail(self, previous: list[_Unit], room: int) -> tuple[list[_Unit], int]:
        """The last units of the previous chunk (at most ``overlap_tokens`` and ``room``) to repeat."""
        limit = min(self.config.overlap_tokens, room)
        tail: list[_Unit] = []
        size = 0
        for unit in reversed(previous[1:]):  # never repeat the whole previous chunk
            if size + unit.tokens + 1 > limit:
                break
            tail.insert(0, unit)
            size += unit.tokens + 1
        return tail, size


class RecursiveChunker:
    """langchain-text-splitters' RecursiveCharacterTextSplitter, clipped to the embedding window."""

    def __init__(self, config: ChunkerConfig, embedder: Embedder):
        self.config = config
        self.embedder = embedder

    def chunk(self, doc: Document) -> list[Chunk]:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(
            chunk_size=self.config.chunk_size, chunk_overlap=self.config.chunk_overlap, add_start_index=True
        )
        # Remember where each element starts so a chunk can be given the page/section it begins in.
        starts, text, pos = [], [], 0
        for el in doc.elements:
            starts.append((pos, el))
            text.append(el.text)
            pos += len(el.text) + 2
        chunks = []
        for piece in splitter.create_documents(["\n\n".join(text)]):
            begin = piece.metadata.get("start_index", 0)
            owner = next((el for start, el in reversed(starts) if start <= begin), doc.elements[0])
            chunks.append(
                Chunk(id="", text=piece.page_content, source=doc.source, page=owner.page,
                      section=owner.section, metadata=doc.chunk_metadata())
            )
        # The model-window guarantee is this chunker's only token bound: use the model's full window.
        return finalize(chunks, self.embedder, self.embedder.max_tokens)


def finalize(chunks: list[Chunk], embedder: Embedder, max_tokens: int) -> list[Chunk]:
    """Enforce the token bound, drop empty and duplicate texts, and assign ids and hashes."""
    counts = embedder.count_tokens([c.text for c in chunks])
    out: list[Chunk] = []
    seen: set[str] = set()
    for chunk, n in zip(chunks, counts):
        pieces = [chunk.text] if n <= max_tokens else embedder.split_tokens(chunk.text, max_tokens, 0)
        for text in pieces:
            text = text.strip()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if not text or digest in seen:
                continue
            seen.add(digest)
            out.append(
                Chunk(
                    id=chunk_id(chunk.source, text),
                    text=text,
                    source=chunk.source,
                    page=chunk.page,
                    section=chunk.section,
                    hash=digest,
                    metadata={**chunk.metadata, "ordinal": len(out)},
                )
            )
    return out


def make_chunker(config: ChunkerConfig, embedder: Embedder):
    config.validate()
    return (RecursiveChunker if config.name == "recursive" else StructureChunker)(config, embedder)
