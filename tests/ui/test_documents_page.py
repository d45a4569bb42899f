"""Documents page: upload (type, size, names kept inside the upload folder), list, re-index, remove."""

from __future__ import annotations

from pathlib import Path

from ui_helpers import page, texts, wait_for_jobs

NEW_DOC = b"# Speculative decoding\n\nSpeculative decoding drafts tokens with a small model and verifies them.\n"


def indexed_files(at) -> list[str]:
    return [row for row in at.dataframe[-1].value["file"]]


def upload(at, *files):
    at.file_uploader[0].set_value(list(files)).run()
    at.button[0].click().run()  # "Add to the index"
    wait_for_jobs()
    return at.run()


def test_indexed_files_chunks_and_last_update_are_listed(ui_env):
    at = page("documents")
    assert not at.exception
    assert sorted(indexed_files(at)) == ["lora.md", "quant.html", "rag.txt"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Files"] == "3" and int(metrics["Chunks"]) >= 3 and metrics["Last update"] != "never"


def test_uploaded_file_is_stored_under_a_safe_name_and_indexed(ui_env):
    at = upload(page("documents"), ("../../Spec decoding.md", NEW_DOC, "text/markdown"))
    assert not at.exception
    stored = ui_env / "uploads" / "Spec_decoding.md"
    assert stored.read_bytes() == NEW_DOC
    assert not (ui_env.parent / "Spec decoding.md").exists()
    assert "Spec_decoding.md" in indexed_files(at)
    assert any(s.startswith("1 added") for s in texts(at, "success"))


def test_oversized_upload_is_refused_with_the_limit(ui_env, monkeypatch):
    monkeypatch.setenv("RAGTUNE_MAX_UPLOAD_MB", "0.00001")  # 10 bytes
    at = upload(page("documents"), ("big.md", NEW_DOC, "text/markdown"))
    errors = texts(at, "error")
    assert len(errors) == 1 and "upload limit" in errors[0] and "big.md" in errors[0]
    assert not (ui_env / "uploads" / "big.md").exists()


def test_a_file_that_fails_to_parse_is_listed_as_skipped_with_its_reason(ui_env):
    at = upload(page("documents"), ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "application/pdf"))
    assert not at.exception
    skipped = at.dataframe[0].value
    assert list(skipped["file"]) == ["broken.pdf"] and skipped["reason"][0]
    # not kept in uploads/: the page could not remove it, and every Re-index would skip it again
    assert not (ui_env / "uploads" / "broken.pdf").exists()
    at = next(b for b in at.button if b.label == "Re-index").click().run()
    wait_for_jobs()
    at = at.run()
    assert not any("skipped" in w for w in texts(at, "warning"))


def test_the_uploader_is_emptied_once_its_files_are_added(ui_env):
    at = upload(page("documents"), ("notes.md", NEW_DOC, "text/markdown"))
    assert not at.file_uploader[0].value
    assert not any(b.label == "Add to the index" for b in at.button)
    assert "added: notes.md" in texts(at, "caption")  # the report names what went in


def test_reindex_drops_deleted_files_and_picks_up_changes(ui_env, docs_dir):
    (docs_dir / "rag.txt").unlink()
    (docs_dir / "lora.md").write_text("# LoRA\n\nLoRA has a new paragraph about rank selection now.\n")
    at = page("documents")
    reindex = next(b for b in at.button if b.label == "Re-index")
    reindex.click().run()
    wait_for_jobs()
    at.run()
    assert sorted(indexed_files(at)) == ["lora.md", "quant.html"]
    assert any("1 updated" in s and "1 removed" in s for s in texts(at, "success"))


def test_removing_an_uploaded_document_drops_it_from_index_and_disk(ui_env):
    at = upload(page("documents"), ("notes.md", NEW_DOC, "text/markdown"))
    stored = ui_env / "uploads" / "notes.md"
    assert stored.exists()
    source = next(o for o in at.selectbox[0].options if o.endswith("notes.md"))
    at.selectbox[0].set_value(str(Path(source))).run()
    next(b for b in at.button if b.label == "Remove").click().run()
    wait_for_jobs()
    at.run()
    assert "notes.md" not in indexed_files(at)
    assert not stored.exists()


def test_remove_and_reindex_replace_the_previous_report_in_the_same_click(ui_env):
    # Both buttons sit below the report: the click's own run used to end with the previous report still
    # drawn ("1 added" of the upload), so the page looked as if nothing happened until the next click.
    at = upload(page("documents"), ("notes.md", NEW_DOC, "text/markdown"))
    assert any(s.startswith("1 added") for s in texts(at, "success"))
    source = next(o for o in at.selectbox[0].options if o.endswith("notes.md"))
    at.selectbox[0].set_value(str(Path(source))).run()
    at = next(b for b in at.button if b.label == "Remove").click().run()
    assert not any(s.startswith("1 added") for s in texts(at, "success"))
    wait_for_jobs()
    at = next(b for b in at.button if b.label == "Re-index").click().run()
    assert not any("1 removed" in s for s in texts(at, "success"))  # the removal's report gave way too
