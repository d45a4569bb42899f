"""ragtune/commands/ask.py: `ragtune ask` and `ragtune chat` over a fake index and generator."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import pytest

from ragtune.commands import ask as cmd
from ragtune.errors import ModelLoadError, RagtuneError

# The shared fakes live next to this file; pytest runs with --import-mode=importlib, which does not
# put test directories on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
from _answer_fakes import FakeGenerator, FakeSearcher, make_hit  # noqa: E402

HITS = [make_hit(1, "LoRA trains two small low-rank matrices per layer.", source="/d/lora.md", section="LoRA"),
        make_hit(2, "QLoRA quantizes the base model to 4 bits.", source="/d/qlora.pdf", page=2)]


class ExplodingSearcher(FakeSearcher):
    def search(self, query, k=5, filters=None, mode=None):
        if "boom" in query:
            raise RagtuneError("the index is locked by another process")
        return super().search(query, k, filters, mode)


@pytest.fixture
def cli(monkeypatch):
    opened: list[str] = []
    configs: list[dict] = []
    searcher = ExplodingSearcher(HITS)

    def open_index(path):
        opened.append(str(path))
        return searcher

    def load_generator(config):
        configs.append(config)
        return FakeGenerator([["LoRA trains ", "matrices [1] [5]."]])

    monkeypatch.setattr(cmd, "open_index", open_index)
    monkeypatch.setattr(cmd, "load_generator", load_generator)
    for var in ("RAGTUNE_INDEX", "RAGTUNE_GENERATOR", "RAGTUNE_API_BASE", "RAGTUNE_API_MODEL"):
        monkeypatch.delenv(var, raising=False)

    def run(*argv, stdin=None):
        parser = argparse.ArgumentParser(prog="ragtune")
        cmd.register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(argv)
        return args.func(args) if stdin is None else args.func(args, stdin=io.StringIO(stdin))

    run.opened, run.configs, run.searcher = opened, configs, searcher
    return run


def test_ask_streams_the_answer_then_lists_cited_sources(cli, capsys):
    assert cli("ask", "What does LoRA train?", "--index", "idx") == 0
    out = capsys.readouterr().out
    assert out == 'LoRA trains matrices [1].\n\nSources:\n  [1] /d/lora.md, section "LoRA"\n'
    assert cli.opened == ["idx"] and cli.configs == [{"kind": "local"}]


def test_ask_json_prints_the_answer_dict(cli, capsys):
    assert cli("ask", "What does LoRA train?", "--index", "idx", "--json", "--generator", "extractive") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"].startswith("LoRA trains two small low-rank matrices per layer. [1]")
    assert data["citations"][0]["source"] == "/d/lora.md" and cli.configs == []


def test_api_options_and_environment_fallbacks_reach_the_generator_config(cli, monkeypatch, capsys):
    monkeypatch.setenv("RAGTUNE_INDEX", "env-idx")
    monkeypatch.setenv("RAGTUNE_GENERATOR", "api")
    monkeypatch.setenv("RAGTUNE_API_BASE", "http://localhost:8000/v1")
    cli("ask", "What does LoRA train?", "--api-model", "m1", "--api-key-env", "MY_KEY", "--no-stream")
    assert cli.opened == ["env-idx"]
    assert cli.configs == [{"kind": "api", "base_url": "http://localhost:8000/v1", "model": "m1",
                            "api_key_env": "MY_KEY"}]
    assert capsys.readouterr().out.startswith("LoRA trains matrices [1].\n")


def test_local_model_that_fails_to_load_falls_back_to_extractive_unless_asked_for(cli, monkeypatch, capsys):
    class Unloadable(FakeGenerator):
        def warm_up(self):  # like LocalGenerator: construction is cheap, loading fails later
            raise ModelLoadError("no model here")

    def broken(config):
        return Unloadable()

    monkeypatch.setattr(cmd, "load_generator", broken)
    assert cli("ask", "What does LoRA train?", "--index", "idx") == 0
    captured = capsys.readouterr()
    assert "answering extractively" in captured.err and "[1]" in captured.out
    with pytest.raises(ModelLoadError):
        cli("ask", "What does LoRA train?", "--index", "idx", "--generator", "local")


def test_chat_keeps_history_resets_and_survives_errors(cli, capsys):
    script = "What is LoRA?\nWhat rank does it use?\nboom\n/reset\nAnd then?\n/exit\nnever asked\n"
    assert cli("chat", "--index", "idx", "--generator", "extractive", stdin=script) == 0
    captured = capsys.readouterr()
    assert cli.searcher.queries == ["What is LoRA?", "What rank does it use? (LoRA)", "And then?"]
    assert "error: the index is locked" in captured.err and "conversation forgotten" in captured.err
    assert captured.out.count("Sources:") == 2
    assert captured.out.endswith("The documents do not say.\n")  # "And then?" with the history forgotten
