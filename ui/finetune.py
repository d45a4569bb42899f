"""Fine-tune: build training data from the index, train a LoRA adapter in the background with a live loss
chart, evaluate it against the base model, then answer with it in Chat.

It uses the tuning API (``build_training_data``, ``train_adapter``, ``evaluate_adapter``, ``TrainConfig``);
where that is not installed, the page says what it will do instead of failing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from ragtune import api

from . import state

TUNE_NAMES = ("TrainConfig", "build_training_data", "train_adapter", "evaluate_adapter")
# Defaults sized for a 2-core CPU: SmolLM2-135M with rank-16 LoRA takes ~2-4 s per step of 4 examples
# of up to 512 tokens there, so 40 steps finish in about 2-3 minutes (more steps: better, slower).
DEFAULT_STEPS = 40
DEFAULT_MAX_LENGTH = 512

PLAN = """\
This page turns the indexed documents into a small fine-tuned model:

1. **Training data**: question/answer pairs written from the indexed passages (no API needed).
2. **Training**: a LoRA adapter on the local SmolLM2-135M model, with a live loss chart; the default
   budget finishes on a laptop CPU in a few minutes, and you can stop it at any time.
3. **Evaluation**: the base model against base + adapter on held-out questions.
4. **Use it**: one click selects the adapter in Chat.
"""


def _paths() -> tuple[Path, Path]:
    home = state.settings().adapters_dir
    return home.parent / "training-data" / "train.jsonl", home


def _build(job: api.Job, index_dir: Path, out: Path) -> Any:
    out.parent.mkdir(parents=True, exist_ok=True)
    index = api.Index.open(index_dir)  # its own reader: this runs on the job's thread
    try:
        return api.build_training_data(index, out, progress=job.report)
    finally:
        index.close()


def _train(job: api.Job, data: Path, out: Path, config: Any) -> Any:
    return api.train_adapter(data, out, config, progress=job.report, on_log=job.log, should_stop=job.should_stop)


def _evaluate(job: api.Job, adapter: Path, index_dir: Path) -> Any:
    index = api.Index.open(index_dir)
    try:
        return api.evaluate_adapter(adapter, index=index, progress=job.report)
    finally:
        index.close()


def _as_dict(result: Any) -> Any:
    return result.to_dict() if hasattr(result, "to_dict") else result


def data_step(data: Path) -> None:
    st.subheader("1. Training data")
    if st.button("Build training data from the index"):
        state.start_job("training data", _build, state.settings().index_dir, data, exclusive=True)
    state.follow_job("training data", "Writing training examples ...",
                     lambda result: st.json(_as_dict(result), expanded=False))
    if data.exists():
        st.caption(f"Training data: {data}")


def loss_chart(records: list[dict]) -> None:
    import pandas as pd

    rows = [{"step": r["step"], "loss": r.get("loss"), "eval_loss": r.get("eval_loss")}
            for r in records if "step" in r and (r.get("loss") is not None or r.get("eval_loss") is not None)]
    if rows:
        frame = pd.DataFrame(rows).groupby("step").last()
        st.line_chart(frame)


def train_step(data: Path, adapters: Path) -> None:
    st.subheader("2. Train a LoRA adapter")
    with st.form("train_form"):
        name = st.text_input("Adapter name", value=time.strftime("adapter-%Y%m%d-%H%M"))
        steps = st.number_input("Training steps", 5, 5000, DEFAULT_STEPS, help="more steps: better and slower")
        rank = st.selectbox("LoRA rank", [4, 8, 16, 32], index=2)
        start = st.form_submit_button("Start training", type="primary", disabled=not data.exists())
    if not data.exists():
        st.caption("Build the training data first.")
    if start:
        try:
            config = api.TrainConfig(max_steps=int(steps), rank=int(rank), max_length=DEFAULT_MAX_LENGTH)
        except Exception as exc:
            state.error(exc)
            return
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "adapter"
        state.start_job("train", _train, data, adapters / safe, config, exclusive=True)
        st.session_state["trained_adapter"] = str(adapters / safe)
    job = state.session_job("train")
    if job is None:
        return

    @st.fragment(run_every=1.0 if job.running else None)
    def live() -> None:
        state.show_job(job)
        loss_chart(job.records)
        if job.running:
            if st.button("Stop training"):
                job.cancel()
        elif job.state in ("done", "cancelled") and job.result is not None:
            st.success("Training finished" if job.state == "done" else "Training stopped early; adapter saved")
            st.json(_as_dict(job.result), expanded=False)
        if not job.running and st.session_state.get("train_seen") != job.id:
            st.session_state["train_seen"] = job.id
            st.rerun()  # once, so the steps below see the new adapter

    live()


def use_step(adapters: Path) -> None:
    st.subheader("3. Evaluate and use")
    found = [str(p) for p in state.adapters()]
    if not found:
        st.caption(f"No adapter yet (they are saved under {adapters}).")
        return
    chosen = st.selectbox("Adapter", found, format_func=lambda p: Path(p).name)
    left, right = st.columns(2)
    if left.button("Evaluate: base vs base + adapter"):
        state.start_job("evaluate adapter", _evaluate, Path(chosen), state.settings().index_dir)
    if right.button("Use this adapter in Chat", type="primary"):
        st.session_state["generator_kind"] = "adapter"
        st.session_state["chat_adapter"] = chosen
        st.success(f"Chat now answers with {Path(chosen).name}: open the Chat page.")
    state.follow_job("evaluate adapter", "Evaluating ...", lambda result: st.json(_as_dict(result)))


def render() -> None:
    st.title("Fine-tune")
    missing = [n for n in TUNE_NAMES if not api.available(n)]
    if missing:
        st.markdown(PLAN)
        st.info("Fine-tuning is not installed in this build yet (missing: " + ", ".join(missing) +
                "). Once it is, this page runs the steps above.")
        return
    data, adapters = _paths()
    data_step(data)
    train_step(data, adapters)
    use_step(adapters)
