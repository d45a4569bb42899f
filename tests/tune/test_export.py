"""Merging an adapter into a standalone model, and refusing the wrong base model."""

from __future__ import annotations

import json

import pytest

from ragtune.errors import ModelMismatchError
from ragtune.tune.config import TrainConfig
from ragtune.tune.export import greedy, load_with_adapter, merge_adapter
from ragtune.tune.train import train_adapter


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    from _tiny import chat_records, write_jsonl

    d = tmp_path_factory.mktemp("export")
    data = write_jsonl(d / "data.jsonl", chat_records())
    cfg = TrainConfig(base_model=str(tiny_model), max_steps=6, learning_rate=5e-2, early_stopping_patience=None,
                      eval_steps=3, save_steps=3)
    return train_adapter(data, d / "run", cfg).adapter


def test_merged_model_gives_the_same_greedy_output_as_base_plus_adapter(adapter, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = merge_adapter(adapter, tmp_path / "merged")
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not (out / "adapter_config.json").exists()  # a plain model, no peft needed to load it
    model, tok = load_with_adapter(adapter)
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert greedy(merged, AutoTokenizer.from_pretrained(out), max_new_tokens=12) == greedy(model, tok, max_new_tokens=12)
    assert json.loads((out / "ragtune_merged.json").read_text())["adapter"] == str(adapter)


def test_merge_onto_another_base_model_is_refused(adapter, other_tiny_model, tmp_path):
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        merge_adapter(adapter, tmp_path / "merged", base_model=other_tiny_model)
    assert not (tmp_path / "merged").exists()
