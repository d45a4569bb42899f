"""rag/generators/extractive.py: the no-model generator quotes the sentences that answer the question."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.errors import ConfigError
from ragtune.rag.generators.base import Generator
from ragtune.rag.generators.extractive import ExtractiveGenerator, split_sentences
from ragtune.rag.prompt import ABSTAIN_TEXT, build_prompt, parse_prompt

from _answer_fakes import FakeSearcher, make_hit
from ragtune.rag.answer import RAG  # noqa: E402

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


def test_a_second_sentence_from_another_document_must_be_nearly_as_good_as_the_best():
    from ragtune.rag.prompt import ParsedSource

    question = "How many retrieved chunks is a cross-encoder reranker applied to?"
    best = ("Because it reads both texts at once it is accurate but slow, so it is applied only to the top 20 "
            "to 100 retrieved chunks.")
    second = "A cross-encoder reranker was first described for passage ranking in 2019."  # ~0.79 of the best
    gen = ExtractiveGenerator()

    def chosen(labels):
        sources = [ParsedSource(number=i, label=label, text=text)
                   for i, (label, text) in enumerate(zip(labels, [best, second]), start=1)]
        return [s.source for s in gen.select(question, sources)]

    # The same document: the second sentence completes the answer with the words the best one lacks.
    assert chosen(["guide.md, section \"Reranking\"", "guide.md, page 2"]) == [1, 2]
    # Another document: at 0.79 of the best's score it is a weaker second answer, and is left out.
    assert chosen(["guide.md", "history.md"]) == [1]


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


def test_bad_arguments_fail_when_stream_is_called_as_for_every_generator():
    # The checks live in GeneratorBase, shared with the local and API generators: a bad call raises at
    # once, not when a caller first reads the stream (a UI would otherwise fail mid-render).
    gen = ExtractiveGenerator()
    good = _messages("When was LoRA proposed?", [LORA])
    with pytest.raises(ConfigError, match="max_new_tokens"):
        gen.stream(good, max_new_tokens=0)
    with pytest.raises(ConfigError, match="messages"):
        gen.stream("When was LoRA proposed?")
    with pytest.raises(ConfigError, match="stop"):
        gen.generate(good, stop=[""])


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


GAGGIA = (
    "How to descale the Gaggia Classic espresso machine\n\n"
    "Descaling removes the limescale that builds up in the boiler. Mix 500 ml of water with one sachet of "
    "descaler. Run the solution through the group head. Rinse the tank twice afterwards."
)


def test_headings_are_never_the_answer():
    text = ExtractiveGenerator(max_sentences=1).generate(_messages("How do I descale the Gaggia Classic?", [GAGGIA]))
    assert not text.startswith("How to descale")
    assert text.startswith("Descaling removes the limescale")


def test_how_many_is_answered_by_the_sentence_with_the_number_not_its_neighbour():
    text = ExtractiveGenerator(max_sentences=1).generate(
        _messages("How much water is mixed with the descaler?", [GAGGIA]))
    assert text == "Mix 500 ml of water with one sachet of descaler. [1]"


def test_who_and_when_questions_prefer_a_name_and_a_time():
    doc = ("The release process is owned by the platform team. Releases are approved by Maria Lopez. "
           "Releases are cut every second Tuesday of the month.")
    gen = ExtractiveGenerator(max_sentences=1)
    assert gen.generate(_messages("Who approves releases?", [doc])).startswith("Releases are approved by Maria")
    assert gen.generate(_messages("When are releases cut?", [doc])).startswith("Releases are cut every second")


def test_interactive_session_lines_and_captions_are_skipped():
    doc = (">>> sorted([5, 2, 3])\n[2, 3, 5]\n\nFigure 2: sorted returns a new list of values\n\n"
           "The sorted function returns a new sorted list from an iterable.")
    text = ExtractiveGenerator(max_sentences=1).generate(_messages("What does the sorted function return?", [doc]))
    assert text == "The sorted function returns a new sorted list from an iterable. [1]"


def test_the_shorter_complete_sentence_wins_when_both_hold_the_answer():
    doc = ("QLoRA stores the frozen base model in 4 bits. In practice, and across the many experiments that the "
           "original authors ran on a wide range of model sizes and datasets over several months, QLoRA stores "
           "the frozen base model in 4 bits while training adapters in higher precision.")
    text = ExtractiveGenerator(max_sentences=1).generate(_messages("In how many bits does QLoRA store the base model?",
                                                                   [doc]))
    assert text == "QLoRA stores the frozen base model in 4 bits. [1]"


def test_a_number_question_takes_the_sentence_with_the_number_even_if_its_neighbour_repeats_the_question():
    doc = "The descaler mix needs water and a sachet of descaler. Pour in 500 ml of it for a full cycle."
    text = ExtractiveGenerator(max_sentences=1).generate(
        _messages("How much water goes into the descaler mix?", [doc]))
    assert text == "Pour in 500 ml of it for a full cycle. [1]"


def test_a_compound_word_missing_from_a_sentence_costs_it_one_word_not_one_per_part():
    # "query-key" is in no sentence; counted once, the sentence with the other words still answers.
    doc = ("Attention scores are computed for every position. Dividing the scores by the square root of the "
           "key dimension keeps the softmax from saturating in scaled dot-product attention.")
    gen = ExtractiveGenerator(max_sentences=1)
    question = "In scaled dot-product attention, what are the query-key scores divided by?"
    text = gen.generate(_messages(question, [doc]))
    assert text.startswith("Dividing the scores by the square root")
    best = gen.score(question, parse_prompt(_messages(question, [doc])).sources)[0]
    assert best.score >= 0.85, best  # 0.74 when each part of "query-key" counted as a missing word


def test_among_sentences_that_cover_the_question_equally_the_one_with_its_frame_word_wins():
    # "named" frames the question and is left out of coverage; every sentence holds "Python" and
    # "language", so the frame word decides.
    doc = ("Python is an interpreted language that saves time during development. By the way, the language "
           "is named after the BBC show Monty Python and has nothing to do with reptiles.")
    text = ExtractiveGenerator(max_sentences=1).generate(_messages("What is the Python language named after?", [doc]))
    assert "Monty Python" in text


def test_a_two_part_question_is_answered_and_supported_part_by_part():
    from ragtune.rag.generators.extractive import best_sentence_support

    docs = ["The program gets the --help option for free. Nothing else is added by default.",
            "Every option also has a short form; for --help it is -h."]
    question = "Which option does the program get for free, and what is its short form?"
    text = ExtractiveGenerator().generate(_messages(question, docs))
    assert "--help option for free. [1]" in text and "-h. [2]" in text
    # Each part is held by its own sentence: supported as well as its weaker part, not as the whole
    # question scored against one sentence.
    whole = ExtractiveGenerator().score(question, parse_prompt(_messages(question, docs)).sources)[0].score
    assert best_sentence_support(question, docs) > whole


def test_a_level_question_is_answered_by_a_constant_name_not_only_by_digits():
    # "level" used to be read as a quantity written in digits, so a level named WARNING lost to a
    # sentence with a number and the support test then abstained.
    doc = ("Events are tracked from a threshold that you set on the logger. The default level is WARNING, so "
           "only events of this level and above are tracked. Handlers were added in version 2.3 of the module.")
    answer = RAG(FakeSearcher([make_hit(1, doc, section="Logging levels")])).ask("What is the default logging level?")
    assert not answer.abstained and answer.text.startswith("The default level is WARNING")


def test_a_definition_question_prefers_the_sentence_that_defines_its_subject():
    # Both sentences hold the question's only content word; the one shaped like a definition answers it.
    merged = "After training the update can be merged, so a merged LoRA model runs as fast as the base model."
    defining = "Low-rank adaptation (LoRA) is the most widely used way to fine-tune large models cheaply."
    text = ExtractiveGenerator(max_sentences=1).generate(_messages("What is LoRA?", [merged, defining]))
    assert text.startswith(defining)
    # Any other question is scored as before: the subject credit is for "What is X?" only.
    other = ExtractiveGenerator(max_sentences=1).generate(_messages("When can LoRA be merged?", [merged, defining]))
    assert other.startswith(merged)


def test_definition_subjects_and_shapes():
    from ragtune.rag.text import asked_subject, defines_subject

    assert asked_subject("What is LoRA?") == ["LoRA"]
    assert asked_subject("What are the adapters?") == ["adapters"]
    assert asked_subject("What does HNSW stand for?") == ["HNSW"]
    assert asked_subject("What does QLoRA quantise the base model to?") == []  # not a definition question
    assert asked_subject("How does LoRA work?") == []
    lora = ["LoRA"]
    assert defines_subject("LoRA is a reparameterisation method.", lora)
    assert defines_subject("The LoRA method is ...", lora) is False
    assert defines_subject("LoRA, a reparameterisation method, trains two matrices.", lora)
    assert defines_subject("LoRA, a reparameterisation method, trains two matrices.", ["lora"])  # as typed
    assert defines_subject("Low-rank adaptation (LoRA) trains two matrices.", lora)
    assert not defines_subject("LoRA and QLoRA are covered in another document.", lora)
    assert not defines_subject("A merged LoRA model is as fast as the base model.", lora)
    # a copula must open a noun phrase: these do not say what the subject is
    assert not defines_subject("Perplexity is useful for tracking pre-training.", ["perplexity"])
    assert not defines_subject("Instruction tuning is why chat models follow tasks.", ["instruction", "tuning"])
    assert not defines_subject("Adapters were proposed in 2019.", ["adapters"])
    assert defines_subject("Perplexity is the exponential of the average loss.", ["perplexity"])
    assert defines_subject("Adapters are small bottleneck layers.", ["adapters"])  # plural: no article needed
    # singular and plural are the same subject
    assert defines_subject("An adapter is a small trainable module.", ["adapters"])


def test_a_question_ending_on_a_preposition_prefers_the_sentence_that_completes_it():
    # The README's example: both sentences hold every content word of the question; only one says what the
    # base model is quantised *to*. Without the credit the pitfall sentence, in the higher-ranked source, won.
    pitfall = ("Merge a QLoRA adapter into a 16-bit copy of the base weights, not into the 4-bit weights, "
               "then quantise the merged model again if needed.")
    answer = "QLoRA applies LoRA on top of a base model quantised to 4-bit NormalFloat, which saves memory."
    question = "What does QLoRA quantise the base model to?"
    text = ExtractiveGenerator(max_sentences=1).generate(_messages(question, [pitfall, answer]))
    assert text.startswith(answer)
    # The same sources for a question that does not end on a preposition: scored as before.
    other = ExtractiveGenerator(max_sentences=1).generate(
        _messages("When should a QLoRA adapter be merged into the base weights?", [pitfall, answer]))
    assert other.startswith(pitfall)


def test_stranded_prepositions():
    from ragtune.rag.text import completes_preposition, content_terms, stranded_preposition

    assert stranded_preposition("What does QLoRA quantise the base model to?") == "to"
    assert stranded_preposition("In a weighted values matrix, what is each score multiplied by ?") == "by"
    assert stranded_preposition("What is QLoRA?") is None
    assert stranded_preposition("How many bytes were believed sufficient as of 2015?") is None
    assert stranded_preposition("Who wrote the Sorting HOW TO?") is None  # a title, not a preposition
    asked = set(content_terms("What is each score multiplied by?"))
    assert completes_preposition("Each score is multiplied by the factor's weight.", asked, "by")
    assert not completes_preposition("Each score is multiplied, then divided by ten.", asked, "by")
    assert not completes_preposition("The weight is set by the team.", asked, "to")


def test_a_comparison_question_is_answered_by_one_sentence_about_each_side():
    lora = "LoRA freezes the pretrained weights and trains two small low-rank matrices per layer."
    qlora = "QLoRA applies LoRA on top of a base model quantised to 4-bit NormalFloat."
    other = "Adapters add small bottleneck layers between the frozen layers."
    answer = RAG(FakeSearcher([make_hit(1, other), make_hit(2, lora), make_hit(3, qlora)])).ask(
        "What is the difference between LoRA and QLoRA?")
    assert not answer.abstained
    assert lora in answer.text and qlora in answer.text and other not in answer.text
    assert sorted(c.marker for c in answer.citations) == [2, 3]
    # When the documents say nothing about one side, the comparison is not answered from the other alone.
    half = RAG(FakeSearcher([make_hit(1, other), make_hit(2, lora)])).ask(
        "What is the difference between LoRA and Kubernetes?")
    assert half.abstained


def test_a_comparison_searches_each_side_too_and_gives_each_side_a_place():
    # The whole question ranks passages that name both sides first (here: pitfalls); each side's own
    # defining passage ranks below the k cut for it. Searching each side on its own and dealing the k places
    # in turn gives both definitions a place, and the answer quotes them.
    pitfalls = [make_hit(i, f"Common mistake {i}: comparing the options without a fixed evaluation set.")
                for i in (1, 2, 3)]
    rag_def = make_hit(7, "Retrieval-augmented generation (RAG) combines a search step with a language model.")
    ft_def = make_hit(8, "Fine-tuning continues training a pre-trained model on a smaller, targeted dataset.")

    class BySide(FakeSearcher):
        def search(self, query, k=5, filters=None, mode=None, **options):
            super().search(query, k, filters, mode, **options)
            ranked = {"What is RAG?": [rag_def] + pitfalls, "What is fine-tuning?": [ft_def] + pitfalls}
            return ranked.get(query, pitfalls + [rag_def, ft_def])[:k]

    searcher = BySide(size=5)
    rag = RAG(searcher, k=3)
    hits = rag.retrieve("How does RAG compare with fine-tuning?")
    assert [h.chunk.id for h in hits] == [pitfalls[0].chunk.id, rag_def.chunk.id, ft_def.chunk.id]
    assert searcher.queries == ["How does RAG compare with fine-tuning?", "What is RAG?", "What is fine-tuning?"]
    answer = rag.ask("How does RAG compare with fine-tuning?")
    assert rag_def.text in answer.text and ft_def.text in answer.text
    # Any other question is searched once, as before.
    searcher.queries.clear()
    rag.retrieve("What does RAG combine?")
    assert searcher.queries == ["What does RAG combine?"]


def test_the_kind_a_what_question_asks_for_counts_where_a_sentence_names_it():
    # "database" is the kind asked for. Left out of the question's words, every sentence naming Zephyr
    # covered the question, and the first one won.
    zephyr = ("Zephyr runs on 12 servers in the Frankfurt data centre. The database is PostgreSQL 14. "
              "The technical lead of Zephyr is Maria Lindqvist.")
    question = "What database does Zephyr use?"
    text = ExtractiveGenerator(max_sentences=1).generate(_messages(question, [zephyr]))
    assert text.startswith("The database is PostgreSQL 14.")
    # A kind that no sentence names costs nothing: the instance is still found ("... raises ValueError").
    raises = "Calling int() on a word raises ValueError. Calling int() on a number returns it."
    text = ExtractiveGenerator(max_sentences=1).generate(_messages("What exception does int() raise on a word?",
                                                                   [raises]))
    assert text.startswith("Calling int() on a word raises ValueError.")


def test_a_count_of_zero_answers_how_many():
    policy = ("Employees receive 28 days of paid vacation per year. Contractors receive no paid vacation. "
              "Requests must be submitted at least two weeks in advance.")
    text = ExtractiveGenerator(max_sentences=1).generate(
        _messages("How many vacation days do contractors get?", [policy]))
    assert text.startswith("Contractors receive no paid vacation.")
