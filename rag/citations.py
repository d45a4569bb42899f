"""Citations: the ``[n]`` markers of an answer, checked against the sources the model was shown.

- :class:`CitationFilter` drops markers that point to no shown source, from streamed text, so the pieces
  a user sees already join to the final answer;
- :func:`resolve_citations` turns the markers left into :class:`~ragtune.rag.types.Citation` objects;
- :func:`attribute_sources` finds the sources that support an answer written without any marker.

    >>> f = CitationFilter({1, 2})
    >>> f.feed("LoRA trains adapters [1] [7].") + f.flush()
    'LoRA trains adapters [1].'
"""

from __future__ import annotations

import re

from .prompt import ABSTAIN_TEXT, Prompt
from .text import content_terms
from .types import Citation

_MARKER_RE = re.compile(r"\[\s*(\d+(?:\s*[,;\-\u2013]\s*\d+)*)\s*\]")
# What the start of a marker looks like while it is still arriving: "[", "[1", "[1,", "[1, 2".
_PARTIAL_RE = re.compile(r"\[\s*(?:\d+(?:\s*[,;\-\u2013]\s*\d*)*)?\s*")
_STRIP_RE = re.compile(r"[ \t]*" + _MARKER_RE.pattern)
_MAX_MARKER_CHARS = 40
_QUOTE_CHARS = 200


def marker_numbers(marker_body: str) -> list[int]:
    """``"1, 3-4"`` -> ``[1, 3, 4]`` (ranges expanded, at most 20 wide; duplicates removed)."""
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", marker_body.strip()):
        bounds = [int(x) for x in re.split(r"\s*[\-\u2013]\s*", part) if x]
        if len(bounds) == 2 and 0 <= bounds[1] - bounds[0] <= 20:
            bounds = list(range(bounds[0], bounds[1] + 1))
        numbers.extend(b for b in bounds if b not in numbers)
    return numbers


class CitationFilter:
    """Removes citation markers that point to no given source, from text that arrives piece by piece.

    Text is passed through as soon as it cannot be part of a marker; a possible marker (and the spaces
    before it, which go with it when it is removed) is held until it is complete. The output does not
    depend on how the input was cut into pieces, so ``ask`` and ``stream`` give the same text.
    """

    def __init__(self, allowed: set[int]):
        self.allowed = set(allowed)
        self._buf = ""
        self._started = False  # leading whitespace of the answer is dropped

    def feed(self, piece: str) -> str:
        self._buf += piece
        out: list[str] = []
        while self._buf:
            at = self._buf.find("[")
            if at < 0:
                text = self._buf.rstrip()  # trailing spaces may precede a marker: hold them
                out.append(text)
                self._buf = self._buf[len(text) :]
                break
            head, rest = self._buf[:at], self._buf[at:]
            text = head.rstrip(" \t")
            spaces = head[len(text) :]
            out.append(text)
            match = _MARKER_RE.match(rest)
            if match:
                kept = [n for n in marker_numbers(match.group(1)) if n in self.allowed]
                if kept:
                    original_ok = len(kept) == len(marker_numbers(match.group(1)))
                    out.append(spaces + (match.group(0) if original_ok else "[" + ", ".join(map(str, kept)) + "]"))
                self._buf = rest[match.end() :]
                continue
            partial = _PARTIAL_RE.match(rest)
            if partial and partial.end() == len(rest) and len(rest) < _MAX_MARKER_CHARS:
                self._buf = spaces + rest  # wait for the rest of the marker
                break
            out.append(spaces + "[")
            self._buf = rest[1:]
        return self._start("".join(out))

    def flush(self) -> str:
        text, self._buf = self._buf.rstrip(), ""
        return self._start(text)

    def _start(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        return text


def resolve_citations(text: str, prompt: Prompt) -> list[Citation]:
    """One :class:`Citation` per distinct source number cited in ``text``, in order of first citation."""
    citations: list[Citation] = []
    seen: set[int] = set()
    for match in _MARKER_RE.finditer(text):
        for n in marker_numbers(match.group(1)):
            source = prompt.source(n)
            if source is None or n in seen:
                continue
            seen.add(n)
            hit = source.hit
            citations.append(
                Citation(
                    marker=n,
                    chunk_id=hit.chunk_id,
                    source=hit.source,
                    page=hit.page,
                    section=hit.section,
                    quote=_excerpt(source.text),
                )
            )
    return citations


def attribute_sources(text: str, question: str, prompt: Prompt, *, min_support: float = 0.5) -> list[int]:
    """Sources that support an answer written without citations, by the words it adds to the question.

    Small models often ignore "cite like [1]". The words of the answer that are not in the question are
    what it claims; a source holding at least ``min_support`` of them supports it. At most two sources,
    best first. An answer whose new words are in no source (an invented number, say) gets none.
    """
    claimed = set(content_terms(text)) - set(content_terms(question))
    if not claimed:
        return []
    support = []
    for source in prompt.sources:
        share = len(claimed & set(content_terms(source.text))) / len(claimed)
        if share >= min_support:
            support.append((share, -source.number, source.number))
    return [n for *_, n in sorted(support, reverse=True)[:2]]


def is_abstention(text: str) -> bool:
    return text.strip().lower().startswith(ABSTAIN_TEXT.lower().rstrip("."))


def says_abstention(text: str) -> bool:
    """The abstention anywhere in ``text``, not only at its start (:func:`is_abstention` reads a whole answer):
    a model that says it after a preamble has not answered. How `tune eval` scores, and what the reader check
    (``RAG(fallback=...)``) refuses to confirm."""
    return ABSTAIN_TEXT.lower().rstrip(".") in text.lower()


def has_citation(text: str) -> bool:
    return _MARKER_RE.search(text) is not None


def strip_citations(text: str) -> str:
    """``"LoRA trains adapters [1]."`` -> ``"LoRA trains adapters."``"""
    return _STRIP_RE.sub("", text)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _QUOTE_CHARS:
        return text
    cut = text[:_QUOTE_CHARS].rsplit(" ", 1)[0]
    return cut + " ..."

