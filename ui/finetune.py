"""Fine-tune: build training data from the index, train a LoRA adapter in the background with a live loss
chart, evaluate it against the base model, then answer with it in Chat.

It uses the tuning API (``build_training_data``, ``train_adapter``, ``evaluate_adapter``, ``TrainConfig``);
where that is not installed, the page says what it will do instead of failing. The model trained is the
one Chat answers with (``RAGTUNE_UI_MODEL``, default the shipped SmolLM2-135M).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from ragtune import api

from . import state

DEFAULT_NAME_KEY = "finetune:default-adapter-name"
TUNE_NAMES = ("TrainConfig", "build_training_data", "train_adapter", "evaluate_adapter")
# A run ends after this many minutes with its adapter written (TrainConfig.max_minutes), so the default
# finishes "in a few minutes" on any CPU instead of guessing a step count: on the shared 2-core machine
# SmolLM2-135M trained at ~54 tokens/s with every layer adapted (BENCHMARKS.md, "Fine-tuning"), i.e.
# ~40 s per step of 4 RAFT examples; 5 minutes is then ~8-15 steps, enough to see the loss fall.
DEFAULT_MINUTES = 5.0
DEFAULT_STEPS = 100
# Adapting the top 10 of SmolLM2's 30 layers lets the backward pass stop there: about half the cost per
# step (TrainConfig.top_layers), so twice the steps fit in the time budget.
DEFAULT_TOP_LAYERS = 10
# Validation examples scored at each evaluation (TrainConfig.eval_records defaults to 32, ~40 s on this
# CPU: most of a 5-minute budget); 8 still shows whether the held-out loss follows the training loss.
EVAL_RECORDS = 8
# Held-out test questions for "before/after": each is answered by the base model and by base + adapter
# (64 new tokens each), ~2-4 s per answer for SmolLM2 on this CPU, so 10 questions take about a minute.
DEFAULT_EVAL_QUESTIONS = 10

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


# ------------------------------------------------------------------------------ background work
def _build(job: api.Job, index_dir: Path, out: Path) -> Any:
    out.parent.mkdir(parents=True, exist_ok=True)
    index = api.Index.open(index_dir)  # its own reader: this runs on the job's thread
    try:
        return api.build_training_data(index, out, progress=job.report)
    finally:
        index.close()


def _train(job: api.Job, data: Path, out: Path, config: Any) -> Any:
    return api.train_adapter(data, out, config, progress=job.report, on_log=job.log, should_stop=job.should_stop)


def _evaluate(job: api.Job, adapter: Path, data: Path, limit: int) -> Any:
    # With retrieval only (the way Chat uses the adapter), on the test split of the training data: questions
    # from documents the adapter never trained on.
    return api.evaluate_adapter(adapter, data=data, limit=limit, without_retrieval=False, progress=job.report)


def _as_dict(result: Any) -> Any:
    return result.to_dict() if hasattr(result, "to_dict") else result


def table(rows: list[dict], key: str) -> None:
    """A small static table keyed by its first column (plain text in the page, unlike a canvas dataframe)."""
    import pandas as pd

    st.table(pd.DataFrame(rows).set_index(key))


# ------------------------------------------------------------------------------ what the steps show
def data_rows(report: dict) -> list[dict]:
    """One row per split: examples, how many must abstain, and from how many documents."""
    records, abstain, sources = report.get("records", {}), report.get("abstain", {}), report.get("sources", {})
    return [{"split": split, "examples": records.get(split, 0), "must abstain": abstain.get(split, 0),
             "documents": len(sources.get(split, []))} for split in ("train", "validation", "test")]


def show_data(report: Any) -> None:
    report = _as_dict(report)
    if not isinstance(report, dict) or "records" not in report:
        st.json(report, expanded=False)
        return
    st.success(f"{sum(report['records'].values())} examples written from {report.get('chunks', '?')} passages")
    table(data_rows(report), "split")


TRAIN_FIGURES = [("steps", "steps"), ("train_loss", "training loss"), ("final_eval_loss", "validation loss"),
                 ("seconds", "seconds"), ("tokens_per_s", "tokens/s"), ("trainable_fraction", "trainable weights")]


def train_rows(metrics: dict) -> list[dict]:
    rows = []
    for key, label in TRAIN_FIGURES:
        value = metrics.get(key)
        if value is None:
            continue
        if key == "trainable_fraction":
            value = f"{100 * value:.2f}%"
        elif isinstance(value, float):
            value = f"{value:.3f}" if "loss" in key else f"{value:.1f}"
        rows.append({"figure": label, "value": str(value)})
    return rows


def show_training_result(job: api.Job) -> None:
    result = _as_dict(job.result)
    if not isinstance(result, dict):
        return
    if result.get("adapter"):
        why = " (stopped by you; the adapter of the steps so far was saved)" if job.state == "cancelled" else ""
        st.success(f"Training finished{why}: adapter saved in {result['adapter']}")
    else:
        st.warning("Training stopped before the adapter was saved; its checkpoints are kept, and starting again "
                   "with the same name resumes from the last one.")
    table(train_rows(result.get("metrics", {})), "figure")


EVAL_FIGURES = [("f1", "answer F1"), ("exact_match", "exact match"), ("gold_fact_rate", "gold fact in answer"),
                ("citation_precision", "citation precision"), ("abstain_unanswerable", "abstains, unanswerable"),
                ("abstain_answerable", "abstains, answerable")]  # short: the bar chart cuts long labels


def eval_rows(report: dict) -> list[dict]:
    """Metric rows with a column per model: the test split (with retrieval) and validation perplexity."""
    split = report.get("test_split") or {}
    base, tuned = split.get("base+rag") or {}, split.get("adapter+rag") or {}
    rows = [{"metric": label, "base": base.get(key), "base + adapter": tuned.get(key)}
            for key, label in EVAL_FIGURES if base.get(key) is not None or tuned.get(key) is not None]
    ppl = report.get("validation_perplexity") or {}
    if ppl:
        rows.append({"metric": "validation perplexity (lower is better)", "base": ppl.get("base"),
                     "base + adapter": ppl.get("adapter")})
    return rows


def show_evaluation(report: Any) -> None:
    import pandas as pd

    report = _as_dict(report)
    rows = eval_rows(report) if isinstance(report, dict) else []
    if not rows:
        st.warning("Nothing to compare: the training data has no test questions (index more documents: whole "
                   "documents are held out for testing).")
        return
    answered = (report.get("test_split") or {}).get("base+rag", {})
    st.write(f"Held-out test questions: {answered.get('answerable', 0)} answerable, "
             f"{answered.get('unanswerable', 0)} unanswerable, with retrieval")
    table(rows, "metric")
    scored = [r for r in rows if "perplexity" not in r["metric"]]
    if scored:
        st.bar_chart(pd.DataFrame(scored).set_index("metric").astype(float), stack=False, horizontal=True)
    else:  # e.g. the held-out documents yielded no question short enough to train on
        st.info("No held-out test question was scored, so only validation perplexity is compared: index more "
                "documents (whole documents are held out for testing).")
    for line in report.get("regressions", []):
        st.warning(f"Worse than the base model: {line}")


# ------------------------------------------------------------------------------ the three steps
def data_step(data: Path) -> None:
    st.subheader("1. Training data")
    if st.button("Build training data from the index"):
        state.start_job("training data", _build, state.settings().index_dir, data, exclusive=True)
    state.follow_job("training data", "Writing training examples ...", show_data)
    if data.exists():
        st.caption(f"Training data: {data}")


def loss_chart(records: list[dict]) -> None:
    import pandas as pd

    rows = [{"step": r["step"], "loss": r.get("loss"), "eval_loss": r.get("eval_loss")}
            for r in records if "step" in r and (r.get("loss") is not None or r.get("eval_loss") is not None)]
    if not rows:
        return
    frame = pd.DataFrame(rows).groupby("step").last()
    if len(frame) == 1:  # a line needs two points: one step is shown as numbers
        step, row = next(iter(frame.iterrows()))
        shown = [f"{name.replace('_', ' ')} {value:.3f}" for name, value in row.items() if pd.notna(value)]
        st.caption(f"step {step}: " + ", ".join(shown))
        return
    st.line_chart(frame, x_label="step", y_label="loss")


def train_config(steps: int, minutes: float, rank: int, top_layers: int) -> Any:
    """The run's TrainConfig: the tuning defaults, with this page's time budget and a frequent log."""
    fields: dict[str, Any] = {"max_steps": steps, "max_minutes": minutes, "rank": rank,
                              "logging_steps": 1, "eval_records": EVAL_RECORDS}
    # evaluate (and keep a checkpoint) about 4 times per run; the Trainer needs saves aligned with evals
    fields["eval_steps"] = fields["save_steps"] = max(5, steps // 4)
    if top_layers:
        fields["top_layers"] = top_layers
    model = state.settings().model
    if model:
        fields["base_model"] = model
    return api.TrainConfig(**fields)


def train_step(data: Path, adapters: Path) -> None:
    st.subheader("2. Train a LoRA adapter")
    # The default name comes from the clock once per session: made on every rerun, it changed at each new
    # minute, and a widget whose default changes is a new widget, so the name the user typed was lost.
    default = st.session_state.setdefault(DEFAULT_NAME_KEY, time.strftime("adapter-%Y%m%d-%H%M%S"))
    with st.form("train_form"):
        name = st.text_input("Adapter name", value=default)
        c1, c2 = st.columns(2)
        minutes = c1.number_input("Time budget (minutes)", 0.5, 600.0, DEFAULT_MINUTES, 0.5,
                                  help="training stops after this long and saves the adapter")
        steps = c2.number_input("At most this many steps", 1, 5000, DEFAULT_STEPS, help="more: better, slower")
        c3, c4 = st.columns(2)
        rank = c3.selectbox("LoRA rank", [4, 8, 16, 32], index=2)
        top = c4.number_input("Adapt the top N layers (0: all)", 0, 200, DEFAULT_TOP_LAYERS)
        start = st.form_submit_button("Start training", type="primary", disabled=not data.exists())
    if not data.exists():
        st.caption("Build the training data first.")
    if start:
        try:
            config = train_config(int(steps), float(minutes), int(rank), int(top))
        except Exception as exc:
            state.error(exc)
            return
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "adapter"
        state.start_job("train", _train, data, adapters / safe, config, exclusive=True)
        del st.session_state[DEFAULT_NAME_KEY]  # the next run gets a new default name
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
            show_training_result(job)
        if not job.running and st.session_state.get("train_seen") != job.id:
            st.session_state["train_seen"] = job.id
            st.rerun()  # once, so the step below lists the new adapter

    live()


def use_step(data: Path, adapters: Path) -> None:
    st.subheader("3. Evaluate and use")
    found = [str(p) for p in state.adapters()]
    if not found:
        st.caption(f"No adapter yet (they are saved under {adapters}).")
        return
    chosen = st.selectbox("Adapter", found, format_func=state.adapter_name)
    questions = st.number_input("Test questions", 1, 500, DEFAULT_EVAL_QUESTIONS,
                                help="held-out questions, each answered by the base model and by base + adapter")
    left, right = st.columns(2)
    if left.button("Evaluate: base vs base + adapter", disabled=not data.exists()):
        state.start_job("evaluate adapter", _evaluate, Path(chosen), data, int(questions))
    if right.button("Use this adapter in Chat", type="primary"):
        state.choose("generator", "adapter")
        state.choose("adapter", chosen)
        st.success(f"Chat now answers with the local model + {state.adapter_name(chosen)}: open the Chat page.")
    state.follow_job("evaluate adapter", "Evaluating (base, then base + adapter) ...", show_evaluation)


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
    use_step(data, adapters)
