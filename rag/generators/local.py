"""A transformers causal LM on this machine, with LoRA adapters that switch without reloading.

    >>> gen = LocalGenerator()                                  # doctest: +SKIP  (shipped SmolLM2)
    >>> for piece in gen.stream([{"role": "user", "content": "What is RAG?"}]):  # doctest: +SKIP
    ...     print(piece, end="", flush=True)
    >>> gen.load_adapter("runs/support-bot/adapter")             # doctest: +SKIP  (now answers with it)
    >>> gen.set_adapter(None)                                    # doctest: +SKIP  (base model again)

Construction is cheap; the model loads on ``warm_up()`` or on first use. CUDA with bf16 (fp16 where
bf16 is unsupported) is used when available, CPU float32 otherwise. Prompts are formatted with the
model's chat template. Not thread-safe: use one generator per thread, or serialise calls.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError, GeneratorError, ModelLoadError, PromptTooLongError

from .base import Message
from .common import GeneratorBase, RepetitionGuard, StopMatcher, check_messages
from .models import DEFAULT_MODEL_NAME, resolve_model_path

log = logging.getLogger(__name__)

DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
          "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# For model folders without a chat template (base models): plain "role: content" turns.
_PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)


class LocalGenerator(GeneratorBase):
    """Generate with a local transformers model; see the module docstring for an example.

    ``default_max_new_tokens`` (128) is the answer length ``RAG`` uses when none is given: a grounded
    answer is one to three sentences, and on a CPU every token of SmolLM2-135M costs ~0.1-0.3 s, so the
    old 256 let one looping answer run for over a minute.

    ``model_path``: a model folder (``save_pretrained`` layout) or a ``.gguf`` file; ``None`` is the
    shipped SmolLM2-135M-Instruct. ``adapter``: a peft LoRA folder attached at load time, at strength
    ``adapter_scale`` (1: as trained; 0.5: halfway between the base and the fine-tuned model, see
    :meth:`set_adapter_scale`).
    ``device``: "auto" (default), "cpu", "cuda", "cuda:N" or "mps". ``dtype``: "auto" (default),
    "float32", "bfloat16" or "float16". ``load_in_4bit``: bitsandbytes 4-bit weights (CUDA only).
    ``context_window``: overrides the model config's ``max_position_embeddings``.
    """

    default_max_new_tokens = 128

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        adapter: str | os.PathLike | None = None,
        device: str | None = None,
        dtype: Any = None,
        *,
        adapter_scale: float = 1.0,
        load_in_4bit: bool = False,
        context_window: int | None = None,
        no_repeat_ngram: int = 5,
        stop_on_repetition: bool = True,
    ):
        if model_path is not None and not Path(model_path).expanduser().exists():
            raise ModelLoadError(f"Model path {model_path} does not exist. Pass a model folder or a .gguf file.")
        if adapter is not None and not Path(adapter).expanduser().exists():
            raise ModelLoadError(f"Adapter directory {adapter} does not exist.")
        from .adapters import check_scale

        self.initial_adapter_scale = check_scale(adapter_scale)
        if device is not None and not (isinstance(device, str) and DEVICE_RE.match(device)):
            raise ConfigError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
        torch_dtype = type(dtype).__module__ == "torch" and type(dtype).__name__ == "dtype"
        if dtype not in (None, "auto") and not torch_dtype and not (isinstance(dtype, str) and dtype in DTYPES):
            choices = ", ".join(sorted(set(DTYPES.values())))
            raise ConfigError(f"dtype must be 'auto' or one of {choices}, got {dtype!r}")
        if context_window is not None and (not isinstance(context_window, int) or context_window < 16):
            raise ConfigError(f"context_window must be an integer >= 16, got {context_window!r}")
        if not isinstance(no_repeat_ngram, int) or no_repeat_ngram < 0 or no_repeat_ngram == 1:
            raise ConfigError(f"no_repeat_ngram must be 0 (off) or an integer >= 2, got {no_repeat_ngram!r}")
        # Small models decoding greedily fall into loops ("X is a version of X. X is a version of X.").
        # Forbidding an n-gram the answer already produced stops that; unlike transformers'
        # no_repeat_ngram_size it ignores the prompt, so quoting the retrieved passages stays possible.
        self.no_repeat_ngram = no_repeat_ngram
        # Paraphrased loops get past the n-gram ban: a sentence that repeats an earlier one ends the answer.
        self.stop_on_repetition = bool(stop_on_repetition)
        self.model_path = None if model_path is None else Path(model_path).expanduser()
        self.initial_adapter = None if adapter is None else Path(adapter).expanduser()
        self.requested_device = device or "auto"
        self.requested_dtype = dtype or "auto"
        self.load_in_4bit = bool(load_in_4bit)
        self._context_window = context_window
        self._model: Any = None
        self._tokenizer: Any = None
        self._resolved: Path | None = None
        self._in_memory = False  # from_loaded: no model folder to check adapters against
        self._eos_ids: list[int] = []
        self._adapters: dict[str, Path] = {}
        self._scales: dict[str, float] = {}
        self._active: str | None = None

    @classmethod
    def from_loaded(cls, model: Any, tokenizer: Any, **options: Any) -> LocalGenerator:
        """A generator around a model and tokenizer already in memory (for example the model being fine-tuned),
        decoding exactly as one loaded from disk does (stop ids, n-gram ban, repetition stop). ``options`` are
        the constructor's decoding options; nothing is read from disk and no adapter is attached."""
        gen = cls(**options)
        gen._model, gen._tokenizer = model, tokenizer
        gen._in_memory = True
        gen._eos_ids = gen._find_eos_ids()
        return gen

    def __repr__(self) -> str:
        return f"LocalGenerator(model={str(self.model_path or DEFAULT_MODEL_NAME)!r}, device={self.requested_device!r})"

    # ----------------------------------------------------------------------------------- loading
    @property
    def name(self) -> str:
        base = self.model_path.name if self.model_path is not None else DEFAULT_MODEL_NAME
        scale = self._scales.get(self._active, 1.0) if self._active else 1.0
        return f"local:{base}" + (f"+{self._active}" if self._active else "") + (f"@{scale:g}" if scale != 1 else "")

    @property
    def model(self) -> Any:
        """The transformers model (loads it on first access); adapters are attached to it in place."""
        self.warm_up()
        return self._model

    @property
    def tokenizer(self) -> Any:
        self._ensure_tokenizer()
        return self._tokenizer

    @property
    def loaded(self) -> bool:
        """Whether the model weights are in memory yet (construction never loads them)."""
        return self._model is not None

    @property
    def device(self) -> str:
        return str(self.model.device)

    def warm_up(self) -> None:
        """Load the tokenizer, the model and the initial adapter, once."""
        if self._model is not None:
            return
        self._ensure_tokenizer()
        self._model = self._load_model(self._model_dir())
        self._eos_ids = self._find_eos_ids()
        if self.initial_adapter is not None:
            try:
                self.load_adapter(self.initial_adapter, scale=self.initial_adapter_scale)
            except Exception:
                self._model = None  # never answer silently without the adapter that was asked for
                raise

    def _model_dir(self) -> Path:
        if self._resolved is None:
            self._resolved = resolve_model_path(self.model_path)
        return self._resolved

    def _ensure_tokenizer(self) -> None:
        if self._tokenizer is not None:
            return
        from transformers import AutoTokenizer

        path = self._model_dir()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as e:
            raise ModelLoadError(f"Could not load the tokenizer in {path}: {type(e).__name__}: {e}") from e
        if not getattr(tokenizer, "chat_template", None):
            log.warning("%s has no chat template; formatting prompts as plain 'Role: content' turns.", path)
            tokenizer.chat_template = _PLAIN_TEMPLATE
        self._tokenizer = tokenizer

    def _load_model(self, path: Path) -> Any:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM

        device, dtype = self._pick_device_and_dtype(torch)
        kwargs: dict[str, Any] = {"local_files_only": True}
        # transformers renamed torch_dtype to dtype in 4.56
        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        kwargs["dtype" if (major, minor) >= (4, 56) else "torch_dtype"] = dtype
        if self.load_in_4bit:
            kwargs["quantization_config"] = self._bnb_config(torch, device, dtype)
        if device != "cpu":
            kwargs["device_map"] = {"": device}
        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every load
        try:
            model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        except Exception as e:
            raise ModelLoadError(f"Could not load the model in {path}: {type(e).__name__}: {e}") from e
        model.eval()
        log.info("Loaded %s on %s (%s)", path, device, dtype)
        return model

    def _pick_device_and_dtype(self, torch: Any) -> tuple[str, Any]:
        device = self.requested_device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"device={device!r} was asked for but CUDA is not available; use device='cpu'.")
        dtype = self.requested_dtype
        if isinstance(dtype, str) and dtype != "auto":
            dtype = getattr(torch, DTYPES[dtype])
        elif dtype == "auto":
            if device.startswith("cuda"):
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                dtype = torch.float32
        return device, dtype

    def _bnb_config(self, torch: Any, device: str, dtype: Any) -> Any:
        if not device.startswith("cuda"):
            raise ModelLoadError(
                "load_in_4bit needs a CUDA GPU (bitsandbytes 4-bit kernels), and none is in use here. "
                "Drop load_in_4bit to load the model unquantised."
            )
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as e:
            raise ModelLoadError(
                f"load_in_4bit needs bitsandbytes: pip install 'ragtune[gpu]' ({e})"
            ) from e
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)

    def _find_eos_ids(self) -> list[int]:
        """Every id that ends a turn: the generation config's and the tokenizer's end-of-sequence."""
        ids = self._model.generation_config.eos_token_id
        ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
        if self._tokenizer.eos_token_id is not None and self._tokenizer.eos_token_id not in ids:
            ids.append(self._tokenizer.eos_token_id)
        return ids

    # ---------------------------------------------------------------------------------- counting
    @property
    def context_window(self) -> int:
        """Tokens the model accepts, prompt and answer together (the config's max_position_embeddings)."""
        if self._context_window is None:
            if self._model is not None:
                config = self._model.config.to_dict()
            else:  # read the config file only: no need to load the weights for this
                config = json.loads((self._model_dir() / "config.json").read_text())
            config = config.get("text_config", config)
            found = next((config[k] for k in ("max_position_embeddings", "n_positions", "max_sequence_length")
                          if isinstance(config.get(k), int)), None)
            self._context_window = found or 2048
        return self._context_window

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def count_message_tokens(self, messages: list[Message]) -> int:
        return len(self._prompt_ids(check_messages(messages)))

    def _prompt_ids(self, messages: list[Message]) -> list[int]:
        tokenizer = self.tokenizer
        try:
            prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as e:  # e.g. a template that rejects a system message
            raise GeneratorError(f"The chat template of {self.name} rejected these messages: {e}") from e
        # The template already writes any BOS/special tokens the model expects.
        return tokenizer.encode(prompt, add_special_tokens=False)

    # -------------------------------------------------------------------------------- generation
    def _stream(self, messages: list[Message], max_new_tokens: int, temperature: float,
                stops: list[str]) -> Iterator[str]:
        import torch

        from .streaming import stream_generate

        model = self.model
        ids = self._prompt_ids(messages)
        room = self.context_window - len(ids)
        if room < 1:
            raise PromptTooLongError(
                f"The prompt takes {len(ids)} tokens but {self.name} accepts {self.context_window}; "
                "shorten it (fewer or shorter passages, or a shorter question)."
            )
        input_ids = torch.tensor([ids], device=model.device)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": min(max_new_tokens, room),
            "eos_token_id": self._eos_ids or None,
            "pad_token_id": self._pad_id(),
        }
        if self.no_repeat_ngram:
            from transformers import LogitsProcessorList

            from .streaming import NoRepeatAnswerNGram

            kwargs["logits_processor"] = LogitsProcessorList([NoRepeatAnswerNGram(len(ids), self.no_repeat_ngram)])
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
        else:  # greedy; clear sampling knobs a model's generation_config may set, to avoid warnings
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        tokenizer = self._tokenizer

        def decode(token_ids: list[int]) -> str:
            return tokenizer.decode(token_ids, skip_special_tokens=True)

        def as_generator_error(e: BaseException) -> BaseException:
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                return e
            return GeneratorError(f"Generation with {self.name} failed: {type(e).__name__}: {e}")

        pieces = stream_generate(model, kwargs, decode, as_generator_error)
        matcher = StopMatcher(stops)
        guard = RepetitionGuard() if self.stop_on_repetition else None
        try:
            for piece in pieces:
                text = matcher.feed(piece)
                if guard is not None:
                    text = guard.feed(text)
                if text:
                    yield text
                if matcher.stopped or (guard is not None and guard.stopped):
                    return
            tail = matcher.flush()
            if guard is not None:
                tail = guard.feed(tail) + guard.flush()
            if tail:
                yield tail
        finally:
            pieces.close()  # stops and joins the worker thread when we end early

    def _pad_id(self) -> int | None:
        pad = self._model.generation_config.pad_token_id
        if pad is None:
            pad = self._tokenizer.pad_token_id
        if pad is None and self._eos_ids:
            pad = self._eos_ids[0]
        return pad

    # ---------------------------------------------------------------------------------- adapters
    @property
    def adapters(self) -> list[str]:
        """Names of the attached adapters, in load order."""
        return list(self._adapters)

    @property
    def active_adapter(self) -> str | None:
        """The adapter in use, or None when the base model answers."""
        return self._active

    def load_adapter(self, path: str | os.PathLike, name: str | None = None, *, activate: bool = True,
                     scale: float = 1.0) -> str:
        """Attach a peft LoRA adapter folder to the loaded base model and (by default) switch to it.

        Returns the adapter's name (default: the folder's name). ``scale``: its strength, as in
        :meth:`set_adapter_scale`. Raises ModelLoadError naming the folder when it is not a peft adapter or
        does not fit this base model, and ModelMismatchError when ``ragtune tune run`` recorded another base
        model's fingerprint for it.
        """
        from .adapters import attach_adapter, check_adapter_dir, check_base, check_scale, detach_adapter, scale_adapter

        scale = check_scale(scale, "scale")
        path = check_adapter_dir(path)
        if not self._in_memory:  # same shapes on another base would load and answer nonsense
            check_base(path, self._model_dir())
        name = name if name is not None else re.sub(r"[^A-Za-z0-9_-]", "_", path.name) or "adapter"
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ConfigError(f"adapter name must use letters, digits, '_' or '-', got {name!r}")
        if name in self._adapters:
            raise ConfigError(f"An adapter named {name!r} is already attached; unload_adapter({name!r}) first "
                              "or pass another name=.")
        self.warm_up()
        try:
            attach_adapter(self._model, path, name)
        except ModelLoadError:
            self.set_adapter(self._active)  # a failed injection may have touched which adapter is on
            raise
        if scale != 1:
            try:
                scale_adapter(self._model, name, scale)
            except ConfigError:  # e.g. not a LoRA-family adapter: never keep it at a strength not asked for
                detach_adapter(self._model, name)
                self.set_adapter(self._active)
                raise
        self._adapters[name] = path
        self._scales[name] = scale
        self.set_adapter(name if activate else self._active)
        return name

    def set_adapter(self, name: str | None) -> None:
        """Answer with adapter ``name``, or with the base model when ``name`` is None (nothing reloads)."""
        if name is not None:
            self._check_attached(name)
        if self._adapters:  # peft layers exist only once an adapter was attached
            if name is None:
                self._model.disable_adapters()
            else:
                self._model.enable_adapters()
                self._model.set_adapter(name)
        self._active = name

    def adapter_scale(self, name: str) -> float:
        """The strength adapter ``name`` answers with (1 unless :meth:`set_adapter_scale` changed it)."""
        self._check_attached(name)
        return self._scales[name]

    def set_adapter_scale(self, name: str, scale: float) -> None:
        """Answer with adapter ``name``'s update multiplied by ``scale``, from 0 (the base model) to 2.

        Between 0 and 1 this interpolates the base and the fine-tuned weights (WiSE-FT, Wortsman et al.
        2022): a fine-tuned model is often best on data like its training data at 1 and more robust on other
        data somewhat below 1. Nothing reloads, and each adapter keeps its own strength across switches.
        """
        from .adapters import check_scale, scale_adapter

        self._check_attached(name)
        scale = check_scale(scale, "scale")
        scale_adapter(self._model, name, scale)
        self._scales[name] = scale

    def _check_attached(self, name: str) -> None:
        if name not in self._adapters:
            loaded = ", ".join(self._adapters) or "none"
            raise ConfigError(f"No adapter named {name!r} is attached (attached: {loaded}).")

    def unload_adapter(self, name: str) -> None:
        """Detach adapter ``name`` and free its weights; the base model answers if it was active."""
        self._check_attached(name)
        from .adapters import detach_adapter

        detach_adapter(self._model, name)
        del self._adapters[name]
        self._scales.pop(name, None)
        self.set_adapter(None if self._active == name else self._active)
