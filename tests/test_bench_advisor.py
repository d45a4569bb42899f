"""bench/advisor.py: its section writer and its baseline loader (a smoke test; the bench prints, never asserts)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "advisor.py"


def load_bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_advisor", BENCH)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_advisor_section_is_replaced_in_place_or_appended(tmp_path, monkeypatch):
    bench = load_bench(monkeypatch)
    p = tmp_path / "BENCHMARKS.md"
    p.write_text("# Figures\n\n## Retrieval\n\nr\n")
    bench.write_section("## Advisor: x\n\nold\n", p)
    assert p.read_text() == "# Figures\n\n## Retrieval\n\nr\n\n## Advisor: x\n\nold\n"
    p.write_text(p.read_text() + "\n## Later\n\nl\n")
    bench.write_section("## Advisor: x\n\nnew\n", p)
    assert p.read_text() == "# Figures\n\n## Retrieval\n\nr\n\n## Advisor: x\n\nnew\n\n## Later\n\nl\n"


def test_the_baseline_drops_what_the_old_questionnaire_cannot_express(monkeypatch):
    bench = load_bench(monkeypatch)
    try:
        base = bench.load_baseline(bench.BASELINE_COMMIT)
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip("the branch-point commit is not in this checkout's history")
    kept = bench.baseline_answers(base, {"need": "knowledge", "knowledge_change": "monthly", "citations": "yes"})
    assert kept == {"citations": "yes"}
    assert base.advise({}).winner == "rag"  # the behaviour issue 13 reported: RAG first with no answers
