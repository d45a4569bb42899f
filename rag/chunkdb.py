"""Chunk texts and metadata in SQLite (one file per index generation; no pickle anywhere).

Tables:
    chunks(id INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE, source, page, section, text, hash, file_type, metadata)
    files(source TEXT PRIMARY KEY, sha256, size, mtime, type, n_chunks, added_at)

``id`` is the integer the vector and BM25 indexes use; ``chunk_id`` the stable string id users see.

A read-only ChunkDB may be shared by threads: every statement runs under one lock and fetches its rows
before releasing it, so no cursor outlives the call, and :meth:`close` waits for the statement running.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragtune.errors import IndexFormatError

from .types import Chunk

COLUMN_KEYS = ("file_type", "page", "section")  # filter keys stored as columns; "source" is matched as a glob

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    page INTEGER,
    section TEXT,
    text TEXT NOT NULL,
    hash TEXT NOT NULL,
    file_type TEXT,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source);
CREATE TABLE IF NOT EXISTS files (
    source TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER,
    mtime REAL,
    type TEXT,
    n_chunks INTEGER NOT NULL,
    added_at REAL NOT NULL
);
"""


_FILE_KEYS = ("sha256", "size", "mtime", "type", "n_chunks", "added_at")  # a files record, in column order
_CHUNK_COLUMNS = "id, chunk_id, source, page, section, text, hash, file_type, metadata"  # what insert() writes
# What to do when the chunk table itself is gone or unreadable: repair rebuilds everything else from it.
REBUILD = "rebuild the index from the documents with `ragtune index add DOCS --index NEW_DIR`"


@dataclass
class Damage:
    """What :meth:`ChunkDB.audit` found: each source whose stored rows cannot be trusted, and why.

    Sources are keyed by their raw stored bytes (None for a row without one): the damage may have left a
    source that does not even decode, and the rows must still be matched to drop them."""

    reasons: dict[bytes | None, str] = field(default_factory=dict)
    unlisted: set[bytes | None] = field(default_factory=set)  # those without a files record (a damaged name)

    def __bool__(self) -> bool:
        return bool(self.reasons)

    def describe(self) -> list[tuple[str, str, bool]]:
        """(source as text, what is wrong with it, whether a files record names it), sorted by source."""
        return sorted((_readable(s), why, s not in self.unlisted) for s, why in self.reasons.items())

    @property
    def sources(self) -> list[str]:
        return [name for name, _, _ in self.describe()]


class ChunkDB:
    def __init__(self, path: Path, readonly: bool = False):
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        if readonly:
            if not Path(path).is_file():
                raise IndexFormatError(f"{path} is missing: the index generation is damaged; {REBUILD}")
            from urllib.parse import quote

            uri = f"file:{quote(str(path))}?mode=ro&immutable=1"
            try:
                self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                self.conn.execute("SELECT id, chunk_id, source, text FROM chunks LIMIT 1").fetchall()
                self.conn.execute("SELECT source, sha256 FROM files LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                raise IndexFormatError(
                    f"{path} is not a readable chunk database ({exc}): the index is damaged; {REBUILD}"
                ) from exc
        else:
            self.conn = sqlite3.connect(str(path), check_same_thread=False)
            self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.conn.close()

    def _rows(self, sql: str, params=()) -> list[tuple]:
        with self._lock:
            if self._closed:
                raise IndexFormatError(f"{self.path} was closed (a reader used a retired index generation)")
            return self.conn.execute(sql, params).fetchall()

    # -- reads ----------------------------------------------------------------------------------
    def count(self) -> int:
        return self._rows("SELECT COUNT(*) FROM chunks")[0][0]

    def _pages(self, select: str, page: int, id_column: str = "id") -> Iterator[list[tuple]]:
        """The rows of ``select`` (first column: the chunk id) one page at a time, in id order. Paged by id,
        so no cursor stays open between pages (another thread may close a retired table)."""
        last = -1
        while True:
            rows = self._rows(f"{select} WHERE {id_column} > ? ORDER BY {id_column} LIMIT ?", (last, page))
            if rows:
                yield rows
            if len(rows) < page:
                return
            last = rows[-1][0]

    def ids_array(self, page: int = 100_000) -> np.ndarray:
        """Every chunk id, ascending, as int64: 8 bytes a chunk where a list of ints takes ~36."""
        out = [np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
               for rows in self._pages("SELECT id FROM chunks", page)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def existing(self, ids: list[int]) -> list[int]:
        """Those of ``ids`` that this table holds."""
        out: list[int] = []
        for start in range(0, len(ids), 900):
            batch = [int(i) for i in ids[start : start + 900]]
            out += [r[0] for r in self._rows(f"SELECT id FROM chunks WHERE id IN ({','.join('?' * len(batch))})", batch)]
        return out

    def files(self) -> dict[str, dict]:
        rows = self._rows(f"SELECT source, {', '.join(_FILE_KEYS)} FROM files")
        return {r[0]: dict(zip(_FILE_KEYS, r[1:])) for r in rows}

    def get(self, ids: Iterable[int]) -> dict[int, Chunk]:
        ids = [int(i) for i in ids]
        out: dict[int, Chunk] = {}
        for start in range(0, len(ids), 900):  # SQLite's parameter limit
            batch = ids[start : start + 900]
            marks = ",".join("?" * len(batch))
            for row in self._rows(
                f"SELECT id, chunk_id, source, page, section, text, hash, metadata FROM chunks WHERE id IN ({marks})",
                batch,
            ):
                out[row[0]] = Chunk(
                    id=row[1], text=row[5], source=row[2], page=row[3], section=row[4], hash=row[6],
                    metadata=json.loads(row[7]),
                )
        return out

    def sources(self, ids: Iterable[int]) -> dict[int, str]:
        """id -> source file, without reading texts or metadata (grouping hits by file needs no more)."""
        ids = [int(i) for i in ids]
        out: dict[int, str] = {}
        for start in range(0, len(ids), 900):
            batch = ids[start : start + 900]
            out.update(self._rows(f"SELECT id, source FROM chunks WHERE id IN ({','.join('?' * len(batch))})", batch))
        return out

    def file(self, source: str) -> dict | None:
        """The ``files`` record of one source (None when it is not indexed): a lookup, not the whole table."""
        rows = self._rows(f"SELECT {', '.join(_FILE_KEYS)} FROM files WHERE source = ?", (source,))
        return dict(zip(_FILE_KEYS, rows[0])) if rows else None

    def iter_texts(self, page: int = 1000) -> Iterator[tuple[int, str]]:
        """(id, text) of every chunk, paged by id: what BM25 is built from, one page in memory at a time."""
        for rows in self._pages("SELECT id, text FROM chunks", page):
            yield from rows

    def iter_store_rows(self, page: int = 1000) -> Iterator[tuple[int, str, dict]]:
        """(id, text, store metadata) of every chunk, paged by id: what a vector store is rebuilt from.
        The metadata is what a server-side store filters on (source, file_type, page, section); a chunk
        without its own file type takes its file's."""
        select = ("SELECT c.id, c.text, c.source, c.page, c.section, COALESCE(c.file_type, f.type) FROM chunks c "
                  "LEFT JOIN files f ON f.source = c.source")
        for rows in self._pages(select, page, id_column="c.id"):
            for i, text, source, pg, section, file_type in rows:
                yield i, text, {"source": source, "file_type": file_type, "page": pg, "section": section}

    def ids_for_sources(self, sources: Iterable[str]) -> list[int]:
        out: list[int] = []
        sources = list(sources)
        for start in range(0, len(sources), 900):
            batch = sources[start : start + 900]
            marks = ",".join("?" * len(batch))
            out += [r[0] for r in self._rows(f"SELECT id FROM chunks WHERE source IN ({marks})", batch)]
        return out

    def iter_chunks(self, page: int = 1000) -> Iterator[Chunk]:
        for rows in self._pages("SELECT id, chunk_id, source, page, section, text, hash, metadata FROM chunks", page):
            for row in rows:
                yield Chunk(id=row[1], source=row[2], page=row[3], section=row[4], text=row[5], hash=row[6],
                            metadata=json.loads(row[7]))

    def filter_ids(self, filters: dict) -> list[int]:
        """Ids of the chunks matching every filter.

        Keys: ``source`` (glob on the source path; a pattern without ``/`` also matches the file name),
        ``file_type`` (one type or a list), ``page``, ``section``, and any other key compared with the
        chunk's metadata value. A list value means "any of".
        """
        clauses, params = [], []
        for key, value in filters.items():
            values = value if isinstance(value, (list, tuple, set)) else [value]
            if key == "source":
                continue  # globs are matched in Python below (fnmatch semantics, not SQL GLOB)
            if key in COLUMN_KEYS:
                column = key
            else:
                column = f"json_extract(metadata, '$.{_json_key(key)}')"
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
            params += list(values)
        sql = "SELECT id, source FROM chunks" + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        rows = self._rows(sql, params)
        if "source" in filters:
            patterns = filters["source"] if isinstance(filters["source"], (list, tuple)) else [filters["source"]]
            rows = [r for r in rows if any(_source_match(r[1], p) for p in patterns)]
        return [r[0] for r in rows]

    def audit(self, page: int = 1000) -> Damage:
        """Check every row against what was stored with it: each chunk's text against its ``hash`` and its
        ``chunk_id`` (which hashes its source and text), its metadata is JSON, and each file's chunk count
        against its ``files`` record. A manifest checksum only says *that* the table changed; this says
        which files' rows can no longer be trusted. :class:`IndexFormatError` when the table cannot be read.

        Texts, sources and hashes are read as raw bytes: a damaged text may not decode as UTF-8, and
        reading it as a string would fail the whole check instead of naming the file it belongs to."""
        select = ("SELECT id, CAST(source AS BLOB), CAST(chunk_id AS BLOB), CAST(text AS BLOB), CAST(hash AS BLOB), "
                  "json_valid(metadata) FROM chunks")
        found: dict[bytes | None, int] = {}
        bad: dict[bytes | None, int] = {}
        try:
            check = [r[0] for r in self._rows("PRAGMA quick_check")]
            if check != ["ok"]:
                raise IndexFormatError(f"{self.path} is damaged beyond its rows ({'; '.join(map(str, check[:3]))}): "
                                       f"the chunk texts cannot be trusted; {REBUILD}")
            for rows in self._pages(select, page):
                for _, source, cid, text, digest, metadata_ok in rows:
                    found[source] = found.get(source, 0) + 1
                    if not (metadata_ok and _intact(source, cid, text, digest)):
                        bad[source] = bad.get(source, 0) + 1
            listed = dict(self._rows("SELECT CAST(source AS BLOB), n_chunks FROM files"))
        except sqlite3.Error as exc:
            raise IndexFormatError(f"{self.path} cannot be read ({exc}): the chunk table is damaged; "
                                   f"{REBUILD}") from exc
        damage = Damage(unlisted=found.keys() - listed.keys())
        for source in sorted(found.keys() | listed.keys(), key=lambda s: s or b""):
            have, want = found.get(source, 0), listed.get(source)
            if bad.get(source):
                damage.reasons[source] = f"{bad[source]} of its {have} stored chunk(s) no longer match their hash"
            elif want is None:
                damage.reasons[source] = f"{have} stored chunks but no files record"
            elif have != want:
                damage.reasons[source] = f"its files record lists {want} chunks, the table holds {have}"
        return damage

    def metadata_keys(self) -> set[str]:
        """Every key :meth:`filter_ids` can match on: the columns and the keys of any chunk's metadata."""
        rows = self._rows("SELECT DISTINCT je.key FROM chunks, json_each(chunks.metadata) AS je")
        return {"source", *COLUMN_KEYS} | {r[0] for r in rows}

    # -- writes (only ever on a fresh generation's copy) ----------------------------------------
    def delete_sources(self, sources: Iterable[str]) -> list[int]:
        sources = list(sources)
        ids = self.ids_for_sources(sources)
        for start in range(0, len(sources), 900):
            batch = sources[start : start + 900]
            marks = ",".join("?" * len(batch))
            self.conn.execute(f"DELETE FROM chunks WHERE source IN ({marks})", batch)
            self.conn.execute(f"DELETE FROM files WHERE source IN ({marks})", batch)
        return ids

    def insert(self, rows: list[tuple[int, Chunk]]) -> None:
        self.conn.executemany(
            f"INSERT INTO chunks ({_CHUNK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (i, c.id, c.source, c.page, c.section, c.text, c.hash, c.metadata.get("file_type"),
                 json.dumps(c.metadata, sort_keys=True))
                for i, c in rows
            ],
        )

    def upsert_file(self, source: str, sha256: str, size, mtime, type_: str, n_chunks: int) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO files (source, sha256, size, mtime, type, n_chunks, added_at) VALUES (?,?,?,?,?,?,?)",
            (source, sha256, size, mtime, type_, n_chunks, time.time()),
        )

    def commit(self) -> None:
        self.conn.commit()


def copy_without(src: Path, dest: Path, sources: Iterable[bytes | None]) -> int:
    """Write a fresh chunk table at ``dest`` holding every row of ``src`` except the chunks and ``files``
    records of ``sources`` (raw stored bytes, as :class:`Damage` keys them). Returns the chunks left out.

    A fresh file rather than DELETEs in place: deleting a row whose index entry the damage changed fails
    ("database disk image is malformed"), and the copy also rebuilds the table's indexes and keeps no
    freed page that still holds a damaged text."""
    db = ChunkDB(dest)
    try:
        conn = db.conn
        conn.execute("ATTACH DATABASE ? AS old", (str(src),))
        conn.execute("CREATE TEMP TABLE dropped (source BLOB PRIMARY KEY)")
        conn.executemany("INSERT INTO dropped VALUES (?)", [(s,) for s in sources])
        keep = "NOT EXISTS (SELECT 1 FROM dropped d WHERE d.source IS CAST(o.source AS BLOB))"  # IS: a NULL too
        conn.execute(f"INSERT INTO main.chunks ({_CHUNK_COLUMNS}) SELECT {_CHUNK_COLUMNS} FROM old.chunks o "
                     f"WHERE {keep} ORDER BY id")
        files = f"source, {', '.join(_FILE_KEYS)}"
        conn.execute(f"INSERT INTO main.files ({files}) SELECT {files} FROM old.files o WHERE {keep}")
        left_out = conn.execute(
            "SELECT (SELECT COUNT(*) FROM old.chunks) - (SELECT COUNT(*) FROM main.chunks)").fetchone()[0]
        conn.commit()
        conn.execute("DETACH DATABASE old")
    finally:
        db.close()
    return left_out


def _intact(source, chunk_id, text, digest) -> bool:
    """Whether a row's text still hashes to its ``hash`` and its source and text to its ``chunk_id`` (the
    two digests rag/chunk.py computes when the chunk is made)."""
    if not all(isinstance(v, bytes) for v in (source, chunk_id, text, digest)):
        return False  # a NULL where the schema says NOT NULL: the row's header was damaged
    return (hashlib.sha256(text).hexdigest().encode() == digest
            and hashlib.sha256(source + b"\x00" + text).hexdigest()[:20].encode() == chunk_id)


def _readable(source: bytes | None) -> str:
    return "(a chunk without a source)" if source is None else source.decode("utf-8", "replace")


def _json_key(key: str) -> str:
    if not key.replace("_", "").replace("-", "").isalnum():
        from ragtune.errors import ConfigError

        raise ConfigError(f"filter key {key!r}: use letters, digits, '_' or '-' only")
    return key


def _source_match(source: str, pattern: str) -> bool:
    if fnmatch.fnmatch(source, pattern):
        return True
    if "/" not in pattern:
        return fnmatch.fnmatch(Path(source).name, pattern)
    return fnmatch.fnmatch(source, "*/" + pattern.lstrip("/"))
