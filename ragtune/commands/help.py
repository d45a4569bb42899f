"""One pass over the finished parser so that every command's --help reads the same way.

Each command module writes its own description; some reuse their module docstring, which is
reStructuredText for the API docs. This pass, run by ``ragtune.cli.build_parser``:

- renders doc markup as plain text (double backticks, roles such as :func:);
- gives a verb without a description its one-line help as description;
- adds an "examples:" block to every command that shows no example of itself;
- gives one value name to each flag everywhere (``--k N`` in search and in eval retrieval);
- wraps prose paragraphs to the terminal and keeps indented lines (examples) as written.

Kept apart from the command modules so that their owners' edits and this table do not collide.
"""

from __future__ import annotations

import argparse
import re
import textwrap

# Examples for the commands whose module does not show one (key: the words after "ragtune").
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ('ragtune index add corpora/', 'ragtune ask "What does QLoRA quantise the base model to?"',
         "ragtune advise --answers answers.yaml --report advice.md"),
    "index": ("ragtune index add docs/ --exclude '*.tmp'", "ragtune index info --index my-index"),
    "index add": ("ragtune index add docs/ handbook.pdf", "ragtune index add docs/ --prune --json",
                  "ragtune index add docs/ --index my-index --chunker recursive"),
    "index info": ("ragtune index info", "ragtune index info --index my-index --json"),
    "index files": ("ragtune index files", "ragtune index files --index my-index --json"),
    "index verify": ("ragtune index verify", "ragtune index verify --index my-index --json"),
    "index repair": ("ragtune index repair --index my-index",),
    "index remove": ("ragtune index remove docs/old.pdf", "ragtune index remove docs/a.md docs/b.md --json"),
    "eval": ("ragtune eval retrieval --qa corpora/qa.jsonl --json",),
    "tune": ("ragtune tune data --index my-index --out data.jsonl",
             "ragtune tune run --data data.jsonl --out runs/lora"),
    "tune data": ("ragtune tune data --index my-index --out data.jsonl", "ragtune tune data --out data.jsonl --show-example"),
    "tune run": ("ragtune tune run --data data.jsonl --out runs/lora",
                 "ragtune tune run --data data.jsonl --out runs/lora --config tune/adapters/smollm2-raft.yaml"),
    "tune eval": ("ragtune tune eval --adapter runs/lora --data data.jsonl --json",),
    "tune merge": ("ragtune tune merge --adapter runs/lora --out merged-model",),
    "tune embedder": ("ragtune tune embedder --index my-index --out runs/embedder",),
}

# One value name per flag, whatever command it is on. "--out" names a FILE or a DIR by what the command
# writes, so it is only filled in where a command left argparse's default (its upper-cased name).
VALUE_NAMES = {"--k": "N", "--limit": "N", "--batch-size": "N", "--adapter": "DIR", "--model": "DIR",
               "--data": "FILE", "--qa": "FILE"}
_FILL_ONLY = {"--out": "DIR"}

_MARKUP_RE = re.compile(r"``([^`]+)``|:(?:func|class|meth|mod|data|attr|ref|doc|obj):`~?([^`]+)`")


def plain(text: str | None) -> str | None:
    """``ragtune ui`` -> ragtune ui; :func:`ragtune.api.ask` -> ragtune.api.ask."""
    if not text:
        return text
    return _MARKUP_RE.sub(lambda m: m.group(1) or m.group(2), text)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Prose paragraphs are re-wrapped to the terminal; a paragraph with indented lines (examples,
    a list of commands) is printed as written."""

    def _fill_text(self, text, width, indent):
        out = []
        for para in re.split(r"\n\s*\n", text.strip("\n")):
            lines = para.splitlines()
            if any(line.startswith((" ", "\t")) for line in lines) or lines[0].endswith(":"):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(para.split()), width, initial_indent=indent,
                                         subsequent_indent=indent))
        return "\n\n".join(out)


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(words, parser)`` for the parser and every sub-command under it, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                sub._short_help = helps.get(name)  # the line the parent's --help shows for it
                yield from commands(sub, (*path, name))


def shows_example(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> bool:
    """Whether the help text holds an indented line that runs this very command."""
    call = " ".join(("ragtune", *words))
    return any(line.strip().startswith(call) for line in parser.format_help().splitlines()
               if line.startswith(" "))


def _one_line_error(parser: argparse.ArgumentParser):
    """argparse's error() prints the whole usage block before the message; a mistake is one line, as every
    other error of the CLI is (`ragtune: error: ...`), and says where the usage is."""

    command = parser.prog.removeprefix("ragtune").strip()

    def error(message: str):
        where = f"{command}: " if command else ""
        parser.exit(2, f"ragtune: error: {where}{message} (see `{parser.prog} --help`)\n")

    return error


def finish(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    for words, p in commands(parser):
        p.formatter_class = HelpFormatter
        p.error = _one_line_error(p)
        p.description = plain(p.description) or _sentence(getattr(p, "_short_help", None))
        p.epilog = plain(p.epilog)
        for action in p._actions:
            action.help = plain(action.help)
            for option in action.option_strings:
                if option in VALUE_NAMES and action.nargs != 0:
                    action.metavar = VALUE_NAMES[option]
                elif option in _FILL_ONLY and action.metavar is None:
                    action.metavar = _FILL_ONLY[option]
                elif action.metavar is None and action.nargs != 0 and action.type in (int, float) \
                        and not action.choices:
                    action.metavar = "N" if action.type is int else "X"  # not MAX_STEPS, ABSTAIN_SHARE
        key = " ".join(words)
        if key in EXAMPLES and not shows_example(p, words):
            block = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[key])
            p.epilog = f"{p.epilog}\n\n{block}" if p.epilog else block
    return parser


def _sentence(text: str | None) -> str | None:
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
