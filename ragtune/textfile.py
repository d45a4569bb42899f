"""A user's text file as text: UTF-8, a UTF-8 byte-order mark dropped, or one error that names the file and
the line of the first bad byte. Shared by the advisor's data files, evaluation datasets and training data,
each raising its own error class."""

from __future__ import annotations

from pathlib import Path

from ragtune.errors import RagtuneError


def decode_utf8(data: bytes, path: str | Path, error: type[RagtuneError]) -> str:
    """``data`` decoded as UTF-8 (a leading byte-order mark is not data); else ``error`` naming line and byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}): save the file "
                    "as UTF-8") from None
