"""Pieces every generator shares: argument checks and stop-string handling while streaming.

Pure Python (no torch, no httpx) so that the API and local generators, and their tests, use one
definition of "the answer ends before the first stop string".

    >>> m = StopMatcher(["\\nQ:"])
    >>> [m.feed("Paris.\\n"), m.feed("Q: next"), m.stopped]
    ['Paris.', '', True]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from ragtune.errors import ConfigError

from .base import Message

ROLES = ("system", "user", "assistant")


def relay(pieces: Iterator[str]) -> Iterator[str]:
    """Yield ``pieces`` (another generator's stream) and close it however this stream ends, early included:
    a local model's worker thread stops when its stream is closed, and a wrapper that switched the model (an
    adapter off, a session's adapter on) must not leave it running past its own ``finally``."""
    try:
        yield from pieces
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def check_messages(messages: Sequence[Message]) -> list[Message]:
    """Return ``messages`` as a list after checking it is a non-empty list of ``{role, content}`` dicts."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ConfigError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} dicts, "
            f"got {type(messages).__name__}"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ConfigError(f"messages[{i}] must be a dict with 'role' and 'content' keys, got {m!r:.80}")
        if m["role"] not in ROLES:
            raise ConfigError(f"messages[{i}] has role {m['role']!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise ConfigError(f"messages[{i}]['content'] must be a string, got {type(m['content']).__name__}")
    return list(messages)


class GeneratorBase:
    """The public ``stream``/``generate`` of :class:`~ragtune.rag.generators.base.Generator`, written once.

    Both check their arguments here (so a bad call fails when it is made, not when a stream is first read),
    then call the kind's own ``_stream`` and ``_generate``. ``_generate`` joins ``_stream`` unless a kind has a
    cheaper way to get the whole answer (the API's non-streaming request, the extractive selection).
    """

    def stream(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Yield the answer piece by piece as it is produced (``"".join`` gives :meth:`generate`)."""
        messages = check_messages(messages)
        stops = check_sampling(max_new_tokens, temperature, stop)
        return self._stream(messages, max_new_tokens, float(temperature), stops)

    def generate(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> str:
        """The whole answer at once: the same text as joining :meth:`stream`."""
        messages = check_messages(messages)
        stops = check_sampling(max_new_tokens, temperature, stop)
        return self._generate(messages, max_new_tokens, float(temperature), stops)

    def _stream(self, messages: list[Message], max_new_tokens: int, temperature: float,
                stops: list[str]) -> Iterator[str]:
        raise NotImplementedError

    def _generate(self, messages: list[Message], max_new_tokens: int, temperature: float, stops: list[str]) -> str:
        return "".join(self._stream(messages, max_new_tokens, temperature, stops))


def check_sampling(max_new_tokens: int, temperature: float, stop: Sequence[str] | None) -> list[str]:
    """Validate the common generation arguments; return the stop strings as a clean list."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ConfigError(f"temperature must be a number >= 0 (0 means greedy), got {temperature!r}")
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    stops = list(stop)
    for s in stops:
        if not isinstance(s, str) or not s:
            raise ConfigError(f"stop strings must be non-empty strings, got {s!r}")
    return stops


class StopMatcher:
    """Cut a stream of text pieces just before the first stop string, without cutting too early.

    ``feed`` returns the text that is safe to show now. A tail that could still grow into a stop
    string (``"\\nQ"`` when the stop is ``"\\nQ:"``) is held back until the next piece settles it, or
    released by ``flush`` at the end. Once a stop string is seen, ``stopped`` turns true and the
    producer should stop generating.
    """

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.stopped = False
        self._held = ""

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        if not self.stops:
            return piece
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = self._partial_tail(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The held-back tail, once the producer has finished without hitting a stop string."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _partial_tail(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of some stop string."""
        best = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:n]):
                    best = n
                    break
        return best


_SENTENCE_END_RE = re.compile(r"[.!?](?=\s)|\n")
_GUARD_WORD_RE = re.compile(r"\w+")
# The same one-to-three-word phrase three times in a row.
_STUTTER_RE = re.compile(r"\b(\w+(?:\s+\w+){0,2})(?:\W+\1\b){2,}")


class RepetitionGuard:
    """Ends an answer that starts repeating itself, sentence by sentence.

    Small models decoding greedily loop ("LoRA is a method. LoRA is a method for ..."); banning repeated
    token n-grams (see ``streaming.NoRepeatAnswerNGram``) stops exact loops but not paraphrased ones, which
    ran one SmolLM2 answer to its full length (73 s on a CPU). A sentence whose words are mostly those of
    an earlier sentence of the same answer (``similarity``, Jaccard of lower-cased words) ends the answer.

    Text streams through at once, except a sentence whose first ``prefix_words`` words are those of an
    earlier sentence: it is held until it ends, then dropped if it repeats, released if not. So the pieces
    shown always join to the final answer.

        >>> g = RepetitionGuard()
        >>> g.feed("LoRA trains adapters. ") + g.feed("LoRA trains adapters again. More.") + g.flush()
        'LoRA trains adapters.'
        >>> g.stopped
        True
    """

    def __init__(self, *, similarity: float = 0.6, prefix_words: int = 3):
        self.similarity = similarity
        self.prefix_words = prefix_words
        self.stopped = False
        self._sentences: list[set[str]] = []
        self._starts: set[tuple[str, ...]] = set()
        self._current = ""  # the sentence being written: shown part + held part
        self._held = ""  # the part of it not shown yet
        self._decided = False  # whether the current sentence's start has been checked

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        out = []
        while piece:
            end = _SENTENCE_END_RE.search(piece)
            segment, piece = (piece, "") if end is None else (piece[: end.end()], piece[end.end() :])
            out.append(self._add(segment))
            if end is not None:
                out.append(self._finish())
                if self.stopped:
                    break
        return "".join(out)

    def flush(self) -> str:
        """The held text, once the producer has finished without a repetition."""
        if self.stopped:
            return ""
        held, self._held = self._held, ""
        return held

    def _add(self, segment: str) -> str:
        self._current += segment
        self._held += segment
        if _STUTTER_RE.search(self._current.lower()):
            # "pip is installed by default by default by default": a phrase repeated within the sentence.
            # What was shown of this sentence stays; nothing more is added.
            self.stopped = True
            self._held = ""
            return ""
        if self._decided:
            return "" if self._holding else self._release()
        words = _GUARD_WORD_RE.findall(self._current.lower())
        if len(words) < self.prefix_words:
            return ""
        self._decided = True
        self._holding = tuple(words[: self.prefix_words]) in self._starts
        return "" if self._holding else self._release()

    def _finish(self) -> str:
        words = _GUARD_WORD_RE.findall(self._current.lower())
        bag = set(words)
        repeats = len(words) >= self.prefix_words and any(
            len(bag & seen) / len(bag | seen) >= self.similarity for seen in self._sentences
        )
        if repeats:
            self.stopped = True
            self._held = ""
            return ""
        if words:
            self._sentences.append(bag)
            self._starts.add(tuple(words[: self.prefix_words]))
        out = self._release()
        self._current, self._decided, self._holding = "", False, False
        return out

    def _release(self) -> str:
        held, self._held = self._held, ""
        return held

    _holding = False
