"""The training recipes shipped in tune/adapters/ load as TrainConfig and keep the issue's trainable-weight bar
(< 1%) on SmolLM2-135M's shape, built on the meta device (no weights allocated, no model file needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

ADAPTERS = Path(__file__).resolve().parents[2] / "tune" / "adapters"
RECIPES = sorted(ADAPTERS.glob("*.yaml"))


def _smollm2_135m_shape():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    # SmolLM2-135M-Instruct's config.json: 30 layers, hidden 576, MLP 1536, 9 heads of 64, 3 KV heads, tied.
    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    with torch.device("meta"):
        return LlamaForCausalLM(config)


def test_there_are_recipes():
    assert {p.name for p in RECIPES} >= {"smollm2-raft.yaml", "smollm2-raft-r4-all.yaml"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_validates_and_trains_under_one_percent_of_smollm2(recipe):
    from ragtune.tune.config import TrainConfig
    from ragtune.tune.train import _add_lora

    config = TrainConfig.from_file(recipe)
    _, trainable, total = _add_lora(_smollm2_135m_shape(), config)
    assert 0 < trainable / total < 0.01
    assert total == 134_515_008 + trainable  # the base's own weights are all there, frozen


def test_all_layer_rank_4_recipe_adapts_every_layer_and_the_top_10_recipe_only_ten():
    from ragtune.tune.config import TrainConfig
    from ragtune.tune.train import _add_lora

    counts = {}
    for name in ("smollm2-raft.yaml", "smollm2-raft-r4-all.yaml"):
        model, trainable, _ = _add_lora(_smollm2_135m_shape(), TrainConfig.from_file(ADAPTERS / name))
        layers = {n.split(".layers.")[1].split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
        counts[name] = (len(layers), trainable)
    assert counts["smollm2-raft.yaml"] == (10, 814_080)  # BENCHMARKS.md: 814,080 trainable, 0.60%
    assert counts["smollm2-raft-r4-all.yaml"] == (30, 1_221_120)  # BENCHMARKS.md: 1,221,120, 0.90%
