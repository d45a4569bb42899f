"""The extractive generator: answers with the best supporting sentences of the sources, no LLM at all.

It reads the prompt that :mod:`ragtune.rag.prompt` builds, splits each numbered source into sentences,
scores every sentence against the question and returns the top one to three, each followed by its
``[n]`` citation. If no sentence covers enough of the question it says "The documents do not say."

Scoring is lexical: the share of the question's IDF weight (stemmed content words, IDF over the candidate
sentences) that a sentence contains, so a sentence that matches the rare words of the question wins over
one that repeats the common ones. Pass an ``embedder`` (an object with ``embed(texts) -> array`` or
``encode(texts) -> array``) to blend in cosine similarity.

It is the fallback when no model is available, and a baseline that an LLM has to beat.

    >>> gen = ExtractiveGenerator()
    >>> gen.generate([{"role": "user", "content": "Hi"}])
    'The documents do not say.'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ragtune.rag.generators.base import Message
from ragtune.rag.prompt import ABSTAIN_TEXT, ParsedSource, parse_prompt

# Small on purpose: words a question shares with every sentence, plus question words and pronouns.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing done down during each else etc few for from
    further had has have having he her here hers herself him himself his how i if in into is it its itself
    just let like many may me might more most much must my myself no nor not now of off on once only or
    other our ours ourselves out over own please same shall she should so some such tell than that the
    their theirs them themselves then there these they this those through to too under until up upon us
    use used uses using very via was we were what when where which while who whom whose why will with
    would you your yours yourself yourselves e.g i.e""".split()
)

_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+#.\-]*[A-Za-z0-9+#]|[A-Za-z0-9]")
# Split after . ! ? (and a closing quote or bracket) followed by space and an upper-case letter, digit,
# quote or bracket.
_SENTENCE_END_RE = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[A-Z0-9\"'(\[*`])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "fig.", "eq.", "approx.", "cf.", "al.", "no.", "dr.", "mr.")
_BULLET_RE = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+")
_MIN_SENTENCE_WORDS = 4
_LONG_SENTENCE_WORDS = 40
# "How many ...?" is answered by a sentence with a number in it.
_NUMBER_QUESTION_RE = re.compile(
    r"\bhow (many|much|long|large|big|often|fast)\b|\bwhat (year|size|number|percentage)\b|\bwhen\b", re.IGNORECASE
)
_NUMBER_RE = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|billion)\b", re.IGNORECASE
)
_LOOSE_END_RE = re.compile(r"(?<=[.;])\s+")
# A line ending in one of these words runs on into the next even when that starts with a capital.
_JOINING_WORDS = frozenset(
    "a an the of to and or but with for in on by from that which as than is are was were be like such "
    "called named using via into onto".split()
)


@lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer  # PyStemmer: Snowball stemmers in C

        return Stemmer.Stemmer("english").stemWord
    except ImportError:  # pragma: no cover - PyStemmer is a dependency; this keeps the module usable
        return _suffix_stem


def _suffix_stem(word: str) -> str:
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    """Word tokens of ``text`` in their original case ("LoRA", "fine-tuning", "4-bit", "GPT-4")."""
    return _WORD_RE.findall(text)


def content_terms(text: str) -> list[str]:
    """Stemmed, lower-cased content words of ``text``, stopwords removed, in order."""
    stem = _stemmer()
    out = []
    for w in words(text):
        w = w.lower()
        if w in STOPWORDS:
            continue
        out.append(stem(w))
        if "-" in w:  # "low-rank" also matches "rank", "fine-tuning" also "fine tuning"
            out.extend(stem(p) for p in w.split("-") if len(p) > 1 and p not in STOPWORDS)
    return out


def key_terms(text: str) -> list[str]:
    """Content words of ``text`` as written (first occurrence of each stem), for query expansion."""
    stem = _stemmer()
    seen: set[str] = set()
    out = []
    for w in words(text):
        s = stem(w.lower())
        if w.lower() in STOPWORDS or s in seen:
            continue
        seen.add(s)
        out.append(w)
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of a chunk: paragraphs re-joined across hard line wraps, list items, slide bullets and
    headings kept apart, Markdown headings and fences skipped (a heading names a topic, it does not answer)."""
    units: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        current: list[str] = []
        for line in block.splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "```", "|")):
                if current:
                    units.append(" ".join(current))
                    current = []
                continue
            if current and (_BULLET_RE.match(line) or not _continues(current[-1], stripped)):
                units.append(" ".join(current))
                current = []
            current.append(_BULLET_RE.sub("", stripped) if not current else stripped)
        if current:
            units.append(" ".join(current))
    sentences: list[str] = []
    for unit in units:
        unit = unit.replace("**", "").replace("__", "")
        pieces = _SENTENCE_END_RE.split(unit)
        merged: list[str] = []
        for piece in pieces:
            # Re-join a split made after an abbreviation ("e.g. LoRA").
            if merged and merged[-1].lower().endswith(_ABBREVIATIONS):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        for sentence in merged:
            # Tables and slides flattened into one line have no capitalised sentence starts: cut long
            # runs at any full stop or semicolon, so one table row is one candidate.
            if len(sentence.split()) > _LONG_SENTENCE_WORDS:
                sentences.extend(p.strip() for p in _LOOSE_END_RE.split(sentence) if p.strip())
            elif sentence.strip():
                sentences.append(sentence.strip())
    return sentences


def _continues(previous: str, line: str) -> bool:
    """Whether ``line`` continues the sentence of ``previous`` (a hard-wrapped paragraph) rather than
    starting a new item (a slide bullet, a PDF heading, a line of a table or list without markers)."""
    if previous.endswith((".", "!", "?", ":")):
        return False
    if not line[0].isupper():
        return True  # lower case, digit or punctuation: the sentence goes on
    last = previous.rsplit(" ", 1)[-1].lower()
    return previous.endswith((",", ";", "-", "(")) or last in _JOINING_WORDS


def best_sentence_support(question: str, texts: list[str]) -> float:
    """The score of the sentence of ``texts`` that best covers ``question`` (0: none; about 1: all of it).

    ``rag.answer`` uses it to abstain before generating when no retrieved sentence is about enough of
    the question, whatever generator then writes the answer.
    """
    sources = [ParsedSource(number=i, label="", text=t) for i, t in enumerate(texts, start=1)]
    scored = ExtractiveGenerator().score(question, sources)
    return scored[0].score if scored else 0.0


@dataclass
class ScoredSentence:
    text: str
    source: int  # the [n] of the source it came from
    score: float
    terms: frozenset[str]


class ExtractiveGenerator:
    """A :class:`~ragtune.rag.generators.base.Generator` that quotes sentences instead of writing.

    ``min_score`` is the share of the question's IDF weight the best sentence must cover (0..1);
    below it the answer is "The documents do not say."
    """

    name = "extractive"
    context_window = 100_000
    extractive = True  # tells rag.answer not to ask this generator to rewrite queries

    def __init__(self, *, max_sentences: int = 2, min_score: float = 0.4, embedder: Any = None):
        if not 1 <= max_sentences <= 10:
            raise ValueError(f"max_sentences must be between 1 and 10, got {max_sentences}")
        self.max_sentences = max_sentences
        self.min_score = float(min_score)
        self.embedder = embedder

    # -- token counting: whitespace words, a fair estimate of what "tokens" means here --------------------
    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_message_tokens(self, messages: list[Message]) -> int:
        return sum(self.count_tokens(m.get("content", "")) + 4 for m in messages)

    # -- generation ---------------------------------------------------------------------------------------
    def generate(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> str:
        parsed = parse_prompt(messages)
        chosen = self.select(parsed.question, parsed.sources)
        if not chosen:
            text = ABSTAIN_TEXT
        else:
            parts: list[str] = []
            used = 0
            for s in chosen:
                n_words = len(s.text.split())
                if parts and used + n_words + 1 > max_new_tokens:
                    break
                body = s.text if n_words < max_new_tokens else " ".join(s.text.split()[: max(max_new_tokens - 1, 1)])
                parts.append(f"{body} [{s.source}]")
                used += n_words + 1
            text = " ".join(parts)
        for marker in stop or []:
            if marker and marker in text:
                text = text[: text.index(marker)]
        return text

    def stream(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        text = self.generate(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop)
        # Word by word, so a caller that streams sees the same shape of output as from an LLM.
        yield from re.findall(r"\S+\s*", text)

    # -- scoring ------------------------------------------------------------------------------------------
    def score(self, question: str, sources: list[ParsedSource]) -> list[ScoredSentence]:
        """Every candidate sentence with its score, best first."""
        query = set(content_terms(question))
        candidates: list[tuple[str, int, frozenset[str]]] = []
        for src in sources:
            for sentence in split_sentences(src.text):
                if len(sentence.split()) < _MIN_SENTENCE_WORDS:
                    continue
                candidates.append((sentence, src.number, frozenset(content_terms(sentence))))
        if not query or not candidates:
            return []
        n = len(candidates)
        df = {t: sum(1 for _, _, terms in candidates if t in terms) for t in query}
        # A question word that no sentence contains weighs like the rarest possible word: a question about
        # something the sources never mention should not be answerable from its other words.
        idf = {t: math.log(1.0 + n / (df[t] if df[t] else 0.5)) for t in query}
        total = sum(idf.values())
        wants_number = bool(_NUMBER_QUESTION_RE.search(question))
        cosines = self._cosines(question, [c[0] for c in candidates]) if self.embedder is not None else None
        scored = []
        for i, (sentence, number, terms) in enumerate(candidates):
            matched = query & terms
            coverage = sum(idf[t] for t in matched) / total
            # Tie-breaks: a sentence that is mostly about the question, then the higher-ranked source.
            density = len(matched) / max(len(terms), 1)
            # Long sentences cover many words by accident: beyond 40 words each word costs a little.
            too_long = max(0, len(sentence.split()) - _LONG_SENTENCE_WORDS)
            score = coverage + 0.05 * density - 0.002 * (number - 1) - 0.01 * too_long
            if wants_number and _NUMBER_RE.search(sentence):
                score += 0.05
            if cosines is not None:
                score = 0.5 * score + 0.5 * max(float(cosines[i]), 0.0)
            scored.append(ScoredSentence(sentence, number, score, frozenset(matched)))
        scored.sort(key=lambda s: s.score, reverse=True)
        return scored

    def select(self, question: str, sources: list[ParsedSource]) -> list[ScoredSentence]:
        """The best sentence, plus up to ``max_sentences - 1`` more that add question words it lacks."""
        scored = self.score(question, sources)
        if not scored or scored[0].score < self.min_score:
            return []
        chosen = [scored[0]]
        covered = set(scored[0].terms)
        for s in scored[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if s.score < max(self.min_score, 0.6 * scored[0].score):
                break
            if s.terms - covered and s.text not in {c.text for c in chosen}:
                chosen.append(s)
                covered |= s.terms
        return chosen

    def _cosines(self, question: str, sentences: list[str]):
        import numpy as np

        embed = getattr(self.embedder, "embed", None) or getattr(self.embedder, "encode")
        vectors = np.asarray(embed([question, *sentences]), dtype="float32")
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors[1:] @ vectors[0]
