"""Embedder tuning: pair building, a tiny sentence-transformers model trained a few steps, re-embedding."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from ragtune.errors import ConfigError
from ragtune.rag.types import Document, Element
from ragtune.tune.embedder import (
    META_FILE,
    EmbedderTuneConfig,
    build_pairs,
    cloze_pairs,
    read_embedder_meta,
    reembed_index,
    tune_embedder,
)

TOPICS = {
    "wings": "Swept wings delay the shock at high subsonic speed. The sweep angle reduces the normal Mach number. "
             "Thin airfoils also raise the critical Mach number. Wing flutter couples bending and torsion modes.",
    "heat": "Heat transfer in the boundary layer depends on the wall temperature. A hot wall thickens the layer. "
            "Cooling the surface delays transition to turbulence. The Stanton number measures the heat flux.",
    "library": "Libraries index books by subject headings. Catalogue records describe each book and its author. "
               "Citation indexes link papers that cite each other. Readers search the catalogue by keyword.",
    "medicine": "the lens of the eye contains crystallin proteins. cataract forms when the proteins aggregate. "
                "ultraviolet light damages the lens over many years. surgery replaces the clouded lens with plastic.",
    "compilers": "A compiler translates source code into machine code. The parser builds a syntax tree first. "
                 "Register allocation assigns variables to processor registers. Loop unrolling reduces branch cost.",
    "networks": "Packets travel across the network through routers. Each router forwards by the destination address. "
                "Congestion drops packets when queues overflow. The sender halves its window after a loss.",
}


def _docs() -> list[Document]:
    docs = []
    for name, text in TOPICS.items():
        title = f"Notes on {name} for the study"
        docs.append(Document(source=name, type="beir", sha256=name,
                             elements=[Element(title, type="Title"),
                                       Element(text, type="NarrativeText", section=title)]))
    return docs


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised 1-layer BERT sentence-transformer over the toy corpus's words."""
    import re

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny")
    words = sorted({w for t in TOPICS.values() for w in re.findall(r"[a-z]+", t.lower())} |
                   {w for n in TOPICS for w in ("notes", "on", n, "for", "the", "study")})
    hf = root / "hf"
    hf.mkdir()
    (hf / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *words]))
    tokenizer = BertTokenizerFast(vocab_file=str(hf / "vocab.txt"), do_lower_case=True)
    import torch

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    transformer = Transformer(str(hf), max_seq_length=128)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean"), Normalize()], device="cpu")
    out = root / "st"
    model.save(str(out))
    return out


@pytest.fixture
def tiny_index(tmp_path, tiny_model):
    from ragtune.rag.embed import make_embedder
    from ragtune.rag.index import Index

    index = Index.open(tmp_path / "index", create=True, embedder=make_embedder(str(tiny_model)))
    index.add_documents(_docs(), progress=False)
    return index


def test_cloze_pairs_never_put_the_query_in_its_passage():
    text = "Title of it\nFirst sentence is here now. Second sentence follows it. Third one ends the text."
    pairs = cloze_pairs(text, "Title of it", random.Random(0), per_chunk=3, min_words=3)
    kinds = [p.kind for p in pairs]
    assert kinds.count("title") == 1 and kinds.count("cloze") == 3
    for p in pairs:
        assert p.query.lower() not in p.passage.lower()
    title = next(p for p in pairs if p.kind == "title")
    assert title.query == "Title of it" and title.passage.startswith("First sentence")
    cloze = [p for p in pairs if p.kind == "cloze"]
    assert all(p.passage.startswith("Title of it\n") for p in cloze)  # the title stays as context


def test_cloze_pairs_split_lower_case_text_and_skip_single_sentences():
    lower = "the lens of the eye is clear. cataract clouds the lens over years."
    assert len(cloze_pairs(lower, None, random.Random(0), 3, 3)) == 2
    assert cloze_pairs("One sentence only without a title", None, random.Random(0), 3, 3) == []


def test_a_sentence_repeated_in_its_chunk_is_not_a_query():
    text = "The same line here. Other words follow now. The same line here."
    pairs = cloze_pairs(text, None, random.Random(0), per_chunk=3, min_words=3)
    assert all(p.query != "The same line here." for p in pairs)
    assert [p.query for p in pairs] == ["Other words follow now."]


def test_generated_questions_are_used_when_a_generator_is_given():
    class Writer:
        def generate(self, messages, **kwargs):
            passage = messages[0]["content"].split("Passage:\n", 1)[1]
            if "copy" in passage:
                return passage.splitlines()[0]  # a verbatim copy of the passage: dropped
            return "What does the passage say about " + passage.split()[0] + "?\nextra line"

    chunks = [("Wings sweep back at speed.", None, "a"), ("copy this line verbatim please", None, "b")]
    pairs = build_pairs(chunks, generator=Writer())
    assert [(p.query, p.kind, p.source) for p in pairs] == [
        ("What does the passage say about Wings?", "generated", "a")]


def test_tiny_embedder_trains_loss_goes_down_and_the_dir_loads(tiny_index, tmp_path):
    from ragtune.rag.embed import make_embedder

    stages = []
    config = EmbedderTuneConfig(steps=12, batch_size=4, learning_rate=1e-2, warmup_ratio=0.0, heldout=4,
                                max_seq_length=64, min_query_words=3)
    result = tune_embedder(tiny_index, tmp_path / "tuned", config=config,
                           progress=lambda stage, done, total, msg: stages.append(stage))
    assert len(result.losses) == 12
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3])
    assert {"pairs", "train", "save"} <= set(stages)
    meta = read_embedder_meta(result.out)
    assert meta["config"]["steps"] == 12 and meta["data"]["source"] == "inverse-cloze"
    assert meta["base_model"]["path"] == str(tiny_index.embedder.model_path)
    assert len(meta["data"]["sha256"]) == 16 and meta["metrics"]["heldout_pairs"] == 4
    emb = make_embedder(str(result.out))
    vectors = emb.encode(["swept wings", "lens of the eye"])
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert emb.max_tokens == 126  # the model's own window is restored, not the training cut


def test_steps_are_validated_with_a_clear_error(tiny_index, tmp_path):
    with pytest.raises(ConfigError, match="steps"):
        tune_embedder(tiny_index, tmp_path / "x", steps=0)


def test_out_dir_that_is_something_else_is_refused(tiny_index, tmp_path, monkeypatch):
    import ragtune.tune.embedder as embedder_mod

    other = tmp_path / "precious"
    other.mkdir()
    (other / "keep.txt").write_text("data")
    config = EmbedderTuneConfig(steps=1, batch_size=4, heldout=0, min_query_words=3)

    def no_work(*a, **k):
        raise AssertionError("pairs were built (and training would follow) before --out was checked")

    monkeypatch.setattr(embedder_mod, "build_pairs", no_work)
    with pytest.raises(ConfigError, match="not a tuned embedder"):  # refused before minutes of training
        tune_embedder(tiny_index, other, config=config)
    assert (other / "keep.txt").read_text() == "data"
    assert not list(tmp_path.glob(".precious.tmp-*"))


@pytest.fixture
def tuned(tiny_index, tmp_path):
    config = EmbedderTuneConfig(steps=2, batch_size=4, learning_rate=1e-3, heldout=0, min_query_words=3)
    return tune_embedder(tiny_index, tmp_path / "tuned", config=config).out


def test_a_tuned_model_is_never_overwritten(tiny_index, tuned, monkeypatch):
    # Indexes built with it need it as it is: overwritten, they refused to open at all.
    import ragtune.tune.embedder as embedder_mod

    before = read_embedder_meta(tuned)
    monkeypatch.setattr(embedder_mod, "build_pairs", lambda *a, **k: pytest.fail("built pairs before checking --out"))
    with pytest.raises(ConfigError, match="already holds a tuned embedder"):
        tune_embedder(tiny_index, tuned, config=EmbedderTuneConfig(steps=1, batch_size=4, heldout=0))
    assert read_embedder_meta(tuned) == before


def test_reembedding_keeps_chunks_and_bm25_and_searches_with_the_new_model(tiny_index, tuned):
    from ragtune.rag.index import Index

    before = {c.id: c.text for c in tiny_index.chunks()}
    root = tiny_index.root
    index = reembed_index(tiny_index, tuned)
    assert {c.id: c.text for c in index.chunks()} == before
    assert index.embedder.model_id == "tuned"
    reopened = Index.open(root)
    assert reopened.config.embedder.model == str(tuned)
    assert reopened.manifest["embedder"]["fingerprint"] == reopened.embedder.fingerprint
    hit = reopened.search("router forwards packets by destination address", k=1, mode="hybrid")[0]
    assert hit.source == "networks"
    # Every stored vector is the new model's: a chunk's own text finds itself at cosine 1.
    text = before[next(iter(before))]
    top = reopened.search(text, k=1, mode="dense")[0]
    assert top.text == text and top.score == pytest.approx(1.0, abs=1e-4)


def test_a_crash_before_publishing_leaves_the_old_model_in_place(tiny_index, tuned, monkeypatch):
    import os

    from ragtune.rag.index import Index

    root, old_model = tiny_index.root, tiny_index.embedder.model_id
    real_replace = os.replace

    def crash(src, dst):
        if Path(dst).name == "CURRENT":
            raise KeyboardInterrupt("power cut")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        reembed_index(tiny_index, tuned)
    monkeypatch.setattr(os, "replace", real_replace)
    index = Index.open(root)
    assert index.embedder.model_id == old_model
    assert index.search("packets router", k=1)[0].source == "networks"
    again = reembed_index(index, tuned)  # the debris of the crash does not block the next writer
    assert again.embedder.model_id == "tuned"
    assert json.loads((root / (root / "CURRENT").read_text().strip() / "manifest.json").read_text())[
        "embedder"]["model_id"] == "tuned"
    assert (tuned / META_FILE).is_file()


def _cli(argv):
    import argparse

    from ragtune.commands import tune_embedder as command

    parser = argparse.ArgumentParser(prog="ragtune tune")
    command.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_verb_tunes_reembeds_and_prints_json(tiny_index, tmp_path, capsys):
    from ragtune.api import tune_embedder as api_tune_embedder
    from ragtune.rag.index import Index

    assert api_tune_embedder is tune_embedder  # the public API names the same function
    root = tiny_index.root
    tiny_index.close()
    code = _cli(["embedder", "--index", str(root), "--out", str(tmp_path / "m"), "--steps", "2",
                 "--batch-size", "4", "--reembed", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["steps"] == 2 and out["reembedded"] == str(root)
    assert Index.open(root).embedder.model_id == "m"


def test_cli_reports_a_bad_setting_as_a_config_error(tiny_index, tmp_path):
    with pytest.raises(ConfigError, match="steps"):
        _cli(["embedder", "--index", str(tiny_index.root), "--out", str(tmp_path / "m"), "--steps", "-3"])
