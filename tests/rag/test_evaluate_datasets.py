"""Loading BEIR directories and QA files: good data in, clear file:line errors out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.errors import DatasetError
from ragtune.rag.evaluate import docs_from_beir, load_beir, load_qa

CORPUS = [
    {"_id": "d1", "title": "Wing flutter", "text": "flutter of swept wings at transonic speed"},
    {"_id": "d2", "title": "Heat transfer", "text": "heat conduction in composite slabs"},
    {"_id": "d3", "title": "", "text": "boundary layer transition on a flat plate"},
]
QUERIES = [
    {"_id": "q1", "text": "wing flutter at transonic speed"},
    {"_id": "q2", "text": "heat conduction slabs"},
    {"_id": "q3", "text": "a query nothing is relevant to"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq2\td2\t1\nq3\td1\t0\n"


def write_beir(root: Path, corpus=CORPUS, queries=QUERIES, qrels=QRELS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return root


def test_load_beir_reads_graded_qrels_and_keeps_only_queries_with_a_relevant_document(tmp_path):
    ds = load_beir(write_beir(tmp_path / "tiny"))
    assert ds.name == "tiny"
    assert ds.corpus["d1"] == {"title": "Wing flutter", "text": "flutter of swept wings at transonic speed"}
    assert ds.qrels == {"q1": {"d1": 2, "d3": 1}, "q2": {"d2": 1}}
    assert list(ds.evaluated_queries) == ["q1", "q2"]
    assert len(ds.queries) == 3
    assert list(ds.subset(1).qrels) == ["q1"]


def test_missing_qrels_file_is_named(tmp_path):
    root = write_beir(tmp_path / "tiny")
    (root / "qrels" / "test.tsv").unlink()
    with pytest.raises(DatasetError, match=r"qrels/test\.tsv: file missing"):
        load_beir(root)


def test_malformed_json_line_names_file_and_line(tmp_path):
    root = write_beir(tmp_path / "tiny")
    lines = (root / "corpus.jsonl").read_text().splitlines()
    lines[1] = '{"_id": "d2", "text": "unterminated'
    (root / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:2: malformed JSON"):
        load_beir(root)


def test_line_without_id_names_file_and_line(tmp_path):
    root = write_beir(tmp_path / "tiny", queries=QUERIES + [{"text": "no id"}])
    with pytest.raises(DatasetError, match=r"queries\.jsonl:4: missing '_id'"):
        load_beir(root)


def test_unknown_doc_id_in_qrels_names_file_and_line(tmp_path):
    root = write_beir(tmp_path / "tiny", qrels=QRELS + "q2\tnope\t1\n")
    with pytest.raises(DatasetError, match=r"test\.tsv:6: corpus-id 'nope' is not in corpus\.jsonl"):
        load_beir(root)


def test_unknown_query_id_in_qrels_names_file_and_line(tmp_path):
    root = write_beir(tmp_path / "tiny", qrels=QRELS.replace("q2\td2", "q9\td2"))
    with pytest.raises(DatasetError, match=r"test\.tsv:4: query-id 'q9' is not in queries\.jsonl"):
        load_beir(root)


@pytest.mark.parametrize(
    "qrels, pattern",
    [
        ("q1\td1\t1\n", r"test\.tsv:1: expected the header line"),
        ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", r"test\.tsv:2: score 'high' is not an integer"),
        ("query-id\tcorpus-id\tscore\nq1 d1 1\n", r"test\.tsv:2: expected 3 tab-separated columns"),
        ("query-id\tcorpus-id\tscore\nq1\td1\t0\n", r"no relevant judgement"),
    ],
)
def test_bad_qrels_lines_are_reported(tmp_path, qrels, pattern):
    with pytest.raises(DatasetError, match=pattern):
        load_beir(write_beir(tmp_path / "tiny", qrels=qrels))


def test_conflicting_duplicate_qrels_lines_are_reported_and_identical_ones_are_harmless(tmp_path):
    # a later "q1 d1 0" used to erase q1's relevant d1 without a word
    root = write_beir(tmp_path / "conflict", qrels=QRELS + "q1\td1\t0\n")
    with pytest.raises(DatasetError, match=r"test\.tsv:6: query 'q1' judges document 'd1' again, with score 0 "
                                           r"\(line 2 gave 2\)"):
        load_beir(root)
    same = load_beir(write_beir(tmp_path / "same", qrels=QRELS + "q1\td1\t2\n"))
    assert same.qrels == load_beir(write_beir(tmp_path / "plain")).qrels


def test_duplicate_document_id_is_reported(tmp_path):
    root = write_beir(tmp_path / "tiny", corpus=CORPUS + [CORPUS[0]])
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:4: duplicate document id 'd1'"):
        load_beir(root)


def test_not_a_directory_is_reported(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        load_beir(tmp_path / "absent")


def test_docs_from_beir_makes_title_and_text_elements_with_the_doc_id_as_source(tmp_path):
    docs = {d.source: d for d in docs_from_beir(load_beir(write_beir(tmp_path / "tiny")))}
    assert set(docs) == {"d1", "d2", "d3"}
    d1 = docs["d1"]
    assert d1.type == "beir"
    assert [(e.type, e.text, e.section) for e in d1.elements] == [
        ("Title", "Wing flutter", None),
        ("NarrativeText", "flutter of swept wings at transonic speed", "Wing flutter"),
    ]
    assert [e.type for e in docs["d3"].elements] == ["NarrativeText"]  # no empty title element
    assert len({d.sha256 for d in docs.values()}) == 3 and all(len(d.sha256) == 64 for d in docs.values())


QA_LINE = {"id": "a1", "question": "What does LoRA train?", "answer": "Low-rank matrices.",
           "source": "guides/lora.md", "section": "How it works"}


def test_load_qa_reads_questions_and_sources(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(QA_LINE) + "\n\n" + json.dumps({**QA_LINE, "id": "a2", "section": None}) + "\n")
    items = load_qa(path)
    assert [(i.id, i.source, i.section) for i in items] == [
        ("a1", "guides/lora.md", "How it works"), ("a2", "guides/lora.md", None)
    ]


@pytest.mark.parametrize(
    "second_line, pattern",
    [
        ("{not json", r"qa\.jsonl:2: malformed JSON"),
        (json.dumps({**QA_LINE, "id": "a2", "source": ""}), r"qa\.jsonl:2: field 'source' is missing or empty"),
        (json.dumps(QA_LINE), r"qa\.jsonl:2: duplicate id 'a1'"),
        ("[1, 2]", r"qa\.jsonl:2: expected a JSON object"),
        (json.dumps({"id": "u1", "question": "What did GPT-4 cost?", "answer": None}),
         r"qa\.jsonl:2: this question has no answer and no source, as in a file of unanswerable questions"),
    ],
)
def test_bad_qa_lines_name_file_and_line(tmp_path, second_line, pattern):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(QA_LINE) + "\n" + second_line + "\n")
    with pytest.raises(DatasetError, match=pattern):
        load_qa(path)


def test_a_qa_file_in_another_encoding_is_named_with_its_line_and_numbered_ids_are_read(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_bytes(json.dumps(QA_LINE).encode() + b'\n{"id": "a2", "question": "caf\xe9?"}\n')  # latin-1
    with pytest.raises(DatasetError, match=r"qa\.jsonl: not UTF-8 text \(byte 0xe9 on line 2\): save the file as UTF-8"):
        load_qa(path)
    path.write_text(json.dumps({**QA_LINE, "id": 7}) + "\n" + json.dumps({**QA_LINE, "id": 8}) + "\n")
    assert [i.id for i in load_qa(path)] == ["7", "8"]


def test_a_line_separator_inside_a_json_string_does_not_split_the_line(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({**QA_LINE, "question": "one\u2028two?"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_qa(path)[0].question == "one\u2028two?"
