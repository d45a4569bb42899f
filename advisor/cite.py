"""Back the recommendation with quotes from the indexed corpus, cited as [n] (source, section, page).

Anything with ``search(query, k) -> list[Hit]`` works as a searcher (a ragtune ``Index``, or a fake in
tests). For every option we search for the source rule it rests on and for its strongest reasons for and
against, then quote the sentence(s) of the retrieved passages that share the most words with the query.
A search that fails is reported in ``Recommendation.citations_note``; it never stops the advice.

Retrieved is not relevant: a sentence that shares words with the query can still be about something else
(issue 13 found "Fine-tuning: speed/latency" backed by a sentence on QLoRA's 4-bit storage). So a quote
must pass a relevance check before it is used, and is dropped (no citation beats a wrong one) otherwise:
- a rule's quote must come from the document the rule is credited to (``document`` in matrix.yaml);
- a reason's quote must mention the factor (one of its ``keywords``) and the option (one of the option's
  ``keywords``), each matched at a word start ("rag" does not match "storage").

    >>> attach_citations(rec, matrix, corpus_index())    # doctest: +SKIP
    >>> rec.quotes[0].text, rec.quotes[0].source           # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

from .matrix import Matrix
from .types import Quote, Recommendation

_STOP = frozenset(
    "the a an and or of to in on for with without when is are be can its it this that as at by from than then "
    "your you our we they their them more most less not no all any each one two into out over use used using "
    "what which who how why also only very much many such these those there here about after before".split()
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
MAX_QUOTE_CHARS = 320


class Searcher(Protocol):
    def search(self, query: str, k: int = 5) -> list[Any]:  # list[ragtune.rag.types.Hit]
        ...


def _stem(words: list[str]) -> list[str]:
    try:
        import Stemmer  # PyStemmer, already a dependency of the lexical retriever
    except ImportError:
        return words
    return Stemmer.Stemmer("english").stemWords(words)


def _words(text: str) -> set[str]:
    """Stemmed content words, so that "citations" meets "citation" and "changes" meets "changed"."""
    return set(_stem([w for w in re.findall(r"[a-z][a-z0-9-]+", text.lower()) if w not in _STOP and len(w) > 2]))


def _sentences(hit: Any) -> list[str]:
    text = " ".join(hit.text.split())
    section = " ".join((hit.section or "").split())
    if section and text.startswith(section):  # chunks often open with their heading: not a sentence
        text = text[len(section):].lstrip(" :.-")
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def mentions(text: str, keywords: tuple[str, ...] | list[str]) -> bool:
    """Whether ``text`` contains one of ``keywords`` starting at a word boundary (keywords are stems or
    phrases: "retriev" matches "retrieved", "rag" matches "RAG" but not "storage")."""
    low = text.lower()
    return any(re.search(r"(?<![a-z0-9])" + re.escape(k), low) for k in keywords)


def best_quote(query: str, hits: list[Any], *, focus: str | None = None, min_overlap: int = 2,
               require: list[tuple[str, ...]] | None = None) -> tuple[Any, str] | None:
    """The hit and the sentence (plus the next one when it is short) sharing most content words with
    ``focus`` (default: ``query``), then with ``query``; earlier hits win ties. None when no sentence
    shares at least ``min_overlap`` words with ``focus`` and (relevance) mentions a keyword of every
    group in ``require``."""
    qwords, fwords = _words(query), _words(focus if focus is not None else query)
    groups = [g for g in (require or []) if g]
    # (fits in a quote, focus overlap, query overlap, -hit rank, hit, quote): a flattened table "sentence"
    # overlaps a lot by sheer length, so it is quoted only when no ordinary sentence qualifies.
    best: tuple[bool, int, int, int, Any, str] | None = None
    for rank, hit in enumerate(hits):
        sentences = _sentences(hit)
        for i, s in enumerate(sentences):
            words = _words(s)
            if not all(mentions(s, g) for g in groups):
                continue
            key = (len(s) <= MAX_QUOTE_CHARS, len(fwords & words), len(qwords & words), -rank)
            if key[1] >= min_overlap and (best is None or key > best[:4]):
                quote = s if len(s) >= 100 or i + 1 >= len(sentences) else f"{s} {sentences[i + 1]}"
                if len(quote) > MAX_QUOTE_CHARS:
                    quote = quote[: MAX_QUOTE_CHARS - 1].rsplit(" ", 1)[0] + "…"
                best = (*key, hit, quote)
    return None if best is None else (best[4], best[5])


class _Citer:
    def __init__(self, searcher: Searcher, k: int):
        self.searcher, self.k = searcher, k
        self.quotes: list[Quote] = []
        self._by_key: dict[tuple[str, str], int] = {}
        self._cache: dict[str, int | None] = {}
        self.dropped: list[str] = []  # what a retrieved passage was not quoted for (failed the relevance check)

    def cite(self, query: str, focus: str | None = None, *, document: str = "",
             require: list[tuple[str, ...]] | None = None, what: str = "") -> list[int]:
        if query not in self._cache:
            # A rule must be quoted from its own document, so look deeper: the top k often come from other files.
            retrieved = list(self.searcher.search(query, k=self.k * 3 if document else self.k))
            hits = retrieved
            if document:  # a rule is quoted only from the document it is credited to
                hits = [h for h in retrieved if Path(str(h.source)).name == document]
            found = best_quote(query, hits, focus=focus, require=require)
            if found is None and best_quote(query, retrieved, focus=focus) is not None:
                self.dropped.append(what or query)
            marker = None
            if found is not None:
                hit, text = found
                key = (str(getattr(hit, "chunk_id", "")), text)
                for cid, quoted in self._by_key:  # reuse a quote of the same chunk that already contains it
                    if cid == key[0] and text in quoted:
                        key = (cid, quoted)
                        break
                if key not in self._by_key:
                    self._by_key[key] = len(self.quotes) + 1
                    self.quotes.append(Quote(len(self.quotes) + 1, text, str(hit.source), hit.section, hit.page,
                                             key[0], query))
                marker = self._by_key[key]
            self._cache[query] = marker
        m = self._cache[query]
        return [] if m is None else [m]


def attach_citations(
    rec: Recommendation, matrix: Matrix, searcher: Searcher | None, *, k: int = 3, reasons_for: int = 2,
    reasons_against: int = 1,
) -> Recommendation:
    """Fill ``rec.quotes`` and the ``citations`` markers of options and reasons; returns ``rec``."""
    if searcher is None:
        rec.citations_note = rec.citations_note or "Citations were not requested."
        return rec
    citer = _Citer(searcher, k)
    try:
        for opt in rec.options:
            option = matrix.option(opt.id)
            for rule in opt.rules:
                document = matrix.rules[rule.id].document if rule.id in matrix.rules else ""
                rule.citations = citer.cite(rule.text, document=document, what=f"rule {rule.id}")
            for reason in opt.reasons_for[:reasons_for] + opt.reasons_against[:reasons_against]:
                factor = matrix.factor(reason.factor_id)
                # Search with the option's name, but quote only a sentence about the factor itself.
                focus = f"{factor.name}. {factor.scores[opt.id].rationale}"
                reason.citations = citer.cite(f"{option.name}: {focus}", focus=focus,
                                              require=[factor.keywords, option.keywords],
                                              what=f"{option.name}: {factor.name}")
    except Exception as e:  # a broken index must not take the advice down with it
        rec.citations_note = f"Citations unavailable: searching the corpus failed ({type(e).__name__}: {e})."
    rec.quotes = citer.quotes
    rec.quotes_dropped = citer.dropped
    if citer.dropped:
        rec.citations_note = (rec.citations_note + " " if rec.citations_note else "") + (
            f"{len(citer.dropped)} retrieved passage(s) were not quoted because they do not concern what they "
            f"would back: {'; '.join(citer.dropped)}.")
    if not citer.quotes and not rec.citations_note:
        rec.citations_note = "No passage of the indexed corpus matched the rules closely enough to quote."
    return rec
