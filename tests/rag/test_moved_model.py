"""An index whose embedding model folder moved can still be read, and reopened with the model's new place."""

from __future__ import annotations

import pytest

from ragtune.errors import ModelLoadError
from ragtune.rag.embed import default_model_path, make_embedder
from ragtune.rag.index import Index


def test_an_index_whose_model_folder_moved_is_readable_and_reopens_from_the_new_place(tmp_path, docs_dir):
    import os
    import shutil

    model = tmp_path / "mymodel"  # the user's own copy of a model (its files linked, not copied: 88 MB)
    shutil.copytree(default_model_path(), model, copy_function=os.symlink)
    index = Index.open(tmp_path / "idx", create=True, embedder=make_embedder(model))
    index.add([docs_dir], progress=False)
    count = len(index)
    index.close()
    model.rename(tmp_path / "moved")  # the folder is moved and renamed

    index = Index.open(tmp_path / "idx")  # before: "embedding model directory not found" on every command
    assert len(index.files()) == 3 and index.info()["chunks"] == count
    assert index.search("QLoRA", k=1, mode="bm25")  # BM25 needs no model
    with pytest.raises(ModelLoadError, match=r"mymodel.*if it moved, open the index with the same model"):
        index.search("QLoRA", k=1, mode="hybrid")
    index.close()

    again = Index.open(tmp_path / "idx", embedder=make_embedder(tmp_path / "moved"))  # same fingerprint
    assert again.search("QLoRA", k=1, mode="hybrid")[0].source.endswith("lora.md")
    again.close()


def test_an_index_whose_model_folder_now_holds_another_model_is_readable_and_says_so(tmp_path, docs_dir):
    import os
    import shutil

    model = tmp_path / "e3"
    shutil.copytree(default_model_path(), model, copy_function=os.symlink)
    index = Index.open(tmp_path / "idx", create=True, embedder=make_embedder(model))
    index.add([docs_dir], progress=False)
    index.close()
    config = model / "config.json"  # the folder is retuned in place: its files change, its name does not
    text = config.read_text()
    config.unlink()
    config.write_text(text + "\n")

    index = Index.open(tmp_path / "idx")  # before: "built with embedding model 'e3', not 'e3'" on every command
    assert len(index.files()) == 3 and index.search("QLoRA", k=1, mode="bm25")
    with pytest.raises(ModelLoadError, match=r"folder .*e3' now holds another model of that name"):
        index.search("QLoRA", k=1, mode="dense")
    index.close()
