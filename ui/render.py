"""Small pure helpers that turn answers into display text (no Streamlit; tested directly).

    >>> highlight("LoRA trains adapters.", "what does LoRA train")
    '<mark>LoRA</mark> trains adapters.'
    >>> timings_line({"retrieve": 0.012, "first_token": 0.05, "total": 0.3})
    'retrieve 12 ms · first token 50 ms · total 300 ms'
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

# Words too common to be worth marking in a passage (a short list: marking is a reading aid, not search).
_STOP = frozenset(
    "a an and are as at be but by can do does did for from has have how i if in is it its of on or "
    "the their there these this to was what when where which who why will with you your".split()
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


def query_terms(query: str) -> list[str]:
    """The words of ``query`` worth highlighting: not stop words, at least 3 characters."""
    seen: list[str] = []
    for w in _WORD.findall(query or ""):
        lw = w.lower()
        if len(lw) >= 3 and lw not in _STOP and lw not in seen:
            seen.append(lw)
    return seen


def highlight(text: str, query: str) -> str:
    """``text`` HTML-escaped, with words sharing a query term's stem (its first 4+ letters) in ``<mark>``."""
    escaped = html.escape(text or "")
    stems = sorted({t[: max(4, len(t) - 2)] if len(t) > 5 else t for t in query_terms(query)}, key=len, reverse=True)
    if not stems:
        return escaped
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(s) for s in stems) + r")[A-Za-z0-9-]*", re.IGNORECASE)
    return pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", escaped)


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$])")


def as_typed(text: str) -> str:
    """``text`` for st.markdown, shown as typed: "# Heading **bold**" is not a heading in bold."""
    return _MARKDOWN.sub(r"\\\1", text or "")


def citation_label(citation: Any) -> str:
    """``[2] lora_qlora.pdf · p. 3 · § QLoRA`` for a citation (or a hit's chunk)."""
    parts = [f"[{citation.marker}] {Path(citation.source).name}"]
    if getattr(citation, "page", None):
        parts.append(f"p. {citation.page}")
    if getattr(citation, "section", None):
        parts.append(f"§ {citation.section}")
    return " · ".join(parts)


def timings_line(timings: dict[str, float]) -> str:
    order = ["rewrite", "retrieve", "prompt", "first_token", "generate", "total"]
    keys = [k for k in order if k in timings] + [k for k in timings if k not in order]
    return " · ".join(f"{k.replace('_', ' ')} {timings[k] * 1000:.0f} ms" for k in keys)


def passage_for(answer: Any, citation: Any) -> Any:
    """The retrieved chunk a citation points at (None if the answer does not hold it)."""
    for hit in getattr(answer, "hits", []) or []:
        if str(hit.chunk.id) == str(citation.chunk_id):
            return hit.chunk
    return None
