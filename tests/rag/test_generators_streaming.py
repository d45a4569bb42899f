"""The pure pieces of streaming: stop-string cutting and incremental detokenisation."""

from __future__ import annotations

import pytest

from ragtune.errors import ConfigError
from ragtune.rag.generators.common import StopMatcher, check_sampling


def feed_all(stops, pieces):
    m = StopMatcher(stops)
    out = [m.feed(p) for p in pieces]
    out.append(m.flush())
    return out, m.stopped


def test_stop_string_split_across_pieces_is_cut_exactly():
    out, stopped = feed_all(["\nQ:"], ["Paris is", " the capital.\n", "Q", ": what else?"])
    assert "".join(out) == "Paris is the capital." and stopped
    assert out[1] == " the capital."  # the "\n" waits until we know whether "Q:" follows


def test_held_back_prefix_is_released_when_no_stop_follows():
    out, stopped = feed_all(["\nQ:"], ["line one\n", "Quite so", "\n"])
    assert "".join(out) == "line one\nQuite so\n" and not stopped
    assert out == ["line one", "\nQuite so", "", "\n"]


def test_earliest_of_several_stop_strings_wins():
    out, _ = feed_all(["END", "##"], ["a ## b END"])
    assert "".join(out) == "a "


def test_nothing_after_a_stop_is_emitted():
    m = StopMatcher(["."])
    assert [m.feed("Hi. There"), m.feed(" more"), m.flush()] == ["Hi", "", ""]


def test_without_stop_strings_pieces_pass_straight_through():
    assert feed_all([], ["a", "\n", "b"]) == (["a", "\n", "b", ""], False)


def test_stop_argument_validation():
    assert check_sampling(5, 0.0, "x") == ["x"]
    with pytest.raises(ConfigError, match="stop strings"):
        check_sampling(5, 0.0, [""])


def test_incremental_decoder_never_splits_a_multibyte_character():
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("transformers")
    from ragtune.rag.generators.streaming import IncrementalDecoder

    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(["plain ascii text only"], trainer)
    text = "naïve café ✓ 日本"
    ids = tok.encode(text).ids
    assert any(tok.decode([i]) == "\ufffd" for i in ids)  # some tokens are lone bytes of one character
    decoder = IncrementalDecoder(lambda xs: tok.decode(xs))
    pieces = [decoder.add([i]) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)
    assert sum(1 for p in pieces if p) > 5  # it really streamed


def test_no_repeat_answer_ngram_bans_only_repeats_inside_the_answer():
    import torch

    from ragtune.rag.generators.streaming import NoRepeatAnswerNGram

    proc = NoRepeatAnswerNGram(prompt_len=3, n=3)
    # prompt 7 8 9 ; answer 1 2 3 1 2 -> "1 2" was followed by 3: 3 is banned next
    ids = torch.tensor([[7, 8, 9, 1, 2, 3, 1, 2]])
    scores = proc(ids, torch.zeros(1, 10))
    assert scores[0, 3] == float("-inf") and torch.isfinite(scores[0, [0, 1, 2, 4, 9]]).all()
    # the same pair in the prompt does not ban anything: quoting sources stays possible
    ids = torch.tensor([[1, 2, 3, 5, 1, 2]])
    assert torch.isfinite(NoRepeatAnswerNGram(prompt_len=3, n=3)(ids, torch.zeros(1, 10))).all()


def test_repetition_guard_stops_a_stutter_inside_a_sentence():
    from ragtune.rag.generators.common import RepetitionGuard

    g = RepetitionGuard()
    out = "".join(g.feed(w + " ") for w in "pip is installed by default by default by default pip".split())
    assert g.stopped and "by default by default by default" not in out


def test_repetition_guard_lets_ordinary_text_through_unchanged():
    from ragtune.rag.generators.common import RepetitionGuard

    text = "Staff get 25 days. Up to 5 days carry over. Contractors get 10 days, paid, per year."
    g = RepetitionGuard()
    assert "".join(g.feed(ch) for ch in text) + g.flush() == text and not g.stopped
