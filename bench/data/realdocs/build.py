"""Rebuild the real-document evaluation set from Debian's python3.11-doc package (the CPython manuals).

    python bench/data/realdocs/build.py            # -> bench/data/realdocs/docs/ (10 files, 5 formats)

The questions (``questions.jsonl``: answerable, with gold fact and gold file; ``unanswerable.jsonl``) were
written by reading these documents; the documents themselves are rebuilt, not committed. The package is
fetched with ``apt-get download`` and unpacked with ``dpkg -x`` into a cache folder: ``apt-get install
python3-doc`` would also upgrade the system's python3.11 to the documentation's exact version, which a
benchmark has no business doing. Some pages are converted to PDF (reportlab), DOCX (python-docx), Markdown
and plain text, so every ingestion path the product supports is exercised on text nobody wrote for it.
"""

from __future__ import annotations

import argparse
import glob
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "python3.11-doc"
# page of the manual -> the format it is shipped in here
PAGES = {
    "tutorial/controlflow.html": "html",
    "tutorial/errors.html": "html",
    "library/json.html": "html",
    "howto/logging.html": "html",
    "tutorial/modules.html": "pdf",
    "tutorial/interpreter.html": "pdf",
    "tutorial/floatingpoint.html": "docx",
    "howto/unicode.html": "docx",
    "howto/sorting.html": "md",
    "tutorial/venv.html": "txt",
}


def fetch(cache: Path) -> Path:
    """The package's html/ folder, downloaded and unpacked into ``cache`` once."""
    html = cache / "root" / "usr" / "share" / "doc" / "python3.11" / "html"
    if html.is_dir():
        return html
    cache.mkdir(parents=True, exist_ok=True)
    debs = glob.glob(str(cache / f"{PACKAGE}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", PACKAGE], cwd=cache, check=True)
        debs = glob.glob(str(cache / f"{PACKAGE}_*.deb"))
    subprocess.run(["dpkg", "-x", debs[0], str(cache / "root")], check=True)
    return html


def blocks(html_file: Path) -> list[tuple[str, str]]:
    """The page's main text as (kind, text) blocks: h1..h4, p, li, pre, in reading order."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html_file.read_text(encoding="utf-8"), "html.parser")
    body = soup.select_one('div[role="main"]') or soup.body
    for junk in body.select("a.headerlink, div.sphinxsidebar, div.related"):
        junk.decompose()
    out: list[tuple[str, str]] = []
    for el in body.find_all(["h1", "h2", "h3", "h4", "p", "li", "pre", "dt"]):
        if el.name in ("p", "dt") and el.find_parent(["li"]):
            continue  # a list item's paragraph is emitted with the item
        if el.name == "p" and el.find_parent("dd") and el.find_parent("li"):
            continue
        text = el.get_text() if el.name == "pre" else el.get_text(" ")
        text = text if el.name == "pre" else " ".join(text.split())
        if text.strip():
            out.append(("p" if el.name == "dt" else el.name, text.rstrip()))
    return out


def write_md(bl, path: Path) -> None:
    lines = []
    for kind, text in bl:
        if kind.startswith("h"):
            lines.append("#" * int(kind[1]) + " " + text)
        elif kind == "pre":
            lines.append("```\n" + text + "\n```")
        elif kind == "li":
            lines.append("- " + text)
        else:
            lines.append(text)
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")


def write_txt(bl, path: Path) -> None:
    lines = []
    for kind, text in bl:
        if kind.startswith("h"):
            lines.append(text + "\n" + ("=" if kind == "h1" else "-") * len(text))
        elif kind == "pre":
            lines.append("\n".join("    " + line for line in text.splitlines()))
        elif kind == "li":
            lines.append("* " + text)
        else:
            lines.append(text)
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")


def write_pdf(bl, path: Path) -> None:
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, Preformatted, SimpleDocTemplate

    styles = getSampleStyleSheet()
    story = []
    for kind, text in bl:
        if kind.startswith("h"):
            story.append(Paragraph(escape(text), styles[f"Heading{min(int(kind[1]), 3)}"]))
        elif kind == "pre":
            story.append(Preformatted(text, styles["Code"]))
        elif kind == "li":
            story.append(Paragraph(escape(text), styles["Bullet"], bulletText="\u2022"))
        else:
            story.append(Paragraph(escape(text), styles["BodyText"]))
    SimpleDocTemplate(str(path), pagesize=A4).build(story)


def write_docx(bl, path: Path) -> None:
    import docx

    doc = docx.Document()
    for kind, text in bl:
        if kind.startswith("h"):
            doc.add_heading(text, level=int(kind[1]))
        elif kind == "li":
            doc.add_paragraph(text, style="List Bullet")
        else:
            doc.add_paragraph(text)  # code too: Word users paste code as plain paragraphs
    doc.save(str(path))


WRITERS = {"md": write_md, "txt": write_txt, "pdf": write_pdf, "docx": write_docx}


def build(out: Path, cache: Path, pages: dict[str, str] | None = None) -> list[Path]:
    html = fetch(cache)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for page, fmt in (pages or PAGES).items():
        src = html / page
        name = page.replace("/", "_").rsplit(".", 1)[0] + "." + fmt
        target = out / name
        if fmt == "html":
            shutil.copyfile(src, target)
        else:
            WRITERS[fmt](blocks(src), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None, *, pages: dict[str, str] | None = None, out: Path = HERE / "docs",
         description: str | None = None) -> int:
    """The command line of this script, and of bench/data/dev/build.py (other ``pages``, ``out``, text)."""
    p = argparse.ArgumentParser(description=description or __doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=out)
    p.add_argument("--cache", type=Path, default=HERE / ".deb-cache")
    args = p.parse_args(argv)
    for path in build(args.out, args.cache, pages):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
