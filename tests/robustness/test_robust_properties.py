"""Property-based tests (hypothesis): the chunker and prompt assembly on arbitrary text."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragtune.rag.chunk import make_chunker
from ragtune.rag.config import ChunkerConfig
from ragtune.rag.embed import HashEmbedder
from ragtune.rag.types import Document, Element

EMBEDDER = HashEmbedder(dim=32, max_tokens=64)
words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=40)
paragraph = st.lists(words, min_size=0, max_size=60).map(" ".join)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _document(sections: list[tuple[str, list[str]]]) -> Document:
    elements = []
    for title, paragraphs in sections:
        elements.append(Element(title or "Untitled", "Title", section=title or "Untitled"))
        elements += [Element(p, "NarrativeText", section=title or "Untitled") for p in paragraphs]
    return Document(source="/docs/x.md", type="md", elements=elements)


@SETTINGS
@given(st.lists(st.tuples(words, st.lists(paragraph, max_size=6)), min_size=1, max_size=4),
       st.sampled_from(["structure", "recursive"]), st.integers(min_value=16, max_value=64))
def test_chunks_fit_the_window_and_lose_no_word(sections, name, max_tokens):
    config = ChunkerConfig(name=name, max_tokens=max_tokens, overlap_tokens=4, chunk_size=300, chunk_overlap=30)
    doc = _document(sections)
    chunks = make_chunker(config, EMBEDDER).chunk(doc)
    counts = EMBEDDER.count_tokens([c.text for c in chunks])
    assert all(n <= EMBEDDER.max_tokens for n in counts)  # never past the embedding window
    assert all(c.text.strip() for c in chunks)  # no empty chunk
    assert len({c.id for c in chunks}) == len(chunks)  # ids unique within a document
    chunked = " ".join(c.text for c in chunks)
    for element in doc.elements:  # every word (the embedder's \w+ tokens, never split) survives chunking
        for word in re.findall(r"\w+", element.text):
            assert word in chunked, word


@SETTINGS
@given(st.lists(paragraph.filter(lambda t: t.strip()), min_size=1, max_size=6), paragraph.filter(lambda t: t.strip()))
def test_prompt_round_trips_every_source_and_the_question(texts, question):
    from _answer_fakes import FakeGenerator, make_hit

    from ragtune.rag.prompt import build_prompt, parse_prompt

    hits = [make_hit(n, text) for n, text in enumerate(texts, start=1)]
    prompt = build_prompt(question, hits, FakeGenerator(context_window=100_000), max_new_tokens=10)
    parsed = parse_prompt(prompt.messages)
    assert parsed.question == question.strip()
    assert [s.number for s in parsed.sources] == list(range(1, len(texts) + 1))
    assert [s.text for s in parsed.sources] == [t.strip() for t in texts]


@SETTINGS
@given(st.lists(paragraph.filter(lambda t: t.strip()), min_size=1, max_size=8), st.integers(min_value=60, max_value=400))
def test_prompt_always_fits_its_budget(texts, window):
    from _answer_fakes import FakeGenerator, make_hit

    from ragtune.errors import ConfigError
    from ragtune.rag.prompt import build_prompt

    generator = FakeGenerator(context_window=window)
    try:
        prompt = build_prompt("What does LoRA train?", [make_hit(n, t) for n, t in enumerate(texts, 1)],
                              generator, max_new_tokens=20)
    except ConfigError as exc:  # refused with a message: allowed only when the question cannot fit
        assert "only" in str(exc) and "available" in str(exc)
        return
    assert prompt.tokens <= prompt.budget
    assert len(prompt.sources) + len(prompt.dropped) == len(texts)
