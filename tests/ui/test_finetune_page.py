"""Fine-tune page: says what it will do without the tuning API; with it (faked here), builds data, trains in
the background with a live loss chart and a stop button, evaluates, and hands the adapter to Chat."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from ui_helpers import page, texts, wait_for_jobs


def test_without_the_tuning_api_the_page_explains_the_steps(ui_env, monkeypatch):
    from ragtune import api

    monkeypatch.setattr(api, "available", lambda name: name != "train_adapter")
    at = page("finetune")
    assert not at.exception
    assert "LoRA adapter" in at.markdown[0].value
    assert any("missing: train_adapter" in i for i in texts(at, "info"))
    assert not at.button  # nothing to start


class FakeTune:
    """The tuning API's contract (CONTRACTS.md), doing the bookkeeping without a model."""

    def __init__(self):
        self.configs = []
        self.release = threading.Event()

    def TrainConfig(self, **fields):
        return dict(fields)

    def build_training_data(self, index, out, *, generator="template", progress=None, **opts):
        n = len(index)
        Path(out).write_text("".join(json.dumps({"instruction": f"q{i}", "output": "a"}) + "\n" for i in range(n)))
        progress("write", n, n, "")
        return {"examples": n, "path": str(out)}

    def train_adapter(self, data, out, config=None, *, progress=None, on_log=None, should_stop=None):
        self.configs.append(config)
        steps = config["max_steps"]
        for step in range(1, steps + 1):
            if should_stop():
                break
            on_log({"step": step, "loss": 2.0 / step, "learning_rate": 1e-3, "epoch": step / steps})
            progress("train", step, steps, f"loss {2.0 / step:.2f}")
            if step == 2:
                self.release.wait(10)  # holds the run "live" until the test has looked at it
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "adapter_config.json").write_text("{}")
        return {"adapter": str(out), "steps": step}

    def evaluate_adapter(self, adapter, *, index=None, data=None, qa=None, progress=None):
        return {"base": {"accuracy": 0.2}, "adapter": {"accuracy": 0.5}}


@pytest.fixture
def fake_tune(monkeypatch):
    from ragtune import api

    fake = FakeTune()
    for name in ("TrainConfig", "build_training_data", "train_adapter", "evaluate_adapter"):
        monkeypatch.setattr(api, name, getattr(fake, name), raising=False)
    monkeypatch.setattr(api, "available", lambda name: True)
    return fake


def click(at, label):
    next(b for b in at.button if b.label == label).click()
    return at.run()


def test_training_runs_in_the_background_with_live_loss_and_the_adapter_goes_to_chat(ui_env, fake_tune):
    at = click(page("finetune"), "Build training data from the index")
    wait_for_jobs()
    at.run()
    data = ui_env / "training-data" / "train.jsonl"
    assert data.exists() and len(data.read_text().splitlines()) >= 3
    at.text_input[0].set_value("my adapter")
    at.number_input[0].set_value(6)
    at = click(at, "Start training")
    assert fake_tune.configs[-1]["max_steps"] == 6 and fake_tune.configs[-1]["rank"] == 16
    for _ in range(50):  # the job reports its first steps while the page is live
        at.run()
        if at.get("vega_lite_chart"):
            break
    assert at.get("vega_lite_chart"), "no live loss chart while training"
    assert any("train:" in p.proto.text for p in at.get("progress"))
    fake_tune.release.set()
    wait_for_jobs()
    at.run()
    assert any(s.startswith("Training finished") for s in texts(at, "success"))
    adapter = ui_env / "adapters" / "my_adapter"
    assert (adapter / "adapter_config.json").exists()
    at = click(at, "Evaluate: base vs base + adapter")
    wait_for_jobs()
    at.run()
    assert at.json[-1].value and "adapter" in json.loads(at.json[-1].value)
    at = click(at, "Use this adapter in Chat")
    assert at.session_state["generator_kind"] == "adapter"
    assert at.session_state["chat_adapter"] == str(adapter)


def test_stop_button_cancels_a_running_training(ui_env, fake_tune):
    at = click(page("finetune"), "Build training data from the index")
    wait_for_jobs()
    at.run()
    at.number_input[0].set_value(100)
    at = click(at, "Start training")
    for _ in range(50):
        at.run()
        if any(b.label == "Stop training" for b in at.button):
            break
    at = click(at, "Stop training")
    fake_tune.release.set()
    wait_for_jobs()
    at.run()
    assert any("stopped early" in s for s in texts(at, "success"))
