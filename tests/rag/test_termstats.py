"""rag/termstats.py: corpus-level rarity of words, and the support test that uses it."""

from __future__ import annotations

from ragtune.rag.generators.extractive import best_sentence_support
from ragtune.rag.termstats import TermStats, corpus_stats
from ragtune.rag.types import Chunk

CORPUS = [
    "Activate the virtual environment: the prompt changes to show the environment's name.",
    "The prompt shows the environment you are in; deactivate it to leave.",
    "Create a virtual environment with python -m venv tutorial-env.",
    "The environment holds its own copy of the python binary and of pip.",
    *[f"Section {n}: once the environment is activated, the prompt shows it; commands run inside it."
      for n in range(8)],
]


def test_words_in_fewer_chunks_weigh_more_and_an_unseen_word_weighs_most():
    stats = TermStats.from_texts(CORPUS)
    assert stats.n == 12
    assert stats.idf("colour") > stats.idf("binari") > stats.idf("environ")


def test_a_question_covered_only_through_shared_words_has_low_corpus_support():
    question = "Which colour does the prompt use once the environment is activated?"
    texts = CORPUS[:2]
    local = best_sentence_support(question, texts)
    corpus = best_sentence_support(question, texts, stats=TermStats.from_texts(CORPUS))
    # Among the two retrieved sentences "prompt", "environment" and "activate" look rare enough to answer;
    # in the whole collection they are everywhere and "colour" is nowhere.
    assert corpus < local
    answerable = "Where does the environment keep its own copy of pip?"
    assert best_sentence_support(answerable, CORPUS[3:], stats=TermStats.from_texts(CORPUS)) > corpus


def test_require_type_counts_only_sentences_of_the_answer_type_asked_for():
    question = "How many bytes does the prompt use?"
    assert best_sentence_support(question, CORPUS[:4], require_type=True) == 0.0  # no number in any sentence
    assert best_sentence_support(question, [*CORPUS[:4], "The prompt uses 12 bytes."], require_type=True) > 0.5


class ListIndex:
    def __init__(self, texts):
        self.texts = list(texts)
        self.listed = 0

    def __len__(self):
        return len(self.texts)

    def chunks(self):
        self.listed += 1
        return [Chunk(id=str(i), text=t, source="/d/venv.txt") for i, t in enumerate(self.texts)]


def test_corpus_stats_are_computed_once_per_index_content():
    index = ListIndex(CORPUS)
    first = corpus_stats(index)
    assert corpus_stats(index) is first and index.listed == 1
    index.texts.append("Colour output is off by default.")  # the index changed: counted again
    assert corpus_stats(index).df.get("colour") == 1 and index.listed == 2
    assert corpus_stats(object()) is None  # a searcher that cannot list its chunks
