"""ui/ sits on the public API: it imports ragtune.api (and its own modules), never ragtune.rag/.tune/.advisor."""

from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "ui"


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            if node.module == "ragtune":
                names += [f"ragtune.{a.name}" for a in node.names]
    return names


def violations(path: Path) -> list[str]:
    bad = []
    for m in imported_modules(path):
        top = m.split(".")[0]
        if top in ("rag", "tune", "advisor"):
            bad.append(m)
        elif top == "ragtune" and not (m in ("ragtune", "ragtune.api") or m.startswith("ragtune.ui")):
            bad.append(m)  # ragtune.rag/.tune/.advisor/.commands, ragtune.shared, ...: go through ragtune.api
    return bad


def test_ui_modules_import_only_the_public_api():
    files = sorted(UI.glob("**/*.py"))
    assert len(files) >= 8  # app, state, render, uploads and the five pages
    assert {p.name: violations(p) for p in files if violations(p)} == {}


def test_the_checker_catches_a_private_import(tmp_path):
    sneaky = tmp_path / "page.py"
    sneaky.write_text("from ragtune.rag.index import Index\nfrom ragtune import advisor\nimport ragtune.api\n"
                      "from ragtune.ui import state\n")
    assert violations(sneaky) == ["ragtune.rag.index", "ragtune.advisor"]
