"""Generators: what turns a prompt into an answer. One :class:`Generator` protocol, three kinds.

- ``local``: a transformers causal LM on this machine (default: the shipped SmolLM2-135M-Instruct),
  optionally with a LoRA adapter from ``tune/`` (:class:`~ragtune.rag.generators.local.LocalGenerator`);
- ``api``: any OpenAI-compatible chat endpoint, hosted or local (vLLM, llama.cpp, Ollama)
  (:class:`~ragtune.rag.generators.api.APIGenerator`);
- ``extractive``: no LLM at all; answers with the best-matching retrieved sentences.

    >>> gen = load_generator({"kind": "api", "base_url": "http://localhost:8000/v1",
    ...                       "model": "qwen2.5-7b-instruct", "api_key_env": "VLLM_KEY"})
    >>> gen.name
    'api:qwen2.5-7b-instruct'
    >>> load_generator("local").name
    'local:SmolLM2-135M-Instruct'

Importing this package is cheap: torch, transformers and httpx load only when a model is used.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any

from ragtune.errors import ConfigError

from .adapters import is_scale
from .api import APIGenerator
from .base import Generator, Message
from .local import DEVICE_RE, DTYPES, LocalGenerator

KINDS = ("local", "api", "extractive")

__all__ = ["APIGenerator", "Generator", "GeneratorConfig", "LocalGenerator", "Message", "load_generator"]


@dataclass
class GeneratorConfig:
    """Everything needed to build a generator; saved next to what it produced, so a run is reproducible.

    Fields unused by a kind are ignored (``base_url`` for ``local``), so one file can switch kinds; an
    ``adapter`` with any kind but ``local`` is refused (it would be silently unused).
    """

    kind: str = "local"  # "local" | "api" | "extractive"
    # local
    model_path: str | None = None  # model folder or .gguf file; None = the shipped SmolLM2
    adapter: str | None = None  # peft LoRA adapter folder attached at load time
    adapter_scale: float = 1.0  # the adapter's strength: 1 as trained, 0 the base model (WiSE-FT in between)
    device: str | None = None  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    dtype: str | None = None  # "auto" | "float32" | "bfloat16" | "float16"
    load_in_4bit: bool = False  # bitsandbytes 4-bit weights, CUDA only
    # api
    base_url: str | None = None  # e.g. "https://api.openai.com/v1", "http://localhost:11434/v1"
    model: str | None = None  # the served model's name
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the key (never the key)
    timeout: float = 60.0  # seconds per request
    max_retries: int = 2  # extra attempts on connection errors, 429 and 5xx
    tokenizer_path: str | None = None  # a local tokenizer folder for exact API token counts
    # both
    context_window: int | None = None  # override: tokens the model accepts (api default 8192)

    def __post_init__(self) -> None:
        for name in ("model_path", "adapter", "tokenizer_path"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(self, name, os.fspath(value))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("kind", "api_key_env"):
                ok = isinstance(value, str) and bool(value)
            elif f.name in ("timeout",):
                ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0
            elif f.name in ("max_retries",):
                ok = not isinstance(value, bool) and isinstance(value, int) and value >= 0
            elif f.name == "context_window":
                ok = value is None or (not isinstance(value, bool) and isinstance(value, int) and value >= 16)
            elif f.name == "adapter_scale":
                ok = is_scale(value)
            elif f.name == "load_in_4bit":
                ok = isinstance(value, bool)
            else:
                ok = value is None or (isinstance(value, str) and bool(value))
            if not ok:
                raise ConfigError(f"generator setting {f.name}={value!r} is invalid ({_EXPECTED[f.name]})")
        if self.kind not in KINDS:
            raise ConfigError(f"generator kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.device is not None and not DEVICE_RE.match(self.device):
            raise ConfigError(f"generator setting device={self.device!r} is invalid ({_EXPECTED['device']})")
        if self.dtype is not None and self.dtype != "auto" and self.dtype not in DTYPES:
            raise ConfigError(f"generator setting dtype={self.dtype!r} is invalid ({_EXPECTED['dtype']})")
        if self.kind == "api":
            missing = [n for n in ("base_url", "model") if getattr(self, n) is None]
            if missing:
                raise ConfigError(f"an 'api' generator needs {' and '.join(missing)} "
                                  "(e.g. base_url='http://localhost:8000/v1', model='my-model')")
            if self.adapter is not None:
                raise ConfigError("adapter applies to 'local' generators only; an API serves its own weights")
        if self.kind == "extractive" and self.adapter is not None:
            raise ConfigError("adapter applies to 'local' generators only; the extractive generator has no model "
                              "(use kind='local' to answer with the adapter)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a generator config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown generator setting(s) {', '.join(unknown)}; "
                              f"valid ones are {', '.join(sorted(known))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_EXPECTED = {
    "kind": f"one of {', '.join(KINDS)}",
    "model_path": "a model folder or .gguf file path",
    "adapter": "a LoRA adapter folder path",
    "adapter_scale": "a number from 0 (the base model) to 2; 1 is the adapter as trained",
    "device": "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'",
    "dtype": "'auto', 'float32', 'bfloat16' or 'float16'",
    "load_in_4bit": "true or false",
    "base_url": "an http(s) URL",
    "model": "the served model's name",
    "api_key_env": "the name of an environment variable",
    "timeout": "a positive number of seconds",
    "max_retries": "an integer >= 0",
    "tokenizer_path": "a tokenizer folder path",
    "context_window": "an integer >= 16",
}


def load_generator(config: dict[str, Any] | GeneratorConfig | str) -> Generator:
    """Build the generator ``config`` describes; models load lazily, on first use.

    ``config`` is a :class:`GeneratorConfig`, a dict of its fields, or a string: a kind
    (``"local"``, ``"extractive"``) or ``"local:PATH"`` for a local model folder or .gguf file.
    """
    if isinstance(config, str):
        kind, _, path = config.partition(":")
        if path and kind != "local":
            raise ConfigError(f"only 'local:PATH' takes a value after ':', got {config!r}")
        config = GeneratorConfig(kind=kind.strip(), model_path=path or None)
    elif isinstance(config, dict):
        config = GeneratorConfig.from_dict(config)
    elif not isinstance(config, GeneratorConfig):
        raise ConfigError(f"load_generator takes a GeneratorConfig, dict or str, got {type(config).__name__}")

    if config.kind == "extractive":
        from .extractive import ExtractiveGenerator

        return ExtractiveGenerator()
    if config.kind == "api":
        return APIGenerator(
            config.base_url, config.model, config.api_key_env, config.timeout, config.max_retries,
            context_window=config.context_window or 8192, tokenizer_path=config.tokenizer_path,
        )
    return LocalGenerator(
        config.model_path, config.adapter, config.device, config.dtype,
        load_in_4bit=config.load_in_4bit, context_window=config.context_window, adapter_scale=config.adapter_scale,
    )
