"""The Milvus backend where a user's hands reach past the index: a copied index folder, a moved Milvus Lite
database, connections that fail for a reason of their own, and vectors that went missing from a collection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragtune.errors import IndexFormatError

pytest.importorskip("milvus_lite", reason="needs the [milvus] extra")

from ragtune.rag.milvus_store import MilvusError, MilvusStore, milvus_config  # noqa: E402


def _hash_embedder():
    from ragtune.rag.embed import HashEmbedder

    return HashEmbedder(dim=64)


def _lite_index(hash_index, tmp_path: Path, docs_dir: Path):
    """An index whose vectors are in a Milvus Lite database beside it (tmp/vectors.db), built and closed, its
    database released by this process (a Lite database is locked by the process that opened it)."""
    db = tmp_path / "vectors.db"
    index = hash_index(store__backend="milvus", store__uri=str(db), store__index_type="flat")
    index.add([docs_dir], progress=False)
    root, collection = index.root, index.manifest["store"]["collection"]
    index.close()
    _release(db)
    return root, db, collection


def _release(db: Path) -> None:
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(db))


# -- a copied index folder ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["milvus"], indirect=True)
def test_a_copied_index_folder_searches_but_cannot_change_the_originals_vectors(hash_index, backend, docs_dir, tmp_path):
    from ragtune.rag.index import Index

    index = hash_index()
    index.add([docs_dir], progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(index.root, copy)
    copied = Index.open(copy, embedder=_hash_embedder())
    assert copied.search("QLoRA NormalFloat", k=1, mode="dense")[0].source.endswith("lora.md")  # reading is safe
    (docs_dir / "lora.md").write_text("# LoRA\n\nOther text about ranks.\n")
    with pytest.raises(MilvusError) as refused:
        copied.add([docs_dir], progress=False)  # it replaced (deleted) the original's lora.md vectors
    message = str(refused.value)
    assert str(copy) in message and str(index.root) in message and "index repair --index" in message
    original = Index.open(index.root, embedder=_hash_embedder())
    assert len(original.store) == len(original)
    assert original.verify()["chunks"] == len(original)
    assert original.search("QLoRA NormalFloat", k=1, mode="dense")[0].source.endswith("lora.md")
    assert not list(copy.glob("tmp-*"))  # the refused write left nothing behind


@pytest.mark.parametrize("backend", ["milvus"], indirect=True)
def test_a_repaired_copy_writes_its_own_collection_and_never_drops_the_originals(hash_index, backend, docs_dir, tmp_path):
    # The copy's generations name the original's collection; when the last of them was dropped (two writes after a
    # repair), the copy dropped that collection with it, and the original lost every vector.
    from ragtune.rag.index import Index

    index = hash_index()
    index.add([docs_dir], progress=False)
    shutil.copytree(index.root, tmp_path / "copy")
    repaired = Index.repair(tmp_path / "copy", embedder=_hash_embedder(), progress=False)
    assert repaired.manifest["store"]["collection"] != index.manifest["store"]["collection"]
    for version in range(3):
        (docs_dir / "lora.md").write_text(f"# LoRA\n\nVersion {version} of the text about ranks.\n")
        assert repaired.add([docs_dir], progress=False).updated
    original = Index.open(index.root, embedder=_hash_embedder())
    assert original.verify()["chunks"] == len(index)
    assert original.search("QLoRA NormalFloat", k=1, mode="dense")[0].source.endswith("lora.md")


@pytest.mark.parametrize("backend", ["milvus"], indirect=True)
def test_a_moved_index_folder_takes_its_collection_along(hash_index, backend, docs_dir, tmp_path):
    from ragtune.rag.index import Index

    index = hash_index()
    index.add([docs_dir], progress=False)
    index.close()
    moved = tmp_path / "moved"
    shutil.move(str(index.root), moved)
    (docs_dir / "rag.txt").write_text("Retrieval notes, changed after the move.\n")
    reopened = Index.open(moved, embedder=_hash_embedder())
    assert reopened.add([docs_dir], progress=False).updated
    assert reopened.verify()["chunks"] == len(reopened)


# -- a moved Milvus Lite database -------------------------------------------------------------------
def test_a_moved_lite_database_is_found_where_RAGTUNE_MILVUS_URI_points(hash_index, docs_dir, tmp_path, monkeypatch):
    from ragtune.rag.index import Index

    monkeypatch.delenv("RAGTUNE_MILVUS_URI", raising=False)
    root, db, _ = _lite_index(hash_index, tmp_path, docs_dir)
    new_db = tmp_path / "elsewhere" / "vectors.db"
    new_db.parent.mkdir()
    shutil.move(str(db), new_db)
    with pytest.raises(IndexFormatError, match="RAGTUNE_MILVUS_URI") as missing:
        Index.open(root, embedder=_hash_embedder())
    assert str(db) in str(missing.value)
    assert not db.exists()  # no empty database was made in its place
    monkeypatch.setenv("RAGTUNE_MILVUS_URI", str(new_db))
    index = Index.open(root, embedder=_hash_embedder())
    assert index.search("QLoRA NormalFloat", k=1, mode="dense")[0].source.endswith("lora.md")
    (docs_dir / "rag.txt").write_text("Retrieval notes, changed after the move.\n")
    index.add([docs_dir], progress=False)
    assert index.manifest["store"]["uri"] == str(new_db)  # the next open needs no variable
    chunks = len(index)
    index.close()
    _release(new_db)
    monkeypatch.delenv("RAGTUNE_MILVUS_URI")
    assert Index.open(root, embedder=_hash_embedder()).verify()["chunks"] == chunks


def test_a_uri_without_the_collection_is_named_with_it(hash_index, docs_dir, tmp_path, monkeypatch):
    from ragtune.rag.index import Index

    root, db, collection = _lite_index(hash_index, tmp_path, docs_dir)
    shutil.move(str(db), tmp_path / "gone.db")
    other = tmp_path / "other.db"
    MilvusStore(4, milvus_config(uri=str(other), collection="unrelated")).create()  # a database without it
    monkeypatch.setenv("RAGTUNE_MILVUS_URI", str(other))
    with pytest.raises(IndexFormatError) as neither:
        Index.open(root, embedder=_hash_embedder())
    message = str(neither.value)
    assert str(other) in message and str(db) in message and collection in message


def test_a_default_RAGTUNE_MILVUS_URI_leaves_an_index_that_lives_elsewhere_working(hash_index, docs_dir, tmp_path,
                                                                                  milvus_server_uri, monkeypatch):
    # The variable is also the default --uri of every new index: an index on a Lite file must not break because
    # the variable names a server.
    from ragtune.rag.index import Index

    root, _, _ = _lite_index(hash_index, tmp_path, docs_dir)
    monkeypatch.setenv("RAGTUNE_MILVUS_URI", milvus_server_uri)
    assert Index.open(root, embedder=_hash_embedder()).verify()["chunks"] > 0


# -- what a failed connection says ------------------------------------------------------------------
def test_a_missing_folder_is_named_and_not_blamed_on_another_process(tmp_path):
    with pytest.raises(MilvusError) as failed:
        MilvusStore(4, milvus_config(uri=str(tmp_path / "nope" / "vectors.db"), collection="c")).create()
    message = str(failed.value)
    assert str(tmp_path / "nope") in message and "does not exist" in message and "another process" not in message


def test_a_file_in_the_way_is_named_without_a_traceback(tmp_path, capfd):
    in_the_way = tmp_path / "vectors.db"
    in_the_way.write_text("not a database")
    with pytest.raises(MilvusError) as failed:
        MilvusStore(4, milvus_config(uri=str(in_the_way), collection="c")).create()
    message = str(failed.value)
    assert "is a file" in message and str(in_the_way) in message and "another process" not in message
    assert "Traceback" not in capfd.readouterr().err


def test_a_database_another_process_holds_says_so(tmp_path):
    db = tmp_path / "vectors.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pymilvus import MilvusClient; MilvusClient(uri={str(db)!r}); print('open', "
                               "flush=True); import time; time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(MilvusError, match="another process") as failed:
            MilvusStore(4, milvus_config(uri=str(db), collection="c")).create()
        assert "holds the lock" in str(failed.value)  # Milvus Lite's own reason, not only pymilvus' "failed"
    finally:
        holder.kill()
        holder.wait()


# -- verify checks the vectors in the collection ----------------------------------------------------
@pytest.mark.parametrize("backend", ["milvus"], indirect=True)
def test_verify_finds_vectors_missing_from_the_collection_and_repair_restores_them(hash_index, backend, docs_dir):
    from ragtune.rag.index import Index

    index = hash_index()
    index.add([docs_dir], progress=False)
    store = index.store
    ids = sorted(int(r["id"]) for r in store.client.query(store.collection, filter="id >= 0", output_fields=["id"]))
    store.client.upsert(store.collection, [{"id": 10**9, "vector": np.ones(64, np.float32) / 8, "source": "",
                                            "file_type": "", "page": -1, "section": ""}])
    assert index.verify()["chunks"] == len(ids)  # an extra id (a crashed writer's) is not damage
    store.client.delete(store.collection, ids=ids[:2])
    with pytest.raises(IndexFormatError, match=rf"holds vectors for {len(ids) - 2} of its {len(ids)} chunks.*index repair"):
        Index.open(index.root, embedder=_hash_embedder()).verify()
    repaired = Index.repair(index.root, embedder=_hash_embedder(), progress=False)
    assert repaired.verify()["chunks"] == len(ids)


def test_verify_json_is_not_ok_when_the_collection_lost_vectors(hash_index, docs_dir, tmp_path, capsys):
    from pymilvus import MilvusClient

    from ragtune.cli import main

    db = tmp_path / "vectors.db"
    index = hash_index(store__backend="milvus", store__uri=str(db), store__index_type="flat")
    index.add([docs_dir], progress=False)
    collection = index.manifest["store"]["collection"]
    client = MilvusClient(uri=str(db))  # this process's Lite server for that database
    first = client.query(collection, filter="id >= 0", output_fields=["id"], limit=1)[0]["id"]
    client.delete(collection, ids=[int(first)])
    code = main(["index", "verify", "--index", str(index.root), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["ok"] is False and f"{len(index) - 1} of its {len(index)} chunks" in out["error"]
