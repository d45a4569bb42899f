"""Read the advisor's YAML/JSON files (matrix, questions, answers, scenarios) strictly and explain every
problem in one line that names the file and, where there is one, the key.

Three mistakes used to slip through or crash:

- a file saved as UTF-16 (Windows Notepad's "Unicode") or in a legacy code page raised a traceback; now a
  byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32) selects the encoding and anything else must be UTF-8,
  otherwise the error says where the first bad byte is and how to fix it;
- a key written twice (``citations: yes`` ... ``citations: no``) silently kept the last one; now it is an
  error naming the key and both lines (YAML) or the key (JSON);
- YAML syntax errors already named the line; they still do.

    >>> from pathlib import Path
    >>> p = Path(tmp) / "a.yaml"; _ = p.write_text("citations: yes\\ncitations: no\\n")   # doctest: +SKIP
    >>> read_data_file(p, what="answers file")                                       # doctest: +SKIP
    Traceback (most recent call last):
    ragtune.errors.AdvisorError: .../a.yaml: duplicate key 'citations' (line 2; first at line 1): keep one
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from ragtune.errors import AdvisorError
from ragtune.textfile import decode_utf8

# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, path: Path) -> str:
    """Bytes -> text: a byte-order mark picks the encoding, otherwise the text must be UTF-8."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as e:
                raise AdvisorError(f"{path}: starts with a {encoding.upper()} byte-order mark but is not valid "
                                   f"{encoding.upper()} (byte {e.start}): save it as UTF-8") from None
    if b"\x00" in data:  # ASCII text saved as UTF-16/32 without a mark is "valid UTF-8" full of NULs
        raise AdvisorError(f"{path}: contains NUL bytes, probably UTF-16 without a byte-order mark: save the file "
                           "as UTF-8") from None
    return decode_utf8(data, path, AdvisorError)


def _json_pairs(path: Path):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise AdvisorError(f"{path}: duplicate key {key!r}: keep one")
            seen[key] = value
        return seen

    return hook


def _strict_yaml_loader():
    """A safe YAML loader class that refuses duplicate mapping keys (PyYAML keeps the last silently)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser is ~10x faster where built

    class StrictLoader(base):  # type: ignore[misc, valid-type]
        pass

    def construct_mapping(loader, node, deep=False):
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base constructor reports unhashable keys itself
            if key in first_line:
                raise _DuplicateKey(key, key_node.start_mark.line + 1, first_line[key])
            first_line[key] = key_node.start_mark.line + 1
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    def construct_int(loader, node):
        # YAML 1.1 reads a leading zero as octal ("labelled_examples: 050" was 40, under the 50-example floor)
        # and "1:20" as base 60 (80); nobody writing a count means either. Digits with leading zeros are the
        # decimal they look like (as in YAML 1.2), and a base-60 form stays text, so the field that expects a
        # number refuses it by name. The explicit 0x/0b prefixes and 1_000 keep their YAML meaning.
        text = loader.construct_scalar(node)
        digits = text.replace("_", "")
        unsigned = digits.lstrip("+-")
        if ":" in unsigned:
            return text
        if len(unsigned) > 1 and unsigned.startswith("0") and unsigned.isdigit():
            return int(digits, 10)
        return yaml.SafeLoader.construct_yaml_int(loader, node)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    StrictLoader.add_constructor("tag:yaml.org,2002:int", construct_int)
    return StrictLoader


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int):
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


def parse_text(text: str, path: Path) -> Any:
    """Parse YAML (any extension but .json) or JSON text, refusing duplicate keys."""
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_json_pairs(path))
        except json.JSONDecodeError as e:
            raise AdvisorError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    import yaml  # YAML is a superset of JSON, so any other extension is parsed as YAML

    try:
        return yaml.load(text, Loader=_strict_yaml_loader())  # noqa: S506 - a safe loader
    except _DuplicateKey as e:
        raise AdvisorError(f"{path}: duplicate key {e.key!r} (line {e.line}; first at line {e.first}): "
                           "keep one") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())  # one line for the CLI
        raise AdvisorError(f"{path}: invalid YAML{where}: {problem}") from None


_PARSED: dict[tuple[str, str, int, int], Any] = {}


def cached_parse(path: Path, what: str, parse: Any) -> Any:
    """``parse(read_data_file(path), origin)``, memoised on the file's identity (path, size, mtime): the
    what-if analysis and a UI re-scoring on every slider move would otherwise re-read the YAML each time
    (about 50 ms of a 100 ms ``advise()``). The parsed objects are frozen dataclasses."""
    try:
        st = path.stat()
    except OSError:
        return parse(read_data_file(path, what=what), str(path))  # let the reader report the problem
    key = (str(path.resolve()), what, st.st_size, st.st_mtime_ns)
    if key not in _PARSED:
        _PARSED[key] = parse(read_data_file(path, what=what), str(path))
    return _PARSED[key]


def read_data_file(path: Path, *, what: str) -> Any:
    """Read a YAML or JSON file; I/O, encoding, duplicate-key and syntax errors become one AdvisorError line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AdvisorError(f"{what} {path} not found: check the path") from None
    except IsADirectoryError:
        raise AdvisorError(f"{what} {path} is a folder: pass a .yaml or .json file") from None
    except OSError as e:
        raise AdvisorError(f"cannot read {what} {path}: {e.strerror or e}") from None
    return parse_text(decode_text(data, path), path)
