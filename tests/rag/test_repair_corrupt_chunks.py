"""Repair when the chunk table itself is damaged: no damaged text is re-signed, its files are named and read again.

Before, ``index repair`` re-embedded whatever the damage left in chunks.sqlite and re-signed the manifest:
``verify`` said ok, ``index add`` called the file unchanged (its files record still held the old hash), and
the damaged text was searchable for good. Each chunk row stores the hash of its text: repair checks it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ragtune.cli import main
from ragtune.errors import IndexFormatError
from ragtune.rag.index import Index

THETA = "Theta about paged attention."


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "d5"
    d.mkdir()
    (d / "theta.txt").write_text(THETA + "\n")
    (d / "o.txt").write_text("Other notes.\n")
    return d


@pytest.fixture
def built(hash_index, corpus) -> Index:
    index = hash_index()
    report = index.add([corpus], progress=False)
    assert len(report.added) == 2 and not report.problems
    return index


def _table(index: Index) -> Path:
    return index.root / index.generation / "chunks.sqlite"


def _damage(index: Index, old: bytes, new: bytes) -> None:
    """Overwrite bytes of the published chunk table in place (a disk or copy error, not an SQL update)."""
    path = _table(index)
    data = path.read_bytes()
    assert data.count(old) >= 1 and len(old) == len(new)
    path.write_bytes(data.replace(old, new))


def _texts(index: Index) -> list[str]:
    return sorted(c.text for c in index.chunks())


def test_repair_drops_damaged_text_and_the_next_add_reads_the_file_again(built, corpus):
    theta = str(corpus / "theta.txt")
    _damage(built, b"Theta about paged attention.", b"Theta about ROGUE attention.")
    with pytest.raises(IndexFormatError, match="checksum"):
        Index.open(built.root)

    repaired = Index.repair(built.root, progress=False)
    assert not any("ROGUE" in t for t in _texts(repaired))  # the damaged text was not re-signed
    assert sorted(repaired.files()) == [str(corpus / "o.txt")]  # so `add` cannot call theta.txt unchanged
    [note] = repaired.repairs
    assert theta in note and "no longer match their hash" in note and "ragtune index add" in note
    assert Index.open(built.root).verify(full=True)["chunks"] == 1  # a consistent index, the rest kept

    index = Index.open(built.root)
    report = index.add([corpus], progress=False)
    assert report.added == [theta] and report.unchanged == [str(corpus / "o.txt")]
    hit = index.search("attention", k=1)[0]
    assert hit.source == theta and hit.chunk.text == THETA
    assert _texts(index) == sorted(["Other notes.", THETA])


def test_the_checksum_error_says_what_repair_does_with_a_damaged_table(built):
    _damage(built, b"Theta about paged attention.", b"Theta about ROGUE attention.")
    with pytest.raises(IndexFormatError, match="checksum.*ragtune index repair.*drops the files whose chunks do not"):
        Index.open(built.root)
    (built.root / built.generation / "chunks.sqlite").write_bytes(b"not sqlite")
    with pytest.raises(IndexFormatError, match="bytes.*if the table cannot be read at all, rebuild the index"):
        Index.open(built.root)


def test_text_that_no_longer_decodes_is_dropped_not_a_failed_repair(built, corpus):
    _damage(built, b"Theta about paged", b"Theta about \xff\xfeged")  # not UTF-8 any more
    repaired = Index.repair(built.root, progress=False)
    assert sorted(repaired.files()) == [str(corpus / "o.txt")]
    assert repaired.add([corpus], progress=False).added == [str(corpus / "theta.txt")]
    assert _texts(repaired) == sorted(["Other notes.", THETA])


def test_a_damaged_source_name_drops_the_stray_chunk_and_the_file_it_left(built, corpus):
    path = _table(built)
    data = path.read_bytes()
    at = data.index(b"theta.txt")  # the first copy of the name: the chunk row's source, not its files record
    path.write_bytes(data[:at] + b"thetA.txt" + data[at + 9 :])
    repaired = Index.repair(built.root, progress=False)
    notes = "\n".join(repaired.repairs)
    assert "thetA.txt" in notes and "no indexed file has that name" in notes
    assert f"dropped {corpus / 'theta.txt'}: its files record lists 1 chunks, the table holds 0" in notes
    assert {c.source for c in repaired.chunks()} == {str(corpus / "o.txt")}
    assert repaired.add([corpus], progress=False).added == [str(corpus / "theta.txt")]


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_an_unreadable_table_is_refused_and_nothing_is_published(built, damage):
    path, before = _table(built), built.generation
    path.write_bytes(b"this is not sqlite" * 100) if damage == "garbage" else path.unlink()
    with pytest.raises(IndexFormatError, match="cannot repair.*rebuild the index from the documents"):
        Index.repair(built.root, progress=False)
    assert (built.root / "CURRENT").read_text().strip() == before
    assert sorted(p.name for p in built.root.iterdir() if p.name.startswith(("gen-", "tmp-"))) == [before]


def test_damage_that_was_re_signed_fails_a_full_verify_and_repair_clears_it(built, corpus):
    """An index repaired before repair checked the hashes: checksums match, the chunk hashes do not."""
    _damage(built, b"Theta about paged attention.", b"Theta about ROGUE attention.")
    manifest_path = built.root / built.generation / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    from ragtune.rag.ingest import sha256_file

    manifest["files"]["chunks.sqlite"]["sha256"] = sha256_file(_table(built))
    manifest_path.write_text(json.dumps(manifest))

    index = Index.open(built.root)  # opens: every checksum matches
    with pytest.raises(IndexFormatError, match=r"theta\.txt: 1 of its 1 stored chunk\(s\) no longer match.*repair"):
        index.verify(full=True)
    assert main(["index", "verify", "--index", str(built.root)]) == 1
    index.close()
    repaired = Index.repair(built.root, progress=False)
    assert repaired.verify(full=True)["files"] == 1
    assert repaired.add([corpus], progress=False).added == [str(corpus / "theta.txt")]


def test_a_damaged_index_entry_is_rebuilt_so_the_next_add_replaces_the_file(built, corpus):
    """Damage in the table's source index only: every row is intact and kept, and the rebuilt index lets the
    next add find (and replace) the file's old chunks instead of leaving them beside the new ones."""
    path = _table(built)
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root_page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'chunks_source'").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    start = (root_page - 1) * page_size
    page = bytes(data[start : start + page_size])
    at = page.index(b"theta.txt")
    data[start + at : start + at + 9] = b"thetA.txt"
    path.write_bytes(bytes(data))

    repaired = Index.repair(built.root, progress=False)
    assert _texts(repaired) == sorted(["Other notes.", THETA])  # nothing stored was lost
    assert any("every chunk text still matches its hash" in r for r in repaired.repairs)
    (corpus / "theta.txt").write_text("Theta about flash attention.\n")
    assert repaired.add([corpus], progress=False).updated == [str(corpus / "theta.txt")]
    assert _texts(repaired) == sorted(["Other notes.", "Theta about flash attention."])
    assert repaired.verify(full=True)["chunks"] == 2


def test_cli_repair_names_the_dropped_file_and_how_to_index_it_again(built, corpus, capsys):
    _damage(built, b"Theta about paged attention.", b"Theta about ROGUE attention.")
    assert main(["search", "attention", "--index", str(built.root)]) == 1
    err = capsys.readouterr().err
    assert "does not match its checksum" in err and "names them to index again" in err
    assert main(["index", "repair", "--index", str(built.root), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "repaired: 1 chunks" in out
    assert f"dropped {corpus / 'theta.txt'}" in err and "`ragtune index add" in err
    assert main(["index", "repair", "--index", str(built.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["repairs"] == []  # a second repair finds nothing to drop
