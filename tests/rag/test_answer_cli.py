"""ragtune/commands/ask.py: `ragtune ask` and `ragtune chat` over a fake index and generator."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from ragtune.commands import ask as cmd
from ragtune.errors import ConfigError, ModelLoadError, RagtuneError

from _answer_fakes import FakeGenerator, FakeSearcher, make_hit

HITS = [make_hit(1, "LoRA trains two small low-rank matrices per layer.", source="/d/lora.md", section="LoRA"),
        make_hit(2, "QLoRA quantizes the base model to 4 bits.", source="/d/qlora.pdf", page=2)]


class ExplodingSearcher(FakeSearcher):
    def search(self, query, k=5, filters=None, mode=None, **options):
        if "boom" in query:
            raise RagtuneError("the index is locked by another process")
        return super().search(query, k, filters, mode, **options)


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
    for var in ("RAGTUNE_INDEX", "RAGTUNE_GENERATOR", "RAGTUNE_API_BASE", "RAGTUNE_API_MODEL", "OPENAI_BASE_URL"):
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


def test_adapter_scale_reaches_the_generator_config_and_needs_an_adapter(cli, capsys):
    cli("ask", "What does LoRA train?", "--index", "idx", "--adapter", "runs/a", "--adapter-scale", "0.5")
    assert cli.configs == [{"kind": "local", "adapter": "runs/a", "adapter_scale": 0.5}]
    with pytest.raises(ConfigError, match="--adapter-scale needs --adapter"):
        cli("ask", "What does LoRA train?", "--index", "idx", "--adapter-scale", "0.5")


def test_local_model_options_with_another_generator_are_refused_not_ignored(cli, monkeypatch):
    # `--generator extractive --adapter DIR` answered extractively, the adapter silently unused.
    with pytest.raises(ConfigError, match=r"--adapter need\(s\) the local model, but --generator is 'extractive'"):
        cli("ask", "What does LoRA train?", "--index", "idx", "--generator", "extractive", "--adapter", "runs/a")
    monkeypatch.setenv("RAGTUNE_GENERATOR", "api")
    with pytest.raises(ConfigError, match=r"--model need\(s\) the local model, but \$RAGTUNE_GENERATOR is 'api'"):
        cli("ask", "What does LoRA train?", "--index", "idx", "--model", "models/x")
    assert cli.configs == []


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
    assert cli.searcher.queries == ["What is LoRA?", "What rank does LoRA use?", "And then?"]
    assert "error: the index is locked" in captured.err and "conversation forgotten" in captured.err
    assert captured.out.count("Sources:") == 2
    assert captured.out.endswith("The documents do not say.\n")  # "And then?" with the history forgotten


def test_ask_dash_reads_the_question_from_standard_input(cli, capsys):
    assert cli("ask", "-", "--index", "idx", "--generator", "extractive", stdin="What does LoRA train?\n") == 0
    assert cli.searcher.queries == ["What does LoRA train?"]
    assert "LoRA trains two small low-rank matrices" in capsys.readouterr().out


def test_chat_echoes_piped_questions_and_shows_the_rewrite(cli, capsys):
    script = "What does LoRA train?\nHow many matrices does it train per layer?\n"
    assert cli("chat", "--index", "idx", "--generator", "extractive", stdin=script) == 0
    out = capsys.readouterr().out
    assert "you> What does LoRA train?" in out and "you> How many matrices does it train per layer?" in out
    assert "(understood as: How many matrices does LoRA train per layer?)" in out


def test_chat_json_writes_one_object_per_turn(cli, capsys):
    script = "What does LoRA train?\nboom\nWhat does it quantize?\n"
    assert cli("chat", "--index", "idx", "--generator", "extractive", "--json", stdin=script) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    turns = [json.loads(line) for line in lines]
    assert len(turns) == 3 and turns[0]["question"] == "What does LoRA train?" and turns[0]["citations"]
    assert "locked" in turns[1]["error"]
    assert turns[2]["query"] != turns[2]["question"] and "abstained" in turns[2]


def test_ask_takes_the_retrieval_flags_of_search(cli, capsys):
    assert cli("ask", "What does LoRA train?", "--index", "idx", "--generator", "extractive", "--mode", "bm25",
               "--filter", "file_type=md", "--reranker", "/models/ce", "--mmr", "--k", "2") == 0
    assert cli.searcher.calls[-1] == {"k": 2, "filters": {"file_type": "md"}, "mode": "bm25", "mmr": True,
                                      "rerank": "/models/ce"}


def test_flags_are_the_same_on_search_ask_and_chat_and_help_has_examples_without_markup():
    from ragtune.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    shared = {"--k", "--mode", "--filter", "--reranker", "--mmr", "--index"}
    for name in ("search", "ask", "chat"):
        flags = {o for a in sub.choices[name]._actions for o in a.option_strings}
        assert shared <= flags, name
        metavars = {a.dest: a.metavar for a in sub.choices[name]._actions}
        assert (metavars["k"], metavars["filter"], metavars["reranker"]) == ("N", "KEY=VALUE", "DIR")
    for name in ("search", "ask", "chat"):  # the commands of this module and search.py
        p = sub.choices[name]
        text = p.format_help()
        assert p.description, f"{name} has no description"
        assert "``" not in text and ":func:" not in text and ":class:" not in text, name
        assert "examples:" in text, name


def test_openai_base_url_is_honoured(cli, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    cli("ask", "What does LoRA train?", "--index", "idx", "--generator", "api", "--api-model", "m")
    assert cli.configs[-1]["base_url"] == "http://localhost:11434/v1"


def test_bad_flag_values_name_the_flag(cli):
    from ragtune.errors import ConfigError

    for argv, flag in ((("--k", "0"), "--k"), (("--max-new-tokens", "0"), "--max-new-tokens"),
                       (("--min-score", "3"), "--min-score"), (("--min-support", "-1"), "--min-support"),
                       (("--min-support", "1.5"), "--min-support")):
        with pytest.raises(ConfigError, match=flag):
            cli("ask", "What?", "--index", "idx", "--generator", "extractive", *argv)


def test_a_status_line_precedes_loading_the_embedding_model(cli, capsys):
    class Embedder:
        _model = None

        def warm_up(self):
            self._model = object()

    cli.searcher.embedder = Embedder()
    cli("ask", "What does LoRA train?", "--index", "idx", "--generator", "extractive")
    assert "loading the embedding model..." in capsys.readouterr().err
    assert cli.searcher.embedder._model is not None


def test_a_status_line_precedes_loading_the_local_model(cli, monkeypatch, capsys):
    seen: list[str] = []

    class SlowLocal(FakeGenerator):
        def warm_up(self):  # what the user saw on stderr before the model started loading
            seen.append(capsys.readouterr().err)

    monkeypatch.setattr(cmd, "load_generator", lambda config: SlowLocal([["LoRA trains matrices [1]."]]))
    assert cli("ask", "What does LoRA train?", "--index", "idx", "--generator", "local") == 0
    assert seen and seen[0].strip().endswith("loading the local model...")
