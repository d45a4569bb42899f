"""Display helpers: passages with the question's words marked (HTML-safe), citation labels, timings."""

from __future__ import annotations

from types import SimpleNamespace

from ragtune.ui.render import citation_label, highlight, timings_line


def test_query_words_are_marked_and_markup_in_the_passage_is_escaped():
    out = highlight("<b>QLoRA</b> quantises the base model; training uses paged optimisers.", "How does QLoRA quantise training?")
    assert out.startswith("&lt;b&gt;<mark>QLoRA</mark>&lt;/b&gt; <mark>quantises</mark>")
    assert "<mark>training</mark>" in out and "<mark>the</mark>" not in out


def test_a_question_of_stop_words_marks_nothing():
    assert highlight("what is it", "what is it?") == "what is it"


def test_citation_label_names_file_page_and_section():
    c = SimpleNamespace(marker=2, source="/data/docs/lora_qlora.pdf", page=3, section="QLoRA")
    assert citation_label(c) == "[2] lora_qlora.pdf · p. 3 · § QLoRA"
    assert citation_label(SimpleNamespace(marker=1, source="a.md", page=None, section=None)) == "[1] a.md"


def test_timings_are_listed_in_pipeline_order_in_milliseconds():
    assert timings_line({"total": 0.5, "retrieve": 0.01, "first_token": 0.2}) == \
        "retrieve 10 ms · first token 200 ms · total 500 ms"
