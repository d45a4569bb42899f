"""ragtune/commands/help.py: every command's --help has a description, an example of itself, plain text, and
one value name per flag; `index info` shows readable times and only the chunker settings in use."""

from __future__ import annotations

import argparse
import re
from collections import defaultdict

import pytest

from ragtune.cli import build_parser, main
from ragtune.commands.help import commands, plain, shows_example
from ragtune.commands.index import when

MARKUP = re.compile(r"``|:(?:func|class|meth|mod|data|attr|ref|doc|obj):`")


def test_every_command_help_has_a_description_and_an_example_and_no_doc_markup(capsys):
    seen = []
    for words, parser in commands(build_parser()):
        with pytest.raises(SystemExit) as exc:
            main([*words, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        name = " ".join(("ragtune", *words))
        assert text.startswith(f"usage: {name}"), name
        assert parser.description and len(parser.description.split()) >= 3, f"{name}: no description"
        assert not MARKUP.search(text), f"{name}: doc markup in --help: {MARKUP.search(text).group(0)}"
        assert shows_example(parser, words), f"{name}: no example of itself in --help"
        seen.append(name)
    # every group and verb was walked, not only the top level
    assert {"ragtune advise", "ragtune index info", "ragtune tune merge", "ragtune eval retrieval", "ragtune ui",
            "ragtune chat"} <= set(seen)


def test_each_flag_has_one_value_name_on_every_command():
    names = defaultdict(set)
    for words, parser in commands(build_parser()):
        for action in parser._actions:
            # --generator's choices and --out's FILE or DIR differ with what the command accepts or writes.
            if action.nargs == 0 or action.choices or not action.option_strings or "--out" in action.option_strings:
                continue
            shown = argparse.HelpFormatter("ragtune")._format_args(action, action.dest.upper())
            for option in action.option_strings:
                names[option].add(shown)
    mixed = {option: shown for option, shown in names.items() if len(shown) > 1}
    assert not mixed
    assert names["--k"] == {"N"} and names["--qa"] == {"FILE"}


def test_plain_renders_doc_markup_as_text():
    assert plain("``ragtune ui``: see :func:`ragtune.api.ask` and :class:`~rag.Index`") == \
        "ragtune ui: see ragtune.api.ask and rag.Index"


def test_times_are_a_utc_date_and_an_age():
    assert when(1_795_000_000, now=1_795_000_000 + 180) == "2026-11-18 11:06 UTC (3 minutes ago)"
    assert when(1_795_000_000, now=1_795_000_000 + 2 * 86400 + 5).endswith("(2 days ago)")
    assert when(1_795_000_000, now=1_795_000_010).endswith("(just now)")
    assert when(None) == "never"


@pytest.mark.parametrize("chunker", ["structure", "recursive"])
def test_index_info_shows_readable_time_and_only_the_chunker_settings_in_use(tmp_path, capsys, chunker):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# LoRA\n\nLoRA trains two small low-rank matrices per layer.\n")
    index = str(tmp_path / "idx")
    assert main(["index", "add", str(docs), "--index", index, "--embedder", "hash-64", "--chunker", chunker,
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["index", "info", "--index", index]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines() if line.strip()}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \((just now|1 minute ago)\)", lines["updated"])
    if chunker == "structure":
        assert "chunk_size" not in lines["chunker"] and "chunk_overlap" not in lines["chunker"]
        assert "overlap_tokens=32" in lines["chunker"] and "max_tokens=256" in lines["chunker"]
    else:
        assert "chunk_size=1000" in lines["chunker"] and "overlap_tokens" not in lines["chunker"]


def test_tune_run_help_names_the_training_config_defaults():
    from ragtune.tune.config import TrainConfig

    run = dict(commands(build_parser()))[("tune", "run")]
    helps = {a.option_strings[0]: a.help for a in run._actions if a.option_strings}
    defaults = TrainConfig()
    for option, field in [("--epochs", "epochs"), ("--learning-rate", "learning_rate"), ("--rank", "rank"),
                          ("--batch-size", "batch_size"), ("--max-length", "max_length"),
                          ("--grad-accum", "grad_accum")]:
        value = getattr(defaults, field)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert f"(default {shown})" in helps[option], (option, helps[option])


def test_every_option_has_help_and_number_options_a_short_value_name():
    for words, parser in commands(build_parser()):
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            name = " ".join(("ragtune", *words, action.option_strings[0]))
            assert action.help, f"{name}: no help"
            if action.nargs != 0 and action.type in (int, float) and not action.choices:
                assert action.metavar is not None, f"{name}: shows its destination name as the value"


@pytest.mark.parametrize("argv, says", [
    (["search", "x", "--mode", "foo"], "ragtune: error: search: argument --mode: invalid choice: 'foo'"),
    (["search", "x", "--k", "abc"], "ragtune: error: search: argument --k: invalid int value: 'abc'"),
    (["tune", "run"], "ragtune: error: tune run: the following arguments are required: --data, --out"),
    (["nosuch"], "ragtune: error: argument COMMAND: invalid choice: 'nosuch'"),
])
def test_a_usage_mistake_is_one_line_naming_the_help(capsys, argv, says):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(says) and "--help`" in err and "usage:" not in err
