"""RAG's reader check (``fallback``): an adapter's answer stands where the extractive reader says the same over the
same passages; elsewhere the fallback (its base model) answers. ``without_adapter`` gives that fallback."""

from __future__ import annotations

import pytest

from ragtune.rag.answer import RAG
from ragtune.rag.generators.adapters import AdapterOff, without_adapter
from ragtune.rag.prompt import ABSTAIN_TEXT

from _answer_fakes import FakeGenerator, FakeSearcher, make_hit

HITS = [
    make_hit(1, "Staff get 25 paid leave days per year. Up to 5 unused days can be carried over to the next year.",
             source="/d/handbook.md", section="Leave"),
    make_hit(2, "The on-call engineer is paged after 15 minutes without an acknowledgement.",
             source="/d/oncall.md", section="Paging"),
]
QUESTION = "How many paid leave days do staff get?"


def _ask(adapter_reply: str, base_reply: str = "Staff get 25 paid leave days per year [1]."):
    tuned, base = FakeGenerator([adapter_reply], name="model+adapter"), FakeGenerator([base_reply], name="model")
    stream = RAG(FakeSearcher(HITS), tuned, fallback=base, attribute=False).stream(QUESTION)
    pieces = list(stream)
    return stream.answer, pieces, tuned, base


def test_a_short_answer_the_reader_confirms_stands_and_the_base_model_is_not_asked():
    answer, pieces, tuned, base = _ask("25 paid leave days [1]")
    assert answer.text == "25 paid leave days [1]" and base.calls == []
    assert answer.grounding["reader_check"] == {"agreed": True, "model_text": "25 paid leave days [1]"}
    assert not any("withdrawn" in p for p in pieces)


def test_an_answer_from_another_passage_is_withdrawn_and_the_base_model_answers_the_same_prompt():
    # "15 minutes" is in the passages (grounded), but not where the passage that answers the question is.
    answer, pieces, tuned, base = _ask("15 minutes [2]")
    assert answer.text == "Staff get 25 paid leave days per year [1]."
    assert base.calls == tuned.calls  # the same prompt, passages and all
    assert answer.grounding["reader_check"] == {"agreed": False, "model_text": "15 minutes [2]"}
    assert any("withdrawn" in p and "model answers instead" in p for p in pieces) and pieces[-1] == answer.text
    assert [c.marker for c in answer.citations] == [1]


def test_an_adapter_that_abstains_where_the_reader_answers_is_not_taken_at_its_word():
    answer, _, _, base = _ask(ABSTAIN_TEXT)
    assert len(base.calls) == 1 and "25 paid leave days" in answer.text and not answer.abstained


def test_a_part_of_a_word_is_no_agreement():
    # "5" is in the passages ("Up to 5 unused days"), so the grounding check keeps it; in the reader's sentence it
    # is only inside "25": not the same answer.
    assert _ask("5 paid leave days [1]")[0].grounding["reader_check"]["agreed"] is False


def test_an_answer_the_grounding_check_withdrew_is_not_checked_again():
    # Not in the passages at all: the grounding check quotes the passage instead, and the base model is not asked.
    answer, _, _, base = _ask("Staff get 40 paid leave days [1].")
    assert base.calls == [] and "reader_check" not in answer.grounding
    assert answer.grounding["fallback"] == "extractive" and "25 paid leave days" in answer.text


def test_without_fallback_or_with_the_extractive_generator_nothing_is_checked():
    answer = RAG(FakeSearcher(HITS), FakeGenerator(["15 minutes [2]"]), attribute=False).ask(QUESTION)
    assert "reader_check" not in answer.grounding
    from ragtune.rag.generators.extractive import ExtractiveGenerator

    rag = RAG(FakeSearcher(HITS), ExtractiveGenerator(), fallback=FakeGenerator(["never"]))
    assert rag.fallback is None and "reader_check" not in rag.ask(QUESTION).grounding


class _Switchable(FakeGenerator):
    """A local generator's adapter switch, recording which adapter each answer was written with."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.active_adapter = "tuned"
        self.used: list[str | None] = []

    def set_adapter(self, name):
        self.active_adapter = name

    def stream(self, messages, **options):
        self.used.append(self.active_adapter)
        yield from super().stream(messages, **options)


def test_without_adapter_answers_with_the_adapter_off_and_switches_it_back_even_when_closed_early():
    gen = _Switchable(["a b c"], name="smollm2+tuned")
    base = without_adapter(gen)
    assert isinstance(base, AdapterOff) and base.name == "smollm2"
    assert base.generate([{"role": "user", "content": "q"}]) == "a b c"
    assert gen.used == [None] and gen.active_adapter == "tuned"
    pieces = base.stream([{"role": "user", "content": "q"}])
    next(pieces)
    pieces.close()
    assert gen.active_adapter == "tuned"
    gen.active_adapter = None
    assert without_adapter(gen) is None  # no adapter on: nothing to fall back to


def test_without_adapter_of_an_app_session_is_the_shared_models_base_view():
    from ragtune.shared import SharedGenerator

    class _Local(FakeGenerator):
        def load_adapter(self, *args, **kwargs):  # a view with an adapter needs a generator that takes one
            raise AssertionError("not loaded until the view answers")

    shared = SharedGenerator(_Local(["x"]))
    base = without_adapter(shared.view(adapter="/some/adapter"))
    assert base is not None and base.adapter is None and base.shared is shared
    assert without_adapter(shared.view()) is None


@pytest.mark.parametrize("argv", [["ask", "q", "--check-adapter"], ["ask", "q", "--generator", "api", "--check-adapter",
                                                                      "--adapter", "a"]])
def test_the_cli_refuses_check_adapter_without_a_local_adapter(argv, capsys):
    from ragtune.cli import main

    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "--check-adapter" in err
