"""ragtune/commands/advise.py through its own argparse parser (as ragtune/cli.py wires it)."""

import argparse
import io
import json
from pathlib import Path

import pytest

from ragtune.commands import advise as cmd
from ragtune.errors import AdvisorError

EXAMPLES = Path(__file__).resolve().parents[2] / "advisor" / "examples"


def _run(argv):
    parser = argparse.ArgumentParser(prog="ragtune")
    cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["advise", *argv])
    return args.func(args)


@pytest.fixture(autouse=True)
def no_corpus(monkeypatch):
    """Never build the real corpus index in fast tests; record that it was asked for."""
    calls = []

    def fake():
        calls.append(1)
        raise RuntimeError("no index in tests")

    monkeypatch.setattr(cmd, "corpus_searcher", fake)
    return calls


def test_answers_file_with_json_prints_the_recommendation(capsys, no_corpus):
    assert _run(["--answers", str(EXAMPLES / "rag_team.yaml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["winner"] == "rag"
    assert no_corpus == [1]
    assert "Citations unavailable" in data["citations_note"] and "no index in tests" in data["citations_note"]


def test_report_writes_markdown_chart_and_json(tmp_path, capsys):
    out = tmp_path / "advice.md"
    assert _run(["--answers", str(EXAMPLES / "finetune_team.yaml"), "--report", str(out), "--json",
                 "--no-cite"]) == 0
    assert out.exists() and (tmp_path / "advice.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "advice.json").read_text())["winner"] == "finetune"
    assert "Citations skipped (--no-cite)" in out.read_text()
    captured = capsys.readouterr()
    assert json.loads(captured.out)["winner"] == "finetune"  # stdout stays pure JSON
    assert "wrote" in captured.err


def test_markdown_goes_to_stdout_by_default(capsys):
    _run(["--answers", str(EXAMPLES / "api_prototype.yaml"), "--no-cite"])
    assert capsys.readouterr().out.startswith("# ragtune advisor: API model as is ranks first")


def test_without_a_terminal_or_answers_file_the_user_is_told_to_pass_answers(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(AdvisorError, match="pass --answers FILE.yaml"):
        _run(["--no-cite"])


def test_interactive_mode_asks_in_the_terminal(monkeypatch, capsys):
    monkeypatch.setattr("ragtune.advisor.questionnaire.stdin_is_interactive", lambda: True)
    replies = iter(["1", "", "", "5", "1"])  # docs_qa, skip, skip, daily, citations yes; then Enter for the rest
    monkeypatch.setattr("builtins.input", lambda prompt="": next(replies, ""))
    assert _run(["--json", "--no-cite"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["answers"] == {"use_case": "docs_qa", "knowledge_change": "daily",
                                                   "citations": "yes"}
    assert "How often does the information" in captured.err  # questions go to stderr, JSON to stdout
    assert "Choice 1-4 (Enter to skip): " in captured.err


def test_bad_answers_file_error_names_file_and_field(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("gpu: quantum\n")
    with pytest.raises(AdvisorError, match=r"a.yaml: gpu: 'quantum' is not a valid choice; valid choices: "
                                           r"none, cloud, on_prem"):
        _run(["--answers", str(p), "--no-cite"])


def test_bad_matrix_file_error_names_the_field(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("version: 1\noptions: []\nfactors: []\n")
    with pytest.raises(AdvisorError, match=r"m.yaml: options: expected a non-empty list"):
        _run(["--answers", str(EXAMPLES / "rag_team.yaml"), "--matrix", str(p)])


def test_evidence_mode_needs_both_folder_and_qa(tmp_path):
    with pytest.raises(AdvisorError, match="needs both --evidence DOCS_DIR and --qa"):
        _run(["--answers", str(EXAMPLES / "rag_team.yaml"), "--evidence", str(tmp_path), "--no-cite"])


def test_evidence_mode_feeds_the_pilot_into_the_report(tmp_path, monkeypatch, capsys):
    from ragtune.advisor.evidence import run_pilot

    qa = [{"question": "Q1?", "answer": "alpha beta"}, {"question": "Q2?", "answer": "gamma"}] * 10  # the minimum
    seen = {}

    def fake_pilot(args):
        seen.update(docs=args.evidence, qa=args.qa, generator=args.generator)
        return run_pilot(qa, ask_with_rag=lambda q: "alpha beta gamma", ask_without=lambda q: "no idea")

    monkeypatch.setattr(cmd, "run_pilot", fake_pilot)
    qa_file = tmp_path / "qa.jsonl"
    qa_file.write_text("")
    _run(["--answers", str(EXAMPLES / "rag_team.yaml"), "--evidence", str(tmp_path), "--qa", str(qa_file),
          "--generator", "extractive", "--json", "--no-cite"])
    data = json.loads(capsys.readouterr().out)
    assert seen == {"docs": str(tmp_path), "qa": str(qa_file), "generator": "extractive"}
    assert data["evidence"]["measured_scores"]["api"]["domain_accuracy"] == 1
    rag_acc = next(c for c in next(o for o in data["options"] if o["id"] == "rag")["contributions"]
                   if c["factor_id"] == "domain_accuracy")
    assert rag_acc["prior_score"] == 4 and rag_acc["measured_score"] is not None


def test_report_mode_says_undetermined_and_what_to_answer(tmp_path, capsys):
    p = tmp_path / "a.yaml"
    p.write_text("self_host_model: unsure\n")
    assert _run(["--answers", str(p), "--report", str(tmp_path / "out.md"), "--no-cite"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Undetermined: answer ") and "need" in out
    assert "## Deciding questions" in (tmp_path / "out.md").read_text()


def test_robustness_draws_and_seed_reach_the_report(capsys):
    assert _run(["--answers", str(EXAMPLES / "rag_team.yaml"), "--json", "--no-cite", "--draws", "500",
                 "--seed", "7"]) == 0
    assert json.loads(capsys.readouterr().out)["robustness_config"] == {"spread": 0.3, "draws": 500, "seed": 7}
    with pytest.raises(AdvisorError, match="^--draws: Input should be greater than or equal to 100$"):
        _run(["--answers", str(EXAMPLES / "rag_team.yaml"), "--no-cite", "--draws", "5"])


@pytest.mark.parametrize("name, message", [
    ("out.png", "the chart or JSON would overwrite it"),
    ("out.json", "the chart or JSON would overwrite it"),
    ("missing/out.md", "does not exist"),
    ("afile/out.md", "is not a folder"),
    ("", "--report needs a file name"),
])
def test_a_report_path_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch, name, message):
    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ragtune.advisor.advise", lambda *a, **k: pytest.fail("advised before checking --report"))
    with pytest.raises(AdvisorError, match=message):
        _run(["--answers", str(EXAMPLES / "rag_team.yaml"), "--report", name, "--no-cite"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written


def test_a_number_written_with_other_digits_is_a_clear_error(tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text('labelled_examples: "²"\n', encoding="utf-8")
    with pytest.raises(AdvisorError, match="labelled_examples: expected a whole number"):
        _run(["--answers", str(answers), "--no-cite"])
