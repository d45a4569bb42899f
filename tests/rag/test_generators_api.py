"""APIGenerator against a real HTTP server on loopback that speaks OpenAI's chat-completions protocol."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ragtune.errors import ConfigError, GeneratorError
from ragtune.rag.generators import APIGenerator
from ragtune.rag.generators.base import Generator

KEY_ENV = "RAGTUNE_TEST_API_KEY"
KEY = "sk-test-0123456789abcdef"
ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
ANSWER_PIECES = ["Hello", ",", " world", "!"]


class FakeOpenAI(BaseHTTPRequestHandler):
    """POST /v1/chat/completions for model "tiny-chat", key KEY; ``server.plan`` injects failures."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if server.plan:
            status, extra = server.plan.pop(0)
            if status == "sleep":
                time.sleep(extra)
            elif status == "stall_body":  # headers now, the body never
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.flush()
                time.sleep(extra)
                return None
            elif status == "garbage":
                return self._send(200, b"this is not json", "application/json")
            else:
                return self._send(status, json.dumps({"error": {"message": extra}}).encode(), "application/json",
                                  {"Retry-After": "0"} if status == 429 else {})
        if server.require_key and self.headers.get("Authorization") != f"Bearer {KEY}":
            # Real servers echo part of the key they got; this one echoes all of it.
            msg = f"Incorrect API key provided: {self.headers.get('Authorization', '')[7:]}"
            return self._send(401, json.dumps({"error": {"message": msg}}).encode(), "application/json")
        if self.path != "/v1/chat/completions" or body.get("model") != "tiny-chat":
            return self._send(404, json.dumps({"error": {"message": "model not found"}}).encode(),
                              "application/json")
        if not body.get("stream") or server.ignore_stream:
            reply = {"id": "c1", "object": "chat.completion", "model": "tiny-chat",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(ANSWER_PIECES)},
                                  "finish_reason": "stop"}]}
            return self._send(200, json.dumps(reply).encode(), "application/json")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
        events += [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in ANSWER_PIECES]
        events += [{"choices": [], "usage": {"completion_tokens": 4}}]
        self.wfile.write(b": keep-alive\n\n")
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def _send(self, status, payload, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # keep test output quiet
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that timed out and left is expected here
        pass


@pytest.fixture()
def server():
    srv = QuietServer(("127.0.0.1", 0), FakeOpenAI)
    srv.requests, srv.plan, srv.require_key, srv.ignore_stream = [], [], True, False
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def gen(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    g = APIGenerator(f"http://127.0.0.1:{server.server_port}/v1", "tiny-chat", api_key_env=KEY_ENV,
                     timeout=5, max_retries=2, backoff=0.01)
    yield g
    g.close()


def test_api_generator_satisfies_the_generator_protocol(gen):
    assert isinstance(gen, Generator)
    assert gen.name == "api:tiny-chat" and gen.context_window == 8192


def test_generate_sends_an_openai_request_with_the_key(gen, server):
    assert gen.generate(ASK, max_new_tokens=12, temperature=0.2) == "Hello, world!"
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == f"Bearer {KEY}"
    assert request["body"] == {"model": "tiny-chat", "messages": ASK, "max_tokens": 12, "temperature": 0.2,
                               "stream": False}


def test_stream_yields_the_server_sent_pieces(gen, server):
    pieces = list(gen.stream(ASK))
    assert pieces == ANSWER_PIECES
    assert server.requests[0]["body"]["stream"] is True


def test_server_that_ignores_stream_still_gives_the_answer(gen, server):
    server.ignore_stream = True
    assert list(gen.stream(ASK)) == ["Hello, world!"]


def test_stop_strings_are_sent_and_applied(gen, server):
    assert gen.generate(ASK, stop=[", w"]) == "Hello"
    assert "".join(gen.stream(ASK, stop=[" wor"])) == "Hello,"
    assert server.requests[0]["body"]["stop"] == [", w"]


def test_server_error_then_success_is_retried(gen, server):
    server.plan = [(500, "overloaded"), (429, "slow down")]
    assert gen.generate(ASK) == "Hello, world!"
    assert len(server.requests) == 3


def test_persistent_server_errors_give_up_after_max_retries(gen, server):
    server.plan = [(503, "down for maintenance")] * 5
    with pytest.raises(GeneratorError, match=r"HTTP 503.*3 attempt.*down for maintenance"):
        list(gen.stream(ASK))
    assert len(server.requests) == 3


def test_bad_key_names_the_env_var_and_never_shows_the_key(server, monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-abcdefgh")
    g = APIGenerator(f"http://127.0.0.1:{server.server_port}/v1", "tiny-chat", api_key_env=KEY_ENV)
    with caplog.at_level(logging.DEBUG), pytest.raises(GeneratorError) as err:
        g.generate(ASK)
    message = str(err.value)
    assert "HTTP 401" in message and KEY_ENV in message and "is set" in message
    assert "sk-wrong-key-abcdefgh" not in message + repr(g) + caplog.text
    assert len(server.requests) == 1  # a bad key is not retried


def test_missing_key_says_the_env_var_is_not_set(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    g = APIGenerator(f"http://127.0.0.1:{server.server_port}/v1", "tiny-chat", api_key_env=KEY_ENV)
    with pytest.raises(GeneratorError, match=f"{KEY_ENV} .it is not set"):
        g.generate(ASK)
    assert server.requests[0]["auth"] is None


def test_server_without_auth_works_with_no_key(server, monkeypatch):
    server.require_key = False
    monkeypatch.delenv(KEY_ENV, raising=False)
    g = APIGenerator(f"http://127.0.0.1:{server.server_port}/v1/", "tiny-chat", api_key_env=KEY_ENV)
    assert g.generate(ASK) == "Hello, world!"


def test_unreachable_server_fails_fast_with_the_url(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    g = APIGenerator(f"http://127.0.0.1:{port}/v1", "tiny-chat", timeout=2, max_retries=1, backoff=0.01)
    start = time.monotonic()
    with pytest.raises(GeneratorError, match=rf"Could not reach the API at http://127.0.0.1:{port}/v1.*running"):
        g.generate(ASK)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("stall, message", [
    ("sleep", "did not answer within 0.3 s"),  # no response at all
    ("stall_body", "broke while reading the answer"),  # headers arrive, the body never does
])
def test_a_server_that_stalls_times_out_with_a_clear_error(gen, server, stall, message):
    gen.timeout, gen.max_retries = 0.3, 0
    gen.close()
    server.plan = [(stall, 1.0)]
    with pytest.raises(GeneratorError, match=message):
        gen.generate(ASK)


def test_unknown_model_is_a_404_error_naming_it(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    g = APIGenerator(f"http://127.0.0.1:{server.server_port}/v1", "no-such-model", api_key_env=KEY_ENV)
    with pytest.raises(GeneratorError, match="404.*'no-such-model'.*model not found"):
        g.generate(ASK)


def test_malformed_response_is_a_generator_error(gen, server):
    server.plan = [("garbage", None)]
    with pytest.raises(GeneratorError, match="not an OpenAI chat completion"):
        gen.generate(ASK)


def test_token_counts_are_an_estimate_of_four_chars_per_token(gen):
    assert gen.count_tokens("abcd" * 10) == 10
    assert gen.count_message_tokens(ASK) == (3 + 4) + (3 + 4) + 3


def test_invalid_settings_are_config_errors():
    with pytest.raises(ConfigError, match="base_url"):
        APIGenerator("localhost:8000", "m")
    with pytest.raises(ConfigError, match="timeout"):
        APIGenerator("http://localhost:8000/v1", "m", timeout=0)
    with pytest.raises(ConfigError, match="max_retries"):
        APIGenerator("http://localhost:8000/v1", "m", max_retries=-1)


def test_credentials_in_the_url_stay_out_of_messages():
    g = APIGenerator("http://user:secret@127.0.0.1:9/v1", "m")
    assert "secret" not in repr(g) and "secret" not in g.display_url


def test_token_counts_use_a_local_tokenizer_when_given(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    vocab = {"[UNK]": 0, "say": 1, "hello": 2}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path)
    g = APIGenerator("http://127.0.0.1:9/v1", "m", tokenizer_path=tmp_path)
    assert g.count_tokens("say hello hello") == 3  # the estimate would say 4
