"""bench/retrieval.py runs end to end on a tiny BEIR collection (a smoke test; the bench prints, never asserts)."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

import pytest
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
    assert bench.main(["--datasets", str(dataset), "--systems", "bm25,ragtune", "--fusion-ceiling", "--json",
                       "--no-cache"]) == 0
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
    summary = json.loads(out.out)["summary"]
    assert summary["collections"] == [report["dataset"]]
    assert summary["ratio_on_mean"] == report["ratio"] == summary["min_ratio"]


def test_langchain_newline_replacement_gives_ragtune_s_vectors(tmp_path, monkeypatch):
    """The shared cache is sound: HuggingFaceEmbeddings embeds "title text" where ragtune embeds
    "title\ntext"; MiniLM's tokenizer treats both as white space, so the vectors agree."""
    import numpy as np

    from ragtune.rag.embed import make_embedder

    emb = make_embedder("default")
    texts = ["Boundary layers\nThe flow separates behind the shock.", "lens\n\ncataract in the elderly"]
    a = emb.encode(texts)
    b = emb.encode([t.replace("\n", " ") for t in texts])
    assert np.allclose(a, b, atol=1e-5)


def test_vector_cache_fills_once_and_survives_a_reload(tmp_path, monkeypatch):
    import numpy as np

    load_bench(monkeypatch)  # puts bench/ on sys.path
    from embcache import VectorCache

    calls = []

    def compute(texts):
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    cache = VectorCache(tmp_path / "c.npz")
    first = cache.get_many(["ab", "c", "ab"], compute)
    assert calls == [["ab", "c"]] and first[:, 0].tolist() == [2, 1, 2]
    again = VectorCache(tmp_path / "c.npz").get_many(["c", "xyz"], compute)
    assert calls[-1] == ["xyz"] and again[:, 0].tolist() == [1, 3]


def test_a_model_tuned_on_the_same_pairs_for_as_many_steps_is_reused(tmp_path, monkeypatch, hash_index, docs_dir):
    """The bench trains once per collection: a second run finds the model (its metadata) and skips training;
    other pairs or another number of steps train afresh (here: fail, since a hash index cannot be tuned)."""
    from ragtune.tune.embedder import META_FILE, EmbedderTuneConfig, build_pairs, pairs_digest

    bench = load_bench(monkeypatch)
    index = hash_index()
    index.add([docs_dir], progress=False)
    config = EmbedderTuneConfig(steps=7)
    digest = pairs_digest(build_pairs(index.chunks(), config))
    out = tmp_path / "tuned"
    out.mkdir()
    meta = {"format": "ragtune-embedder", "pairs": 40, "steps": 7, "train_seconds": 12.5, "peak_memory_mb": 900.0,
            "config": config.model_dump(), "data": {"sha256": digest}}
    (out / META_FILE).write_text(json.dumps(meta))
    index.close()
    info = bench.train_in_child(index.root, out, 7)
    assert info == {"pairs": 40, "steps": 7, "train_seconds": 12.5, "peak_memory_mb": 900.0, "reused": True}
    with pytest.raises(RuntimeError, match="tuning failed"):
        bench.train_in_child(index.root, out, 8)


def test_tuned_embedder_is_paired_query_by_query_and_summarised_without_baselines(monkeypatch, capsys):
    """The tuned embedder's gain is the per-query nDCG@10 difference to the base embedder (mean and SE per
    collection, and on the mean of the collections); a run without baselines (--systems ragtune) still sums it."""
    bench = load_bench(monkeypatch)
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
    base = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d1": 2.0, "d2": 1.0}, "q3": {"d3": 1.0}}
    tuned = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d2": 2.0, "d1": 1.0}, "q3": {"d3": 1.0}}
    p = bench.paired_difference(tuned, base, qrels)
    gain = 1 - 1 / math.log2(3)  # q2's relevant document moves from rank 2 to rank 1
    assert p["mean"] == pytest.approx(gain / 3) and p["queries"] == 3
    assert p["se"] == pytest.approx(statistics.stdev([0, gain, 0]) / 3 ** 0.5)
    assert (p["better"], p["worse"]) == (1, 0)
    worse = bench.paired_difference(base, tuned, qrels)
    assert worse["mean"] == pytest.approx(-p["mean"]) and (worse["better"], worse["worse"]) == (0, 1)

    reports = [{"dataset": name, "ratio": None, "ragtune_default_ndcg@10": 0.5, "tuned_ndcg@10": 0.5 + d["mean"],
                "tuned_paired": d} for name, d in (("a", p), ("b", worse))]
    summary = bench.summarize(reports)
    assert summary["tuned_mean_delta"] == pytest.approx(0.0)
    assert summary["tuned_mean_delta_se"] == pytest.approx((p["se"] ** 2 + worse["se"] ** 2) ** 0.5 / 2)
    bench.print_summary(summary)
    assert "mean of the collections' paired differences: +0.0000" in capsys.readouterr().out
