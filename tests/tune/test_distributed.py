"""`train_adapter` under torchrun with two CPU processes (gloo): separate shards, one writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from _tiny import chat_records, write_jsonl

WORKER = textwrap.dedent("""
    import json, os, sys
    from ragtune.tune.config import TrainConfig
    from ragtune.tune.train import train_adapter
    data, model, out = sys.argv[1:4]
    cfg = TrainConfig(base_model=model, max_steps=3, batch_size=2, eval_steps=3, save_steps=3,
                      early_stopping_patience=None)
    result = train_adapter(data, out, cfg)
    rank = int(os.environ["RANK"])
    with open(os.path.join(os.path.dirname(out), f"rank{rank}.json"), "w") as f:
        json.dump({"seen": result.seen, "adapter": result.adapter, "world": result.metrics["world_size"]}, f)
""")


@pytest.mark.slow
def test_two_gloo_processes_train_different_shards_and_only_rank0_writes(tiny_model, tmp_path):
    records = chat_records(24, split=False)
    for r in records:
        r["split"] = "train"
    data = write_jsonl(tmp_path / "data.jsonl", records)
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         str(tmp_path / "worker.py"), str(data), str(tiny_model), str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["seen"] and r1["seen"] and not set(r0["seen"]) & set(r1["seen"])  # disjoint shards
    assert r0["adapter"] == str(tmp_path / "run" / "adapter") and r1["adapter"] is None
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    assert not list((tmp_path / "run").glob(".adapter.tmp-*"))  # no second, half-written copy
