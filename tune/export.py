"""Adapters out of training: load one onto its base model (checked), or merge it into a standalone model.

    >>> merge_adapter("runs/raft/adapter", "models/smollm2-raft")     # doctest: +SKIP
    PosixPath('models/smollm2-raft')

``merge_adapter`` folds the LoRA weights into the base (peft's ``merge_and_unload``), saves the result as an
ordinary transformers folder, and checks that it gives the same greedy output as base + adapter on a probe prompt
before publishing it (atomically, like the adapter itself).
"""

from __future__ import annotations

import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError, ModelLoadError, ModelMismatchError

from .artifacts import (
    META_FILE,
    check_base,
    check_out_path,
    ours_to_replace,
    publish_dir,
    read_meta,
    recover_dir,
    write_json,
)

MERGED_FILE = "ragtune_merged.json"  # what a merged model folder holds besides the model: its adapter
PROBE = [{"role": "user", "content": "Sources:\n\n[1] lora.md\n<source>\nLoRA trains two small matrices.\n</source>\n\n"
                                     "Question: What does LoRA train?"}]


def base_model_dir(adapter: str | Path, base_model: str | Path | None = None) -> Path:
    """The base model folder for ``adapter``: ``base_model``, else the one recorded at training time (if it is
    still there), else the shipped SmolLM2; refused (ModelMismatchError) when its fingerprint differs."""
    from ragtune.rag.generators.adapters import check_adapter_dir
    from ragtune.rag.generators.models import resolve_model_path

    adapter = check_adapter_dir(adapter)
    if base_model is not None:
        model_dir = resolve_model_path(base_model)
        check_base(adapter, model_dir)
        return model_dir
    recorded = (read_meta(adapter).get("base_model") or {}).get("path")
    if recorded and Path(recorded).exists():
        tried = f"the base recorded at training time, {recorded}, was tried, and its files have changed since"
        model_dir = resolve_model_path(recorded)
    else:
        model_dir = resolve_model_path(None)
        why = f"its recorded base {recorded} is not found" if recorded else "it records no base model path"
        tried = f"{why}, so the shipped model {model_dir} was tried, and it is another model"
    try:
        check_base(adapter, model_dir)
    except ModelMismatchError:
        # check_base says "the base model given is ..."; here none was given, so say which one was tried and why.
        base = read_meta(adapter).get("base_model") or {}
        raise ModelMismatchError(
            f"adapter {adapter} was trained on {base.get('name')} ({base.get('path')}, fingerprint "
            f"{base.get('fingerprint')}); no base model was given and {tried}. Point at the model it was trained "
            "on: --base-model DIR (`tune eval`, `tune merge`) or base_model= in Python") from None
    return model_dir


@contextmanager
def _quiet_peft():
    """peft reads transformers' deprecated is_gradient_checkpointing (a FutureWarning on every load and
    merge, printed by `tune merge`): not ours to fix, and nothing the user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def load_with_adapter(adapter: str | Path, base_model: str | Path | None = None) -> tuple[Any, Any]:
    """(peft model, tokenizer) for ``adapter`` on its checked base model, on CPU in fp32, in eval mode."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune.rag.generators.adapters import check_adapter_dir

    adapter = check_adapter_dir(adapter)  # a run folder is taken for its adapter, here as in base_model_dir
    model_dir = base_model_dir(adapter, base_model)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    try:
        with _quiet_peft():
            model = PeftModel.from_pretrained(base, str(adapter))
    except Exception as e:  # noqa: BLE001 - shapes or files: one clear message
        raise ModelLoadError(f"adapter {adapter} could not be loaded onto {model_dir}: {type(e).__name__}: {e}") from e
    return model.eval(), tokenizer


def greedy(model: Any, tokenizer: Any, messages: list[dict] = PROBE, max_new_tokens: int = 16) -> list[int]:
    import torch

    if not getattr(tokenizer, "chat_template", None):
        from ragtune.rag.generators.models import CHATML_TEMPLATE

        tokenizer.chat_template = CHATML_TEMPLATE
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return out[0, ids.shape[1]:].tolist()


def merge_adapter(adapter: str | Path, out: str | Path, *, base_model: str | Path | None = None,
                  scale: float = 1.0) -> Path:
    """Write base + ``adapter`` merged into one model folder at ``out``; see the module docstring.

    ``scale`` merges the adapter at that strength (``LocalGenerator.set_adapter_scale``: 1 as trained, 0.5
    halfway between the base and the fine-tuned weights), so a chosen strength can ship as one model.
    """
    from ragtune.rag.generators.adapters import check_adapter_dir, check_scale, scale_adapter

    scale = check_scale(scale, "scale")
    adapter = check_adapter_dir(adapter)  # a run folder is taken for its adapter (recorded in MERGED_FILE as such)
    out = Path(out)
    check_out_path(out, "--out")
    recover_dir(out)
    if not ours_to_replace(out, MERGED_FILE):
        # Publishing replaces the folder whole: never a folder of something else (it would be deleted).
        raise ConfigError(f"{out} exists and is not a merged model folder (no {MERGED_FILE} in it); nothing was "
                          "changed: choose a new --out, or remove it first")
    model, tokenizer = load_with_adapter(adapter, base_model)
    if scale != 1:
        scale_adapter(model, model.active_adapter, scale)
    expected = greedy(model, tokenizer)
    with _quiet_peft():
        merged = model.merge_and_unload()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        write_json(tmp / MERGED_FILE, {"adapter": str(adapter), "scale": scale,
                                                 "adapter_meta": read_meta(adapter)})
        _check_same_output(tmp, tokenizer, expected)
        publish_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _check_same_output(model_dir: Path, tokenizer: Any, expected: list[int]) -> None:
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True).eval()
    got = greedy(reloaded, tokenizer)
    if got != expected:
        raise ModelLoadError(
            f"the merged model's greedy output differs from base + adapter ({got[:8]} vs {expected[:8]}); "
            "nothing was written. Merging a quantised (QLoRA) base needs the unquantised base model."
        )


__all__ = ["META_FILE", "base_model_dir", "greedy", "load_with_adapter", "merge_adapter"]
