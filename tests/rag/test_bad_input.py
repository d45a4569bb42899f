"""Bad input: each problem file is named with its cause, skipped, and the stored index is untouched."""

from __future__ import annotations

import pytest

from ragtune.errors import IndexFormatError
from ragtune.rag.index import Index


def _snapshot(index: Index):
    return index.generation, sorted(index.files()), sorted(c.id for c in index.chunks())


@pytest.fixture
def built(hash_index, docs_dir):
    index = hash_index()
    report = index.add([docs_dir], progress=False)
    assert len(report.added) == 3 and not report.problems
    return index


@pytest.mark.parametrize(
    "name, content, cause",
    [
        ("empty.txt", b"", "empty file"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage without xref", "corrupt or unreadable PDF"),
        ("notapdf.pdf", b"hello, I am text", "not a PDF file"),
        ("garbage.txt", bytes(range(256)) * 40, "binary data"),
        ("fake.docx", b"this is not a zip", "not a .docx file"),
    ],
)
def test_bad_file_is_reported_and_batch_continues(built, docs_dir, tmp_path, name, content, cause):
    before = _snapshot(built)
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / name).write_bytes(content)
    (batch / "good.md").write_text("# Good\n\nA good document about reranking with cross-encoders.")
    report = built.add([batch], progress=False)
    assert [p.path for p in report.problems] == [str(batch / name)]
    assert cause in report.problems[0].reason
    assert report.added == [str(batch / "good.md")]  # the rest of the batch went in
    assert set(before[1]) < set(built.files())
    assert set(before[2]) < {c.id for c in built.chunks()}  # nothing stored was lost


def test_bad_files_alone_leave_index_unchanged(built, tmp_path):
    before = _snapshot(built)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "x.xyz").write_text("unknown")
    report = built.add([tmp_path / "empty.txt", tmp_path / "x.xyz", tmp_path / "missing.md"], progress=False)
    reasons = {p.path.rsplit("/", 1)[-1]: p.reason for p in report.problems}
    assert "empty file" in reasons["empty.txt"]
    assert "unsupported file type .xyz" in reasons["x.xyz"]
    assert "no such file or directory" in reasons["missing.md"]
    assert _snapshot(built) == before
    assert _snapshot(Index.open(built.root)) == before  # reloadable from disk, same content


def test_non_utf8_text_is_decoded_with_a_warning(built, tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes("Caf\u00e9 cr\u00e8me: na\u00efve r\u00e9sum\u00e9 of retrieval \u00e0 la BM25.\n".encode("cp1252"))
    report = built.add([f], progress=False)
    assert report.added == [str(f)]
    assert any("not valid UTF-8" in w.reason and w.path == str(f) for w in report.warnings)
    assert any("résumé" in c.text for c in built.chunks())


def test_fifty_megabyte_text_file_is_refused_by_name_with_the_limit(built, tmp_path):
    big = tmp_path / "huge.txt"
    with open(big, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: 50 MB of zeros on disk in no time
    before = _snapshot(built)
    report = built.add([big], progress=False)
    assert report.problems[0].path == str(big)
    assert "52.4 MB, over the 25 MB limit" in report.problems[0].reason
    assert "--max-file-mb" in report.problems[0].reason
    assert _snapshot(built) == before


def test_fifty_megabyte_text_file_indexes_when_the_limit_allows(hash_index, tmp_path):
    index = hash_index("big", ingest__max_file_mb=100)
    big = tmp_path / "huge.txt"
    line = "Adapters, ranks and retrieval chunks are discussed in this long log paragraph number {}.\n\n"
    with open(big, "w") as fh:
        i = 0
        while fh.tell() < 50 * 1024 * 1024:
            fh.write(line.format(i) * 40)
            i += 1
    report = index.add([big], progress=False)
    assert report.added == [str(big)] and not report.problems
    assert any("large text file" in w.reason for w in report.warnings)
    assert len(index) > 1000


def test_directory_that_is_not_an_index_is_refused(tmp_path):
    (tmp_path / "notes.md").write_text("# Mine\n\nnot an index")
    with pytest.raises(IndexFormatError, match="is not a ragtune index"):
        Index.open(tmp_path)
    with pytest.raises(IndexFormatError, match="is not a ragtune index"):
        Index.open(tmp_path, create=True)  # never clobbers a user's folder
    assert (tmp_path / "notes.md").read_text().startswith("# Mine")


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexFormatError, match="ragtune index add"):
        Index.open(tmp_path / "nothing-here")


def test_damaged_current_pointer_is_a_clear_error(built):
    (built.root / "CURRENT").write_text("rubbish")
    with pytest.raises(IndexFormatError, match="CURRENT is damaged"):
        Index.open(built.root)
