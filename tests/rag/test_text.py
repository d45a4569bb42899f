"""rag/text.py: the one home of words, stop words, sentences and answer types."""

from __future__ import annotations

import pytest

from ragtune.rag.text import (
    answer_type,
    content_terms,
    has_answer_type,
    is_code,
    is_heading_like,
    numbers,
    question_parts,
    question_term_groups,
    question_terms,
    split_sentences,
)


def test_content_terms_are_stemmed_without_stop_words_and_split_compound_names():
    assert content_terms("How many bits does QLoRA use?") == ["bit", "qlora"]
    assert {"math.fsum", "math", "fsum"} <= set(content_terms("Use math.fsum for sums"))
    assert {"low-rank", "low", "rank"} <= set(content_terms("low-rank adapters"))


def test_question_frame_words_are_left_out_of_question_terms():
    assert question_terms("According to the glossary, what does HNSW stand for?") == ["hnsw"]
    assert question_terms("What is it called?") == content_terms("What is it called?")  # nothing else left


def test_sentences_skip_interactive_sessions_and_keep_dunder_names():
    text = "The __init__.py file marks a package.\n\n>>> import sound\n>>> sound.play()\n\nIt may be empty."
    assert split_sentences(text) == ["The __init__.py file marks a package.", "It may be empty."]


def test_answer_types_from_question_words():
    assert answer_type("How many leave days do staff get?") == "number"
    assert answer_type("How long does the engineer have?") == "number"
    assert answer_type("When was QLoRA published?") == "time"
    assert answer_type("Who wrote the Sorting HOW TO?") == "name"
    assert answer_type("What does LoRA train?") is None


def test_a_when_clause_is_a_condition_and_a_level_is_not_a_quantity():
    # "when" inside a what/which question opens a condition; the question asks for an exception.
    assert answer_type("What exception is raised when comparing addresses of different versions?") is None
    assert answer_type("Since when is the flag accepted?") == "time"
    assert answer_type("When n==1, what is faster than nsmallest()?") is None  # a condition before "what"
    assert answer_type("In which year was BM25 first used?") == "time"
    # A level is a number or a constant name (WARNING), asked only when "level" ends the asking phrase.
    assert answer_type("What is the default logging level?") == "level"
    assert answer_type("Which module offers a higher level interface?") is None
    assert has_answer_type("The default level is WARNING.", "level", "What is the default logging level?")
    assert has_answer_type("It compresses at level 9.", "level", "Which compression level is used?")
    assert not has_answer_type("The level is set on the logger.", "level", "What is the default level?")
    assert answer_type("Which version added the flag?") == "quantity"


def test_a_compound_question_word_is_one_group_of_its_whole_and_its_parts():
    groups = question_term_groups("What does secrets.token_bytes return for fine-tuning?")
    assert ("secrets.token_byt", "secret", "token_byt") in groups
    assert ("fine-tun", "fine", "tune") in groups
    assert ("return",) in groups and len(groups) == 3


def test_has_answer_type_looks_for_numbers_times_and_new_names():
    assert has_answer_type("Up to five days carry over.", "number")
    assert not has_answer_type("Unused days carry over.", "number")
    assert has_answer_type("This executes the setup statement once.", "number")  # "how many times"
    assert has_answer_type("Releases are cut every Tuesday.", "time")
    assert has_answer_type("It was written by Andrew Dalke.", "name", "Who wrote the HOW TO?")
    assert not has_answer_type("The guide was written long ago.", "name", "Who wrote the guide?")


def test_headings_captions_and_titles_are_told_apart_from_statements_and_table_rows():
    for heading in ("How to descale the Gaggia Classic espresso machine", "2.1. Invoking the Interpreter",
                    "Sort Stability and Complex Sorts", "Figure 3: latency by model size.", "Note"):
        assert is_heading_like(heading), heading
    for statement in ("Staff get 25 days.", "HNSW, hierarchical navigable small world, an approximate index",
                      "The recommended method is to build a weighted matrix of options vs factors:",
                      "Author : Andrew Dalke and Raymond Hettinger", "Release: 0.1"):
        assert not is_heading_like(statement), statement
    assert is_heading_like("Step 1: Install the package")  # a numbered step title, not a field


def test_numbers_are_normalised():
    assert numbers("1,000 tokens, about 0.75 of a word, in 2023") == {"1000", "0.75", "2023"}


def test_api_signatures_are_code_not_sentences():
    from ragtune.rag.text import is_code

    assert is_code("json.loads(s, *, cls=None, object_hook=None, parse_float=None)")
    assert is_code("class json.JSONDecoder(*, object_hook=None)\u00b6")
    assert not is_code("Pass key=len to sorted() to sort by length.")


def test_a_two_part_question_is_split_into_its_questions():
    assert question_parts("Which option does a program get for free, and what is its short form?") == [
        "Which option does a program get for free", "what is its short form?"]
    assert question_parts("What shorthand does the guide give for what RAG and fine-tuning are for?") == [
        "What shorthand does the guide give for what RAG and fine-tuning are for?"]


def test_a_comparison_question_asks_what_each_side_is():
    from ragtune.rag.text import compared_sides

    assert question_parts("What is the difference between LoRA and QLoRA?") == ["What is LoRA?", "What is QLoRA?"]
    assert compared_sides("How does RAG compare with fine-tuning?") == ["RAG", "fine-tuning"]
    assert compared_sides("How is LoRA different from full fine-tuning?") == ["LoRA", "full fine-tuning"]
    assert compared_sides("What are the main differences between the API model and RAG?") == ["API model", "RAG"]
    assert compared_sides("BM25 vs dense retrieval") == ["BM25", "dense retrieval"]
    assert compared_sides("What distinguishes DPO from RLHF?") == ["DPO", "RLHF"]
    assert compared_sides("Compare LoRA and DoRA.") == ["LoRA", "DoRA"]
    assert compared_sides("What are the differences between RAG, fine-tuning and prompting?") == [
        "RAG", "fine-tuning", "prompting"]
    assert compared_sides("How does LoRA compare with QLoRA, DoRA?") == ["LoRA", "QLoRA", "DoRA"]  # a follow-up
    assert compared_sides("What is LoRA?") == []
    assert compared_sides("What does the guide recommend building to compare candidate models?") == []
    # A side longer than six words is not a thing being named: the question is scored whole.
    assert compared_sides("What is the difference between the model that the team trained last year and RAG?") == []


def test_a_flattened_table_of_contents_of_api_names_is_not_prose():
    assert is_code("Table of Contents bisect — Array bisection algorithm bisect_left() bisect_right() bisect() "
                   "insort_left() insort_right() insort()")
    assert not is_code("Also, when n==1, it is more efficient to use the built-in min() and max() functions.")


def test_answers_are_scored_alike_whatever_quotes_and_dashes_the_document_used():
    from ragtune.rag.text import answer_f1, holds_fact, normalize_answer

    # A copy of the document's "Python’s" must hold the gold "Python's" (ASCII-only normalisation missed it).
    assert holds_fact("named after “Monty Python’s Flying Circus” [1]", "Monty Python's Flying Circus")
    assert holds_fact("a 32–bit value", "32-bit")
    assert not holds_fact("ValueErrors are raised", "ValueError")  # whole words only
    assert not holds_fact("anything", "") and not holds_fact("anything", "[1]")
    assert normalize_answer("The [1, 2] answer [3-4].") == "answer"
    assert answer_f1("It trains two low-rank matrices [1].", "two low-rank matrices") == pytest.approx(0.8)
    assert answer_f1("", "") == 1.0 and answer_f1("", "x") == 0.0


def test_a_decimal_number_is_one_token_when_answers_are_scored():
    from ragtune.rag.text import answer_f1, holds_fact, normalize_answer

    # "2.1" had become "2 1": "1.2 million" scored 1.0 against "2.1 million", and a bare "1" 0.4
    assert answer_f1("about 1.2 million", "about 2.1 million") < 1.0
    assert answer_f1("1", "about 2.1 million") == 0.0
    assert holds_fact("Speculative decoding gives 3.4 tokens per pass [1].", "3.4 tokens")
    assert not holds_fact("about 1.2 million", "2.1 million")
    assert normalize_answer("1,200,000 rows; 32-bit.") == "1200000 rows 32 bit"
