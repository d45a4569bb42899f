"""Text out of HTML that unstructured's parser gives up on.

unstructured parses HTML with lxml, which stops at a nesting depth of 255 and then returns no text at all:
the issue-14 battery's 3,000 nested divs came back as "no text could be extracted". The standard
library's parser has no such limit; it yields the text without headings or structure, and the caller
reports that as a warning.
"""

from __future__ import annotations

import re
from pathlib import Path

from .ingest import Problem, paragraphs
from .types import Element


class HTMLText:
    """The stdlib HTML parser, which has no nesting limit: paragraphs of text and the deepest nesting."""

    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"}

    def __init__(self, text: str):
        from html.parser import HTMLParser

        self.parts: list[str] = []
        self.depth = self.max_depth = 0
        skip = [0]
        outer = self

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                outer.depth += 1
                outer.max_depth = max(outer.max_depth, outer.depth)
                skip[0] += tag in ("script", "style")
                if tag in outer.BLOCKS:
                    outer.parts.append("\n\n")

            def handle_endtag(self, tag):
                outer.depth = max(0, outer.depth - 1)
                skip[0] -= tag in ("script", "style") and skip[0] > 0

            def handle_data(self, data):
                if not skip[0]:
                    outer.parts.append(data)

        Parser(convert_charrefs=True).feed(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def html_fallback(path: Path, text: str | None, warnings: list[Problem]) -> list[Element]:
    """unstructured's HTML parser (lxml) drops documents nested past its depth limit (255 levels) and
    returns no text; read such a file with the stdlib parser instead, without section structure."""
    parsed = HTMLText(text or "")
    elements = paragraphs(re.sub(r"[ \t]+", " ", parsed.text))
    if elements:
        warnings.append(Problem(
            str(path), f"HTML nested {parsed.max_depth} levels deep, past the HTML parser's limit: "
            "text extracted without headings or structure", level="warning"))
    return elements
