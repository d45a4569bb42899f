"""Shared fixtures: small document folders and fast indexes built with the deterministic HashEmbedder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO / "corpora"

LORA_MD = """# LoRA

LoRA freezes the pretrained weights and trains two low-rank matrices A and B for each adapted layer.
The rank r is usually between 4 and 64, and alpha scales the update.

## QLoRA

QLoRA quantises the frozen base model to 4-bit NormalFloat and trains LoRA adapters on top of it.
Paged optimisers avoid memory spikes during training.
"""

RAG_TXT = """Retrieval-augmented generation

Retrieval-augmented generation retrieves chunks from an index before the model answers.

BM25 is a lexical ranking function that rewards rare query terms.
"""

QUANT_HTML = """<html><body><h1>Quantisation</h1>
<p>Int8 and int4 quantisation shrink models so they fit on smaller GPUs.</p>
<h2>Distillation</h2><p>Distillation trains a small student model to imitate a larger teacher.</p>
</body></html>"""


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "lora.md").write_text(LORA_MD)
    (d / "rag.txt").write_text(RAG_TXT)
    (d / "quant.html").write_text(QUANT_HTML)
    return d


@pytest.fixture
def hash_index(tmp_path: Path):
    """A factory: ``hash_index()`` -> a new empty Index using the HashEmbedder."""
    from ragtune.rag.embed import HashEmbedder
    from ragtune.rag.index import Index

    def make(name: str = "index", **config_overrides):
        from ragtune.rag.config import IndexConfig

        config = IndexConfig()
        for key, value in config_overrides.items():
            section, attr = key.split("__")
            setattr(getattr(config, section), attr, value)
        return Index.open(tmp_path / name, create=True, config=config, embedder=HashEmbedder(dim=64))

    return make
