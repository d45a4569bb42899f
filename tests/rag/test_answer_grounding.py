"""rag/grounding.py and its use in rag/answer.py: a model's answer must be supported by the passages."""

from __future__ import annotations

import sys
from pathlib import Path

from ragtune.rag.answer import RAG
from ragtune.rag.grounding import check_grounding
from ragtune.rag.prompt import ABSTAIN_TEXT

sys.path.insert(0, str(Path(__file__).parent))
from _answer_fakes import FakeGenerator, FakeSearcher, make_hit  # noqa: E402

HITS = [
    make_hit(1, "Staff get 25 paid leave days per year. Up to 5 unused days can be carried over to the next year.",
             source="/d/handbook.md", section="Leave"),
    make_hit(2, "The on-call engineer is paged after 15 minutes without an acknowledgement.",
             source="/d/oncall.md", section="Paging"),
    make_hit(3, "1. Open the portal.\n2. Choose a plan.\n\nThe portal lists every plan the company offers.",
             source="/d/portal.md"),
]


def test_supported_cited_answer_is_kept():
    answer = RAG(FakeSearcher(HITS), FakeGenerator(["Staff get 25 paid leave days a year [1]."])).ask(
        "How many paid leave days do staff get?")
    assert answer.text == "Staff get 25 paid leave days a year [1]."
    assert not answer.abstained and answer.grounding["supported"] and answer.grounding["fallback"] is None


def test_invented_cited_answer_to_an_unanswered_question_is_withdrawn_and_abstains():
    # The failure from the issue: a tiny model answers "1 [3]" to a question the documents do not cover,
    # and `abstained` said false.
    gen = FakeGenerator(["1 [3]"])
    rag = RAG(FakeSearcher(HITS), gen, min_support=None)
    answer = rag.ask("How many offices does the company have in Japan?")
    assert answer.abstained and answer.text == ABSTAIN_TEXT
    assert answer.grounding["supported"] is False and answer.grounding["fallback"] == "abstain"
    assert answer.grounding["model_text"] == "1 [3]"
    assert answer.to_dict()["abstained"] is True and answer.citations == []


def test_wrong_number_falls_back_to_the_extractive_answer_and_says_so():
    stream = RAG(FakeSearcher(HITS), FakeGenerator(["Staff get 30 paid leave days [1]."])).stream(
        "How many paid leave days do staff get?")
    pieces = list(stream)
    answer = stream.answer
    assert "25 paid leave days" in answer.text and "[1]" in answer.text and "30" not in answer.text
    assert not answer.abstained and answer.grounding["fallback"] == "extractive"
    assert "number 30" in answer.grounding["reason"]
    # What was streamed shows the withdrawal, then the replacement, which alone is the final text.
    assert any("withdrawn" in p for p in pieces) and pieces[-1] == answer.text


def test_answer_that_says_nothing_is_never_returned_empty():
    for reply in ["", "The answer to this question is: [2]"]:
        answer = RAG(FakeSearcher(HITS), FakeGenerator([reply])).ask("How long before the engineer is paged?")
        assert answer.text.startswith("The on-call engineer is paged after 15 minutes"), reply
        assert answer.grounding["fallback"] == "extractive" and not answer.abstained


def test_citation_must_point_at_the_passage_that_says_it():
    # True fact, wrong passage cited: the cited passage does not support it.
    verdict = check_grounding("The engineer is paged after 15 minutes [1].", "When is the engineer paged?",
                              {1: HITS[0].text, 2: HITS[1].text})
    assert not verdict.supported
    uncited = check_grounding("The engineer is paged after 15 minutes.", "When is the engineer paged?",
                              {1: HITS[0].text, 2: HITS[1].text})
    assert uncited.supported and uncited.sources == [2]


def test_uncited_supported_answer_is_attributed_to_its_passage():
    answer = RAG(FakeSearcher(HITS), FakeGenerator(["Up to 5 unused days can be carried over."])).ask(
        "How many leave days can be carried over?")
    assert answer.text == "Up to 5 unused days can be carried over. [1]"
    assert [c.chunk_id for c in answer.citations] == ["c1"]


def test_number_only_in_an_unrelated_list_line_does_not_support():
    verdict = check_grounding("2 [3]", "How many regions does the company operate in?", {3: HITS[2].text})
    assert not verdict.supported and "number 2" in verdict.reason


def test_model_abstention_is_kept_as_abstention():
    answer = RAG(FakeSearcher(HITS), FakeGenerator([ABSTAIN_TEXT])).ask("How many paid leave days do staff get?")
    assert answer.abstained and answer.text == ABSTAIN_TEXT and answer.grounding["fallback"] is None


def test_extractive_generator_is_not_checked_twice():
    answer = RAG(FakeSearcher(HITS)).ask("How many paid leave days do staff get?")
    assert answer.grounding == {} and "25 paid leave days" in answer.text
