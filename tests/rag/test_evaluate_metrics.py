"""IR metrics: hand-computed cases, and agreement with ranx (a maintained implementation) on random runs."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import pytest

from ragtune.rag.evaluate import (
    average_precision,
    evaluate_run,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    recall_at_k,
)

RELS = {"d1": 2, "d2": 1, "d9": 0}  # d9 judged, not relevant


def test_ndcg_uses_linear_gain_and_log2_rank_plus_one_discount():
    ranked = ["d3", "d1", "d2"]
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(ranked, RELS, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(ranked, RELS, 10) == pytest.approx(0.669672, abs=1e-6)


def test_ndcg_of_ideal_ranking_is_one_and_cutoff_ignores_later_ranks():
    assert ndcg_at_k(["d1", "d2"], RELS, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["d9", "d1"], RELS, 1) == 0.0
    # ideal DCG is cut at k too: with k=1 the best document alone defines it
    assert ndcg_at_k(["d1", "d9"], RELS, 1) == pytest.approx(1.0)


def test_recall_counts_only_positive_judgements_within_k():
    assert recall_at_k(["d9", "d2", "d5"], RELS, 100) == pytest.approx(0.5)
    assert recall_at_k(["d9", "d2", "d1"], RELS, 2) == pytest.approx(0.5)
    assert recall_at_k(["d9", "d2", "d1"], RELS, 3) == pytest.approx(1.0)


def test_mrr_is_reciprocal_rank_of_first_relevant_within_k():
    assert mrr_at_k(["d9", "d5", "d2", "d1"], RELS, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["d9", "d5", "d2"], RELS, 2) == 0.0


def test_average_precision_divides_by_all_relevant_including_unretrieved():
    # relevant at ranks 1 and 3: (1/1 + 2/3) / 2
    assert average_precision(["d1", "d5", "d2"], RELS) == pytest.approx((1 + 2 / 3) / 2)
    # only one of two relevant retrieved, at rank 2: (1/2) / 2
    assert average_precision(["d5", "d2"], RELS) == pytest.approx(0.25)


def test_evaluate_run_ranks_score_dicts_by_score_and_averages_over_judged_queries():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q_none": {"d3": 0}}
    run = {"q1": {"d1": 0.1, "d7": 0.9}, "q3": {"d1": 1.0}}  # q2 missing from the run -> zeros
    means = evaluate_run(run, qrels)
    assert means["queries"] == 2  # q_none has no relevant document: not evaluated
    assert means["mrr@10"] == pytest.approx((1 / 2 + 0) / 2)
    assert means["recall@100"] == pytest.approx(0.5)


def test_list_run_and_duplicate_documents_count_once_at_best_rank():
    qrels = {"q1": {"d1": 1, "d2": 1}}
    per_q = per_query_metrics({"q1": ["d1", "d1", "d2"]}, qrels)["q1"]
    assert per_q["map"] == pytest.approx(1.0)  # d2 at rank 2, not 3


def test_metric_names_follow_the_requested_cutoffs():
    means = evaluate_run({"q1": ["d1"]}, {"q1": {"d1": 1}}, ndcg_k=5, recall_k=20, mrr_k=3)
    assert set(means) == {"ndcg@5", "recall@20", "mrr@3", "map", "queries"}


def _random_case(seed: int, n_queries: int = 40) -> tuple[dict, dict]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(n_queries):
        judged = rng.sample(docs, rng.randint(1, 12))
        rels = {d: rng.choice([0, 1, 1, 2, 3, 4]) for d in judged}
        rels[judged[0]] = rng.randint(1, 4)  # at least one relevant
        qrels[f"q{q}"] = rels
        retrieved = rng.sample(docs, rng.randint(0, 50))
        scores = rng.sample(range(10_000), len(retrieved))  # distinct: no tie-break ambiguity
        run[f"q{q}"] = {d: s / 100 for d, s in zip(retrieved, scores)}
    return qrels, run


# ranx runs in a child process with numba's JIT off: compiling its metrics costs ~40 s of CPU on a fresh
# install, while the same (pure Python) code on 40 queries takes well under a second.
_RANX_SCRIPT = """
import json, sys
import ranx
data = json.load(sys.stdin)
run = ranx.Run(data["run"])
ranx.evaluate(ranx.Qrels(data["qrels"]), run, data["metrics"])
json.dump({m: {q: float(v) for q, v in run.scores[m].items()} for m in data["metrics"]}, sys.stdout)
"""


def _ranx_per_query(qrels: dict, run: dict, metrics: list[str]) -> dict[str, dict[str, float]]:
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-c", _RANX_SCRIPT], input=json.dumps({"qrels": qrels, "run": run, "metrics": metrics}),
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_metrics_agree_with_ranx_on_random_graded_runs():
    pytest.importorskip("ranx")
    qrels, run = _random_case(seed=7)
    run = {q: docs for q, docs in run.items() if docs}  # ranx rejects empty result lists
    qrels = {q: r for q, r in qrels.items() if q in run}
    metrics = ["ndcg@10", "recall@20", "mrr@10", "map"]
    ours = per_query_metrics(run, qrels, ndcg_k=10, recall_k=20, mrr_k=10)
    theirs = _ranx_per_query(qrels, run, metrics)
    assert len(ours) == len(qrels) > 20
    for m in metrics:
        assert set(theirs[m]) == set(qrels), m
        for qid in qrels:
            assert ours[qid][m] == pytest.approx(theirs[m][qid], abs=1e-9), (m, qid)
