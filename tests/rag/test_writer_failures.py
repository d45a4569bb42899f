"""An OS error during a write says truthfully whether the write landed: before the publish nothing changed,
after it the new generation is the index (and is never removed as debris)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from ragtune.errors import IndexWriteError
from ragtune.rag import writer
from ragtune.rag.index import Index


@pytest.fixture
def built(hash_index, docs_dir):
    index = hash_index()
    index.add([docs_dir], progress=False)
    return index


def _change(docs_dir: Path) -> None:
    (docs_dir / "lora.md").write_text("# LoRA\n\nChanged text about LoRA ranks.\n")


def _has_change(index: Index) -> bool:
    return any("ranks" in chunk.text for chunk in index.chunks())


def test_a_cleanup_failure_after_the_publish_says_the_write_was_saved(built, docs_dir, monkeypatch):
    def failing(root, current):
        raise PermissionError(errno.EACCES, "Permission denied", str(root / "gen-000001"))

    monkeypatch.setattr(writer, "drop_old_generations", failing)
    _change(docs_dir)
    with pytest.raises(IndexWriteError) as err:
        built.add([docs_dir], progress=False)
    message = str(err.value)
    assert "nothing was changed" not in message
    assert "the write was saved: gen-000002 is published" in message and "Permission denied" in message
    monkeypatch.undo()
    again = Index.open(built.root)
    assert again.generation == "gen-000002" and _has_change(again)


def test_an_error_syncing_the_folder_after_current_moved_keeps_the_new_generation(built, docs_dir, monkeypatch):
    # CURRENT already names the new generation when the folder's fsync fails: cleaning up as if nothing was
    # published deleted that generation, and every later command refused the index.
    real = writer._fsync_dir

    def flaky(path):
        current = Path(path) / "CURRENT"
        if current.is_file() and current.read_text().strip() == "gen-000002":
            raise OSError(errno.EIO, "Input/output error")
        real(path)

    monkeypatch.setattr(writer, "_fsync_dir", flaky)
    _change(docs_dir)
    with pytest.raises(IndexWriteError, match="the write was saved: gen-000002 is published"):
        built.add([docs_dir], progress=False)
    monkeypatch.undo()
    again = Index.open(built.root)
    assert again.generation == "gen-000002" and _has_change(again)


def test_a_failure_before_the_publish_still_says_nothing_was_changed(built, docs_dir, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer, "_fsync_tree", full)  # the new generation's files, before CURRENT moves
    _change(docs_dir)
    with pytest.raises(IndexWriteError, match="no space left on the device; nothing was changed"):
        built.add([docs_dir], progress=False)
    monkeypatch.undo()
    again = Index.open(built.root)
    assert again.generation == "gen-000001" and not _has_change(again)
    assert not list(built.root.glob("tmp-*")) and not (built.root / "gen-000002").exists()
