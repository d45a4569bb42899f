"""An index whose vectors are damaged: `index info` / `index files` (and Index.open(allow_damaged_vectors=True))
still show what it holds and say the vectors are damaged; dense search and writes are refused; nothing stored
changes until `index repair` rebuilds the vectors."""

from __future__ import annotations

import hashlib
import json

import pytest

from ragtune.cli import main
from ragtune.errors import IndexFormatError
from ragtune.rag.index import Index


@pytest.fixture
def built(hash_index, docs_dir):
    index = hash_index()
    assert len(index.add([docs_dir], progress=False).added) == 3
    return index


def _damage(index: Index, how: str) -> None:
    vectors = index.root / index.generation / "vectors.faiss"
    if how == "truncated":
        vectors.write_bytes(vectors.read_bytes()[:-8])
    elif how == "garbage":  # same size: only the checksum (or FAISS itself) can tell
        vectors.write_bytes(b"\xab" * vectors.stat().st_size)
    else:
        vectors.unlink()


def _stored(index: Index) -> dict[str, str]:
    """Every file of the index directory with its checksum (the writer lock's holder stamp left out)."""
    return {p.relative_to(index.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(index.root.rglob("*")) if p.is_file() and p.name != "write.lock"}


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("how", ["truncated", "garbage", "missing"])
def test_info_and_files_list_an_index_whose_vectors_are_damaged(built, capsys, how):
    sources = sorted(built.files())
    _damage(built, how)
    before = _stored(built)
    idx = str(built.root)

    code, out, err = _run(capsys, "index", "info", "--index", idx, "--json")
    info = json.loads(out)
    assert code == 0 and info["files"] == 3 and info["chunks"] == len(built)
    assert "vectors.faiss" in info["vectors_damaged"] and "ragtune index repair" in info["vectors_damaged"]
    assert "ragtune: warning: the index's vectors are damaged" in err and "ragtune index verify" in err

    code, out, err = _run(capsys, "index", "info", "--index", idx)
    assert code == 0 and "chunks" in out and "vectors are damaged" in err and "ragtune index repair" in err

    code, out, err = _run(capsys, "index", "files", "--index", idx)
    assert code == 0 and all(source in out for source in sources) and "vectors are damaged" in err
    code, out, _ = _run(capsys, "index", "files", "--index", idx, "--json")
    assert code == 0 and sorted(json.loads(out)) == sources

    code, out, err = _run(capsys, "search", "QLoRA", "--index", idx, "--mode", "dense")
    assert code == 1 and "vectors.faiss" in err and "ragtune index repair" in err
    assert _stored(built) == before  # listing wrote nothing and rewrote nothing


def test_a_sound_index_reports_no_vector_damage(built, capsys):
    code, out, err = _run(capsys, "index", "info", "--index", str(built.root), "--json")
    assert code == 0 and json.loads(out)["vectors_damaged"] is None and "warning" not in err
    code, out, err = _run(capsys, "index", "info", "--index", str(built.root))
    assert code == 0 and "vectors_damaged" not in out and not err


def test_the_python_api_reads_metadata_of_damaged_vectors_only_when_asked(built, docs_dir):
    sources, count = sorted(built.files()), len(built)
    _damage(built, "truncated")
    before = _stored(built)
    with pytest.raises(IndexFormatError, match="vectors.faiss.*ragtune index repair"):
        Index.open(built.root)  # the default is unchanged: a damaged generation is refused

    index = Index.open(built.root, allow_damaged_vectors=True)
    assert sorted(index.files()) == sources and len(index) == count == len(list(index.chunks()))
    assert "vectors.faiss" in index.info()["vectors_damaged"]
    assert index.search("QLoRA NormalFloat", k=1, mode="bm25")[0].source.endswith("lora.md")
    for mode in ("dense", "hybrid"):
        with pytest.raises(IndexFormatError, match="needs the index's vectors, which are damaged.*vectors.faiss"):
            index.search("QLoRA", k=1, mode=mode)
    (docs_dir / "new.md").write_text("# New\n\nA new document about adapters.\n")
    with pytest.raises(IndexFormatError, match="cannot write to .*vectors are damaged"):
        index.add([docs_dir], progress=False)
    with pytest.raises(IndexFormatError, match="cannot write to .*vectors are damaged"):
        index.remove(sources[:1])
    with pytest.raises(IndexFormatError, match="vectors.faiss"):
        index.verify(full=False)
    assert _stored(built) == before

    repaired = Index.repair(built.root, progress=False)
    assert repaired.info()["vectors_damaged"] is None
    assert Index.open(built.root).search("QLoRA NormalFloat", k=1, mode="dense")[0].source.endswith("lora.md")


def test_allowing_damaged_vectors_still_refuses_a_damaged_chunk_table(built):
    table = built.root / built.generation / "chunks.sqlite"
    table.write_bytes(table.read_bytes()[:-512])
    with pytest.raises(IndexFormatError, match="chunks.sqlite"):
        Index.open(built.root, allow_damaged_vectors=True)
