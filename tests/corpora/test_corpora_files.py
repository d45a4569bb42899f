"""Checks on the shipped document collection in corpora/ and its question sets.

Text is extracted with the light format libraries (pypdf, python-docx, python-pptx, the stdlib HTML parser), not
with unstructured, so these tests stay fast; the indexer's own parsing is tested with the indexer.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import re
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "corpora"
DOC_SUFFIXES = {".md", ".html", ".pdf", ".docx", ".txt", ".pptx", ".csv"}
NOT_DOCUMENTS = {"README.md"}  # shipped and indexed, but describes the collection rather than the subject
MIN_PER_FORMAT = {".md": 3, ".html": 2, ".pdf": 3, ".docx": 2, ".txt": 2, ".pptx": 1, ".csv": 1}
STOPWORDS = {"a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "by", "is", "are", "it", "its",
             "they", "their", "be", "as", "at", "that", "this", "then", "than", "about", "around", "roughly"}


def documents() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir()
                  if p.is_file() and p.suffix in DOC_SUFFIXES and p.name not in NOT_DOCUMENTS)


def tokens(text: str) -> list[str]:
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).split()


def words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9]+(?:['.,-][A-Za-z0-9]+)*", text))


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style", "title")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style", "title")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def _pdf_pages(path: Path) -> list[str]:
    pypdf = pytest.importorskip("pypdf")
    return [page.extract_text() or "" for page in pypdf.PdfReader(path).pages]


def _docx_text(path: Path) -> str:
    docx = pytest.importorskip("docx")
    d = docx.Document(path)
    parts = [p.text for p in d.paragraphs]
    parts += [cell.text for table in d.tables for row in table.rows for cell in row.cells]
    return "\n".join(parts)


def _pptx_text(path: Path) -> str:
    pptx = pytest.importorskip("pptx")
    parts = []
    for slide in pptx.Presentation(path).slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                parts.append(shape.text_frame.text)
            if getattr(shape, "has_table", False) and shape.has_table:
                parts += [cell.text for row in shape.table.rows for cell in row.cells]
    return "\n".join(parts)


@functools.lru_cache(maxsize=None)
def extract_text(path: Path) -> str:
    if path.suffix == ".pdf":
        return "\n".join(_pdf_pages(path))
    if path.suffix == ".docx":
        return _docx_text(path)
    if path.suffix == ".pptx":
        return _pptx_text(path)
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".html":
        parser = _HTMLText()
        parser.feed(raw)
        return " ".join(parser.parts)
    return raw


class _HTMLSections(HTMLParser):
    """Collects (heading, body text) pairs: text is attributed to the latest <h1>-<h6> seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[tuple[str, list[str]]] = [("", [])]
        self._in_heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if re.fullmatch(r"h[1-6]", tag):
            self._in_heading = []

    def handle_endtag(self, tag):
        if re.fullmatch(r"h[1-6]", tag) and self._in_heading is not None:
            self.sections.append(("".join(self._in_heading).strip(), []))
            self._in_heading = None

    def handle_data(self, data):
        (self._in_heading if self._in_heading is not None else self.sections[-1][1]).append(data)


def _split_at(lines: list[str], is_heading) -> list[tuple[str, str]]:
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in lines:
        if is_heading(line):
            sections.append((line.strip(), []))
        else:
            sections[-1][1].append(line)
    return [(h, "\n".join(body)) for h, body in sections]


@functools.lru_cache(maxsize=None)
def sections(path: Path) -> tuple[tuple[str, str], ...]:
    """(section title, section text) pairs, with titles as each format marks them: Markdown '#', HTML <hN>,
    PDF bookmarks (matched to their line in the page text), Word heading styles, slide titles, glossary terms
    (one CSV row each), and stand-alone short lines without end punctuation in plain text."""
    if path.suffix == ".pdf":
        pypdf = pytest.importorskip("pypdf")

        def walk(items):
            for item in items:
                yield from walk(item) if isinstance(item, list) else [item.title]

        titles = set(walk(pypdf.PdfReader(path).outline))
        found = _split_at(extract_text(path).splitlines(), lambda line: line.strip() in titles)
    elif path.suffix == ".docx":
        docx = pytest.importorskip("docx")
        found = [("", "")]
        for item in docx.Document(path).iter_inner_content():  # paragraphs and tables in document order
            if hasattr(item, "style") and item.style.name.startswith(("Heading", "Title")):
                found.append((item.text, ""))
            else:
                text = item.text if hasattr(item, "text") else " ".join(
                    c.text for row in item.rows for c in row.cells)
                found[-1] = (found[-1][0], found[-1][1] + "\n" + text)
    elif path.suffix == ".pptx":
        pptx = pytest.importorskip("pptx")
        found = []
        for slide in pptx.Presentation(path).slides:
            parts = [sh.text_frame.text for sh in slide.shapes if sh.has_text_frame and sh != slide.shapes.title]
            parts += [c.text for sh in slide.shapes if sh.has_table for row in sh.table.rows for c in row.cells]
            found.append((slide.shapes.title.text, "\n".join(parts)))
    else:
        raw = path.read_text(encoding="utf-8")
        if path.suffix == ".md":
            found = _split_at(raw.splitlines(), lambda line: re.match(r"#{1,6}\s", line) is not None)
            found = [(re.sub(r"^#+\s+", "", h), body) for h, body in found]
        elif path.suffix == ".html":
            parser = _HTMLSections()
            parser.feed(raw)
            found = [(h, " ".join(body)) for h, body in parser.sections]
        elif path.suffix == ".csv":
            found = [(row["term"], " ".join(row.values())) for row in csv.DictReader(raw.splitlines())]
        else:
            blocks = [b.strip() for b in re.split(r"\n\s*\n", raw)]
            found = _split_at(blocks, lambda b: "\n" not in b and len(b) < 80 and not b.endswith((".", ":", ";")))
    return tuple((h, body) for h, body in found if h)


def read_jsonl(name: str) -> list[dict]:
    lines = (CORPUS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


QA = read_jsonl("qa.jsonl")


# ---------------------------------------------------------------------------------------------------- documents


def test_collection_has_enough_documents_in_enough_formats():
    formats = Counter(p.suffix for p in documents())
    assert len(documents()) >= 12
    assert len(formats) >= 5
    for suffix, minimum in MIN_PER_FORMAT.items():
        assert formats[suffix] >= minimum, f"need at least {minimum} {suffix} documents, found {formats[suffix]}"


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.name)
def test_document_text_is_substantial_but_not_bloated(path):
    n = words(extract_text(path))
    assert 600 <= n <= 1500, f"{path.name} has {n} words; documents should have 600-1500"


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.pdf")), ids=lambda p: p.name)
def test_pdf_is_multi_page_text_with_heading_outline(path):
    pypdf = pytest.importorskip("pypdf")
    pages = _pdf_pages(path)
    assert len(pages) >= 2
    assert all(len(page.split()) > 50 for page in pages[:-1]), "every page but the last should carry real text"
    assert pypdf.PdfReader(path).outline, "headings should appear as PDF bookmarks"


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.docx")), ids=lambda p: p.name)
def test_docx_sections_use_word_heading_styles(path):
    docx = pytest.importorskip("docx")
    styles = Counter(p.style.name for p in docx.Document(path).paragraphs)
    assert styles["Title"] == 1
    assert styles["Heading 1"] >= 5
    assert styles["Heading 2"] >= 1


def test_pptx_slides_each_have_a_title():
    pptx = pytest.importorskip("pptx")
    for path in CORPUS.glob("*.pptx"):
        slides = list(pptx.Presentation(path).slides)
        assert len(slides) >= 10
        assert all(s.shapes.title is not None and s.shapes.title.text.strip() for s in slides)


def test_glossary_rows_point_at_shipped_documents():
    with (CORPUS / "llm_glossary.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 30
    assert {r["see_document"] for r in rows} <= {p.name for p in documents()}


def test_build_script_is_reproducible_and_committed_binaries_are_current(tmp_path, monkeypatch):
    for module in ("reportlab", "docx", "pptx"):
        pytest.importorskip(module)
    spec = importlib.util.spec_from_file_location("corpora_build", CORPUS / "build.py")
    build = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, build)  # dataclasses look their module up while being defined
    spec.loader.exec_module(build)
    first = build.build_all(tmp_path / "a")
    second = build.build_all(tmp_path / "b")
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two builds"
        # Text rather than bytes: a newer reportlab may lay out the same text differently.
        assert extract_text(a) == extract_text(CORPUS / a.name), f"{a.name} is stale: run python corpora/build.py"


# ---------------------------------------------------------------------------------------------------- questions


def test_qa_file_has_enough_well_formed_questions():
    assert len(QA) >= 40
    ids = [q["id"] for q in QA]
    assert len(ids) == len(set(ids))
    for q in QA:
        assert set(q) == {"id", "question", "answer", "source", "section"}, q
        assert re.fullmatch(r"q\d{3}", q["id"])
        assert q["question"].strip().endswith("?")
        assert isinstance(q["answer"], str) and 0 < len(q["answer"].split()) <= 12, q
        assert (CORPUS / q["source"]).is_file(), f"{q['id']}: missing source {q['source']}"


def test_questions_cover_every_document():
    assert {q["source"] for q in QA} == {p.name for p in documents()}


@pytest.mark.parametrize("q", QA, ids=lambda q: q["id"])
def test_gold_answer_words_appear_in_its_source(q):
    source_tokens = set(tokens(extract_text(CORPUS / q["source"])))
    missing = [t for t in tokens(q["answer"]) if t not in STOPWORDS and t not in source_tokens]
    assert not missing, f"{q['id']}: {missing} from {q['answer']!r} not found in {q['source']}"


@pytest.mark.parametrize("q", QA, ids=lambda q: q["id"])
def test_gold_answer_is_a_literal_span_of_its_source(q):
    # Answers are scored by exact match and token F1, so each gold answer is copied from the text verbatim
    # (up to case and punctuation) rather than paraphrased.
    text = " " + " ".join(tokens(extract_text(CORPUS / q["source"]))) + " "
    assert " " + " ".join(tokens(q["answer"])) + " " in text, f"{q['id']}: {q['answer']!r} is not verbatim"


@pytest.mark.parametrize("q", QA, ids=lambda q: q["id"])
def test_gold_answer_lies_in_the_named_section(q):
    found = dict(sections(CORPUS / q["source"]))
    assert q["section"] in found, f"{q['id']}: {q['section']!r} is not a section of {q['source']}: {sorted(found)}"
    body = " " + " ".join(tokens(found[q["section"]])) + " "
    assert " " + " ".join(tokens(q["answer"])) + " " in body, f"{q['id']}: answer not under {q['section']!r}"


def test_unanswerable_file_has_enough_distinct_questions():
    items = read_jsonl("unanswerable.jsonl")
    assert len(items) >= 10
    assert len({u["id"] for u in items}) == len(items)
    assert all(re.fullmatch(r"u\d{3}", u["id"]) and u["answer"] is None for u in items)
    assert not {u["question"] for u in items} & {q["question"] for q in QA}
