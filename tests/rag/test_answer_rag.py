"""rag/answer.py: abstention, citations, streaming and errors of RAG.ask / RAG.stream."""

from __future__ import annotations

import pytest

from ragtune.errors import ConfigError, RagtuneError
from ragtune.rag.answer import RAG
from ragtune.rag.citations import CitationFilter, marker_numbers
from ragtune.rag.prompt import ABSTAIN_TEXT

from _answer_fakes import FakeGenerator, FakeSearcher, make_hit

HITS = [
    make_hit(1, "LoRA trains two small low-rank matrices.", source="/d/lora.md", section="LoRA", dense=0.7),
    make_hit(2, "QLoRA quantizes the base model to 4 bits.", source="/d/qlora.pdf", page=2, dense=0.5),
    make_hit(3, "Adapters add bottleneck layers.", source="/d/adapters.md", dense=0.3),
]


def test_answer_keeps_valid_citations_and_resolves_them_to_chunks():
    gen = FakeGenerator(["LoRA trains matrices [1] and QLoRA uses 4 bits [2]."])
    # A two-part question no single sentence covers: below the support test (min_support), which this
    # test of citations turns off; test_two_part_question_... covers that behaviour.
    answer = RAG(FakeSearcher(HITS), gen, min_support=None).ask("What do LoRA and QLoRA do?")

    assert answer.text == "LoRA trains matrices [1] and QLoRA uses 4 bits [2]."
    assert [(c.marker, c.chunk_id, c.source, c.page, c.section) for c in answer.citations] == [
        (1, "c1", "/d/lora.md", None, "LoRA"), (2, "c2", "/d/qlora.pdf", 2, None)]
    assert answer.citations[0].quote == HITS[0].text
    assert not answer.abstained and answer.hits == HITS and answer.query == answer.question


def test_citations_to_chunks_not_given_to_the_model_are_removed():
    # A budget that holds only the first source: [2] and [3] point to chunks the model never saw.
    gen = FakeGenerator(["LoRA trains matrices [1] [3]. QLoRA [2, 1] uses 4 bits [7]."], context_window=110)
    rag = RAG(FakeSearcher(HITS), gen, max_new_tokens=40, min_grounding=None, min_support=None)
    answer = rag.ask("What do LoRA and QLoRA do?")

    sources = gen.calls[0][-1]["content"]
    assert "[1]" in sources and "[2]" not in sources  # only one chunk fitted
    assert answer.text == "LoRA trains matrices [1]. QLoRA [1] uses 4 bits."
    assert [c.marker for c in answer.citations] == [1]


def test_below_min_score_abstains_without_calling_the_generator():
    weak = [make_hit(1, "Something unrelated.", dense=0.1), make_hit(2, "Other.", dense=0.05)]
    gen = FakeGenerator(["should not be used"])
    answer = RAG(FakeSearcher(weak), gen, min_score=0.25).ask("What is the capital of France?")

    assert answer.text == ABSTAIN_TEXT and answer.abstained
    assert gen.calls == []
    assert answer.citations == [] and answer.hits == weak
    assert "generate" not in answer.timings and answer.timings["total"] >= answer.timings["retrieve"]


def test_a_passage_holding_every_question_word_passes_the_topic_gate_whatever_its_cosine():
    # The embedder reads a rare acronym as word pieces: "What does HNSW stand for?" scored 0.22 against the
    # glossary row that answers it, under the 0.25 gate, and abstained.
    glossary = [make_hit(1, "HNSW (hierarchical navigable small world): a layered proximity graph index.", dense=0.22),
                make_hit(2, "Flat indexes compare the query with every vector.", dense=0.2)]
    gen = FakeGenerator(["HNSW is hierarchical navigable small world [1]."])
    answer = RAG(FakeSearcher(glossary), gen, min_score=0.25).ask("What does HNSW stand for?")
    assert not answer.abstained and len(gen.calls) == 1
    # Only every word counts: a passage that shares one of them is still below the gate.
    answer = RAG(FakeSearcher(glossary), gen, min_score=0.25).ask("What does HNSW cost in Paris?")
    assert answer.abstained and len(gen.calls) == 1


def test_on_topic_question_whose_words_no_sentence_holds_abstains_without_generating():
    gen = FakeGenerator(["LoRA was invented in 1850 [1]."])
    answer = RAG(FakeSearcher(HITS), gen).ask("Which company first sold GPUs with LoRA support in Japan?")
    assert answer.abstained and answer.text == ABSTAIN_TEXT and gen.calls == []
    answer = RAG(FakeSearcher(HITS), gen, min_support=None, min_grounding=None).ask(
        "Which company first sold GPUs with LoRA support?")
    assert not answer.abstained and len(gen.calls) == 1


def test_two_part_question_that_no_single_sentence_covers_abstains_by_default():
    # A known cost of DEFAULT_MIN_SUPPORT 0.525 (chosen on the development sets, see rag/answer.py): one
    # sentence must hold half the question's weight, so "What do LoRA and QLoRA do?" abstains; asked
    # one part at a time, each part is answered.
    gen = FakeGenerator(["LoRA trains matrices [1]."])
    assert RAG(FakeSearcher(HITS), gen).ask("What do LoRA and QLoRA do?").abstained and gen.calls == []
    assert not RAG(FakeSearcher(HITS), gen, min_grounding=None).ask("What does LoRA train?").abstained


def test_above_min_score_answers_and_bm25_only_hits_leave_the_decision_to_the_generator():
    gen = FakeGenerator(["An answer [1]."])
    assert not RAG(FakeSearcher(HITS), gen, min_score=0.6).ask("What does LoRA train?").abstained
    bm25_only = [make_hit(1, "LoRA trains small matrices.", dense=None)]
    assert not RAG(FakeSearcher(bm25_only), gen, min_score=0.6).ask("What does LoRA train?").abstained
    assert len(gen.calls) == 2


def test_no_hits_abstains_and_a_model_that_says_so_is_marked_abstained():
    gen = FakeGenerator([ABSTAIN_TEXT])
    assert RAG(FakeSearcher([], size=3), gen).ask("What does LoRA train?").abstained
    assert gen.calls == []
    answer = RAG(FakeSearcher(HITS), gen).ask("What does LoRA train?")
    assert answer.abstained and len(gen.calls) == 1


def test_empty_index_is_a_clear_error_naming_the_fix():
    with pytest.raises(RagtuneError, match=r"ragtune index add PATH"):
        RAG(FakeSearcher([]), FakeGenerator()).ask("What does LoRA train?")


def test_empty_real_index_is_a_clear_error(tmp_path):
    index_module = pytest.importorskip("ragtune.rag.index")
    from ragtune.rag.embed import HashEmbedder

    index = index_module.Index.open(tmp_path / "idx", create=True, embedder=HashEmbedder(dim=16))
    with pytest.raises(RagtuneError, match=r"idx is empty: add documents first with `ragtune index add PATH`"):
        RAG(index).ask("What does LoRA train?")


def test_streamed_pieces_join_to_the_final_text():
    pieces = [" ", "LoRA", " trains", " matrices", " [", "1", "]", " [", "9", "]", ".", " QLoRA [2", "] too.", "\n"]
    rag = RAG(FakeSearcher(HITS), FakeGenerator([pieces]), min_support=None)
    stream = rag.stream("What do LoRA and QLoRA do?")
    assert stream.hits == HITS  # retrieval happened before iterating
    out = list(stream)

    assert "".join(out) == stream.answer.text == "LoRA trains matrices [1]. QLoRA [2] too."
    assert len(out) > 3
    assert [c.marker for c in stream.answer.citations] == [1, 2]
    t = stream.answer.timings
    assert set(t) >= {"retrieve", "prompt", "first_token", "generate", "total"}
    assert t["first_token"] <= t["total"]


def test_ask_and_stream_give_the_same_text_however_the_output_is_cut():
    raw = "Text [1][2, 5] more [x] and [ 3 ] end [10]"
    whole = RAG(FakeSearcher(HITS), FakeGenerator([raw]), min_grounding=None).ask("What does LoRA train?").text
    by_char = RAG(FakeSearcher(HITS), FakeGenerator([list(raw)]), min_grounding=None).ask(
        "What does LoRA train?").text
    assert whole == by_char == "Text [1][2] more [x] and [ 3 ] end"


def test_citation_filter_handles_ranges_and_non_markers():
    f = CitationFilter({1, 2, 3})
    assert f.feed("see [1-3] and [4-5], list[0] or [a]") + f.flush() == "see [1-3] and, list or [a]"
    assert marker_numbers("1, 3-4") == [1, 3, 4]


def test_empty_question_and_bad_settings_are_rejected():
    with pytest.raises(ConfigError, match="empty"):
        RAG(FakeSearcher(HITS), FakeGenerator()).ask("   ")
    with pytest.raises(ConfigError, match="k must be"):
        RAG(FakeSearcher(HITS), FakeGenerator(), k=0)
    with pytest.raises(ConfigError, match="mode"):
        RAG(FakeSearcher(HITS), FakeGenerator(), mode="sparse")


def test_default_generator_is_extractive():
    answer = RAG(FakeSearcher(HITS)).ask("How many bits does QLoRA quantize the base model to?")
    assert answer.text == "QLoRA quantizes the base model to 4 bits. [2]"
    assert [c.chunk_id for c in answer.citations] == ["c2"]


def test_answer_to_dict_is_json_ready():
    import json

    answer = RAG(FakeSearcher(HITS), FakeGenerator(["It trains low-rank matrices [1]."])).ask("What does LoRA train?")
    data = json.loads(json.dumps(answer.to_dict()))
    assert data["text"] == "It trains low-rank matrices [1]." and data["citations"][0]["chunk_id"] == "c1"
    assert len(data["hits"]) == 3 and data["grounding"]["supported"] is True


def test_uncited_answer_gets_the_sources_that_hold_its_words():
    gen = FakeGenerator([["QLoRA stores the base model ", "in 4 bits."]])
    stream = RAG(FakeSearcher(HITS), gen).stream("What does QLoRA do?")
    pieces = list(stream)
    assert pieces[-1] == " [2]"
    assert "".join(pieces) == stream.answer.text == "QLoRA stores the base model in 4 bits. [2]"
    assert [c.chunk_id for c in stream.answer.citations] == ["c2"]


def test_uncited_answer_with_words_in_no_source_stays_uncited_when_the_grounding_check_is_off():
    gen = FakeGenerator(["QLoRA was invented by penguins in 1850."])
    invented = RAG(FakeSearcher(HITS), gen, min_grounding=None).ask("What does QLoRA do?")
    assert invented.citations == [] and invented.text == "QLoRA was invented by penguins in 1850."
    plain = RAG(FakeSearcher(HITS), FakeGenerator(["QLoRA uses 4 bits."]), attribute=False).ask("What is QLoRA?")
    assert plain.citations == [] and plain.text == "QLoRA uses 4 bits."


def test_generator_failure_mid_stream_propagates_and_leaves_no_half_answer():
    from ragtune.errors import GeneratorError

    class Failing(FakeGenerator):
        def stream(self, messages, **kwargs):
            yield "Partial "
            raise GeneratorError("connection to the API was lost")

    stream = RAG(FakeSearcher(HITS), Failing()).stream("What does LoRA train?")
    with pytest.raises(GeneratorError, match="connection"):
        list(stream)
    with pytest.raises(RagtuneError, match="ended before the answer was complete"):
        stream.answer


def test_an_answer_ends_where_the_model_starts_copying_a_source_block():
    # Seen on development data: after a short answer the model wrote a new source block, label line and all.
    raw = 'LoRA trains low-rank matrices [1].\n\n[4] /d/other.md, section "Intro"\n<source>\nMore text'
    rag = RAG(FakeSearcher(HITS), FakeGenerator([list(raw)]), min_grounding=None)
    stream = rag.stream("What does LoRA train?")
    pieces = list(stream)
    assert "".join(pieces) == stream.answer.text == "LoRA trains low-rank matrices [1]."
    whole = RAG(FakeSearcher(HITS), FakeGenerator([raw]), min_grounding=None).ask("What does LoRA train?")
    assert whole.text == "LoRA trains low-rank matrices [1]."
    closing = RAG(FakeSearcher(HITS), FakeGenerator(["4 bits [2] </source> junk"]), min_grounding=None)
    assert closing.ask("What does QLoRA use?").text == "4 bits [2]"


def test_the_stops_reach_the_generator_so_it_can_stop_early_and_a_nested_label_is_kept():
    class Recording(FakeGenerator):
        def stream(self, messages, **kwargs):
            self.stop = kwargs.get("stop")
            yield from super().stream(messages, **kwargs)

    gen = Recording(["Two parts: [1] LoRA, and [2] QLoRA."])  # "[n] " inside a line is not a label line
    answer = RAG(FakeSearcher(HITS), gen, min_grounding=None, min_support=None).ask("What are LoRA and QLoRA?")
    assert answer.text == "Two parts: [1] LoRA, and [2] QLoRA."
    assert "<source>" in gen.stop and "</source>" in gen.stop and "\n[1] " in gen.stop and "\n[4] " in gen.stop


def test_an_answer_that_is_only_a_copied_source_block_is_replaced_as_any_unsupported_answer():
    # Grounding off: an empty answer says so. Grounding on: the extractive fallback over the same passages.
    raw = "<source>\nLoRA trains two small low-rank matrices.\n</source>"
    plain = RAG(FakeSearcher(HITS), FakeGenerator([raw]), min_grounding=None).ask("What does LoRA train?")
    assert plain.text == ABSTAIN_TEXT and plain.abstained
    grounded = RAG(FakeSearcher(HITS), FakeGenerator([raw])).ask("What does LoRA train?")
    assert "<source>" not in grounded.text and grounded.grounding["fallback"] in ("extractive", "abstain")


def test_a_copy_of_a_passage_under_another_file_name_takes_one_place_not_two():
    copy = make_hit(2, "LoRA trains  two small low-rank matrices.", source="/d/copy-of-lora.md", dense=0.69)
    hits = [HITS[0], copy, HITS[1], HITS[2]]
    searcher = FakeSearcher(hits)
    shown = RAG(searcher, FakeGenerator("x [1]"), k=3).retrieve("What does LoRA train?")
    assert [h.source for h in shown] == ["/d/lora.md", "/d/qlora.pdf", "/d/adapters.md"]  # k distinct passages
    assert [c["k"] for c in searcher.calls] == [3, 7]  # asked again for more once a copy took a place
    plain = FakeSearcher(HITS)
    assert len(RAG(plain, FakeGenerator("x [1]"), k=3).retrieve("q")) == 3 and len(plain.calls) == 1


def test_a_generator_named_instead_of_made_is_refused_with_the_call_to_make_it():
    with pytest.raises(ConfigError, match=r"make one with load_generator\('extractive'\)"):
        RAG(FakeSearcher(HITS), "extractive")
    with pytest.raises(ConfigError, match="k must be a whole number >= 1, got '5'"):
        RAG(FakeSearcher(HITS), k="5")
