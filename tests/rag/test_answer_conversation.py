"""rag/conversation.py: follow-ups become standalone queries; the history stays bounded."""

from __future__ import annotations

from ragtune.rag.answer import RAG
from ragtune.rag.conversation import heuristic_rewrite, needs_rewrite, rewrite_query
from ragtune.rag.generators.extractive import ExtractiveGenerator

from _answer_fakes import FakeGenerator, FakeSearcher, make_hit

HITS = [make_hit(1, "LoRA uses a rank of 8 by default for its low-rank matrices.", dense=0.6)]
HISTORY = [
    {"role": "user", "content": "What is LoRA?"},
    {"role": "assistant", "content": "LoRA trains low-rank matrices [1]."},
]


def test_follow_up_is_rewritten_with_the_extractive_generator_by_heuristic():
    searcher = FakeSearcher(HITS)
    chat = RAG(searcher, ExtractiveGenerator()).conversation()
    chat.ask("What is LoRA?")
    answer = chat.ask("What rank does it use?")

    assert searcher.queries == ["What is LoRA?", "What rank does LoRA use?"]
    assert answer.query == "What rank does LoRA use?" and answer.question == "What rank does it use?"
    assert "rank of 8" in answer.text


def test_follow_up_is_rewritten_by_an_llm_generator_when_its_rewrite_is_plausible():
    gen = FakeGenerator(["What rank does LoRA use?", "It uses rank 8 [1]."])
    searcher = FakeSearcher(HITS)
    answer = RAG(searcher, gen).ask("What rank does it use?", history=HISTORY)

    assert searcher.queries == ["What rank does LoRA use?"]
    assert answer.query == "What rank does LoRA use?" and answer.text == "It uses rank 8 [1]."
    rewrite_prompt = gen.calls[0][-1]["content"]
    assert "User: What is LoRA?" in rewrite_prompt and "Last question: What rank does it use?" in rewrite_prompt
    assert "[1]" not in rewrite_prompt  # earlier citations are stripped from the history


def test_implausible_llm_rewrite_falls_back_to_the_heuristic():
    junk_replies = ["", "The documents do not say.", "What rank does it use?",  # empty, abstention, echo
                    "Are bananas yellow?",  # drifted: neither the question's words nor the history's
                    "LoRA uses rank 8 for its matrices."]  # answered instead of rewriting
    for junk in junk_replies:
        gen = FakeGenerator([junk])
        assert rewrite_query("What rank does it use?", HISTORY, gen) == "What rank does LoRA use?", junk


def test_standalone_questions_are_not_rewritten():
    gen = FakeGenerator(["should not be asked"])
    assert rewrite_query("What does QLoRA quantize?", HISTORY, gen) == "What does QLoRA quantize?"
    assert gen.calls == []
    assert needs_rewrite("And QLoRA?") and needs_rewrite("Why?") and needs_rewrite("How does that compare?")
    assert not needs_rewrite("How does QLoRA compare with LoRA?")


def test_heuristic_adds_only_terms_the_follow_up_lacks_from_the_last_two_questions():
    history = [
        {"role": "user", "content": "Tell me about transformers."},
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": "What is LoRA fine-tuning?"},
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": "How much memory does LoRA save?"},
        {"role": "assistant", "content": "..."},
    ]
    assert heuristic_rewrite("And for its rank?", history) == "How much memory does LoRA save, for LoRA's rank?"
    assert heuristic_rewrite("Why?", history) == "Why? (memory LoRA save fine-tuning)"


def test_history_is_bounded_to_the_last_turns():
    gen = FakeGenerator(["Answer [1]."], context_window=100_000)
    chat = RAG(FakeSearcher(HITS), gen, history_turns=2, min_support=None).conversation()
    for i in range(5):
        chat.ask(f"Question number {i} about LoRA?")

    assert [m["content"] for m in chat.history if m["role"] == "user"] == [
        "Question number 3 about LoRA?", "Question number 4 about LoRA?"]
    assert all("[1]" not in m["content"] for m in chat.history)
    last_prompt = gen.calls[-1]
    assert [m["role"] for m in last_prompt] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "Question number 2" in last_prompt[1]["content"]  # the last call saw turns 2 and 3

    chat.reset()
    assert chat.history == []


def test_history_passed_to_ask_is_cut_to_history_turns():
    gen = FakeGenerator(["Answer [1]."], context_window=100_000)
    long_history = []
    for i in range(6):
        long_history += [{"role": "user", "content": f"old question {i}"}, {"role": "assistant", "content": "a"}]
    RAG(FakeSearcher(HITS), gen, history_turns=1).ask("What does LoRA use?", history=long_history)
    assert [m["content"] for m in gen.calls[-1][1:-1]] == ["old question 5", "a"]


def test_streamed_turn_joins_history_only_when_finished():
    chat = RAG(FakeSearcher(HITS), FakeGenerator([["Rank ", "8 [1]."]])).conversation()
    stream = chat.stream("What rank is used by LoRA?")
    assert chat.history == []
    assert "".join(stream) == "Rank 8 [1]."
    assert chat.history == [{"role": "user", "content": "What rank is used by LoRA?"},
                            {"role": "assistant", "content": "Rank 8."}]


HANDBOOK = [
    make_hit(1, "Staff get 25 paid leave days per year. Up to 5 unused paid leave days can be carried over "
                "to the next year. Contractors get 10 paid leave days per year.", source="/d/handbook.md"),
    make_hit(2, "The on-call engineer is paged after 15 minutes without an acknowledgement. The on-call "
                "engineer has 30 minutes to respond before being paged again.", source="/d/oncall.md"),
]


def test_multi_turn_transcript_with_pronouns_and_ellipsis_rule_based():
    # The transcript from the issue: each follow-up must be answered with something new.
    searcher = FakeSearcher(HANDBOOK)
    chat = RAG(searcher, ExtractiveGenerator(max_sentences=1)).conversation()
    first = chat.ask("How many paid leave days do staff get?")
    assert first.text.startswith("Staff get 25 paid leave days per year.")

    second = chat.ask("And for contractors?")
    assert second.query == "How many paid leave days do staff get, for contractors?"
    assert second.text.startswith("Contractors get 10 paid leave days per year.")

    third = chat.ask("How many of them can be carried over?")
    assert third.query == "How many of paid leave days can be carried over?"
    assert third.text.startswith("Up to 5 unused paid leave days can be carried over")


def test_he_or_she_is_replaced_by_the_earlier_topic_and_the_answer_is_not_repeated():
    chat = RAG(FakeSearcher(HANDBOOK), ExtractiveGenerator(max_sentences=1)).conversation()
    first = chat.ask("Who is paged when there is no acknowledgement?")
    assert "15 minutes" in first.text
    follow = chat.ask("How long does he or she have to respond before being paged again?")
    assert follow.query == "How long does on-call engineer have to respond before being paged again?"
    assert "30 minutes" in follow.text and follow.text != first.text


def test_topic_phrase_is_the_longest_run_of_content_words():
    from ragtune.rag.conversation import topic_phrase

    assert topic_phrase("How many paid leave days do staff get?") == "paid leave days"
    assert topic_phrase("Who is the on-call engineer?") == "on-call engineer"


def test_a_continuation_that_is_a_whole_question_is_kept_as_it_is():
    history = [{"role": "user", "content": "What does list.sort() return?"}, {"role": "assistant", "content": "None."}]
    assert heuristic_rewrite("And what does sorted() return?", history) == "What does sorted() return?"
    assert heuristic_rewrite("and for tuples?", history) == "What does list.sort() return, for tuples?"


def test_it_after_a_who_question_is_the_thing_named_not_the_person():
    history = [{"role": "user", "content": "Who is the technical lead of Zephyr?"},
               {"role": "assistant", "content": "The technical lead of Zephyr is Maria Lindqvist. [1]"}]
    assert heuristic_rewrite("Where does it run?", history) == "Where does Zephyr run?"
    assert heuristic_rewrite("And what database does it use?", history) == "What database does Zephyr use?"
    # "he or she" still means the person the answer names.
    assert heuristic_rewrite("How do I reach him or her?", history) == "How do I reach technical lead?"
    # After any other question "it" is the question's topic, as before.
    other = [{"role": "user", "content": "What is the default logging level in Python?"},
             {"role": "assistant", "content": "WARNING. [1]"}]
    assert heuristic_rewrite("How do I change it?", other) == "How do I change default logging level?"


def _asked(*turns: str) -> str:
    """The rewrite of the last of ``turns`` after the others (answers left out)."""
    history = [m for q in turns[:-1] for m in ({"role": "user", "content": q}, {"role": "assistant", "content": "..."})]
    return heuristic_rewrite(turns[-1], history)


def test_what_about_a_new_name_asks_the_last_question_about_it():
    assert _asked("What is LoRA?", "what about DoRA?") == "What is DoRA?"
    assert _asked("When was LoRA introduced?", "And QLoRA?") == "When was QLoRA introduced?"
    assert _asked("What is LoRA's rank?", "and for QLoRA?") == "What is QLoRA's rank?"
    assert _asked("What database does Kestrel run on?", "and Heron?") == "What database does Heron run on?"
    # two names in the last question: which one the new name replaces is unknown, so the old way
    assert _asked("How big is the KV cache for a 7B model?", "What about MQA?") == \
        "How big is the KV cache for a 7B model, MQA?"


def test_a_phrase_with_the_same_head_noun_takes_the_old_phrases_place():
    assert _asked("How many vacation days do staff get?", "what about sick days?") == "How many sick days do staff get?"
    assert _asked("What is the hotel limit in London?", "and the meal limit?") == "What is the meal limit in London?"
    assert _asked("Which GPU memory does a 7B model need?", "what about a 13B model?") == \
        "Which GPU memory does a 13B model need?"
    # no shared head noun: the old way (the fragment is appended)
    assert _asked("What is the default learning rate?", "what about the batch size?") == \
        "What is the default learning rate, the batch size?"


def test_a_fragment_repeating_the_question_around_a_new_name_swaps_the_name_only():
    assert _asked("How long is the context window of Llama?", "and the context window of Mistral?") == \
        "How long is the context window of Mistral?"


def test_and_with_the_same_preposition_replaces_its_phrase():
    assert _asked("What is the hotel limit in London?", "and in Paris?") == "What is the hotel limit in Paris?"
    assert _asked("What learning rate should I use for LoRA?", "and for full fine-tuning?") == \
        "What learning rate should I use for full fine-tuning?"
    assert _asked("Who is the technical lead of Kestrel?", "and of Heron?") == "Who is the technical lead of Heron?"


def test_one_pronoun_takes_the_topic_not_every_pronoun():
    assert _asked("Who described retrieval-augmented generation?", "When did they do it?") == \
        "When did retrieval-augmented generation do it?"


def test_topic_keeps_nouns_ending_in_ing_and_words_before_a_closing_verb():
    from ragtune.rag.conversation import topic_phrase

    assert topic_phrase("What is prompt tuning?") == "prompt tuning"
    assert topic_phrase("What is continuous batching?") == "continuous batching"
    assert topic_phrase("When is the on-call engineer paged?") == "on-call engineer"  # a verb, as before
    assert topic_phrase("What constant does reciprocal rank fusion use?") == "reciprocal rank fusion"
    assert topic_phrase("How much memory does LoRA save?") == "LoRA"
    assert _asked("What is prompt tuning?", "How many parameters does it train?") == \
        "How many parameters does prompt tuning train?"
