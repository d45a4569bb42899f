"""bench/retrieval.py runs end to end on a tiny BEIR collection (a smoke test; the bench prints, never asserts)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from test_evaluate_datasets import write_beir

BENCH = Path(__file__).resolve().parents[1] / "bench" / "retrieval.py"


def load_bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_retrieval", BENCH)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_retrieval_bench_reports_systems_ratio_and_the_labelled_fusion_ceiling(tmp_path, capsys, monkeypatch):
    dataset = write_beir(tmp_path / "tiny")
    bench = load_bench(monkeypatch)
    assert bench.main(["--datasets", str(dataset), "--systems", "bm25,ragtune", "--fusion-ceiling", "--json"]) == 0
    out = capsys.readouterr()
    (report,) = json.loads(out.out)["collections"]
    systems = {r["system"]: r for r in report["systems"]}
    assert {"BM25 (bm25s, stemmed)", "ragtune dense", "ragtune bm25", "ragtune hybrid (default)"} <= set(systems)
    ceiling = [r for r in report["systems"] if r["diagnostic"]]
    assert len(ceiling) == 1 and ceiling[0]["system"].startswith("fusion ceiling*")
    assert not ceiling[0]["baseline"]
    hybrid = systems["ragtune hybrid (default)"]["metrics"]
    assert hybrid["ndcg@10"] > 0.8  # q1 -> d1 first, q2 -> d2 first on this tiny set
    assert report["ratio"] == hybrid["ndcg@10"] / report["best_baseline_ndcg@10"]
    assert report["fusion_ceiling_ratio"] == ceiling[0]["metrics"]["ndcg@10"] / report["best_baseline_ndcg@10"]
    assert "NOT a result" in out.err  # the diagnostic is labelled as such in the printed table
