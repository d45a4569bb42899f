"""Pieces every generator shares: argument checks and stop-string handling while streaming.

Pure Python (no torch, no httpx) so that the API and local generators, and their tests, use one
definition of "the answer ends before the first stop string".

    >>> m = StopMatcher(["\\nQ:"])
    >>> [m.feed("Paris.\\n"), m.feed("Q: next"), m.stopped]
    ['Paris.', '', True]
"""

from __future__ import annotations

from collections.abc import Sequence

from ragtune.errors import ConfigError

from .base import Message

ROLES = ("system", "user", "assistant")


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
