"""tune/ under the battery: bad training data is refused whole (file and line, nothing trains), and a
SIGKILL at a random moment of an adapter save leaves the previous adapter or the new one, never a half one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragtune.cli import main
from ragtune.errors import TrainingDataError
from ragtune.tune.artifacts import recover_dir
from ragtune.tune.data import load_records

BAD_DATA = {
    "not_json.jsonl": b'{"messages": [{"role": "user", "content": "hi"}\n',
    "no_assistant.jsonl": b'{"messages": [{"role": "user", "content": "hi"}]}\n',
    "bad_role.jsonl": b'{"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n',
    "alpaca_no_output.jsonl": b'{"instruction": "Say hi", "input": ""}\n',
    "binary.jsonl": bytes(range(256)),
    "list.jsonl": b"[1, 2, 3]\n",
    "empty.jsonl": b"",
}


@pytest.mark.parametrize("name", sorted(BAD_DATA))
def test_bad_training_data_is_refused_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD_DATA[name])
    with pytest.raises(TrainingDataError) as err:
        load_records(path)
    assert name in str(err.value)


@pytest.mark.parametrize("name", ["not_json.jsonl", "binary.jsonl"])
def test_bad_training_data_through_the_cli_is_one_line_and_writes_nothing(tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes(BAD_DATA[name])
    out = tmp_path / "run"
    code = main(["tune", "run", "--data", str(path), "--out", str(out), "--max-steps", "1"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ragtune: error:")]
    assert code != 0 and len(err) == 1 and name in err[0]
    assert not (out / "adapter").exists()


_PUBLISHER = """
import sys
from pathlib import Path
from ragtune.tune.artifacts import publish_dir, recover_dir
root, n = Path(sys.argv[1]), 0
target = root / "adapter"
while True:
    n += 1
    recover_dir(target)
    tmp = root / f"tmp-{n}"
    tmp.mkdir()
    for part in ("adapter_model.safetensors", "adapter_config.json", "ragtune_adapter.json"):
        (tmp / part).write_text(f"{n}\\n" * 2000)
    publish_dir(tmp, target)
"""


def _complete(adapter: Path) -> bool:
    parts = [adapter / p for p in ("adapter_model.safetensors", "adapter_config.json", "ragtune_adapter.json")]
    if not all(p.is_file() for p in parts):
        return False
    versions = {p.read_text().split("\n", 1)[0] for p in parts}
    return len(versions) == 1 and all(len(p.read_text()) == len(next(iter(versions))) * 2000 + 2000 for p in parts)


def test_sigkill_during_adapter_saves_leaves_a_whole_adapter(tmp_path):
    rng = random.Random(11)
    seed = tmp_path / "adapter"
    seed.mkdir()
    for part in ("adapter_model.safetensors", "adapter_config.json", "ragtune_adapter.json"):
        (seed / part).write_text("0\n" * 2000)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, "-c", _PUBLISHER, str(tmp_path)], env=env)
        time.sleep(rng.uniform(0.4, 1.5))  # import takes ~0.3 s; kills land inside the publish loop
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        recover_dir(seed)  # what every reader and writer of an adapter does first
        assert _complete(seed), sorted(p.name for p in tmp_path.iterdir())
