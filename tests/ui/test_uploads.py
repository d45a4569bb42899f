"""Upload rules: allowed types, the size limit, names sanitised and kept inside the upload folder."""

from __future__ import annotations

import pytest

from ragtune.ui.uploads import UploadError, inside, safe_name, save_upload


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd.md", "passwd.md"),
    ("..\\..\\windows\\notes.TXT", "notes.txt"),
    ("Q3 report (final).PDF", "Q3_report_final.pdf"),
    (".hidden.md", "hidden.md"),
    ("résumé.docx", "r_sum.docx"),
])
def test_names_are_reduced_to_a_safe_last_component(name, expected):
    assert safe_name(name) == expected


def test_traversal_names_are_written_inside_the_upload_folder(tmp_path):
    folder = tmp_path / "uploads"
    path = save_upload(folder, "../../../outside.md", b"# Hi\n\ntext\n")
    assert path == folder.resolve() / "outside.md" and path.read_bytes() == b"# Hi\n\ntext\n"
    assert not (tmp_path / "outside.md").exists() and inside(folder, path)


def test_wrong_types_empty_and_oversized_files_are_refused_with_the_reason(tmp_path):
    with pytest.raises(UploadError, match=r"\.exe cannot be indexed; allowed types: .*\.pdf"):
        save_upload(tmp_path, "tool.exe", b"MZ")
    with pytest.raises(UploadError, match="over the 1 MB upload limit"):
        save_upload(tmp_path, "big.txt", b"x" * 1_000_001, max_mb=1)
    with pytest.raises(UploadError, match="empty"):
        save_upload(tmp_path, "empty.txt", b"")
    with pytest.raises(UploadError, match="no usable characters"):
        save_upload(tmp_path, "???.md", b"x")
    assert list(tmp_path.iterdir()) == []


def test_uploading_the_same_name_replaces_the_file_without_leaving_temporaries(tmp_path):
    save_upload(tmp_path, "a.md", b"first")
    save_upload(tmp_path, "a.md", b"second")
    assert [p.name for p in tmp_path.iterdir()] == ["a.md"] and (tmp_path / "a.md").read_bytes() == b"second"


def test_inside_rejects_paths_outside_the_folder(tmp_path):
    assert not inside(tmp_path / "uploads", tmp_path / "uploads" / ".." / "x.md")
