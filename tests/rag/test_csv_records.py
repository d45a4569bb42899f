"""CSV files are read one record per row ("header: value; ..."), not as one flattened table."""

from __future__ import annotations

import pytest

from ragtune.errors import IngestError
from ragtune.rag.ingest import parse_file


def test_each_row_is_one_record_with_its_column_names(tmp_path):
    f = tmp_path / "glossary.csv"
    f.write_text('term,category,definition\nHNSW,RAG,"A graph index, fast."\nBM25,,"A lexical score."\n\n')
    doc, problems = parse_file(f)
    assert not problems and doc.type == "csv"
    assert [e.text for e in doc.elements] == [
        "term: HNSW; category: RAG; definition: A graph index, fast.",
        "term: BM25; definition: A lexical score.",  # the empty cell is left out, the blank line skipped
    ]
    assert {e.type for e in doc.elements} == {"TableRow"}
    assert [e.metadata["row"] for e in doc.elements] == [2, 3]


def test_delimiter_extra_cells_missing_headers_and_multiline_cells(tmp_path):
    f = tmp_path / "prices.csv"
    f.write_text('model;;price\nSmolLM2;135M;"free\nand open";extra\n')
    (row,) = parse_file(f)[0].elements
    assert row.text == "model: SmolLM2; column 2: 135M; price: free and open; column 4: extra."


def test_header_only_csv_is_refused_by_name(tmp_path):
    f = tmp_path / "empty_table.csv"
    f.write_text("term,definition\n\n")
    with pytest.raises(IngestError, match=r"empty_table\.csv.*header row and no data rows"):
        parse_file(f)


def test_malformed_csv_names_file_and_line(tmp_path):
    f = tmp_path / "broken.csv"
    f.write_text("a,b\n1,2\n3," + "x" * 200_000 + "\n")  # a field over the csv module's limit
    with pytest.raises(IngestError, match=r"broken\.csv.*malformed CSV at line \d"):
        parse_file(f)


def test_records_are_never_cut_across_chunks(hash_index, tmp_path):
    rows = "\n".join(f"T{i},Category {i % 3},Definition number {i} says something about topic {i} here."
                     for i in range(200))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "g.csv").write_text("term,category,definition\n" + rows + "\n")
    index = hash_index()
    index.add([tmp_path / "docs"], progress=False)
    chunks = list(index.chunks())
    assert len(chunks) > 1
    for c in chunks:
        for line in c.text.splitlines():
            assert line.startswith("term: T") and line.endswith("here."), line


def test_csv_indexed_by_the_old_reader_is_read_again(hash_index, tmp_path, monkeypatch):
    from ragtune.rag import ingest

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "g.csv").write_text("term,definition\nLoRA,Low-rank adaptation.\n")
    (tmp_path / "docs" / "n.txt").write_text("Notes about adapters.\n")
    index = hash_index()
    index.add([tmp_path / "docs"], progress=False)
    assert len(index.add([tmp_path / "docs"], progress=False).unchanged) == 2
    # The CSV reader "changes" after the file was indexed: the CSV (only) is read again, bytes unchanged.
    monkeypatch.setitem(ingest.READER_CHANGED, "csv", 4e9)
    report = index.add([tmp_path / "docs"], progress=False)
    assert report.updated == [str(tmp_path / "docs" / "g.csv")]
    assert report.unchanged == [str(tmp_path / "docs" / "n.txt")]
    monkeypatch.setitem(ingest.READER_CHANGED, "csv", 1.0)
    assert len(index.add([tmp_path / "docs"], progress=False).unchanged) == 2
