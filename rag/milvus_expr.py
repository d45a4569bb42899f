"""Milvus filter expressions from ragtune's ``filters`` dict, with string values escaped.

Same keys and meaning as the chunk DB's ``filter_ids`` (a list = "any of"; ``source`` is a glob that also
matches the bare file name), so a filtered search gives the same candidates on FAISS and Milvus.

    >>> filter_expression({"file_type": ["pdf", "md"], "page": 3})
    'file_type in ["pdf", "md"] and page in [3]'
"""

from __future__ import annotations

import numpy as np

from ragtune.errors import ConfigError

#: Filter keys evaluated inside Milvus; others must be turned into ``allowed`` ids by the caller.
PUSHDOWN_KEYS = ("source", "file_type", "page", "section")


def quote(value: str) -> str:
    """A Milvus string literal: backslashes, quotes and line breaks escaped, so a value can never end the
    literal early and inject expression syntax."""
    escaped = (
        str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def glob_to_like(pattern: str) -> str:
    """fnmatch glob -> LIKE pattern that matches a superset (``*`` -> ``%``, ``?`` and ``[...]`` -> ``_``).

    LIKE has no escape for a literal ``%``/``_`` in Milvus Lite, so those stay wildcards; the store checks
    source globs exactly on the returned rows, which removes the extra matches."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        end = pattern.find("]", i + 2) if ch == "[" else -1
        if ch == "[" and end > 0:
            out.append("_")
            i = end + 1
            continue
        out.append({"*": "%", "?": "_"}.get(ch, ch))
        i += 1
    return "".join(out)


def _values(key: str, value) -> list:
    values = list(value) if isinstance(value, (list, tuple, set)) else [value]
    if not values:
        raise ConfigError(f"filter {key!r}: an empty list matches nothing; drop the filter or give values")
    if key == "page":
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"filter 'page': expected page numbers (integers), got {values!r}")
        return [int(v) for v in values]
    if not all(isinstance(v, str) for v in values):
        raise ConfigError(f"filter {key!r}: expected text values, got {values!r}")
    return values


def filter_expression(filters: dict | None, allowed: np.ndarray | None = None) -> str:
    """The Milvus boolean expression for ragtune's ``filters`` (same keys and semantics as the chunk DB:
    a list means "any of"; ``source`` is a glob, matched against the file name too when it has no ``/``)
    AND-ed with ``id in allowed``. Keys outside :data:`PUSHDOWN_KEYS` raise :class:`ConfigError`."""
    clauses = []
    for key, value in (filters or {}).items():
        if key not in PUSHDOWN_KEYS:
            raise ConfigError(
                f"filter {key!r} cannot run inside Milvus (it pushes down {', '.join(PUSHDOWN_KEYS)}); "
                "resolve it to chunk ids and pass them as `allowed`"
            )
        values = _values(key, value)
        if key == "source":
            likes = []
            for pattern in values:
                like = glob_to_like(pattern)
                likes += [f"source like {quote(like)}", f"source like {quote('%/' + like.lstrip('/'))}"]
            clauses.append("(" + " or ".join(likes) + ")")
        elif key == "page":
            clauses.append(f"page in [{', '.join(str(v) for v in values)}]")
        else:
            clauses.append(f"{key} in [{', '.join(quote(v) for v in values)}]")
    if allowed is not None:
        ids = np.asarray(allowed, dtype=np.int64)
        clauses.append(f"id in [{', '.join(str(int(i)) for i in ids)}]" if len(ids) else "id < 0")
    return " and ".join(clauses)
