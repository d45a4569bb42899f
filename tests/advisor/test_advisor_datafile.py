"""Answers, matrix and questions files: encodings and duplicate keys give one clear line, never a traceback."""

import codecs

import pytest

from ragtune.advisor import Questionnaire
from ragtune.advisor.datafile import read_data_file
from ragtune.cli import main
from ragtune.errors import AdvisorError

ANSWERS = "citations: yes\nknowledge_change: weekly\ndocuments: yes\n"
EXPECTED = {"citations": "yes", "knowledge_change": "weekly", "documents": "yes"}


@pytest.mark.parametrize("encoding, bom", [
    ("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE), ("utf-8", codecs.BOM_UTF8),
    ("utf-32-le", codecs.BOM_UTF32_LE),
])
def test_files_with_a_byte_order_mark_are_read_in_their_encoding(tmp_path, encoding, bom):
    p = tmp_path / "answers.yaml"
    p.write_bytes(bom + ANSWERS.encode(encoding))
    assert Questionnaire.from_file(p).answers == EXPECTED


def test_a_legacy_code_page_file_is_one_clear_error_with_the_line(tmp_path):
    p = tmp_path / "answers.yaml"
    p.write_bytes("citations: yes\n# réponses\n".encode("cp1252"))
    with pytest.raises(AdvisorError, match=rf"^{p}: not UTF-8 text \(byte 0xe9 on line 2\): save the file as UTF-8$"):
        Questionnaire.from_file(p)


def test_utf16_without_a_byte_order_mark_is_refused_clearly(tmp_path):
    p = tmp_path / "answers.yaml"
    p.write_bytes(ANSWERS.encode("utf-16-le"))  # NUL bytes: valid UTF-8, but not YAML a person meant
    with pytest.raises(AdvisorError, match=rf"^{p}: contains NUL bytes, probably UTF-16 without a byte-order mark"):
        Questionnaire.from_file(p)


def test_a_duplicate_yaml_key_names_the_key_and_both_lines(tmp_path):
    p = tmp_path / "answers.yaml"
    p.write_text("citations: yes\nbudget: minimal\ncitations: no\n")
    with pytest.raises(AdvisorError, match=rf"^{p}: duplicate key 'citations' \(line 3; first at line 1\): keep one$"):
        Questionnaire.from_file(p)


def test_a_duplicate_key_in_a_nested_mapping_is_caught_too(tmp_path):
    p = tmp_path / "answers.yaml"
    p.write_text("answers:\n  gpu: cloud\n  gpu: none\n")
    with pytest.raises(AdvisorError, match="duplicate key 'gpu' \\(line 3; first at line 2\\)"):
        read_data_file(p, what="answers file")


def test_a_duplicate_json_key_names_the_key(tmp_path):
    p = tmp_path / "answers.json"
    p.write_text('{"citations": "yes", "citations": "no"}')
    with pytest.raises(AdvisorError, match=rf"^{p}: duplicate key 'citations': keep one$"):
        Questionnaire.from_file(p)


def test_a_folder_instead_of_a_file_is_a_clear_error(tmp_path):
    with pytest.raises(AdvisorError, match="is a folder: pass a .yaml or .json file"):
        read_data_file(tmp_path, what="answers file")


@pytest.mark.parametrize("content, message", [
    ("citations: yes\ncitations: no\n".encode("utf-16"), "duplicate key 'citations'"),
    (b"gpu: cl\xf6ud\n", "not UTF-8 text"),
    (b"gpu: quantum\n", "gpu: 'quantum' is not a valid choice"),
    (b"colour: blue\n", "unknown question 'colour'"),
    (b"citations: [yes\n", "invalid YAML at line 2"),
])
def test_the_cli_prints_one_line_and_no_traceback(tmp_path, capsys, content, message):
    p = tmp_path / "answers.yaml"
    p.write_bytes(content)
    assert main(["advise", "--answers", str(p), "--no-cite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize("written, count", [("050", 50), ("0050", 50), ("049", 49), ("1_000", 1000), ("300", 300)])
def test_a_count_with_a_leading_zero_is_read_as_the_decimal_it_looks_like(tmp_path, written, count):
    # YAML 1.1 read 050 as octal 40, under the 50-example floor: fine-tuning was ruled out silently
    p = tmp_path / "answers.yaml"
    p.write_text(f"labelled_examples: {written}\n")
    assert Questionnaire.from_file(p).answers == {"labelled_examples": count}


def test_a_base_60_count_is_refused_naming_the_field_not_read_as_80(tmp_path):
    p = tmp_path / "answers.yaml"
    p.write_text("labelled_examples: 1:20\n")
    with pytest.raises(AdvisorError, match=r"labelled_examples: expected a whole number 0 or more, got '1:20'$"):
        Questionnaire.from_file(p)
