"""Files -> :class:`Document`: discovery, type dispatch, and parsing with ``unstructured``.

Every file is parsed on its own: one that is missing, empty, corrupt, binary, too large or of an
unknown type becomes a :class:`Problem` naming the file and the cause, and the batch goes on.

    >>> files, problems = discover(["corpora/"])                    # doctest: +SKIP
    >>> doc, warnings = parse_file(files[0], IngestConfig())        # doctest: +SKIP
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import logging
import os
import re
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ragtune.errors import ConfigError, IngestError

from .config import IngestConfig
from .offline import prepare_unstructured
from .types import Document, Element

#: extension -> file type
SUPPORTED_TYPES: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
    ".txt": "txt",
    ".text": "txt",
    ".pptx": "pptx",
    ".csv": "csv",
    ".eml": "eml",
}
TEXT_TYPES = {"txt", "md", "html", "csv"}
# unstructured categories that carry no content worth retrieving
_SKIP_CATEGORIES = {"PageBreak", "PageNumber"}


@dataclass
class Problem:
    """A file that failed and was skipped (``level="error"``), used with a caveat (``"warning"``), or
    passed over in a directory walk because its type is not supported (``"skipped"``)."""

    path: str
    reason: str
    level: str = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "level": self.level}


def file_type(path: Path) -> str | None:
    return SUPPORTED_TYPES.get(path.suffix.lower())


def sha256_file(path: Path) -> str:
    # One reused 256 KB buffer: reading 1 MB blocks allocated a new block per read (a file's size, up to
    # 1 MB, counted in every index write's memory peak).
    digest, buffer = hashlib.sha256(), bytearray(1 << 18)
    view = memoryview(buffer)
    with open(path, "rb") as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _excluded(rel_parts: tuple[str, ...], exclude: list[str]) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in rel_parts for pattern in exclude)


def _included(rel: str, name: str, include: list[str]) -> bool:
    return not include or any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in include)


def display_path(path: str | Path) -> str:
    """``path`` as a string that is valid text: a file name holding bytes that are not UTF-8 keeps its
    bytes as ``\\xNN`` escapes (the key the index stores and prints), instead of failing to encode."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


_ESCAPE_RE = re.compile(r"\\x([0-9a-fA-F]{2})")


def source_path(source: str) -> Path:
    """The path on disk of a stored source: :func:`display_path` undone (``\\xNN`` escapes back to the file
    name's bytes), so a file whose name is not UTF-8 is found again."""
    if "\\x" not in source or os.path.lexists(source):  # a valid name may hold a backslash itself
        return Path(source)
    raw = bytearray()
    at = 0
    for m in _ESCAPE_RE.finditer(source):
        raw += source[at : m.start()].encode("utf-8") + bytes([int(m.group(1), 16)])
        at = m.end()
    raw += source[at:].encode("utf-8")
    return Path(os.fsdecode(bytes(raw)))


def is_file_source(source: str, record: dict | None = None) -> bool:
    """Whether a stored source names a file (indexed from disk) rather than a document given in code
    (``Index.add_documents``: any id, such as ``"doc-1"`` or a BEIR id). Files are stored by absolute path
    with their size and modification time."""
    record = record or {}
    return os.path.isabs(source) and record.get("size") is not None and record.get("mtime") is not None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_file(full: Path, root: Path | None, follow_symlinks: bool) -> Problem | None:
    """Why ``full`` must not be read, or None. Reading a FIFO blocks forever and a symlink may lead out
    of the folder the user named (``docs/passwd.txt -> /etc/passwd``), so both are refused."""
    if full.is_symlink() and root is not None and not follow_symlinks:
        target = Path(os.path.realpath(full))
        if not _inside(target, root):
            return Problem(display_path(full), f"symbolic link to {display_path(target)}, outside {display_path(root)}: "
                           "not followed (index the target itself, or pass --follow-symlinks)")
    try:
        mode = full.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            reason = "symbolic link loop (links that lead to each other)"
        else:
            reason = "broken symbolic link" if full.is_symlink() else f"cannot read: {exc.strerror or exc}"
        return Problem(display_path(full), reason)
    if not stat.S_ISREG(mode):
        return Problem(display_path(full), "not a regular file (a FIFO, socket or device): skipped, reading it could block forever")
    return None


def as_list(value, name: str, what: str = "a path") -> list:
    """``value`` as a list of paths (or globs): one string or path is one item, not its characters (a
    ``remove("docs/a.md")`` that iterated the string would remove everything under "/"). Anything else that
    is not a list of strings or paths is refused, naming the parameter."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    try:
        items = list(value)
    except TypeError:
        raise ConfigError(f"{name} must be {what} or a list of them, got {type(value).__name__}") from None
    wrong = [x for x in items if not isinstance(x, (str, os.PathLike))]
    if wrong:
        raise ConfigError(f"{name} must be {what} or a list of them; {wrong[0]!r} is a {type(wrong[0]).__name__}")
    return items


def discover(
    paths: list[str | Path],
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    *,
    follow_symlinks: bool = False,
) -> tuple[list[Path], list[Problem]]:
    """Expand files and directories into the supported files to parse, sorted and de-duplicated.

    ``include``/``exclude`` are globs matched against the path relative to the directory walked (and
    the file name); ``exclude`` also matches any single directory name, so ``.git`` or ``_drafts``
    prunes a whole subtree. A file named explicitly is never excluded, only checked for its type.
    Inside a directory, symbolic links are followed only when they lead to somewhere inside it (or
    with ``follow_symlinks``); linked sub-directories are not descended into.
    """
    paths = as_list(paths, "paths")
    include = as_list(include, "include", "a glob")
    exclude = as_list(exclude, "exclude", "a glob")
    found: dict[Path, None] = {}
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            problems.append(Problem(display_path(raw), "no such file or directory"))
            continue
        if not path.is_dir():
            problem = _check_file(path, None, True)
            if problem:
                problems.append(problem)
            elif file_type(path) is None:
                problems.append(Problem(display_path(path), _unsupported(path)))
            else:
                found[path.resolve()] = None
            continue
        root = path.resolve()
        seen = {root}  # folders walked, by real path: a linked folder is walked once, a link loop never
        for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
            rel_dir = Path(dirpath).relative_to(root)
            dirnames[:] = _walked_dirs(Path(dirpath), dirnames, exclude, follow_symlinks, seen, problems)
            for name in sorted(filenames):
                rel = (rel_dir / name).as_posix()
                if _excluded((name,), exclude) or not _included(rel, name, include):
                    continue
                full = Path(dirpath) / name
                # A link is checked first: a broken one or a loop is named as such, whatever its name's type.
                problem = _check_file(full, root, follow_symlinks) if full.is_symlink() else None
                if problem:
                    problems.append(problem)
                    continue
                if file_type(full) is None:
                    # Not an error in a walk (folders hold images, scripts...), but still named in the report.
                    problems.append(Problem(display_path(full), _unsupported(full), level="skipped"))
                    continue
                problem = _check_file(full, root, follow_symlinks)
                if problem:
                    problems.append(problem)
                    continue
                found[full] = None
    return sorted(found), problems


def _walked_dirs(parent: Path, names: list[str], exclude: list[str], follow_symlinks: bool, seen: set[Path],
                 problems: list[Problem]) -> list[str]:
    """The sub-folders of ``parent`` to walk into, sorted. A symbolic link to a folder is named in the
    report, not passed over in silence: followed with ``follow_symlinks`` (once, however many links lead to
    it; a link back into a folder already walked is a loop), else skipped."""
    kept = []
    for name in sorted(names):
        if _excluded((name,), exclude):
            continue
        folder = parent / name
        if folder.is_symlink():
            if not follow_symlinks:
                problems.append(Problem(display_path(folder), "a symbolic link to a folder: not followed "
                                        "(--follow-symlinks follows it)", level="skipped"))
                continue
            real = folder.resolve()
            if real in seen or real in folder.parent.resolve().parents:
                problems.append(Problem(display_path(folder), "a symbolic link to a folder already walked "
                                        "(a second link to it, or a loop): skipped", level="skipped"))
                continue
            seen.add(real)
        kept.append(name)
    return kept


def _unsupported(path: Path) -> str:
    ext = path.suffix or "(no extension)"
    known = ", ".join(sorted(SUPPORTED_TYPES))
    return f"unsupported file type {ext}; supported: {known}"


# ---------------------------------------------------------------------------------------------
# reading bytes


def _looks_binary(sample: bytes) -> bool:
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 8, 27)) + sample.count(0x7F)
    return control / len(sample) > 0.05


def decode_text(path: Path, data: bytes) -> tuple[str, str | None]:
    """Bytes -> text. Returns ``(text, warning)``; the warning says which encoding was guessed."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16"), "decoded as UTF-16 (byte-order mark)"
    if _looks_binary(data[:65536]):
        raise IngestError(str(path), "looks like binary data, not text (wrong extension?); skipped")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 1 << 20]).best()
    encoding = best.encoding if best is not None else "cp1252"
    if encoding != "cp1252" and _reads_as_cp1252(data, best.chaos if best is not None else 1.0):
        encoding = "cp1252"
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        text, encoding = data.decode("latin-1"), "latin-1"
    return text, f"not valid UTF-8; decoded as {encoding}"


def _reads_as_cp1252(data: bytes, best_chaos: float) -> bool:
    """Prefer Windows-1252 (a superset of Latin-1's letters) when it reads the bytes as cleanly as the
    detector's pick. On short Western text the detector cannot tell look-alike code pages apart and
    picked cp775/cp1250 for Latin-1 "Café naïve" ("Cafķ na’ve"); Cyrillic, Greek or Polish bytes read as
    cp1252 score as garbled (mess ratio 1.06-1.21 against 0.0), so they keep the detector's pick."""
    from charset_normalizer.md import mess_ratio

    try:
        text = data[: 1 << 20].decode("cp1252")
    except UnicodeDecodeError:
        return False
    return mess_ratio(text, 1.0) <= best_chaos + 1e-3


# ---------------------------------------------------------------------------------------------
# parsing


def parse_file(path: Path, config: IngestConfig | None = None) -> tuple[Document, list[Problem]]:
    """Parse one file into a :class:`Document`; raises :class:`IngestError` naming the file."""
    config = config or IngestConfig()
    path = Path(path)
    kind = file_type(path)
    if kind is None:
        raise IngestError(str(path), _unsupported(path))
    stat, data = _read_within_limits(path, config)
    warnings: list[Problem] = []
    elements = _elements(path, kind, data, config, warnings)
    if not any(e.text.strip() for e in elements):
        if kind == "pdf":
            _check_pdf_structure(path)
        hint = " (a scanned PDF? OCR is not enabled)" if kind == "pdf" else ""
        raise IngestError(str(path), f"no text could be extracted{hint}")
    doc = Document(
        source=str(path.resolve()),
        type=kind,
        elements=elements,
        sha256=hashlib.sha256(data).hexdigest(),
        metadata={"size": stat.st_size, "mtime": stat.st_mtime},
    )
    return doc, warnings


def _read_within_limits(path: Path, config: IngestConfig) -> tuple[os.stat_result, bytes]:
    """The file's stat and bytes, after refusing an unreadable, empty or over-limit file."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise IngestError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    size = stat.st_size
    if size == 0:
        raise IngestError(str(path), "empty file (0 bytes)")
    if size > config.max_file_mb * 1e6:
        raise IngestError(
            str(path),
            f"file is {size / 1e6:.1f} MB, over the {config.max_file_mb:g} MB limit "
            "(raise it with --max-file-mb or IngestConfig.max_file_mb to index it)",
        )
    try:
        return stat, path.read_bytes()
    except OSError as exc:
        raise IngestError(str(path), f"cannot read: {exc.strerror or exc}") from exc


def _elements(path: Path, kind: str, data: bytes, config: IngestConfig, warnings: list[Problem]) -> list:
    """The file's elements: text formats decoded here (a large .txt split into paragraphs without
    unstructured), binary formats checked (magic bytes, PDF encryption) before unstructured reads them."""
    if kind not in TEXT_TYPES:
        _check_magic(path, kind, data)
        if kind == "pdf":
            _check_pdf_encryption(path)
        return _partition(path, kind)
    text, warning = decode_text(path, data)
    if warning:
        warnings.append(Problem(str(path), warning, level="warning"))
    if not text.strip():
        raise IngestError(str(path), "no text in file (only whitespace)")
    if kind == "txt" and len(data) > config.fast_text_mb * 1e6:
        warnings.append(
            Problem(
                str(path),
                f"large text file ({len(data) / 1e6:.1f} MB): split into paragraphs without "
                "unstructured's element classification",
                level="warning",
            )
        )
        return paragraphs(text)
    if kind == "csv":
        return csv_rows(path, text)
    elements = _partition(path, kind, text=text)
    if kind == "html" and not any(e.text.strip() for e in elements):
        from .html_text import html_fallback

        elements = html_fallback(path, text, warnings)
    return elements


# When a file type's reader last changed what it makes of a file (seconds since the epoch). A file indexed
# before that is read again on the next add even though its bytes did not change, so an existing index
# does not keep what the old reader made. csv: one record per row (2026-12-01).
READER_CHANGED = {"csv": 1796158800.0}


def read_again(stored: dict) -> bool:
    """Whether a stored file record was made by an older reader of its type (see READER_CHANGED)."""
    changed = READER_CHANGED.get(stored.get("type") or "")
    return changed is not None and float(stored.get("added_at") or 0.0) < changed


_CSV_DELIMITERS = ",;\t|"


def csv_rows(path: Path, text: str) -> list[Element]:
    """A CSV file as one element per data row: ``"header: value; header: value"`` (empty cells left out).

    A row is a record: its values mean something only beside their column names and each other. unstructured
    reads a CSV as one table whose cells are flattened into a single run of words, so a chunk boundary could
    fall mid-record and an extracted answer ran one row's cells into the next ("...pptx HNSW RAG Hierarchical
    navigable small world ..."). One line per record, named cells (the form of LangChain's CSVLoader, on one
    line so the sentence splitter keeps a short record whole and starts the next record afresh). The first
    row is the header, as in every CSV reader; the delimiter is the one of , ; tab | that the header line
    holds most of (comma when none).
    """
    import csv
    import io

    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(_CSV_DELIMITERS, key=lambda d: (first.count(d), d == ","))
    # The text with its line ends: a quoted cell may span lines.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    elements: list[Element] = []
    try:
        for row in reader:
            cells = [" ".join(cell.split()) for cell in row]
            if not any(cells):
                continue
            if header is None:
                header = [c or f"column {i + 1}" for i, c in enumerate(cells)]
                continue
            names = header + [f"column {i + 1}" for i in range(len(header), len(cells))]
            fields = [f"{name}: {value}" for name, value in zip(names, cells) if value]
            # Fields end at "; ", the record at a full stop (a cell's own final stop is dropped for it), so
            # the next record starts a new sentence instead of running on from this one's last cell.
            record = "; ".join(f.rstrip(".") for f in fields)
            elements.append(Element(text=record + ("" if record.endswith(("!", "?")) else "."), type="TableRow",
                                    metadata={"row": reader.line_num}))
    except csv.Error as exc:
        raise IngestError(str(path), f"malformed CSV at line {reader.line_num}: {exc}") from exc
    if header is not None and not elements:
        raise IngestError(str(path), "CSV holds a header row and no data rows: nothing to index")
    return elements


def _check_magic(path: Path, kind: str, data: bytes) -> None:
    if kind == "pdf" and b"%PDF-" not in data[:1024]:
        raise IngestError(str(path), "not a PDF file (no %PDF- header); corrupt or misnamed")
    if kind in ("docx", "pptx") and not data.startswith(b"PK"):
        raise IngestError(str(path), f"not a .{kind} file (not a zip container); corrupt or misnamed")


def _check_pdf_encryption(path: Path) -> None:
    """An encrypted PDF is not corrupt: say so (pdfminer only reports "invalid password")."""
    import pikepdf

    try:
        pikepdf.open(path).close()
    except pikepdf.PasswordError:
        raise IngestError(
            str(path), "encrypted PDF (password-protected): decrypt it first, e.g. "
            "`qpdf --decrypt --password=PASSWORD in.pdf out.pdf`, and index the decrypted copy"
        ) from None
    except Exception:  # damage is reported by the parser, with its own detail
        pass


def _check_pdf_structure(path: Path) -> None:
    """unstructured returns no elements for a broken PDF; tell "corrupt" apart from "no text layer"."""
    import pikepdf

    try:
        with pikepdf.open(path) as pdf:
            len(pdf.pages)
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise IngestError(str(path), f"corrupt or unreadable PDF: {detail}") from exc


def paragraphs(text: str) -> list[Element]:
    """Blank-line separated paragraphs as elements (no classification)."""
    return [Element(text=p.strip()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _partition(path: Path, kind: str, text: str | None = None) -> list[Element]:
    prepare_unstructured()
    try:
        raw = _call_unstructured(path, kind, text)
    except IngestError:
        raise
    except Exception as exc:  # unstructured raises many types for damaged files
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        what = {"pdf": "corrupt or unreadable PDF", "docx": "corrupt or unreadable DOCX"}.get(kind, "could not parse")
        raise IngestError(str(path), f"{what}: {detail}") from exc
    return _to_elements(raw)


def _call_unstructured(path: Path, kind: str, text: str | None):
    if kind == "pdf":
        from unstructured.partition.pdf import partition_pdf

        _quiet_pdf_loggers()

        # "fast" = pdfminer text extraction, no layout model, no OCR: fully local.
        return partition_pdf(filename=str(path), strategy="fast", languages=["eng"])
    if kind == "docx":
        from unstructured.partition.docx import partition_docx

        return partition_docx(filename=str(path))
    if kind == "pptx":
        from unstructured.partition.pptx import partition_pptx

        return partition_pptx(filename=str(path))
    if kind == "eml":
        from unstructured.partition.email import partition_email

        return partition_email(filename=str(path))
    if kind == "html":
        from unstructured.partition.html import partition_html

        return partition_html(text=text)
    if kind == "md":
        from unstructured.partition.md import partition_md

        return partition_md(text=commonmark_headings(text or ""))
    if kind == "csv":
        from unstructured.partition.csv import partition_csv

        return partition_csv(filename=str(path), languages=["eng"])
    from unstructured.partition.text import partition_text

    return partition_text(text=text, languages=["eng"])


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Lines python-markdown reads as headings but CommonMark does not: 7+ '#'s, or '#'s not followed by a space
# ("#hashtag", "##2"). A separator line of '#######' became a section title that then headed every chunk
# after it.
_NOT_ATX = re.compile(r"^( {0,3})(?=#{7,}|#{1,6}[^\s#])")


def commonmark_headings(text: str) -> str:
    """Escape the '#' of lines that CommonMark does not read as headings (outside code fences)."""
    lines = text.split("\n")
    fence: str | None = None
    for i, line in enumerate(lines):
        opening = _FENCE.match(line)
        if opening:
            mark = opening.group(1)
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence) and not line.strip().strip(mark[0]):
                fence = None
            continue
        if fence is None:
            lines[i] = _NOT_ATX.sub(r"\1\\", line, count=1)
    return "\n".join(lines)


@lru_cache(maxsize=1)
def _quiet_pdf_loggers() -> None:
    # pypdf logs repairs ("EOF marker not found") with no handler configured, so Python's last-resort
    # handler printed them as stray stderr lines; the outcome reaches the user as this file's Problem.
    for name in ("pypdf", "pdfminer"):
        logging.getLogger(name).addHandler(logging.NullHandler())


def _to_elements(raw) -> list[Element]:
    """unstructured elements -> ours, tracking the enclosing section title."""
    elements: list[Element] = []
    section: str | None = None
    for el in raw:
        category = getattr(el, "category", type(el).__name__)
        text = (getattr(el, "text", "") or "").strip()
        if category in _SKIP_CATEGORIES or not text:
            continue
        meta = getattr(el, "metadata", None)
        page = getattr(meta, "page_number", None)
        if category == "Title":
            section = text[:200]
        elements.append(
            Element(
                text=text,
                type=category,
                page=page,
                section=section,
                metadata={"depth": getattr(meta, "category_depth", None)},
            )
        )
    return elements
