"""rag/generators/extractive.py: the no-model generator quotes the sentences that answer the question."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ragtune.rag.generators.base import Generator
from ragtune.rag.generators.extractive import ExtractiveGenerator, split_sentences
from ragtune.rag.prompt import ABSTAIN_TEXT, build_prompt

# The shared fakes live next to this file; pytest runs with --import-mode=importlib, which does not
# put test directories on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
from _answer_fakes import make_hit  # noqa: E402

LORA = (
    "## LoRA\n\nLow-rank adaptation was proposed in 2021. LoRA freezes the pretrained weights and trains two\n"
    "small matrices whose product is added to each adapted layer. The method is popular."
)
QUANT = "Quantization stores weights in fewer bits. QLoRA quantizes the frozen base model to 4 bits."


def _messages(question: str, texts: list[str]) -> list[dict]:
    hits = [make_hit(i, t) for i, t in enumerate(texts, start=1)]
    return build_prompt(question, hits, ExtractiveGenerator()).messages


def test_extractive_satisfies_the_generator_protocol():
    assert isinstance(ExtractiveGenerator(), Generator)


def test_picks_the_answering_sentence_and_cites_its_source():
    gen = ExtractiveGenerator()
    text = gen.generate(_messages("What does LoRA train?", [QUANT, LORA]))
    first = text.split(" [")[0]
    assert first == ("LoRA freezes the pretrained weights and trains two small matrices whose product is added "
                     "to each adapted layer.")
    assert text.startswith(first + " [2]")


def test_second_sentence_is_added_only_when_it_covers_other_question_words():
    gen = ExtractiveGenerator()
    text = gen.generate(_messages("How many bits does QLoRA use, and what does LoRA train?", [QUANT, LORA]))
    assert "4 bits. [1]" in text and "trains two small matrices" in text and "[2]" in text
    assert "popular" not in text


def test_abstains_when_no_sentence_covers_the_question():
    gen = ExtractiveGenerator()
    assert gen.generate(_messages("Who won the 1998 football world cup?", [QUANT, LORA])) == ABSTAIN_TEXT
    assert gen.generate([{"role": "user", "content": "Hi"}]) == ABSTAIN_TEXT


def test_stream_joins_to_generate_and_respects_stop():
    gen = ExtractiveGenerator()
    messages = _messages("What does LoRA train?", [LORA])
    assert "".join(gen.stream(messages)) == gen.generate(messages)
    assert len(list(gen.stream(messages))) > 3  # word by word
    assert gen.generate(messages, stop=["pretrained"]) == "LoRA freezes the "


def test_sentences_rejoin_hard_wrapped_lines_and_skip_headings():
    sentences = split_sentences(LORA + "\n\n- first item\n  continues here.\n- second item, e.g. LoRA works.")
    assert "## LoRA" not in sentences and "LoRA" not in sentences
    assert sentences[1].endswith("trains two small matrices whose product is added to each adapted layer.")
    assert "first item continues here." in sentences
    assert "second item, e.g. LoRA works." in sentences


def test_embedder_scores_blend_with_lexical_scores():
    class TopicEmbedder:
        # Puts the question and the sentence about adapters at the same point; everything else elsewhere.
        def encode(self, texts):
            return np.array([[1.0, 0.0] if ("adapter" in t or "?" in t) else [0.0, 1.0] for t in texts])

    texts = ["The adapter approach fits small budgets well. Several methods train matrices of weights daily."]
    question = "Which method trains matrices?"
    plain = ExtractiveGenerator(max_sentences=1).generate(_messages(question, texts))
    blended = ExtractiveGenerator(max_sentences=1, embedder=TopicEmbedder(), embedding_weight=0.8).generate(
        _messages(question, texts))
    assert plain.startswith("Several methods train matrices")
    assert blended.startswith("The adapter approach")


def test_answer_respects_max_new_tokens():
    gen = ExtractiveGenerator()
    text = gen.generate(_messages("What does LoRA train?", [LORA]), max_new_tokens=5)
    assert len(text.split()) <= 6  # five words and the citation
    assert text.endswith("[1]")
