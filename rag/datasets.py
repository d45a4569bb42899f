"""Evaluation datasets: BEIR-layout retrieval collections and the shipped corpus's QA file.

A BEIR directory (what ``beir``, ``mteb`` and most retrieval tooling read)::

    DIR/corpus.jsonl     {"_id": str, "title": str, "text": str}   one document per line
    DIR/queries.jsonl    {"_id": str, "text": str}                 one query per line
    DIR/qrels/test.tsv   query-id <TAB> corpus-id <TAB> score       header line first; score > 0 = relevant

A QA file (``corpora/qa.jsonl``) holds one ``{"id", "question", "answer", "source", "section"}`` per line,
``source`` being the supporting file's path relative to ``corpora/``.

Loading validates at the boundary: every problem raises :class:`~ragtune.errors.DatasetError` naming the
file, the line number and what to do, because a silently skipped judgement skews every figure computed
from it.

    >>> ds = load_beir("../shared/datasets/cranfield")            # doctest: +SKIP
    >>> len(ds.corpus), len(ds.qrels)                              # doctest: +SKIP
    (1400, 225)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ragtune.errors import DatasetError
from ragtune.textfile import decode_utf8

from .types import Document, Element

QRELS_RELATIVE = Path("qrels") / "test.tsv"


@dataclass
class BeirDataset:
    """A retrieval test collection held in memory.

    ``qrels`` keeps only the queries with at least one relevant (score > 0) judgement: those are the
    queries that are evaluated (a query nothing is relevant to has no defined recall or nDCG).
    Judgements with score <= 0 are kept inside those queries; the metrics treat them as not relevant.
    """

    corpus: dict[str, dict[str, str]]  # doc id -> {"title", "text"}
    queries: dict[str, str]  # query id -> text (all queries in queries.jsonl)
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: graded relevance}
    name: str = ""

    @property
    def evaluated_queries(self) -> dict[str, str]:
        """The queries that are scored, in qrels order."""
        return {qid: self.queries[qid] for qid in self.qrels}

    def subset(self, limit_queries: int | None) -> BeirDataset:
        """The same collection evaluated on its first ``limit_queries`` judged queries only."""
        if limit_queries is None or limit_queries >= len(self.qrels):
            return self
        if limit_queries < 1:
            raise DatasetError(f"limit on queries must be a positive number, got {limit_queries}")
        kept = dict(list(self.qrels.items())[:limit_queries])
        return BeirDataset(corpus=self.corpus, queries=self.queries, qrels=kept, name=self.name)


@dataclass
class QAItem:
    """One question of a QA file with the file (and section) that supports its answer."""

    id: str
    question: str
    answer: str
    source: str  # path relative to the corpus root, e.g. "guides/lora.md"
    section: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def is_beir_dir(path: str | Path) -> bool:
    """True when ``path`` is a directory holding a ``corpus.jsonl`` (the rest is checked on load)."""
    p = Path(path)
    return p.is_dir() and (p / "corpus.jsonl").is_file()


def load_beir(directory: str | Path) -> BeirDataset:
    """Read a BEIR-layout directory; raise DatasetError naming file and line on any malformed input."""
    root = Path(directory)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: not a directory. Pass a BEIR dataset directory holding corpus.jsonl, queries.jsonl "
            f"and {QRELS_RELATIVE.as_posix()}."
        )
    corpus_path, queries_path, qrels_path = (
        root / "corpus.jsonl", root / "queries.jsonl", root / QRELS_RELATIVE
    )
    for p in (corpus_path, queries_path, qrels_path):
        if not p.is_file():
            raise DatasetError(
                f"{p}: file missing. A BEIR dataset directory needs corpus.jsonl, queries.jsonl and "
                f"{QRELS_RELATIVE.as_posix()} (query-id, corpus-id, score; header line first)."
            )

    corpus: dict[str, dict[str, str]] = {}
    for lineno, row in _jsonl_rows(corpus_path):
        doc_id = _required_id(row, corpus_path, lineno)
        text, title = row.get("text", ""), row.get("title", "")
        if not isinstance(text, str) or not isinstance(title, str):
            raise DatasetError(f"{corpus_path}:{lineno}: 'title' and 'text' must be strings.")
        if doc_id in corpus:
            raise DatasetError(f"{corpus_path}:{lineno}: duplicate document id {doc_id!r}; ids must be unique.")
        corpus[doc_id] = {"title": title, "text": text}
    if not corpus:
        raise DatasetError(f"{corpus_path}: no documents; the corpus needs at least one line.")

    queries: dict[str, str] = {}
    for lineno, row in _jsonl_rows(queries_path):
        qid = _required_id(row, queries_path, lineno)
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f"{queries_path}:{lineno}: query {qid!r} has no 'text' string.")
        if qid in queries:
            raise DatasetError(f"{queries_path}:{lineno}: duplicate query id {qid!r}; ids must be unique.")
        queries[qid] = text

    qrels = _load_qrels(qrels_path, corpus, queries)
    if not qrels:
        raise DatasetError(f"{qrels_path}: no relevant judgement (score > 0); nothing can be evaluated.")
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, name=root.resolve().name)


def _load_qrels(
    path: Path, corpus: dict[str, Any], queries: dict[str, str]
) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}  # (query, document) -> the line that judged it
    for lineno, line in enumerate(_text_lines(path), start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        cols = line.split("\t")
        if lineno == 1:
            if cols[:2] != ["query-id", "corpus-id"]:
                raise DatasetError(
                    f"{path}:1: expected the header line 'query-id<TAB>corpus-id<TAB>score', got "
                    f"{line[:80]!r}. Add the header (BEIR files start with it)."
                )
            continue
        if len(cols) != 3:
            raise DatasetError(
                f"{path}:{lineno}: expected 3 tab-separated columns (query-id, corpus-id, score), "
                f"got {len(cols)}: {line[:80]!r}."
            )
        qid, doc_id, raw_score = (c.strip() for c in cols)
        try:
            score = int(raw_score)
        except ValueError:
            raise DatasetError(
                f"{path}:{lineno}: score {raw_score!r} is not an integer; relevance grades are "
                f"integers (0 = not relevant, 1.. = relevant)."
            ) from None
        if doc_id not in corpus:
            raise DatasetError(
                f"{path}:{lineno}: corpus-id {doc_id!r} is not in corpus.jsonl. Fix the id or add the "
                f"document to the corpus."
            )
        if qid not in queries:
            raise DatasetError(
                f"{path}:{lineno}: query-id {qid!r} is not in queries.jsonl. Fix the id or add the query."
            )
        judged = qrels.setdefault(qid, {})
        if doc_id in judged and judged[doc_id] != score:
            # The later line used to overwrite the earlier one silently: "q1 d1 0" erased q1's relevant d1.
            raise DatasetError(
                f"{path}:{lineno}: query {qid!r} judges document {doc_id!r} again, with score {score} (line "
                f"{first_line[(qid, doc_id)]} gave {judged[doc_id]}). Keep one judgement per query and document."
            )
        first_line.setdefault((qid, doc_id), lineno)
        judged[doc_id] = score  # an identical repeat is harmless
    return {qid: rels for qid, rels in qrels.items() if any(s > 0 for s in rels.values())}


def _text_lines(path: Path) -> list[str]:
    """The file's lines, decoded as UTF-8 (a byte-order mark tolerated); any other encoding is a DatasetError
    naming the line, instead of a UnicodeDecodeError traceback."""
    return decode_utf8(path.read_bytes(), path, DatasetError).split("\n")  # not splitlines(): a JSON string may hold U+2028, which is no line break here


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; malformed lines raise with their number."""
    for lineno, line in enumerate(_text_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(
                f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno}). Each line must be one "
                f"JSON object."
            ) from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}.")
        yield lineno, row


def _required_id(row: dict[str, Any], path: Path, lineno: int) -> str:
    value = row.get("_id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{path}:{lineno}: missing '_id' (a non-empty string); every line needs one.")
    return value.strip()


def docs_from_beir(dataset: BeirDataset) -> list[Document]:
    """One Document per corpus entry, shaped like a parsed file so the index chunks it as it would a file.

    ``source`` is the document id (so hits map back to qrels ids); the title is a ``Title`` element and
    the text a ``NarrativeText`` element in that title's section.
    """
    docs = []
    for doc_id, entry in dataset.corpus.items():
        title, text = entry["title"].strip(), entry["text"].strip()
        elements = []
        if title:
            elements.append(Element(title, type="Title"))
        if text:
            elements.append(Element(text, type="NarrativeText", section=title or None))
        sha = hashlib.sha256(f"{title}\n{text}".encode("utf-8")).hexdigest()
        docs.append(
            Document(
                source=doc_id,
                type="beir",
                elements=elements,
                sha256=sha,
                metadata={"dataset": dataset.name, "doc_id": doc_id},
            )
        )
    return docs


_QA_FIELDS = ("id", "question", "answer", "source")


def load_qa(path: str | Path) -> list[QAItem]:
    """Read a QA jsonl file (``{"id","question","answer","source","section"}`` per line)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: QA file not found. Pass a .jsonl file with one question object per line.")
    items: list[QAItem] = []
    seen: set[str] = set()
    for lineno, row in _jsonl_rows(p):
        if isinstance(row.get("id"), int) and not isinstance(row["id"], bool):
            row["id"] = str(row["id"])  # numbered questions are common; an id only has to be unique
        if row.get("answer") is None and not row.get("source") and isinstance(row.get("question"), str):
            raise DatasetError(
                f"{p}:{lineno}: this question has no answer and no source, as in a file of unanswerable "
                "questions (corpora/unanswerable.jsonl); scoring needs each question's answer and the file "
                "that holds it (fields id, question, answer, source)."
            )
        for name in _QA_FIELDS:
            value = row.get(name)
            if not isinstance(value, str) or not value.strip():
                raise DatasetError(
                    f"{p}:{lineno}: field {name!r} is missing or empty; each line needs "
                    f"{', '.join(_QA_FIELDS)} (strings) and optionally 'section'."
                )
        section = row.get("section")
        if section is not None and not isinstance(section, str):
            raise DatasetError(f"{p}:{lineno}: 'section' must be a string or null.")
        if row["id"] in seen:
            raise DatasetError(f"{p}:{lineno}: duplicate id {row['id']!r}; ids must be unique.")
        seen.add(row["id"])
        extra = {k: v for k, v in row.items() if k not in (*_QA_FIELDS, "section")}
        items.append(
            QAItem(
                id=row["id"], question=row["question"], answer=row["answer"],
                source=row["source"].strip(), section=section or None, metadata=extra,
            )
        )
    if not items:
        raise DatasetError(f"{p}: no questions; the file needs at least one line.")
    return items
