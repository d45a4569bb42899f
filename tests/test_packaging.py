"""The built wheel holds every package folder of the source tree (a folder missing from pyproject's
package list would install fine in editable mode and break for everyone else)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def source_packages() -> set[str]:
    """Import names of every folder holding an __init__.py, as pyproject maps them (rag/ -> ragtune/rag)."""
    import tomllib

    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    folder_to_package = {Path(folder): package for package, folder in mapping.items()}
    found = set()
    for folder, package in folder_to_package.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            if "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
                continue
            found.add(".".join([package, *rel.parts]))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return next(out.glob("ragtune-*.whl"))


def test_wheel_contains_every_package_folder(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = source_packages()
    assert {"ragtune", "ragtune.rag", "ragtune.rag.generators", "ragtune.ui", "ragtune.advisor"} <= packages
    missing = sorted(p for p in packages if p.replace(".", "/") + "/__init__.py" not in names)
    assert missing == []


def test_wheel_carries_the_app_and_the_data_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ragtune/ui/app.py" in names
    assert "ragtune/advisor/matrix.yaml" in names and "ragtune/advisor/questions.yaml" in names
    assert "ragtune/corpora/qa.jsonl" in names
