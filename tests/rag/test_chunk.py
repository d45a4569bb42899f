"""Chunking: token bounds in the embedding model's tokenizer, structure, overlap, alternatives."""

from __future__ import annotations

import pytest

from ragtune.rag.chunk import make_chunker, split_sentences
from ragtune.rag.config import ChunkerConfig
from ragtune.rag.embed import HashEmbedder
from ragtune.rag.types import Document, Element


def _doc(sections: dict[str, list[str]]) -> Document:
    elements = []
    for title, paragraphs in sections.items():
        elements.append(Element(title, "Title", section=title))
        elements += [Element(p, "NarrativeText", page=1, section=title) for p in paragraphs]
    return Document(source="/docs/x.md", type="md", elements=elements)


LONG = " ".join(f"Sentence number {i} explains how adapters change the rank of the update." for i in range(120))


@pytest.fixture(scope="module")
def minilm():
    from ragtune.rag.embed import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder()
    emb.warm_up()
    return emb


def test_every_chunk_fits_the_real_embedding_window(minilm):
    """all-MiniLM-L6-v2 truncates past 256 word pieces; no chunk may be cut there."""
    doc = _doc({"Adapters": [LONG, "Short closing paragraph."], "Ranks": ["x" * 3000, LONG[:900]]})
    for config in (ChunkerConfig(), ChunkerConfig(max_tokens=100), ChunkerConfig(name="recursive", chunk_size=4000, chunk_overlap=0)):
        chunks = make_chunker(config, minilm).chunk(doc)
        assert chunks
        lengths = [len(minilm.tokenizer(c.text)["input_ids"]) for c in chunks]  # with [CLS]/[SEP]
        assert max(lengths) <= 256, (config.name, max(lengths))
        if config.name == "structure":
            assert max(lengths) <= (config.max_tokens or minilm.max_tokens) + 2


def test_sections_stay_with_their_heading(minilm):
    doc = _doc({"LoRA": ["LoRA trains low-rank matrices."], "QLoRA": ["QLoRA quantises the base model to 4-bit."]})
    chunks = make_chunker(ChunkerConfig(), minilm).chunk(doc)
    assert [c.section for c in chunks] == ["LoRA", "QLoRA"]
    assert chunks[1].text.startswith("QLoRA\n") and "4-bit" in chunks[1].text
    assert "4-bit" not in chunks[0].text  # a chunk never spans two sections


def test_long_section_is_split_with_overlap():
    emb = HashEmbedder()
    config = ChunkerConfig(max_tokens=60, overlap_tokens=20)
    chunks = make_chunker(config, emb).chunk(_doc({"Adapters": [LONG]}))
    assert len(chunks) > 5
    assert all(emb.count_tokens([c.text])[0] <= 60 for c in chunks)
    assert all(c.text.startswith("Adapters\n") for c in chunks)
    # consecutive chunks share a sentence (the overlap)
    for a, b in zip(chunks, chunks[1:]):
        tail = split_sentences(a.text.split("\n", 1)[1])[-1]
        assert tail in b.text


def test_overlap_zero_means_disjoint_chunks():
    emb = HashEmbedder()
    chunks = make_chunker(ChunkerConfig(max_tokens=60, overlap_tokens=0), emb).chunk(_doc({"A": [LONG]}))
    bodies = [c.text.split("\n", 1)[1] for c in chunks]
    sentences = [s for b in bodies for s in split_sentences(b)]
    assert len(sentences) == len(set(sentences))


def test_chunk_ids_are_stable_and_unique():
    emb = HashEmbedder()
    doc = _doc({"A": ["Same text.", "Same text.", "Other text."]})
    first = make_chunker(ChunkerConfig(max_tokens=16, overlap_tokens=0), emb).chunk(doc)
    second = make_chunker(ChunkerConfig(max_tokens=16, overlap_tokens=0), emb).chunk(doc)
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    assert all(c.hash and c.metadata["file_type"] == "md" for c in first)


def test_recursive_chunker_is_selectable_and_keeps_pages():
    emb = HashEmbedder()
    doc = Document(source="/d.pdf", type="pdf", elements=[
        Element("First page text. " * 30, page=1, section="Intro"),
        Element("Second page text. " * 30, page=2, section="Body"),
    ])
    chunks = make_chunker(ChunkerConfig(name="recursive", chunk_size=200, chunk_overlap=40), emb).chunk(doc)
    assert len(chunks) > 3
    assert {c.page for c in chunks} == {1, 2}
    assert all(len(c.text) <= 200 for c in chunks)


def test_unknown_chunker_name_is_a_config_error():
    from ragtune.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown chunker 'semantic'"):
        make_chunker(ChunkerConfig(name="semantic"), HashEmbedder())


def test_title_without_section_field_heads_its_text():
    """Documents built from records (e.g. BEIR) give the title no section: it must not become a chunk alone."""
    emb = HashEmbedder()
    doc = Document(source="d1", type="beir", elements=[
        Element("Swept wings at transonic speed", "Title"),
        Element("Measurements of lift on swept wings are reported.", "NarrativeText", section="Swept wings at transonic speed"),
    ])
    chunks = make_chunker(ChunkerConfig(), emb).chunk(doc)
    assert len(chunks) == 1
    assert chunks[0].text.startswith("Swept wings at transonic speed\n") and chunks[0].section == "Swept wings at transonic speed"
    untitled = Document(source="d2", type="txt", elements=[Element("Intro", "Title"), Element("Body text here.")])
    (only,) = make_chunker(ChunkerConfig(), emb).chunk(untitled)
    assert only.section == "Intro" and only.text == "Intro\nBody text here."


def test_heading_followed_by_a_subheading_opens_its_prefix_instead_of_a_chunk_alone():
    """The shipped docx "Pre-training" heading, directly followed by "Objective", had been a chunk holding
    only the word "Pre-training"; it is now the context line above the subsection's text."""
    emb = HashEmbedder()
    doc = Document(source="/docs/p.docx", type="docx", elements=[
        Element("Pre-training", "Title", section="Pre-training"),
        Element("Objective", "Title", section="Objective"),
        Element("Models predict the next token.", "NarrativeText", section="Objective"),
        Element("References", "Title", section="References"),
    ])
    chunks = make_chunker(ChunkerConfig(), emb).chunk(doc)
    assert [c.text for c in chunks] == ["Pre-training\nObjective\nModels predict the next token.", "References"]
    assert chunks[0].section == "Objective"  # a document's last heading, with nothing under it, stays content


def test_slide_title_alone_on_its_page_stays_a_chunk():
    """A title with nothing under it on its own page (a title slide) is content, not the next slide's context."""
    emb = HashEmbedder()
    doc = Document(source="/docs/s.pptx", type="pptx", elements=[
        Element("Quarterly review", "Title", page=1, section="Quarterly review"),
        Element("Revenue", "Title", page=2, section="Revenue"),
        Element("Revenue grew 12 percent.", "NarrativeText", page=2, section="Revenue"),
    ])
    texts = [c.text for c in make_chunker(ChunkerConfig(), emb).chunk(doc)]
    assert texts == ["Quarterly review", "Revenue\nRevenue grew 12 percent."]
