"""Saving uploaded files: allowed types, a size limit, and names that stay inside the upload folder.

Pure functions (no Streamlit), so the rules are tested directly:

    >>> safe_name("../../etc/passwd.md")
    'passwd.md'
    >>> safe_name("Q3 report (final).PDF")
    'Q3_report_final.pdf'
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ragtune.api import ConfigError, RagtuneError

# The index's own per-file limit (IngestConfig.max_file_mb): a larger upload would be stored and then
# skipped by indexing, so it is refused at the door with the same number.
MAX_UPLOAD_MB = 25.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 120  # characters; ext4 allows 255 bytes, and a readable table column needs far fewer


class UploadError(RagtuneError):
    """An upload was refused: wrong type, too large, or an unusable name."""


def allowed_suffixes() -> list[str]:
    """The file suffixes the index can read (``.pdf``, ``.md``, ...)."""
    from ragtune.api import SUPPORTED_TYPES

    return sorted(SUPPORTED_TYPES)


def safe_name(name: str) -> str:
    """The last path component of ``name`` with unsafe characters replaced and the suffix lower-cased."""
    base = re.split(r"[\\/]", name or "")[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = _UNSAFE.sub("_", stem).strip("._-")
    suffix = _UNSAFE.sub("", suffix).lower()
    stem = stem[: _MAX_NAME - len(suffix) - 1]
    if not stem:
        raise UploadError(f"the file name {name!r} has no usable characters; rename the file and upload it again")
    return f"{stem}.{suffix}" if suffix else stem


def check_upload(name: str, size: int, max_mb: float = MAX_UPLOAD_MB) -> str:
    """Validate an upload's name and size; returns the safe name it will be stored under."""
    clean = safe_name(name)
    suffix = Path(clean).suffix
    allowed = allowed_suffixes()
    if suffix not in allowed:
        raise UploadError(f"{name}: files of type {suffix or '(none)'} cannot be indexed; "
                          f"allowed types: {', '.join(allowed)}")
    if size > max_mb * 1e6:
        raise UploadError(f"{name}: {size / 1e6:.1f} MB is over the {max_mb:g} MB upload limit")
    if size == 0:
        raise UploadError(f"{name}: the file is empty")
    return clean


def save_upload(folder: str | Path, name: str, data: bytes, max_mb: float = MAX_UPLOAD_MB) -> Path:
    """Store ``data`` as ``folder/<safe name>`` and return the path.

    The file is written beside its target and renamed into place, so a failed or interrupted upload never
    leaves half a file where a good one was (an upload of the same name replaces the earlier version).
    """
    clean = check_upload(name, len(data), max_mb)
    root = Path(folder).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the upload folder {root}: {exc.strerror or exc}") from exc
    target = (root / clean).resolve()
    if target.parent != root:  # safe_name already prevents this; a second check costs nothing
        raise UploadError(f"{name}: refusing to write outside the upload folder {root}")
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def inside(folder: str | Path, path: str | Path) -> bool:
    """Whether ``path`` lies inside ``folder`` (after resolving links and ``..``)."""
    root = Path(folder).expanduser().resolve()
    try:
        Path(path).expanduser().resolve().relative_to(root)
    except ValueError:
        return False
    return True
