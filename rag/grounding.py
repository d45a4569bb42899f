"""The grounding check: is a generated answer supported by the passages it was given?

One check for every generator that writes its own words (local, API). An answer is *supported* when

- it claims something: content words or numbers beyond the question's own words and filler
  ("The answer to this question is: [3]" claims nothing);
- every number it states appears in a sentence of a supporting passage that also shares a word with the
  question or the answer (an invented "1 [5]" is not supported by a stray "1." in a numbered list);
- a supporting passage holds at least ``min_support`` of its claimed content words.

When the answer cites passages (``[n]``), only those are supporting candidates: a citation must point at
the passage that says it. An answer that cites nothing may be supported by any passage shown, and is then
attributed to the best one. :mod:`ragtune.rag.answer` replaces an unsupported answer by the extractive
answer over the same passages, or abstains.

    >>> from ragtune.rag.grounding import check_grounding
    >>> check_grounding("QLoRA uses 4 bits [1].", "How many bits does QLoRA use?",
    ...                 {1: "QLoRA quantizes the frozen base model to 4 bits."}).supported
    True
    >>> check_grounding("It uses 8 bits [1].", "How many bits does QLoRA use?",
    ...                 {1: "QLoRA quantizes the frozen base model to 4 bits."}).reason
    'the number 8 is in no supporting passage'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .citations import _MARKER_RE, is_abstention, marker_numbers, strip_citations
from .text import content_terms, numbers, split_sentences

# Share of an answer's claimed content words that one passage must hold: half is lenient enough for
# paraphrase ("stores" for "keeps") and still rejects answers built from outside knowledge, whose claimed
# words are mostly absent from the passages.
DEFAULT_MIN_SUPPORT = 0.5
# Words a model uses to talk about answering, not to answer: they claim nothing about the documents.
_FILLER = frozenset(
    content_terms(
        "answer answers question questions source sources passage passages document documents context text "
        "provided provides mention mentioned mentions state stated states according information based "
        "following given say says said note noted specific specifically describe described explain "
        "explained"
    )
)


@dataclass
class Grounding:
    """The verdict on one answer; ``to_dict()`` goes into ``Answer.grounding``."""

    supported: bool
    support: float = 0.0  # share of claimed words held by the best supporting passage
    sources: list[int] = field(default_factory=list)  # supporting passages, best first
    reason: str = ""  # why not supported ("" when supported)

    def to_dict(self) -> dict:
        return asdict(self)


def claimed_terms(answer: str, question: str) -> set[str]:
    """The content words an answer adds to its question (what it claims), filler words removed."""
    return set(content_terms(strip_citations(answer))) - set(content_terms(question)) - _FILLER


def check_grounding(
    answer: str, question: str, passages: dict[int, str], *, min_support: float = DEFAULT_MIN_SUPPORT
) -> Grounding:
    """Check ``answer`` (with its ``[n]`` markers) against ``passages`` (``{n: text}`` as shown to the model)."""
    if is_abstention(answer):
        return Grounding(supported=True, support=1.0)
    claimed = claimed_terms(answer, question)
    stated = numbers(strip_citations(answer)) - numbers(question)
    if not claimed and not stated:
        return Grounding(False, reason="the answer states nothing beyond the question")
    cited = [n for m in _MARKER_RE.finditer(answer) for n in marker_numbers(m.group(1)) if n in passages]
    candidates = list(dict.fromkeys(cited)) or sorted(passages)
    anchors = set(content_terms(question)) | claimed
    scored = []
    for n in candidates:
        text = passages[n]
        share = len(claimed & set(content_terms(text))) / len(claimed) if claimed else 1.0
        missing = stated - _numbers_in_context(text, anchors)
        scored.append((not missing, share, -n, n, missing))
    scored.sort(reverse=True)
    ok = [(share, n) for numbers_ok, share, _, n, _ in scored if numbers_ok and share >= min_support]
    if ok:
        return Grounding(True, support=ok[0][0], sources=[n for _, n in ok])
    best_ok, best_share, _, best_n, missing = scored[0]
    where = "the cited passage" if cited else "any passage"
    if not best_ok:
        number = sorted(missing)[0]
        return Grounding(False, support=best_share, reason=f"the number {number} is in no supporting passage")
    return Grounding(False, support=best_share,
                     reason=f"only {best_share:.0%} of its words are in {where} (needs {min_support:.0%})")


def _numbers_in_context(text: str, anchors: set[str]) -> set[str]:
    """Numbers of ``text`` that sit in a sentence sharing at least one word with ``anchors``."""
    found: set[str] = set()
    for sentence in split_sentences(text) or [text]:
        if anchors & set(content_terms(sentence)):
            found |= numbers(sentence)
    return found
