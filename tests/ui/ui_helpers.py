"""Helpers for the page tests (imported by name: tests/ui is on the pytest pythonpath)."""

from __future__ import annotations

import time


def wait_for_jobs(timeout: float = 60.0) -> None:
    from ragtune.api import jobs

    deadline = time.monotonic() + timeout
    for job in jobs.all_jobs():
        job.wait(max(0.0, deadline - time.monotonic()))
        assert not job.running, f"{job} still running after {timeout} s"


def page(name: str, timeout: float = 60.0):
    """An AppTest running one page's ``render()``, already run once with its background jobs finished."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(
        f"import importlib\nimportlib.import_module('ragtune.ui.{name}').render()\n", default_timeout=timeout
    )
    at.run()
    wait_for_jobs()
    return at.run()


def texts(at, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def tiny_ui_model(path):
    """A tiny random Llama (tests/tune/_tiny.py) whose context window fits Chat's prompts: its byte-level
    tokenizer spends ~1 token per 2 characters, so the 512 positions of the tune tests are too few."""
    import json

    from _tiny import make_tiny_model

    make_tiny_model(path)
    config = json.loads((path / "config.json").read_text())
    config["max_position_embeddings"] = 4096
    (path / "config.json").write_text(json.dumps(config))
    return path
