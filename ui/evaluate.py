"""Evaluate: retrieval quality on a BEIR-layout folder or a QA file, as a metrics table and a chart."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ragtune import api

from . import state

MODES = ["dense", "bm25", "hybrid"]


def _run(job: api.Job, target: str, opening: api.Job | None, modes: list[str], k: int | None,
         limit: int | None) -> dict:
    """Evaluate ``target``; a QA file first waits for the shared index (``opening``) to finish opening."""
    index = None
    if opening is not None:
        if opening.running:
            job.report("wait", 0, None, "waiting for the index to open")
            opening.wait()
        if opening.state != "done":
            raise api.RagtuneError(f"the index could not be opened: {opening.error or opening.state}")
        index = opening.result
    return api.evaluate_dataset(target, index=index, modes=tuple(modes), k=k, limit_queries=limit,
                                progress=job.report)


def table(report: dict) -> list[dict]:
    """One row per mode: the metrics (rounded) and the median search latency."""
    rows = []
    for mode, metrics in report["results"].items():
        row = {"mode": mode}
        row.update({name: round(value, 4) for name, value in metrics.items()
                    if name not in ("queries", "p50_ms", "p95_ms")})
        row["p50 ms"] = f"{metrics.get('p50_ms', 0.0):.1f}"  # text: st.table would print it with 4 decimals
        rows.append(row)
    return rows


def show(report: dict) -> None:
    import pandas as pd

    kind = "BEIR collection" if report["kind"] == "beir" else "QA file"
    st.write(f"**{report['name']}** ({kind}): {report['queries']} queries, k = {report['k']}")
    frame = pd.DataFrame(table(report)).set_index("mode")
    # st.table, not st.dataframe: a few rows read best as plain text (and it is real text in the page,
    # which the browser test reads; a dataframe is drawn on a canvas)
    st.table(frame)
    st.caption("One bar per metric and search mode (higher is better)")
    st.bar_chart(frame.drop(columns=["p50 ms"]).T, stack=False)


def render() -> None:
    st.title("Evaluate retrieval")
    state.index_job()  # a QA file is scored against the index: start opening it now
    st.write("A **BEIR folder** (corpus.jsonl, queries.jsonl, qrels/test.tsv) is indexed into a temporary "
             "index and scored with nDCG@10, Recall@k, MRR@10 and MAP. A **QA file** (.jsonl of question + "
             "source) is scored against the current index: does the supporting file come back in the top k?")
    default = str(api.corpora_dir() / "qa.jsonl")
    with st.form("eval_form"):
        target = st.text_input("BEIR folder or QA .jsonl file", value=default)
        modes = st.multiselect("Search modes", MODES, default=MODES)
        c1, c2 = st.columns(2)
        k = c1.number_input("k (0: default, 100 for BEIR, 5 for QA)", 0, 1000, 0)
        limit = c2.number_input("Only the first N queries (0: all)", 0, 100000, 0)
        run = st.form_submit_button("Evaluate", type="primary")
    if run:
        path = Path(target.strip()).expanduser()
        refusal = None
        if not target.strip():
            refusal = "enter the path of a BEIR folder or a QA .jsonl file"
        elif not path.exists():
            refusal = f"{path}: no such file or folder"
        elif not modes:
            refusal = "choose at least one search mode"
        if refusal:
            st.error(refusal)  # alone: the previous run's results below it would read as this one's
            return
        # a QA file is scored against the index: the job waits for it to open rather than refusing
        opening = state.index_job() if path.is_file() else None
        state.start_job("evaluate", _run, str(path), opening, modes, int(k) or None, int(limit) or None,
                        exclusive=True)
    state.follow_job("evaluate", "Evaluating ...", show)
