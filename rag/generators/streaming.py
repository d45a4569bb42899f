"""Turn ``model.generate`` into an iterator of text pieces, with as little overhead as possible.

``generate`` runs in a worker thread (torch releases the GIL while it computes) and hands each new
token id to :class:`TokenQueue`; the caller's thread turns ids into text with
:class:`IncrementalDecoder` while the next token is being computed. Nothing is decoded twice and
nothing waits for a word boundary, so the first piece arrives right after the first token.

Exceptions raised inside ``generate`` are re-raised in the caller's thread. Closing the iterator
early (a stop string, or the caller breaking out of its loop) sets a flag that ends ``generate`` at
its next token, and the worker is joined before the iterator returns.

This module imports torch and transformers; it is only imported once a model is loaded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from transformers.generation.streamers import BaseStreamer

_END = object()


class _Cancelled(Exception):
    """Raised inside ``generate`` (from the streamer) to end it once the caller stopped reading."""


class TokenQueue(BaseStreamer):
    """Receives token ids from ``generate`` (prompt first, which is skipped) and queues them.

    Cancelling through the streamer, rather than a StoppingCriteria, costs nothing per step: no
    extra tensor op or device sync on GPU.
    """

    def __init__(self, cancel: threading.Event) -> None:
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.cancel = cancel
        self._seen_prompt = False

    def put(self, value: Any) -> None:
        if self.cancel.is_set():
            raise _Cancelled
        if not self._seen_prompt:  # generate() first passes the whole prompt
            self._seen_prompt = True
            return
        self.queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.queue.put(_END)


class IncrementalDecoder:
    """Decode a growing list of token ids into text pieces whose concatenation is the full text.

    Decodes only a short window of recent ids each step (the prefix/read offsets used by TGI and
    vLLM), and holds back text that ends in an incomplete UTF-8 sequence (``\\ufffd``) until the
    following byte tokens complete it.
    """

    def __init__(self, decode: Callable[[list[int]], str]):
        self._decode = decode
        self.ids: list[int] = []
        self._prefix = 0  # start of the window re-decoded for context
        self._read = 0  # ids up to here have been emitted as text

    def add(self, ids: list[int]) -> str:
        self.ids.extend(ids)
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        new_text = self._decode(self.ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.ids)
            return new_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (possibly an incomplete character) once generation ended."""
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        new_text = self._decode(self.ids[self._prefix :])
        self._prefix = self._read = len(self.ids)
        return new_text[len(prefix_text) :] if len(new_text) > len(prefix_text) else ""


def stream_generate(
    model: Any,
    generate_kwargs: dict[str, Any],
    decode: Callable[[list[int]], str],
    on_error: Callable[[BaseException], BaseException],
) -> Iterator[str]:
    """Run ``model.generate(**generate_kwargs)`` in a thread and yield decoded text pieces.

    ``on_error`` maps an exception raised by ``generate`` to the one the caller should see.
    """
    cancel = threading.Event()
    tokens = TokenQueue(cancel)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            model.generate(**generate_kwargs, streamer=tokens)
        except _Cancelled:
            pass  # the caller has stopped reading; nobody waits for _END
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread below
            failure.append(e)
            tokens.queue.put(_END)

    worker = threading.Thread(target=work, name="ragtune-generate", daemon=True)
    decoder = IncrementalDecoder(decode)
    worker.start()
    try:
        while True:
            item = tokens.queue.get()
            if item is _END:
                break
            piece = decoder.add(item)
            if piece:
                yield piece
        if failure:
            raise on_error(failure[0]) from failure[0]
        tail = decoder.flush()
        if tail:
            yield tail
    finally:
        cancel.set()
        worker.join()


class NoRepeatAnswerNGram:
    """A logits processor: never produce an ``n``-gram the *answer* (tokens after the prompt) already holds.

    transformers' ``no_repeat_ngram_size`` also counts the prompt, which would stop a RAG answer from
    quoting its sources; this one looks at the generated tokens only.
    """

    def __init__(self, prompt_len: int, n: int):
        self.prompt_len = prompt_len
        self.n = n

    def __call__(self, input_ids, scores):
        for row in range(input_ids.shape[0]):
            answer = input_ids[row, self.prompt_len :].tolist()
            if len(answer) < self.n:
                continue
            prefix = tuple(answer[len(answer) - self.n + 1 :])
            banned = {
                answer[i + self.n - 1]
                for i in range(len(answer) - self.n + 1)
                if tuple(answer[i : i + self.n - 1]) == prefix
            }
            if banned:
                scores[row, list(banned)] = float("-inf")
        return scores
