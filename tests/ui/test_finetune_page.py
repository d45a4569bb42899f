"""Fine-tune page: says what it will do without the tuning API; builds data, trains in the background with a
live loss chart and a stop button, evaluates base vs adapter as a table, and hands the adapter to Chat.

The bookkeeping tests use a fake of the tuning API (instant, and it can hold a run "live"); one test runs the
real pipeline (template data, peft LoRA training, evaluation) on a tiny random model built in-process.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from ui_helpers import page, texts, tiny_ui_model, wait_for_jobs


def test_without_the_tuning_api_the_page_explains_the_steps(ui_env, monkeypatch):
    from ragtune import api

    monkeypatch.setattr(api, "available", lambda name: name != "train_adapter")
    at = page("finetune")
    assert not at.exception
    assert "LoRA adapter" in at.markdown[0].value
    assert any("missing: train_adapter" in i for i in texts(at, "info"))
    assert not at.button  # nothing to start


class FakeTune:
    """The tuning API's contract (CONTRACTS.md) and result shapes, doing the bookkeeping without a model."""

    def __init__(self):
        self.configs = []
        self.evaluated = []
        self.release = threading.Event()

    def TrainConfig(self, **fields):
        return dict(fields)

    def build_training_data(self, index, out, *, generator="template", progress=None, **opts):
        n = len(index)
        Path(out).write_text("".join(json.dumps({"instruction": f"q{i}", "output": "a"}) + "\n" for i in range(n)))
        progress("write", n, n, "")
        return {"records": {"train": n, "validation": 1, "test": 1}, "abstain": {"train": 1}, "chunks": n,
                "sources": {"train": ["lora.md"], "validation": ["rag.txt"], "test": ["quant.html"]}}

    def train_adapter(self, data, out, config=None, *, progress=None, on_log=None, should_stop=None):
        self.configs.append(config)
        steps = config["max_steps"]
        for step in range(1, steps + 1):
            if should_stop():
                # like the real one: a cancelled run keeps its checkpoints but writes no adapter
                return {"out": str(out), "adapter": None, "cancelled": True, "metrics": {"steps": step - 1}}
            on_log({"step": step, "loss": 2.0 / step, "learning_rate": 1e-3, "epoch": step / steps})
            progress("train", step, steps, f"loss {2.0 / step:.2f}")
            if step == 2:
                # holds the run "live" until the test has looked at it (10 s was too short on a loaded machine,
                # where 50 page runs took longer: the run finished before the test saw its progress bar)
                self.release.wait(300)
        adapter = Path(out) / "adapter"  # where train_adapter writes it, beside checkpoints and logs
        adapter.mkdir(parents=True, exist_ok=True)
        (adapter / "adapter_config.json").write_text("{}")
        return {"out": str(out), "adapter": str(adapter), "cancelled": False,
                "metrics": {"steps": steps, "train_loss": 2.0 / steps, "seconds": 1.5, "trainable_fraction": 0.012}}

    def evaluate_adapter(self, adapter, *, data=None, limit=None, without_retrieval=True, progress=None, **kw):
        self.evaluated.append({"adapter": str(adapter), "data": str(data), "limit": limit,
                               "without_retrieval": without_retrieval})
        scores = lambda f1: {"f1": f1, "exact_match": 0.0, "citation_precision": 0.5,  # noqa: E731
                             "abstain_unanswerable": 1.0, "answerable": 4, "unanswerable": 1}
        return {"test_split": {"base+rag": scores(0.2), "adapter+rag": scores(0.5)},
                "validation_perplexity": {"base": 9.5, "adapter": 4.25}, "regressions": []}


@pytest.fixture
def fake_tune(monkeypatch):
    from ragtune import api

    fake = FakeTune()
    for name in ("TrainConfig", "build_training_data", "train_adapter", "evaluate_adapter"):
        monkeypatch.setattr(api, name, getattr(fake, name), raising=False)
    monkeypatch.setattr(api, "available", lambda name: True)
    yield fake
    fake.release.set()  # a test that failed before releasing it must not leave the job waiting


def click(at, label):
    next(b for b in at.button if b.label == label).click()
    return at.run()


def number_input(at, label_start: str):
    return next(n for n in at.number_input if n.label.startswith(label_start))


def build_data(at):
    at = click(at, "Build training data from the index")
    wait_for_jobs()
    return at.run()


def test_training_data_is_summarised_per_split(ui_env, fake_tune):
    at = build_data(page("finetune"))
    assert not at.exception
    table = at.table[0].value
    assert list(table.index) == ["train", "validation", "test"]
    assert list(table["documents"]) == [1, 1, 1]
    assert any("examples written" in s for s in texts(at, "success"))


def test_training_runs_in_the_background_with_live_loss_and_the_adapter_goes_to_chat(ui_env, fake_tune):
    at = build_data(page("finetune"))
    data = ui_env / "training-data" / "train.jsonl"
    assert data.exists() and len(data.read_text().splitlines()) >= 3
    at.text_input[0].set_value("my adapter")
    number_input(at, "At most").set_value(6)
    at = click(at, "Start training")
    config = fake_tune.configs[-1]
    assert config["max_steps"] == 6 and config["rank"] == 16 and config["max_minutes"] == 5.0
    assert config["logging_steps"] == 1  # a point on the live chart for every step
    for _ in range(50):  # the job reports its first steps while the page is live
        at.run()
        if at.get("vega_lite_chart"):
            break
    assert at.get("vega_lite_chart"), "no live loss chart while training"
    assert any("train:" in p.proto.text for p in at.get("progress"))
    fake_tune.release.set()
    wait_for_jobs()
    at.run()
    adapter = ui_env / "adapters" / "my_adapter" / "adapter"
    assert any(s.startswith("Training finished") and str(adapter) in s for s in texts(at, "success"))
    assert (adapter / "adapter_config.json").exists()
    assert at.selectbox[-1].options == ["my_adapter"]  # listed by its run's name, not "adapter"

    at = click(at, "Evaluate: base vs base + adapter")
    wait_for_jobs()
    at.run()
    assert fake_tune.evaluated[-1] == {"adapter": str(adapter), "data": str(data), "limit": 10,
                                       "without_retrieval": False}
    table = at.table[-1].value
    assert (table.loc["answer F1", "base"], table.loc["answer F1", "base + adapter"]) == (0.2, 0.5)
    assert "validation perplexity (lower is better)" in list(table.index)
    assert not at.json  # a table, not raw JSON

    at = click(at, "Use this adapter in Chat")
    assert at.session_state["choice:generator"] == "adapter"
    assert at.session_state["choice:adapter"] == str(adapter)


def test_stop_button_cancels_a_running_training_and_says_nothing_was_saved(ui_env, fake_tune):
    at = build_data(page("finetune"))
    number_input(at, "At most").set_value(100)
    at = click(at, "Start training")
    for _ in range(50):
        at.run()
        if any(b.label == "Stop training" for b in at.button):
            break
    at = click(at, "Stop training")
    fake_tune.release.set()
    wait_for_jobs()
    at.run()
    assert any("resumes from the last one" in w for w in texts(at, "warning"))
    assert not (ui_env / "adapters").exists() or not list((ui_env / "adapters").rglob("adapter_config.json"))


@pytest.mark.slow
def test_real_pipeline_on_a_tiny_model_trains_evaluates_and_lists_the_adapter(ui_env, monkeypatch, tmp_path):
    """No fakes: template data from the index, a peft LoRA run of 3 steps, base vs adapter evaluation."""
    monkeypatch.setenv("RAGTUNE_UI_MODEL", str(tiny_ui_model(tmp_path / "tiny")))
    at = build_data(page("finetune", timeout=120))
    assert not at.exception, at.exception
    assert at.table[0].value["examples"].sum() > 0
    at.text_input[0].set_value("tiny")
    number_input(at, "At most").set_value(3)
    at = click(at, "Start training")
    wait_for_jobs(timeout=120)
    at.run()
    assert not texts(at, "error"), texts(at, "error")
    adapter = ui_env / "adapters" / "tiny" / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    figures = at.table[-1].value
    assert figures.loc["steps", "value"] == "3"
    assert at.get("vega_lite_chart")  # the loss chart stays after the run
    number_input(at, "Test questions").set_value(2)
    at = click(at, "Evaluate: base vs base + adapter")
    wait_for_jobs(timeout=120)
    at.run()
    assert not texts(at, "error"), texts(at, "error")
    table = at.table[-1].value
    assert list(table.columns) == ["base", "base + adapter"]
    assert "answer F1" in list(table.index)


def _perplexity_only_report():
    from ragtune.ui import finetune

    finetune.show_evaluation({"test_split": {}, "validation_perplexity": {"base": 9.5, "adapter": 4.25},
                              "regressions": []})


def test_an_evaluation_without_scored_test_questions_shows_perplexity_and_says_why():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_perplexity_only_report).run()
    assert not at.exception  # it raised a pandas KeyError drawing the score chart of no scores
    assert list(at.table[0].value.index) == ["validation perplexity (lower is better)"]
    assert any("No held-out test question was scored" in i for i in texts(at, "info"))


def test_the_adapter_name_field_stays_the_same_widget_when_the_clock_moves_on(ui_env, fake_tune, monkeypatch):
    import time

    at = build_data(page("finetune"))
    first = at.text_input[0].value
    real = time.strftime
    # The default name is made from the clock. Made anew on each rerun, it changed at every new minute, and a
    # widget whose default changes is a new widget: a browser test lost the name it had typed at a minute's turn.
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: real(fmt, time.localtime(time.time() + 3600)))
    at.run()
    assert at.text_input[0].value == first
    at.text_input[0].set_value("my adapter")
    at = click(at, "Start training")
    fake_tune.release.set()
    wait_for_jobs()
    at.run()
    assert (ui_env / "adapters" / "my_adapter" / "adapter" / "adapter_config.json").exists()
    assert at.text_input[0].value not in (first, "my adapter")  # the next run gets a new default name


def test_a_loss_log_of_one_step_is_shown_as_numbers_not_an_empty_chart():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(
        "from ragtune.ui.finetune import loss_chart\n"
        "loss_chart([{'step': 1, 'loss': 2.5}])\n"
        "loss_chart([{'step': 1, 'loss': 2.5}, {'step': 2, 'loss': 2.0, 'eval_loss': 2.2}])\n"
    ).run()
    assert not at.exception
    assert [c.value for c in at.caption] == ["step 1: loss 2.500"]
    assert len(at.get("vega_lite_chart")) == 1  # the two-step log is a chart
