"""The one generator interface: stream tokens from chat messages.

Local (transformers + optional LoRA), API (OpenAI-compatible) and extractive generators all satisfy
:class:`Generator`, so ``rag.answer`` never needs to know which one it talks to.

    >>> gen = load_generator({"kind": "extractive"})            # doctest: +SKIP
    >>> "".join(gen.stream([{"role": "user", "content": "Hi"}]))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@runtime_checkable
class Generator(Protocol):
    name: str  # e.g. "local:SmolLM2-135M-Instruct", "api:gpt-4o-mini", "extractive"
    context_window: int  # tokens the model accepts, prompt and answer together

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's tokenizer (an estimate for API models)."""
        ...

    def count_message_tokens(self, messages: list[Message]) -> int:
        """Tokens the whole formatted prompt takes, chat template included."""
        ...

    def stream(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Yield the answer's text piece by piece as it is produced."""
        ...

    def generate(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> str:
        """The whole answer at once (``"".join(self.stream(...))``)."""
        ...
