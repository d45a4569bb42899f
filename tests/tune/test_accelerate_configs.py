"""The accelerate configs shipped for FSDP, DeepSpeed and multi-node runs load with accelerate's own reader and
say what the README says they do (a GPU run of them cannot happen in this CPU-only test suite)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "tune" / "accelerate"


def _load(name: str):
    from accelerate.commands.config.config_args import ClusterConfig

    return ClusterConfig.from_yaml_file(str(CONFIGS / name))


def test_fsdp_config_shards_the_base_and_gathers_a_full_state_dict_for_the_adapter_save():
    config = _load("fsdp.yaml")
    assert config.distributed_type == "FSDP" and config.num_machines == 1
    fsdp = config.fsdp_config
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP" and fsdp["fsdp_use_orig_params"] is True
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_deepspeed_config_is_zero_stage_2():
    config = _load("deepspeed_zero2.yaml")
    assert config.distributed_type == "DEEPSPEED" and config.deepspeed_config["zero_stage"] == 2


def test_multi_node_config_names_two_machines_and_the_rendezvous():
    config = _load("multi_node.yaml")
    assert config.distributed_type == "MULTI_GPU" and config.num_machines == 2
    assert config.num_processes == 16 and config.main_process_ip and config.main_process_port == 29500


@pytest.mark.parametrize("name", ["fsdp.yaml", "deepspeed_zero2.yaml", "multi_node.yaml"])
def test_every_shipped_config_is_launched_from_the_readme(name):
    readme = (REPO / "README.md").read_text()
    assert f"--config_file tune/accelerate/{name}" in readme
    for path in re.findall(r"--config_file (\S+)", readme):
        assert (REPO / path).is_file(), f"README launches with {path}, which is not shipped"
