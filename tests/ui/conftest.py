"""Fixtures for the app's page tests: a tiny hash-embedder index in a temp folder, and AppTest helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_helpers import wait_for_jobs

pytest.importorskip("streamlit", reason="the UI tests need streamlit (make test installs the ui extra)")


@pytest.fixture
def ui_env(tmp_path: Path, docs_dir: Path, monkeypatch):
    """Environment for one app run: an index of ``docs_dir`` (HashEmbedder), upload and adapter folders."""
    import streamlit as st

    from ragtune.rag.embed import HashEmbedder
    from ragtune.rag.index import Index

    index = Index.open(tmp_path / "index", create=True, embedder=HashEmbedder(dim=64))
    index.add([docs_dir])
    index.close()
    monkeypatch.setenv("RAGTUNE_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("RAGTUNE_UPLOADS", str(tmp_path / "uploads"))
    monkeypatch.setenv("RAGTUNE_ADAPTERS", str(tmp_path / "adapters"))
    monkeypatch.setenv("RAGTUNE_UI_GENERATOR", "extractive")
    st.cache_resource.clear()  # a fresh shared index per test
    yield tmp_path
    wait_for_jobs()
    st.cache_resource.clear()
