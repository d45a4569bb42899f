"""Shared builders for the advisor tests, as fixtures: a tiny hand-checkable matrix and a fake searcher.

(Fixtures rather than an importable helper module: the suite runs with --import-mode=importlib, which
does not put test folders on sys.path.)
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ragtune.advisor.matrix import parse_matrix
from ragtune.rag.types import Chunk, Hit

# Three options, three factors; weights 3, 1, 1 (sum 5). Totals by hand, 100 * sum w*(s-1) / (4*5):
#   x: 3*4 + 1*0 + 1*1 = 13 -> 65.0      y: 3*2 + 1*3 + 1*1 = 10 -> 50.0      z: 0 + 4 + 4 = 8 -> 40.0
TINY: dict[str, Any] = {
    "version": "test-1",
    "weight_range": [0, 10],
    "rules": {"r1": {"text": "Use x when factor a matters.", "source": "Doc"}},
    "options": [
        {"id": "x", "name": "Option X", "rules": ["r1"]},
        {"id": "y", "name": "Option Y"},
        {"id": "z", "name": "Option Z"},
    ],
    "factors": [
        {"id": "a", "name": "Factor A", "definition": "A.", "weight": 3,
         "scores": {"x": {"score": 5, "rationale": "x is great at a", "rules": ["r1"]},
                    "y": {"score": 3, "rationale": "y is fine at a"},
                    "z": {"score": 1, "rationale": "z is bad at a"}}},
        {"id": "b", "name": "Factor B", "definition": "B.", "weight": 1,
         "scores": {"x": {"score": 1, "rationale": "x is bad at b"},
                    "y": {"score": 4, "rationale": "y is good at b"},
                    "z": {"score": 5, "rationale": "z is great at b"}}},
        {"id": "c", "name": "Factor C", "definition": "C.", "weight": 1,
         "scores": {"x": {"score": 2, "rationale": "x is poor at c"},
                    "y": {"score": 2, "rationale": "y is poor at c"},
                    "z": {"score": 5, "rationale": "z is great at c"}}},
    ],
}


def tiny_data() -> dict[str, Any]:
    return copy.deepcopy(TINY)


def tiny_matrix(**overrides: Any):
    data = tiny_data()
    data.update(overrides)
    return parse_matrix(data, origin="tiny.yaml")


def make_hit(text: str, source: str = "corpora/guide.md", section: str | None = "Guide", page: int | None = None,
             chunk_id: str | None = None, score: float = 0.5) -> Hit:
    return Hit(Chunk(chunk_id or f"{source}#{abs(hash(text)) % 10_000}", text, source, page, section), score)


class FakeSearcher:
    """Returns its hits in order for every query and records the queries."""

    def __init__(self, hits: list[Hit]):
        self.hits = hits
        self.queries: list[str] = []

    def search(self, query: str, k: int = 5) -> list[Hit]:
        self.queries.append(query)
        return self.hits[:k]


@pytest.fixture
def tiny():
    """``tiny(**overrides)`` -> the tiny Matrix; ``tiny.data()`` -> its raw data to mutate."""
    tiny_matrix.data = tiny_data
    return tiny_matrix


@pytest.fixture
def fake_searcher():
    """``fake_searcher([hits])`` -> a FakeSearcher; hits from ``fake_searcher.hit(text, ...)``."""
    FakeSearcher.hit = staticmethod(make_hit)
    return FakeSearcher
