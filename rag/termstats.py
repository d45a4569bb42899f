"""How rare each word is in the whole collection: corpus-level document frequencies of content terms.

The answering layer abstains when no retrieved sentence holds enough of the question. Weighting the
question's words by how rare they are among the *retrieved sentences* alone cannot tell a question
about the collection's subject from one the collection never answers: on-topic unanswerable questions
("Which colour does the activated prompt use?") are covered by sentences through words the whole
collection shares ("prompt", "activate"), while the word that carries the question ("colour") is in no
chunk at all. Weighted by corpus-level IDF, such a question scores low and the answer abstains.

    >>> stats = TermStats.from_texts(["LoRA trains adapters.", "QLoRA trains adapters in 4 bits."])
    >>> stats.idf("lora") > stats.idf("adapt")
    True
"""

from __future__ import annotations

import math
import random
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ragtune.rag.text import content_terms

# Counting every chunk's words costs ~1 s per 10,000 chunks on one CPU core; beyond this many chunks a
# seeded sample estimates the frequencies (a rare word's IDF is then approximate, which a threshold on a
# share of the question's weight tolerates).
_MAX_CHUNKS = 20_000


@dataclass(frozen=True)
class TermStats:
    df: dict[str, int]
    n: int

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> TermStats:
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            df.update(set(content_terms(text)))
            n += 1
        return cls(dict(df), n)

    def idf(self, term: str) -> float:
        """log(1 + N / df); a word in no chunk counts as if in half of one (the rarest possible)."""
        return math.log(1.0 + self.n / (self.df.get(term) or 0.5))


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def corpus_stats(index) -> TermStats | None:
    """The term statistics of ``index`` (anything with ``chunks()``), computed once per index content;
    None when the index cannot list its chunks (a bare searcher)."""
    chunks = getattr(index, "chunks", None)
    if chunks is None:
        return None
    try:
        size = len(index)
    except TypeError:
        size = None
    try:
        cached = _CACHE.get(index)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None and cached[0] == size:
        return cached[1]
    texts = [c.text for c in chunks()]
    if len(texts) > _MAX_CHUNKS:
        texts = random.Random(0).sample(texts, _MAX_CHUNKS)
    stats = TermStats.from_texts(texts)
    try:
        _CACHE[index] = (size, stats)
    except TypeError:
        pass
    return stats
