"""`ragtune index add --backend milvus --uri URI`: a Milvus-backed index from the CLI, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_milvus_backend_without_a_uri_is_one_clear_line(capsys, tmp_path, docs_dir, monkeypatch):
    monkeypatch.delenv("RAGTUNE_MILVUS_URI", raising=False)
    code, out, err = _run(capsys, "index", "add", str(docs_dir), "--index", str(tmp_path / "idx"),
                          "--embedder", "hash-64", "--backend", "milvus")
    assert code == 2 and "--uri" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_index_add_and_search_with_milvus_lite(capsys, tmp_path, docs_dir):
    pytest.importorskip("milvus_lite", reason="needs the [milvus] extra")
    from ragtune.rag import store

    if not hasattr(store, "create_store"):
        pytest.skip("needs the vector-store seam of the index branch (rag/store.py create_store/open_store)")
    idx = tmp_path / "idx"
    uri = tmp_path / "vectors.db"
    code, out, err = _run(capsys, "index", "add", str(docs_dir), "--index", str(idx), "--embedder", "hash-64",
                          "--backend", "milvus", "--uri", str(uri), "--json")
    assert code == 0, err
    assert json.loads(out)["chunks_added"] > 0
    generation = (idx / "CURRENT").read_text().strip()
    manifest = json.loads(Path(idx / generation / "manifest.json").read_text())
    assert manifest["store"]["backend"] == "milvus" and manifest["store"]["uri"] == str(uri)
    assert not (idx / generation / "vectors.faiss").exists()  # the vectors live in Milvus
    code, out, _ = _run(capsys, "search", "QLoRA NormalFloat", "--index", str(idx), "--k", "2", "--mode", "dense", "--json")
    assert code == 0 and json.loads(out)["hits"][0]["source"].endswith("lora.md")


def test_index_add_uri_repoints_an_index_whose_lite_database_moved(capsys, tmp_path, docs_dir, monkeypatch):
    pytest.importorskip("milvus_lite", reason="needs the [milvus] extra")
    from milvus_lite.server_manager import server_manager_instance

    monkeypatch.setenv("RAGTUNE_MILVUS_URI", "")  # restored after the test: `index add --uri` sets it in-process
    idx, db, moved = tmp_path / "idx", tmp_path / "vectors.db", tmp_path / "moved" / "vectors.db"
    code, _, err = _run(capsys, "index", "add", str(docs_dir), "--index", str(idx), "--embedder", "hash-64",
                        "--backend", "milvus", "--uri", str(db))
    assert code == 0, err
    server_manager_instance.release_server(str(db))  # as if that process had ended
    moved.parent.mkdir()
    db.rename(moved)
    code, _, err = _run(capsys, "search", "QLoRA", "--index", str(idx), "--mode", "dense")
    assert code == 1 and str(db) in err and "--uri" in err and "Traceback" not in err
    (docs_dir / "rag.txt").write_text("Retrieval notes, changed after the move.\n")
    code, _, err = _run(capsys, "index", "add", str(docs_dir), "--index", str(idx), "--uri", str(moved))
    assert code == 0, err
    generation = (idx / "CURRENT").read_text().strip()
    assert json.loads((idx / generation / "manifest.json").read_text())["store"]["uri"] == str(moved)
