"""The README's multi-process command, as written: `accelerate launch ... -m ragtune.cli tune run`, two CPU
processes (gloo). No code change between one process and several; only rank 0 writes the run folder.

`--multi_gpu`, not `--cpu`: accelerate's `--cpu` starts ONE process whatever `--num_processes` says (its simple
launcher; several need mpirun), which this test caught (world_size 1). `--multi_gpu` goes through
torch.distributed.run and falls back to gloo on a machine without CUDA."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _tiny import chat_records, write_jsonl


@pytest.mark.slow
def test_tune_run_under_accelerate_launch_trains_on_two_ranks_and_writes_once(tiny_model, tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists() and not shutil.which("accelerate"):
        pytest.skip("the accelerate launcher is not installed")
    records = chat_records(24, split=False)
    for r in records:
        r["split"] = "train"
    data = write_jsonl(tmp_path / "data.jsonl", records)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(accelerate if accelerate.exists() else "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29519",
           "-m", "ragtune.cli", "tune", "run", "--data", str(data), "--out", str(run), "--base-model", str(tiny_model),
           "--max-steps", "3", "--batch-size", "2", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2  # both processes joined one data-parallel run
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(run.glob(".adapter.tmp-*"))  # rank 1 did not write a second copy
    printed = json.loads(proc.stdout[proc.stdout.index("{"):])  # one result: rank 1 prints nothing
    assert printed["adapter"] == str(run / "adapter") and printed["metrics"]["world_size"] == 2
