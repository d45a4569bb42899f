"""Any OpenAI-compatible chat-completions endpoint: OpenAI, vLLM, llama.cpp server, Ollama, ...

    >>> gen = APIGenerator("http://localhost:11434/v1", "llama3.2")      # doctest: +SKIP
    >>> for piece in gen.stream([{"role": "user", "content": "Hi"}]):     # doctest: +SKIP
    ...     print(piece, end="")

The key is read from the environment variable ``api_key_env`` at each request and sent only in the
``Authorization`` header: it is never stored on the object, logged, or shown in an error (server
messages are scrubbed of it). Local servers that need no key work with the variable unset.

Transient failures (connection errors, timeouts, HTTP 429 and 5xx) are retried with exponential
backoff, honouring ``Retry-After``; everything else becomes a :class:`GeneratorError` that says what
to check. Token counts are an estimate (4 characters a token) unless ``tokenizer_path`` names a
local tokenizer folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ragtune.errors import ConfigError, GeneratorError, ModelLoadError

from .base import Message
from .common import GeneratorBase, StopMatcher, check_messages

log = logging.getLogger(__name__)

MAX_SERVER_STOPS = 4  # OpenAI accepts at most 4 stop sequences; the rest are applied here


class APIGenerator(GeneratorBase):
    """Chat with a model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    ``base_url`` is the API root, usually ending in ``/v1`` (a URL ending in ``/chat/completions``
    is used as is). ``timeout`` is in seconds per request; ``max_retries`` extra attempts are made
    on transient failures, waiting ``backoff * 2**attempt`` seconds between them.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60,
        max_retries: int = 2,
        *,
        context_window: int = 8192,
        tokenizer_path: str | os.PathLike | None = None,
        backoff: float = 0.5,
    ):
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"base_url must be an http(s) URL such as http://localhost:8000/v1, got {base_url!r}")
        if not isinstance(model, str) or not model.strip():
            raise ConfigError("model must name the served model, e.g. 'gpt-4o-mini' or 'llama3.2'")
        if not isinstance(api_key_env, str) or not api_key_env.strip():
            raise ConfigError(f"api_key_env must name an environment variable, got {api_key_env!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if isinstance(context_window, bool) or not isinstance(context_window, int) or context_window < 16:
            raise ConfigError(f"context_window must be an integer >= 16, got {context_window!r}")
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        # What errors show: the URL without any user:password@ part.
        p = urlsplit(self.url)
        host = p.hostname or ""
        host = f"[{host}]" if ":" in host else host
        try:
            port = f":{p.port}" if p.port else ""
        except ValueError:
            raise ConfigError(f"base_url has an invalid port: {base_url!r}") from None
        self.display_url = urlunsplit((p.scheme, host + port, p.path, "", ""))
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.context_window = context_window
        self.tokenizer_path = tokenizer_path
        self.name = f"api:{model}"
        self._client: Any = None
        self._tokenizer: Any = None

    def __repr__(self) -> str:
        return f"APIGenerator(base_url={self.display_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> APIGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- counting
    def count_tokens(self, text: str) -> int:
        if self.tokenizer_path is not None:
            return len(self._local_tokenizer().encode(text, add_special_tokens=False))
        return math.ceil(len(text) / 4)

    def count_message_tokens(self, messages: list[Message]) -> int:
        # ~4 tokens of framing per message and 3 to prime the reply, as in OpenAI's cookbook.
        return sum(self.count_tokens(m["content"]) + 4 for m in check_messages(messages)) + 3

    def _local_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer_path), local_files_only=True)
            except Exception as e:
                raise ModelLoadError(f"Could not load the tokenizer in {self.tokenizer_path}: {e}") from e
        return self._tokenizer

    # -------------------------------------------------------------------------------- generation
    def _generate(self, messages: list[Message], max_new_tokens: int, temperature: float, stops: list[str]) -> str:
        # One non-streaming request: the same text as joining the stream, without the server-sent events.
        response = self._send(self._payload(messages, max_new_tokens, temperature, stops, stream=False))
        try:
            text = self._content_of(self._json_of(response))
        finally:
            response.close()
        matcher = StopMatcher(stops)
        return matcher.feed(text) + matcher.flush()

    def _stream(self, messages: list[Message], max_new_tokens: int, temperature: float,
                stops: list[str]) -> Iterator[str]:
        """Yield the answer as the server streams it (server-sent events)."""
        response = self._send(self._payload(messages, max_new_tokens, temperature, stops, stream=True))
        matcher = StopMatcher(stops)
        try:
            if "application/json" in response.headers.get("content-type", ""):
                pieces: Iterator[str] = iter([self._content_of(self._json_of(response))])  # server ignored stream
            else:
                pieces = self._sse_pieces(response)
            for piece in pieces:
                text = matcher.feed(piece)
                if text:
                    yield text
                if matcher.stopped:
                    return  # closing the response ends the server's generation too
            tail = matcher.flush()
            if tail:
                yield tail
        finally:
            response.close()

    def _sse_pieces(self, response: Any) -> Iterator[str]:
        import httpx

        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, ": keep-alive" comments, "event:" / "id:" fields
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise self._malformed("an event is not JSON", data) from None
                if not isinstance(event, dict):
                    raise self._malformed("an event is not a JSON object", data)
                if event.get("error"):
                    raise GeneratorError(f"The API at {self.display_url} reported an error mid-answer: "
                                         f"{self._server_message(data)}")
                choices = event.get("choices") or []  # the final usage event has none
                if choices and isinstance(choices[0], dict):
                    content = (choices[0].get("delta") or {}).get("content")
                    if content:
                        yield content
        except httpx.TransportError as e:
            raise GeneratorError(f"The connection to {self.display_url} broke mid-answer ({type(e).__name__}); "
                                 "try again.") from e

    def _payload(self, messages: list[Message], max_new_tokens: int, temperature: float, stops: list[str],
                 *, stream: bool) -> dict:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens,
                                   "temperature": float(temperature), "stream": stream}
        if stops:
            payload["stop"] = stops[:MAX_SERVER_STOPS]
        return payload

    # ------------------------------------------------------------------------------------- HTTP
    def _send(self, payload: dict) -> Any:
        """POST with retries; return the open response (status 200) or raise GeneratorError."""
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)))
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            wait = self.backoff * 2**attempt
            try:
                request = self._client.build_request("POST", self.url, json=payload, headers=self._headers())
                response = self._client.send(request, stream=True)
            except httpx.TimeoutException as e:
                failure = GeneratorError(
                    f"The API at {self.display_url} did not answer within {self.timeout:g} s "
                    f"({attempts} attempt(s)). Check that the server is up, or raise the timeout."
                )
                cause: BaseException = e
            except httpx.TransportError as e:
                failure = GeneratorError(
                    f"Could not reach the API at {self.display_url} ({type(e).__name__}: {self._scrub(str(e))}) "
                    f"after {attempts} attempt(s). Check that the server is running and that base_url is "
                    "right (OpenAI-compatible servers usually end in /v1, e.g. http://localhost:8000/v1)."
                )
                cause = e
            else:
                if response.status_code == 200:
                    return response
                body = response.read().decode("utf-8", "replace")
                response.close()
                failure = self._http_error(response.status_code, body, attempts)
                cause = failure
                if response.status_code != 429 and response.status_code < 500:
                    raise failure
                wait = self._retry_after(response.headers.get("retry-after"), wait)
            if attempt + 1 < attempts:
                log.info("API %s failed (%s); retrying in %.1f s (%d/%d)", self.display_url,
                         type(cause).__name__, wait, attempt + 1, self.max_retries)
                time.sleep(wait)
        raise failure from (cause if cause is not failure else None)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _http_error(self, status: int, body: str, attempts: int) -> GeneratorError:
        said = self._server_message(body)
        if status in (401, 403):
            state = "is set" if os.environ.get(self.api_key_env) else "is not set"
            return GeneratorError(
                f"The API at {self.display_url} rejected the API key (HTTP {status}). Put a valid key in the "
                f"environment variable {self.api_key_env} (it {state})."
            )
        if status == 404:
            return GeneratorError(
                f"The API at {self.display_url} answered HTTP 404: the model {self.model!r} or the path was not "
                f"found. Check the model name and base_url (it usually ends in /v1). Server said: {said}"
            )
        if status == 429 or status >= 500:
            return GeneratorError(f"The API at {self.display_url} kept failing (HTTP {status}) after {attempts} "
                                  f"attempt(s): {said}. Try again later.")
        return GeneratorError(f"The API at {self.display_url} refused the request (HTTP {status}): {said}")

    @staticmethod
    def _retry_after(header: str | None, default: float) -> float:
        try:
            return min(max(float(header), 0.0), 30.0) if header else default
        except ValueError:  # an HTTP date; not worth parsing
            return default

    # ---------------------------------------------------------------------------------- parsing
    def _json_of(self, response: Any) -> Any:
        import httpx

        try:
            text = response.read().decode("utf-8", "replace")
        except httpx.TransportError as e:
            raise GeneratorError(f"The connection to {self.display_url} broke while reading the answer "
                                 f"({type(e).__name__}); try again, or raise the timeout.") from e
        try:
            return json.loads(text)
        except ValueError:
            raise self._malformed("the body is not JSON", text) from None

    def _content_of(self, body: Any) -> str:
        try:
            message = body["choices"][0]["message"]
            content = message.get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._malformed("no choices[0].message", json.dumps(body)[:200]) from None
        if content is not None and not isinstance(content, str):
            raise self._malformed("message content is not text", json.dumps(body)[:200])
        return content or ""

    def _malformed(self, why: str, snippet: str) -> GeneratorError:
        return GeneratorError(f"The API at {self.display_url} sent a response that is not an OpenAI chat "
                              f"completion ({why}): {self._scrub(snippet)[:200]!r}")

    def _server_message(self, body: str) -> str:
        """The error message inside a server's JSON error body (or the body itself), key scrubbed."""
        try:
            data = json.loads(body)
            error = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
            if isinstance(error, dict):
                error = error.get("message", error)
            text = error if isinstance(error, str) else json.dumps(error)
        except ValueError:
            text = body
        return self._scrub(" ".join(text.split()))[:300] or "(empty body)"

    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.api_key_env)
        return text.replace(key, "***") if key and len(key) >= 4 else text
