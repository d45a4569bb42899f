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
from typing import Any

from ..prompt import ABSTAIN_TEXT, ParsedSource, parse_prompt
from ..text import (
    QUESTION_FRAME,
    answer_type,
    asked_subject,
    completes_preposition,
    content_terms,
    defines_subject,
    has_answer_type,
    is_code,
    is_heading_like,
    question_head,
    question_parts,
    question_term_groups,
    split_sentences,
    stranded_preposition,
    words,
)
from .base import Message
from .common import GeneratorBase

_MIN_SENTENCE_WORDS = 4
_LONG_SENTENCE_WORDS = 40
# Question words found only in the sentence before, or in the section heading, count this much.
_CONTEXT_CREDIT = 0.5
# A sentence of the answer type asked for ("how many" -> a number) gains this, one without it loses that.
# On corpora/qa.jsonl penalties of 0.15, 0.25 and 0.4 give the same figures (gold fact + citation 0.826);
# 0.4 lets a sentence whose subject is named in the sentence before it ("Pour in 500 ml of it") beat a
# neighbour that repeats the question's words without the number. Excluding such sentences outright
# (an infinite penalty) drops the figure to 0.802.
_TYPE_BONUS = 0.05
_TYPE_PENALTY = 0.4
# "Who ...?" is answered by a name or by a role ("The on-call engineer is paged ..."); only names can be
# recognised, so a sentence without one is only mildly suspect.
_NAME_PENALTY = 0.15
_RESTATES_PENALTY = 0.1
_FRAME_CREDIT = 0.02  # a tie-break, below any difference in coverage of a content word
# "What is X?": a sentence of a definition's shape ("X is ...") states what X is; the answer type's weight,
# since it is the same kind of evidence (the sentence has the shape of the answer). Set by that principle,
# not searched.
_SUBJECT_CREDIT = _TYPE_BONUS
# "What does QLoRA quantise the base model to?": a question ending on a preposition asks for its object, and a
# sentence where a question word is directly followed by that preposition ("quantised to 4-bit NormalFloat")
# has the answer's shape: the same kind of evidence, so the same weight (not searched). Definition questions
# ("What does HNSW stand for?") already get _SUBJECT_CREDIT for that shape and are not credited twice.
_PREPOSITION_CREDIT = _TYPE_BONUS
# A second sentence completes the best one when it adds question words the best lacks and scores at least
# _COMPLETES of it. From another document it is not a completion but a second answer, so it must be nearly
# as good as the best. Measured on the development sets together (bench/answer.py, extractive, shipped
# 86 + dev 83 answerable questions; before: the same 0.6 for both): citation precision 0.897 / 0.989 at 0.6,
# 0.929 / 1.000 at 0.85, 0.939 / 1.000 at 0.9, and gold fact + citation 0.837 / 0.892 up to 0.85, 0.826 /
# 0.892 at 0.9. 0.85 is the strictest value that loses no answer. It changes five answers, each of which
# cited two documents: on the four answerable ones the dropped second citation was the wrong file.
_COMPLETES = 0.6
_OTHER_DOCUMENT = 0.85


def best_sentence_support(question: str, texts: list[str], labels: list[str] | None = None) -> float:
    """The score of the sentence of ``texts`` that best covers ``question`` (0: none; about 1: all of it).

    ``rag.answer`` uses it to abstain before generating when no retrieved sentence is about enough of
    the question, whatever generator then writes the answer. ``labels``: the sources' labels as the
    prompt shows them (``lora.md, section "LoRA"``), whose words count as context of every sentence.
    """
    labels = labels or [""] * len(texts)
    sources = [ParsedSource(number=i, label=lab, text=t) for i, (t, lab) in enumerate(zip(texts, labels), start=1)]
    generator = ExtractiveGenerator()
    scored = generator.score(question, sources)
    best = scored[0].score if scored else 0.0
    parts = question_parts(question)
    if len(parts) > 1:
        # A two-part question is supported when each part is, by its own sentence: no single sentence
        # usually covers both ("What do LoRA and QLoRA do?" abstained when scored whole).
        each = [generator.score(part, sources) for part in parts]
        best = max(best, min(s[0].score if s else 0.0 for s in each))
    return best


@dataclass
class ScoredSentence:
    text: str
    source: int  # the [n] of the source it came from
    score: float
    terms: frozenset[str]


class ExtractiveGenerator(GeneratorBase):
    """A :class:`~ragtune.rag.generators.base.Generator` that quotes sentences instead of writing.

    ``min_score`` is the share of the question's IDF weight the best sentence must cover (0..1);
    below it the answer is "The documents do not say." 0.3, chosen on corpora/qa.jsonl (86 answerable,
    12 unanswerable questions): gold fact + citation 0.767 at 0.4, 0.814 at 0.3, 0.745 at 0.45 (measured
    before question-frame words were left out of scoring, which then took 0.3 to 0.826), with the same
    91.7% abstention on the unanswerable ones at all three. ``embedder`` blends in sentence cosine similarity; on
    the same questions it changed no figure and cost ~3 s per question on a CPU, so RAG does not use it.
    """

    name = "extractive"
    context_window = 100_000
    extractive = True  # tells rag.answer not to ask this generator to rewrite queries

    def __init__(self, *, max_sentences: int = 2, min_score: float = 0.3, embedder: Any = None,
                 embedding_weight: float = 0.5):
        if not 1 <= max_sentences <= 10:
            raise ValueError(f"max_sentences must be between 1 and 10, got {max_sentences}")
        if not 0.0 <= embedding_weight <= 1.0:
            raise ValueError(f"embedding_weight must be between 0 and 1, got {embedding_weight}")
        self.max_sentences = max_sentences
        self.min_score = float(min_score)
        self.embedder = embedder
        self.embedding_weight = float(embedding_weight)

    # -- token counting: whitespace words, a fair estimate of what "tokens" means here --------------------
    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_message_tokens(self, messages: list[Message]) -> int:
        return sum(self.count_tokens(m.get("content", "")) + 4 for m in messages)

    # -- generation ---------------------------------------------------------------------------------------
    def _generate(self, messages: list[Message], max_new_tokens: int, temperature: float, stops: list[str]) -> str:
        parsed = parse_prompt(messages)
        said = [m["content"] for m in parsed.history if m.get("role") == "assistant"]
        text = self.render(self.select(parsed.question, parsed.sources, already_said=said), max_new_tokens)
        for marker in stops:
            if marker in text:
                text = text[: text.index(marker)]
        return text

    @staticmethod
    def render(chosen: list[ScoredSentence], max_new_tokens: int) -> str:
        """The answer text of selected sentences: each followed by its ``[n]``, cut to ``max_new_tokens``
        words; the abstention when nothing was selected."""
        if not chosen:
            return ABSTAIN_TEXT
        parts: list[str] = []
        used = 0
        for s in chosen:
            n_words = len(s.text.split())
            if parts and used + n_words + 1 > max_new_tokens:
                break
            body = s.text if n_words < max_new_tokens else " ".join(s.text.split()[: max(max_new_tokens - 1, 1)])
            parts.append(f"{body} [{s.source}]")
            used += n_words + 1
        return " ".join(parts)

    def _stream(self, messages: list[Message], max_new_tokens: int, temperature: float,
                stops: list[str]) -> Iterator[str]:
        # Word by word, so a caller that streams sees the same shape of output as from an LLM.
        yield from re.findall(r"\S+\s*", self._generate(messages, max_new_tokens, temperature, stops))

    # -- scoring ------------------------------------------------------------------------------------------
    def candidates(self, sources: list[ParsedSource]) -> list[_Candidate]:
        """Every sentence that could answer: headings, captions, code and fragments are left out."""
        out: list[_Candidate] = []
        for src in sources:
            section = _section_of(src.label)
            document = _document_of(src.label)
            previous = ""
            for sentence in split_sentences(src.text):
                if (len(sentence.split()) < _MIN_SENTENCE_WORDS or is_heading_like(sentence) or is_code(sentence)
                        or sentence == section):
                    previous = sentence if is_heading_like(sentence) else previous
                    continue
                # What the sentence is about may be named just before it ("You can also use list.sort().
                # It modifies the list in-place"), in its section heading, or in its file's name
                # ("Return an int with k random bits." in library_secrets.html).
                context = frozenset(content_terms(f"{previous} {section} {document}"))
                out.append(_Candidate(sentence, src.number, frozenset(content_terms(sentence)), context))
                previous = sentence
        return out

    def score(self, question: str, sources: list[ParsedSource]) -> list[ScoredSentence]:
        """Every candidate sentence with its score, best first."""
        groups = question_term_groups(question)
        query = {t for g in groups for t in g}
        candidates = self.candidates(sources)
        if not query or not candidates:
            return []
        n = len(candidates)
        df = {t: sum(1 for c in candidates if t in c.terms) for t in query}
        # A question word that no sentence contains weighs like the rarest possible word: a question about
        # something the sources never mention should not be answerable from its other words. (Weighing by
        # rarity in the whole index instead was measured on the development sets: balanced accuracy of
        # answering vs abstaining 0.806 at best against 0.845 this way; not used.)
        idf = {t: math.log(1.0 + n / (df[t] if df[t] else 0.5)) for t in query}
        # One weight per question word: a compound ("dot-product", "secrets.token_bytes") weighs the mean
        # of its whole and its parts, not their sum.
        weights = [sum(idf[t] for t in g) / len(g) for g in groups]
        # The kind named after what/which ("What database does Zephyr use?") is left out of the question's
        # words, since answers often name only the instance ("... results in ValueError"). But where some
        # sentence names it ("The database is PostgreSQL 14."), it is evidence like a word of the context:
        # a sentence that holds it gets its full weight, one without it half (_CONTEXT_CREDIT). Without it,
        # every sentence naming Zephyr covered the whole question. A kind no sentence names weighs nothing.
        head_word = question_head(question) or ""
        head = tuple(dict.fromkeys(content_terms(head_word)))
        head_weight = 0.0
        if head and not query & set(head):
            held_by = sum(1 for c in candidates if _held(head, c.terms) == 1.0)
            head_weight = math.log(1.0 + n / held_by) if held_by else 0.0
        total = sum(weights) + head_weight
        kind = answer_type(question)
        subject = asked_subject(question)
        preposition = None if subject else stranded_preposition(question)
        asked = set(content_terms(question)) if preposition else set()  # frame words too: "stand for"
        # Frame words ("named", "called") are left out of the coverage, but among sentences that cover the
        # question equally, one that also has them is more likely the answer ("... is named after ...").
        # The kind named after what/which ("Which hash ...") is one of them: the answer names an instance
        # ("MD5") and sometimes the kind too ("the MD5 hash").
        framing = [w for w in words(question) if w.lower() in QUESTION_FRAME] + [head_word]
        frame = {t for w in framing for t in content_terms(w)}
        cosines = self._cosines(question, [c.text for c in candidates]) if self.embedder is not None else None
        scored = []
        for i, c in enumerate(candidates):
            matched = query & c.terms
            held = sum(w * _held(g, c.terms) for g, w in zip(groups, weights))
            in_context = sum(w * max(_held(g, c.context | c.terms) - _held(g, c.terms), 0.0)
                             for g, w in zip(groups, weights))
            if head_weight:
                held += head_weight * (1.0 if _held(head, c.terms) == 1.0 else _CONTEXT_CREDIT)
            coverage = (held + _CONTEXT_CREDIT * in_context) / total
            # Tie-breaks: a sentence that is mostly about the question, then the higher-ranked source.
            density = len(matched) / max(len(c.terms), 1)
            n_words = len(c.text.split())
            # The smallest sentence that holds the answer wins: every word past 25 costs a little,
            # past 40 (a flattened table or list) more.
            length = 0.002 * max(0, n_words - 25) + 0.01 * max(0, n_words - _LONG_SENTENCE_WORDS)
            score = coverage + 0.05 * density - 0.002 * (c.source - 1) - length
            if frame:
                score += _FRAME_CREDIT * len(frame & c.terms) / len(frame)
            if kind is not None:
                # "How many ...?" is answered by a sentence with a number in it, "who" by one with a name.
                if has_answer_type(c.text, kind, question):
                    score += _TYPE_BONUS
                else:
                    score -= _NAME_PENALTY if kind == "name" else _TYPE_PENALTY
            if subject and defines_subject(c.text, subject):
                score += _SUBJECT_CREDIT
            if preposition and completes_preposition(c.text, asked, preposition):
                score += _PREPOSITION_CREDIT
            if not c.terms - query:
                score -= _RESTATES_PENALTY  # it only repeats the question's words: it adds no answer
            if cosines is not None:
                score = (1 - self.embedding_weight) * score + self.embedding_weight * max(float(cosines[i]), 0.0)
            scored.append(ScoredSentence(c.text, c.source, score, frozenset(matched)))
        scored.sort(key=lambda s: s.score, reverse=True)
        return scored

    def select(self, question: str, sources: list[ParsedSource],
               already_said: list[str] | None = None) -> list[ScoredSentence]:
        """The best sentence, plus up to ``max_sentences - 1`` more that add question words it lacks.

        A sentence from another document than the best one's is added only when it scores nearly as well.

        Sentences in ``already_said`` (earlier answers of the conversation) are passed over while others
        qualify: a follow-up ("How many of them can be carried over?") asks for something new.
        """
        parts = question_parts(question)
        if len(parts) > 1:
            # Each part's best sentence, when every part has one; else the question scored whole.
            tops = [self._ranked(part, sources, already_said)[:1] for part in parts]
            if all(t and t[0].score >= self.min_score for t in tops):
                unique = {t[0].text: t[0] for t in tops}
                return list(unique.values())[: max(self.max_sentences, len(parts))]
        scored = self._ranked(question, sources, already_said)
        if not scored or scored[0].score < self.min_score:
            return []
        chosen = [scored[0]]
        covered = set(scored[0].terms)
        document = {src.number: _file_of(src.label) for src in sources}
        for s in scored[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if s.score < max(self.min_score, _COMPLETES * scored[0].score):
                break
            elsewhere = document.get(s.source) != document.get(scored[0].source)
            if elsewhere and s.score < _OTHER_DOCUMENT * scored[0].score:
                continue
            if s.terms - covered and s.text not in {c.text for c in chosen}:
                chosen.append(s)
                covered |= s.terms
        return chosen

    def _ranked(self, question: str, sources: list[ParsedSource],
                already_said: list[str] | None) -> list[ScoredSentence]:
        scored = self.score(question, sources)
        if already_said:
            said = " ".join(" ".join(a.split()) for a in already_said)
            fresh = [s for s in scored if " ".join(s.text.split()) not in said]
            if fresh and fresh[0].score >= self.min_score:
                scored = fresh
        return scored

    def with_embedder(self, embedder: Any) -> ExtractiveGenerator:
        """A copy of this generator that blends in ``embedder``'s cosine similarity."""
        return ExtractiveGenerator(max_sentences=self.max_sentences, min_score=self.min_score, embedder=embedder,
                                   embedding_weight=self.embedding_weight)

    def _cosines(self, question: str, sentences: list[str]):
        import numpy as np

        embed = getattr(self.embedder, "embed", None) or getattr(self.embedder, "encode")
        vectors = np.asarray(embed([question, *sentences]), dtype="float32")
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors[1:] @ vectors[0]


@dataclass
class _Candidate:
    text: str
    source: int
    terms: frozenset[str]
    context: frozenset[str]  # content terms of the previous sentence and the section heading


def _held(group: tuple[str, ...], terms: frozenset[str]) -> float:
    """How much of one question word ``terms`` holds: 1 for the word itself, else the share of its parts."""
    if group[0] in terms:
        return 1.0
    parts = group[1:]
    return sum(p in terms for p in parts) / len(parts) if parts else 0.0


def _section_of(label: str) -> str:
    """The section title in a source label (``lora.md, section "LoRA"`` -> ``LoRA``)."""
    at = label.find('section "')
    return label[at + 9 : label.rfind('"')] if at >= 0 and label.endswith('"') else ""


def _file_of(label: str) -> str:
    """The file name in a source label (``library_secrets.html, page 2`` -> ``library_secrets.html``)."""
    return label.split(",", 1)[0].strip()


def _document_of(label: str) -> str:
    """The words of the file name in a source label (``library_secrets.html, page 2`` -> ``library secrets``)."""
    name = _file_of(label)
    if "." in name:
        name = name.rsplit(".", 1)[0]
    return re.sub(r"[_\-.]+", " ", name)
