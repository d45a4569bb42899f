"""Bad input: each problem file is named with its cause, skipped, and the stored index is untouched."""

from __future__ import annotations

import re

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


# -- issue 14: the battery's findings, each a test that failed before its fix --------------------
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from ragtune.cli import main  # noqa: E402
from ragtune.errors import IndexLockedError  # noqa: E402


def _manifest_path(index):
    return index.root / index.generation / "manifest.json"


def test_fifo_in_the_folder_does_not_hang_add(built, tmp_path):
    batch = tmp_path / "batch"
    batch.mkdir()
    os.mkfifo(batch / "pipe.txt")
    (batch / "good.md").write_text("# Good\n\nCross-encoders rerank candidates.")
    report = built.add([batch], progress=False)  # before the fix: blocked forever hashing the FIFO
    assert report.added == [str(batch / "good.md")]
    assert "not a regular file" in report.problems[0].reason


def test_symlinked_write_lock_is_refused_and_its_target_untouched(built, tmp_path, docs_dir):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate me")
    (built.root / "write.lock").unlink(missing_ok=True)
    (built.root / "write.lock").symlink_to(victim)
    (docs_dir / "rag.txt").write_text("Changed content so that a write is needed.")
    with pytest.raises(IndexFormatError, match="symbolic link"):
        built.add([docs_dir], progress=False)
    assert victim.read_text() == "do not truncate me"


def test_symlink_to_a_file_outside_the_folder_is_not_indexed(built, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash")
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "passwd.txt").symlink_to(secret)
    (batch / "good.md").write_text("# Good\n\nCross-encoders rerank candidates.")
    report = built.add([batch], progress=False)
    assert str(batch / "passwd.txt") not in built.files()
    assert not any("root:x" in c.text for c in built.chunks())
    assert any("outside" in p.reason for p in report.problems)


def test_file_name_that_is_not_utf8_is_indexed_under_a_safe_name(built, tmp_path):
    batch = tmp_path / "batch"
    batch.mkdir()
    raw = os.path.join(os.fsencode(batch), b"caf\xe9.txt")
    with open(raw, "wb") as fh:
        fh.write(b"Notes on the cafe and its quantised models.")
    report = built.add([batch], progress=False)
    assert report.added == [str(batch) + "/caf\\xe9.txt"] and not report.problems
    assert built.search("cafe quantised models", k=1, mode="bm25")[0].source.endswith("caf\\xe9.txt")
    assert built.add([batch], prune=True, progress=False).unchanged  # the safe name still matches the file


def test_second_writer_is_refused_at_once_before_any_parsing(built, docs_dir, monkeypatch):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from filelock import FileLock; l=FileLock(sys.argv[1]); "
         "l.acquire(); print('HELD', flush=True); time.sleep(60)", str(built.root / "write.lock")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "HELD"
        parsed = []
        monkeypatch.setattr("ragtune.rag.index.parse_file", lambda *a, **k: parsed.append(a))
        (docs_dir / "rag.txt").write_text("Changed, so there would be work to do.")
        with pytest.raises(IndexLockedError, match="only one writer"):
            built.add([docs_dir], progress=False)
        assert parsed == []  # refused before reading a single file
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: {**m, "format_version": "2"}, "format_version must be a positive integer"),
        (lambda m: {**m, "format_version": None}, "format_version must be a positive integer"),
        (lambda m: {**m, "format_version": 99}, "upgrade ragtune"),
        (lambda m: [m], "expected a JSON object"),
        (lambda m: {k: v for k, v in m.items() if k != "embedder"}, "'embedder' must be a mapping"),
        (lambda m: {**m, "store": {"backend": "cassandra", "format_version": 1}}, "backend 'cassandra'"),
        (lambda m: {**m, "store": {"backend": "faiss", "format_version": 7}}, "store has format version 7"),
    ],
)
def test_bad_manifest_is_one_clear_error_in_the_cli(built, capsys, edit, match):
    path = _manifest_path(built)
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(IndexFormatError, match=match):
        Index.open(built.root)
    assert main(["search", "LoRA", "--index", str(built.root)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ragtune: error:") and "Traceback" not in err[0]


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_damaged_chunk_database_is_a_clear_error(built, capsys, damage):
    db = built.root / built.generation / "chunks.sqlite"
    db.write_bytes(b"this is not sqlite" * 100) if damage == "garbage" else db.unlink()
    with pytest.raises(IndexFormatError, match="chunks.sqlite"):
        Index.open(built.root)
    assert main(["index", "info", "--index", str(built.root)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_missing_vectors_are_refused_then_repaired_from_the_chunk_texts(built, docs_dir):
    count = len(built)
    (built.root / built.generation / "vectors.faiss").unlink()
    with pytest.raises(IndexFormatError, match="vectors.faiss is missing.*ragtune index repair"):
        Index.open(built.root)  # before: "no results", and the next add made the damage permanent
    repaired = Index.repair(built.root, progress=False)
    assert len(repaired) == count == len(repaired.store) == len(repaired.bm25)
    assert repaired.search("QLoRA NormalFloat", k=1, mode="dense")[0].source.endswith("lora.md")
    assert Index.open(built.root).verify()["chunks"] == count


def test_missing_bm25_is_rebuilt_on_open_and_reported(built):
    import shutil

    shutil.rmtree(built.root / built.generation / "bm25")
    index = Index.open(built.root)
    assert index.repairs and "rebuilt the BM25 index" in index.repairs[0]
    assert index.search("lexical ranking function", k=1, mode="bm25")[0].source.endswith("rag.txt")


def test_tampered_chunk_database_fails_its_checksum(built):
    import sqlite3

    path = built.root / built.generation / "chunks.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("UPDATE chunks SET text = 'tampered' WHERE id = (SELECT MIN(id) FROM chunks)")
    conn.commit()
    conn.close()
    with pytest.raises(IndexFormatError, match="checksum|bytes"):
        Index.open(built.root)


def test_stale_generations_and_debris_are_cleaned_on_open(built, docs_dir):
    import shutil

    for i in range(2):
        (docs_dir / "rag.txt").write_text(f"Version {i} of the notes.")
        built.add([docs_dir], progress=False)
    current = built.generation
    shutil.copytree(built.root / current, built.root / "gen-000001")  # as if killed before cleanup
    (built.root / "tmp-gen-000099-123").mkdir()
    Index.open(built.root)
    names = sorted(p.name for p in built.root.iterdir() if p.name.startswith(("gen-", "tmp-")))
    assert "gen-000001" not in names and "tmp-gen-000099-123" not in names and current in names


def test_query_with_invalid_utf8_and_nan_min_score_are_one_line_errors(built, capsys):
    assert main(["search", "LoRA \udcff", "--index", str(built.root)]) == 2
    assert main(["ask", "What is LoRA?", "--min-score", "nan", "--index", str(built.root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not valid UTF-8" in err[0] and "--min-score: nan" in err[1]


# --- wrong argument types in the Python API: refused naming the argument; nothing stored is lost -------------

def test_one_path_given_as_a_string_is_one_path_not_its_characters(built, docs_dir):
    before = _snapshot(built)
    lora = str(docs_dir / "lora.md")
    report = built.remove(lora)  # a string: iterating it removed every file under "/"
    assert report.removed == [lora] and not report.problems
    assert sorted(built.files()) == sorted(f for f in before[1] if f != lora)
    report = built.add(lora, progress=False)  # and a string path to add is that one file
    assert report.added == [lora]
    assert sorted(built.files()) == before[1]
    # include/exclude given as one glob
    report = built.add([docs_dir], include="*.md", prune=False, progress=False)
    assert not report.problems and report.unchanged == [lora]


@pytest.mark.parametrize("call, message", [
    (lambda ix: ix.add(42), "paths must be a path or a list of them, got int"),
    (lambda ix: ix.add([3.5]), "paths must be a path or a list of them; 3.5 is a float"),
    (lambda ix: ix.add(["x"], exclude=7), "exclude must be a glob or a list of them, got int"),
    (lambda ix: ix.remove(None), None),  # nothing named: an empty report, not everything
    (lambda ix: ix.search(123), "the query must be text (a str), got int"),
    (lambda ix: ix.search("lora", k="3"), "k must be a whole number >= 1, got '3'"),
    (lambda ix: ix.search("lora", k=3.5), "k must be a whole number >= 1, got 3.5"),
    (lambda ix: ix.search("lora", filters=["file_type", "md"]), "filters must be a dict"),
    (lambda ix: ix.search("lora", filters="file_type=md"), "filters must be a dict"),
    (lambda ix: ix.search("lora", filters={"file_type": 3}), "file_type must be a type such as 'pdf' or 'md', got 3"),
    (lambda ix: ix.search("lora", filters={"page": "three"}), "page must be a page number, got 'three'"),
])
def test_wrong_argument_types_are_refused_naming_the_argument(built, call, message):
    from ragtune.errors import ConfigError

    before = _snapshot(built)
    if message is None:
        assert not call(built).removed
    else:
        with pytest.raises(ConfigError, match=re.escape(message)):
            call(built)
    assert _snapshot(built) == before


def test_filters_in_the_forms_people_type_are_made_canonical(built):
    want = [h.chunk.id for h in built.search("LoRA adapters", k=5, filters={"file_type": "md"})]
    assert want  # lora.md is the only Markdown file
    for spelled in (".md", "MD", ".markdown", ["md", ".md"]):
        got = [h.chunk.id for h in built.search("LoRA adapters", k=5, filters={"file_type": spelled})]
        assert got == want, spelled


def test_a_closed_index_refuses_to_read_or_write_instead_of_answering_nothing(built, docs_dir):
    from ragtune.errors import RagtuneError

    root = built.root
    built.close()
    for call in (lambda: built.search("LoRA"), lambda: len(built), lambda: built.add([docs_dir], progress=False)):
        with pytest.raises(RagtuneError, match="was closed; open it again with Index.open"):
            call()
    built.close()  # closing twice is harmless
    again = Index.open(root, embedder=built.embedder)
    assert again.search("LoRA", k=1)
    again.close()


def test_a_changed_file_that_no_longer_reads_says_its_old_version_is_kept(built, docs_dir):
    lora = docs_dir / "lora.md"
    before = _snapshot(built)
    lora.write_text("")  # the file changed and can no longer be read
    report = built.add([docs_dir], progress=False)
    (problem,) = report.problems
    assert problem.path == str(lora) and "empty file" in problem.reason
    assert "the version indexed before is kept and still searchable" in problem.reason
    assert f"ragtune index remove {lora}" in problem.reason
    assert _snapshot(built) == before  # nothing stored is lost


def test_a_deleted_file_named_with_prune_is_removed_not_also_failed(built, docs_dir):
    rag = docs_dir / "rag.txt"
    rag.unlink()
    report = built.add([rag], prune=True, progress=False)
    assert report.removed == [str(rag)] and report.problems == []
    assert str(rag) not in built.files()
    # Without --prune the same call reports it missing and keeps it.
    (docs_dir / "quant.html").unlink()
    report = built.add([docs_dir / "quant.html"], progress=False)
    assert [p.reason for p in report.problems] == ["no such file or directory"]
    assert str(docs_dir / "quant.html") in built.files()
