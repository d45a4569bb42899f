"""Fixtures for tests/tune: tiny in-process models and data (helpers in _tiny.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from _tiny import chat_records, make_tiny_model, write_jsonl


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory) -> Path:
    """Same architecture and tokenizer, other random weights: an adapter of one must not load on the other."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama-other"), seed=1)


@pytest.fixture
def chat_data(tmp_path) -> Path:
    return write_jsonl(tmp_path / "data.jsonl", chat_records())
