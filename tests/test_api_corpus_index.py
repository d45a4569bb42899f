"""The shipped corpus's cached index follows ragtune's defaults instead of keeping stale settings."""

from __future__ import annotations

import pytest

from ragtune import api
from ragtune.rag.embed import HashEmbedder
from ragtune.rag.index import Index


@pytest.fixture
def tiny_corpus(tmp_path, monkeypatch):
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    (corpora / "lora.md").write_text("# LoRA\n\nLoRA trains low-rank adapters on a frozen base model.\n")
    (corpora / "README.md").write_text("# About this folder\n\nNot a document of the collection.\n")
    monkeypatch.setenv("RAGTUNE_CORPORA", str(corpora))
    monkeypatch.setenv("RAGTUNE_CACHE", str(tmp_path / "cache"))
    original = Index.open.__func__

    def open_with_hash(cls, path, **kwargs):
        kwargs.setdefault("embedder", HashEmbedder(dim=64))
        return original(cls, path, **kwargs)

    monkeypatch.setattr(api.Index, "open", classmethod(open_with_hash))
    return corpora


def test_corpus_index_is_rebuilt_when_the_defaults_change(tiny_corpus, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    stale = cache / "corpus-index"  # the folder an older ragtune used
    stale.mkdir(parents=True)
    (stale / "CURRENT").write_text("gen-000001\n")

    first = api.corpus_index(progress=False)
    assert first.root.parent == cache and first.root.name == f"corpus-index-{api.corpus_index_fingerprint()}"
    assert [c.source.rsplit("/", 1)[-1] for c in first.chunks()] == ["lora.md"]  # README.md left out
    first.close()
    assert not stale.exists()

    again = api.corpus_index(progress=False)  # same defaults: the same folder, nothing rebuilt
    assert again.root == first.root
    again.close()

    monkeypatch.setattr(api, "corpus_index_fingerprint", lambda: "0123456789ab")
    rebuilt = api.corpus_index(progress=False)
    assert rebuilt.root.name == "corpus-index-0123456789ab"
    assert len(rebuilt) == 1
    assert not first.root.exists()  # the index made with the other settings is gone
    rebuilt.close()


def test_fingerprint_follows_default_settings(monkeypatch):
    from ragtune.rag.config import IndexConfig

    def other_defaults():
        config = IndexConfig()
        config.chunker.overlap_tokens = 7  # another default chunk overlap
        return config

    before = api.corpus_index_fingerprint()
    assert before == api.corpus_index_fingerprint()
    monkeypatch.setattr(api, "IndexConfig", other_defaults)
    assert api.corpus_index_fingerprint() != before


def test_two_checkouts_sharing_a_cache_keep_separate_corpus_indexes(tmp_path, monkeypatch):
    # Two checkouts of ragtune (two corpora folders) and one user cache: before the corpora path was part
    # of the fingerprint, both added their copy of every file to one index and top-5 returned duplicates.
    monkeypatch.setenv("RAGTUNE_CACHE", str(tmp_path / "cache"))
    original = Index.open.__func__
    monkeypatch.setattr(api.Index, "open", classmethod(
        lambda cls, path, **kw: original(cls, path, **{"embedder": HashEmbedder(dim=64), **kw})))
    checkouts = []
    for name in ("checkout-a", "checkout-b"):
        corpora = tmp_path / name / "corpora"
        corpora.mkdir(parents=True)
        (corpora / "lora.md").write_text("# LoRA\n\nLoRA trains low-rank adapters on a frozen base model.\n")
        checkouts.append(corpora)

    roots, sources = [], []
    for corpora in checkouts + checkouts:  # a, b, then a and b again
        monkeypatch.setenv("RAGTUNE_CORPORA", str(corpora))
        index = api.corpus_index(progress=False)
        roots.append(index.root)
        sources.append(sorted(c.source for c in index.chunks()))
        index.close()

    assert roots[0] != roots[1] and roots[0] == roots[2] and roots[1] == roots[3]
    for corpora, found in zip(checkouts + checkouts, sources):
        assert found == [str((corpora / "lora.md").resolve())] or found == [str(corpora / "lora.md")]
    assert roots[0].exists() and roots[1].exists()  # neither checkout removed the other's index
