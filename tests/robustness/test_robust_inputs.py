"""Bad input at the CLI boundary: each is one `ragtune: error:` line and a non-zero exit, never a traceback."""

from __future__ import annotations

import pytest

from ragtune.cli import main

BAD_ANSWERS = {
    "garbage.yaml": b"{{{: not yaml ::: [",
    "list.yaml": b"- just\n- a list\n",
    "binary.yaml": bytes(range(256)),
    "unknown.yaml": b"no_such_question: 3\n",
    "wrongtype.yaml": b"data_volume: [1, 2, {nested: true}]\n",
    "empty.json": b"",
}


@pytest.mark.parametrize("name", sorted(BAD_ANSWERS))
def test_bad_answers_file_is_one_error_line(tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes(BAD_ANSWERS[name])
    code = main(["advise", "--answers", str(path), "--no-cite", "--json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("ragtune: error:") and "Traceback" not in err[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "LoRA", "--k", "0"],
        ["search", "LoRA", "--filter", "nokey"],
        ["search", "LoRA", "--filter", "bad key!=1"],
        ["search", "", ],
        ["index", "remove", "/nope/never.md"],
    ],
)
def test_bad_query_options_are_one_error_line(tmp_path, capsys, docs_dir, argv):
    index = str(tmp_path / "index")
    assert main(["index", "add", str(docs_dir), "--index", index, "--embedder", "hash-64", "--no-progress"]) == 0
    capsys.readouterr()
    code = main([*argv, "--index", index])
    out, err = capsys.readouterr()
    err = [line for line in err.strip().splitlines() if line]
    assert code != 0
    assert len(err) == 1 and err[0].startswith("ragtune: error: ") and "Traceback" not in err[0]
    if argv[:2] == ["index", "remove"]:
        assert "nothing removed: /nope/never.md" in err[0] and not out
