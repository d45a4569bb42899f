"""Checking and attaching peft LoRA adapter folders (as written by ``tune/``) to a loaded model.

Adapters are injected into the transformers model itself (its built-in peft integration), so the
base weights stay loaded once and several adapters can be switched or disabled in place. Every
failure becomes a :class:`ModelLoadError` that names the folder and the cause, and leaves the model
as it was (no half-attached adapter).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError, ModelLoadError, ModelMismatchError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
META_FILE = "ragtune_adapter.json"  # written by `ragtune tune run`: base model identity, config, metrics
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_SAMPLE = 1 << 20  # bytes read from each end of a weights file for the fingerprint


def model_fingerprint(model_dir: str | Path) -> str:
    """A cheap, content-based identity of a model folder: its config plus the head and tail of its weights.

    Reading 2 MiB instead of hashing whole weight files keeps this under 10 ms for SmolLM2 (540 MB) while
    still telling apart two checkpoints of one architecture (their weight bytes differ from the start).
    """
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    config = model_dir / "config.json"
    if config.is_file():
        cfg = json.loads(config.read_text())
        for volatile in ("_name_or_path", "transformers_version", "torch_dtype", "dtype"):
            cfg.pop(volatile, None)
        h.update(json.dumps(cfg, sort_keys=True).encode())
    weights = sorted(p for p in model_dir.glob("*") if p.name in _WEIGHTS or p.name.startswith("model-0"))
    for path in weights:
        size = path.stat().st_size
        h.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as f:
            h.update(f.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                f.seek(size - _SAMPLE)
                h.update(f.read(_SAMPLE))
    return h.hexdigest()[:16]


def read_meta(adapter_dir: str | Path) -> dict:
    """The adapter's ``ragtune_adapter.json`` ({} for a peft adapter made elsewhere)."""
    path = Path(adapter_dir) / META_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ModelLoadError(f"{path} is not valid JSON ({e}); the adapter folder is damaged") from None


def check_base(adapter_dir: str | Path, model_dir: str | Path) -> None:
    """Raise :class:`ModelMismatchError` when the adapter was trained on another base model than ``model_dir``.

    Adapters without ragtune's record (trained elsewhere) are let through: peft's own shape checks still apply.
    """
    meta = read_meta(adapter_dir)
    trained = (meta.get("base_model") or {}).get("fingerprint")
    if not trained:
        return
    here = model_fingerprint(model_dir)
    if here != trained:
        base = meta["base_model"]
        raise ModelMismatchError(
            f"adapter {adapter_dir} was trained on {base.get('name')} (fingerprint {trained}, {base.get('path')}) "
            f"but the base model given is {Path(model_dir).name} (fingerprint {here}); load it on the model it was "
            "trained on, or train a new adapter for this one with `ragtune tune run`"
        )


def check_adapter_dir(path: str | os.PathLike) -> Path:
    """Raise ModelLoadError unless ``path`` looks like a peft adapter folder; return it as a Path.

    A ``ragtune tune run`` folder (OUT, whose adapter is OUT/adapter) is taken for its adapter."""
    path = Path(path).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is a file, not a folder"
        raise ModelLoadError(f"Adapter directory {path} {what}.")
    if not (path / ADAPTER_CONFIG).is_file() and (path / "adapter" / ADAPTER_CONFIG).is_file():
        path = path / "adapter"  # the run folder given: its adapter
    config_file = path / ADAPTER_CONFIG
    if not config_file.is_file():
        raise ModelLoadError(
            f"{path} is not a LoRA adapter folder: {ADAPTER_CONFIG} is missing "
            "(expected the output of peft's save_pretrained, e.g. from `ragtune tune run`)."
        )
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelLoadError(f"Adapter {path}: {ADAPTER_CONFIG} is not valid JSON ({e}).") from e
    if not isinstance(config, dict) or "peft_type" not in config:
        raise ModelLoadError(f"Adapter {path}: {ADAPTER_CONFIG} has no 'peft_type'; it is not a peft adapter config.")
    if not any((path / f).is_file() for f in ADAPTER_WEIGHTS):
        raise ModelLoadError(f"Adapter {path} has no weights ({' or '.join(ADAPTER_WEIGHTS)} is missing).")
    return path


def attach_adapter(model: Any, path: Path, name: str) -> None:
    """Load adapter ``path`` into ``model`` under ``name``; on any failure undo it and raise ModelLoadError."""
    try:
        with warnings.catch_warnings():  # peft warns on every second adapter; that is the point here
            warnings.filterwarnings("ignore", message=".*Already found a `peft_config`")
            info = model.load_adapter(str(path), adapter_name=name)  # a checked local folder: no Hub lookup
    except Exception as e:
        _detach_quietly(model, name)
        raise ModelLoadError(
            f"Adapter {path} could not be attached to the base model: {_short(e)}. "
            "Check that it was trained on this base model and that its files are intact."
        ) from e
    problems = _load_problems(info, name)
    if problems:
        _detach_quietly(model, name)
        raise ModelLoadError(
            f"Adapter {path} does not fit this base model ({problems}); it was probably trained on a "
            "different model."
        )


def is_scale(value: Any) -> bool:
    """Whether ``value`` is an adapter strength: a number in [0, 2] (1: the adapter as trained)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 2


def check_scale(scale: Any, field: str = "adapter_scale") -> float:
    """``scale`` as a float in [0, 2], or ConfigError naming ``field``."""
    if not is_scale(scale):
        raise ConfigError(f"{field} must be a number from 0 (the base model) to 2, with 1 the adapter as trained; "
                          f"got {scale!r}")
    return float(scale)


def scale_adapter(model: Any, name: str, scale: float) -> None:
    """Set adapter ``name``'s strength: its LoRA update is multiplied by ``scale`` (1: as trained, 0: none).

    For LoRA this is WiSE-FT's weight-space interpolation between the base and the fine-tuned model (peft's
    ``rescale_adapter_scale`` says the same): the update is linear in the scaling, so 0.5 is exactly halfway.
    It is set per adapter and kept across ``set_adapter`` switches; nothing is reloaded. (A DoRA adapter's
    learned magnitudes are not scaled, so there 0 is near the base model, not equal to it.)
    """
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer) and name in m.scaling]
    if not layers:
        raise ConfigError(f"No LoRA layers of adapter {name!r} to scale (is it a LoRA adapter?)")
    for layer in layers:
        layer.set_scale(name, scale)  # absolute: scale * alpha / r, whatever was set before


def _load_problems(info: Any, name: str) -> str:
    """Describe missing, unexpected or mismatched adapter weights reported by transformers, if any."""
    if info is None:  # older transformers return nothing and raise on real mismatches
        return ""
    parts = []
    for label, attr in (("missing", "missing_keys"), ("unexpected", "unexpected_keys"),
                        ("wrong shape", "mismatched_keys")):
        keys = sorted(str(k) for k in (getattr(info, attr, None) or ()))
        if attr == "missing_keys":  # transformers' own filter matches the name anywhere ("b" in "embed")
            keys = [k for k in keys if f".{name}." in k]
        if keys:
            parts.append(f"{len(keys)} {label} weight(s), e.g. {keys[0]}")
    return "; ".join(parts)


def detach_adapter(model: Any, name: str) -> None:
    """Remove adapter ``name`` from ``model``; the caller then picks which adapter is active."""
    with warnings.catch_warnings():  # "adapter X was active which is now deleted": the caller handles it
        warnings.filterwarnings("ignore", message=".*which is now deleted")
        model.delete_adapter(name)


def _detach_quietly(model: Any, name: str) -> None:
    """Remove whatever part of adapter ``name`` was injected before a failure."""
    if name not in (getattr(model, "peft_config", None) or {}):
        return
    try:
        detach_adapter(model, name)
    except Exception:  # noqa: BLE001 - best effort cleanup; the original error is what matters
        pass


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    low = first.lower()
    if "header" in low or "deserializ" in low:
        first = f"the weights file is corrupt ({first})"
    elif "mismatched_sizes" in low or "size mismatch" in low:
        first = "its weight shapes do not match this base model"
    return f"{type(e).__name__}: {first}"[:400]


def without_adapter(generator: Any) -> Any | None:
    """A generator that answers as ``generator`` does but with its adapter off (the base model), or None when
    ``generator`` answers without one. Nothing reloads: the same weights answer with the adapter disabled for
    the length of one answer. Used as RAG's ``fallback`` when an adapter's answer is checked (``RAG(...,
    fallback=without_adapter(gen))``; ``ragtune ask --check-adapter``)."""
    shared = getattr(generator, "shared", None)
    if shared is not None and hasattr(shared, "view"):  # one session's view of the app's shared model
        return shared.view(None) if getattr(generator, "adapter", None) else None
    if getattr(generator, "active_adapter", None) is None:
        return None
    return AdapterOff(generator)


class AdapterOff:
    """``generator`` (a ``LocalGenerator``) answering with its active adapter disabled while an answer streams.

    One caller at a time, like the generator it wraps; the app's shared model gives a base-model view
    (``SharedGenerator.view(None)``) instead, under its lock.
    """

    def __init__(self, generator: Any):
        self.generator = generator
        default = getattr(generator, "default_max_new_tokens", None)
        if default is not None:
            self.default_max_new_tokens = default

    @property
    def name(self) -> str:
        return str(self.generator.name).split("+")[0]

    @property
    def context_window(self) -> int:
        return self.generator.context_window

    def count_tokens(self, text: str) -> int:
        return self.generator.count_tokens(text)

    def count_message_tokens(self, messages: list) -> int:
        return self.generator.count_message_tokens(messages)

    def generate(self, messages: list, **options: Any) -> str:
        return "".join(self.stream(messages, **options))

    def stream(self, messages: list, **options: Any):
        from .common import relay

        gen = self.generator
        active = gen.active_adapter
        gen.set_adapter(None)
        try:
            yield from relay(gen.stream(messages, **options))
        finally:
            gen.set_adapter(active)
