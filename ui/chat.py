"""Chat: streamed answers with citations, over the shared index, one conversation per browser session."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ragtune import api

from . import state
from .render import as_typed, citation_label, highlight, passage_for, timings_line

TURNS = "chat_turns"


def sidebar() -> dict[str, Any]:
    """Generator and retrieval settings; returns them as plain values."""
    cfg = state.settings()
    sb = st.sidebar
    sb.header("Answering")
    kinds = list(state.GENERATORS)
    kind = state.bound(sb.radio, "Generator", "generator", cfg.generator, options=kinds,
                       format_func=state.GENERATORS.get)
    options: dict[str, Any] = {"kind": kind}
    shipped = state.attached_adapter() if kind == "local" else None
    if shipped is not None:
        sb.caption(f"The base model alone, without the default adapter {state.adapter_name(shipped)} "
                   "(choose \"+ LoRA adapter\" to use it).")
    if kind == "adapter":
        found = [str(p) for p in state.adapters()]
        chosen = state.choice("adapter")
        if chosen and chosen not in found:
            found.insert(0, chosen)
        if found:
            options["adapter"] = state.bound(sb.selectbox, "Adapter", "adapter", found[0], options=found,
                                             format_func=state.adapter_name,
                                             help="LoRA adapters trained on the Fine-tune page")
            options["adapter_scale"] = state.bound(
                sb.slider, "Adapter strength", "adapter_scale", 1.0, min_value=0.0, max_value=1.0, step=0.1,
                help="1: the adapter as trained; lower moves halfway (0.5) or all the way (0) back to the base "
                     "model, which can answer better on documents unlike the ones it was trained on")
            options["check_adapter"] = state.bound(
                sb.checkbox, "Check the adapter's answers against the passages", "check_adapter", False,
                help="keep the adapter's answer only where the passage that answers says it too (the extractive "
                     "reader); elsewhere the base model answers. Safer on documents unlike the adapter's training "
                     "data; costs a second answer when they disagree")
            sb.caption(f"Answers come from the local model with the adapter **{state.adapter_name(options['adapter'])}**.")
        else:
            sb.info(f"No adapter yet: train one on the Fine-tune page (saved under {cfg.adapters_dir}).")
    if kind == "api":
        options["api_config"] = {
            "base_url": sb.text_input("Base URL", "http://localhost:8000/v1"),
            "model": sb.text_input("Model", "my-model"),
            "api_key_env": sb.text_input("API key variable", "OPENAI_API_KEY",
                                         help="the environment variable holding the key (never the key)"),
        }
    sb.header("Retrieval")
    options["k"] = state.bound(sb.slider, "Passages", "k", 5, min_value=1, max_value=10,
                               help="how many retrieved passages the answer may use")
    options["mode"] = state.bound(sb.selectbox, "Search", "mode", "hybrid", options=["hybrid", "dense", "bm25"],
                                  help="hybrid fuses meaning (dense) and keyword (BM25) search")
    options["abstain"] = state.bound(
        sb.checkbox, "Say 'the documents do not say' for off-topic questions", "abstain", True,
        help="Off: the model is always given the best passages, however far from the question. The extractive "
             "reader still says so when no passage sentence shares enough of the question's words.")
    if sb.button("New conversation"):
        st.session_state[TURNS] = []
    return options


def _history(turns: list[dict]) -> list[dict]:
    messages = []
    for t in turns:
        if t.get("error"):  # a question that failed has no answer to follow up on
            continue
        messages.append({"role": "user", "content": t["question"]})
        messages.append({"role": "assistant", "content": t["text"]})
    return messages


def show_details(turn: dict, rewritten: bool = True) -> None:
    """The rewritten question (``rewritten``), abstention, citations (each opening its passage) and timings."""
    answer = turn.get("answer")
    if answer is None:
        return
    if rewritten and answer.query != turn["question"]:
        st.caption(f"Follow-up read as: *{as_typed(answer.query)}*")
    if _withdrawn_by_reader(answer):
        st.caption(f"The adapter's answer \"{answer.grounding['reader_check']['model_text'].strip()}\" was withdrawn: "
                   "the passage that answers does not say it; the base model answered instead.")
    if answer.grounding.get("fallback"):
        instead = api.FALLBACK_NOTES[answer.grounding["fallback"]]
        st.caption(f"The model's answer was withdrawn: {answer.grounding.get('reason')}; {instead}.")
    if answer.abstained:
        st.info("The documents do not say: no indexed passage answers this question. "
                "Rephrase it, or add documents on the Documents page.")
    for citation in answer.citations:
        chunk = passage_for(answer, citation)
        with st.expander(citation_label(citation)):
            st.caption(citation.source)
            text = chunk.text if chunk is not None else citation.quote
            # pre-wrap keeps the chunk's own line breaks (a section title above its paragraph)
            st.markdown(f'<div style="white-space: pre-wrap">{highlight(text, answer.query)}</div>',
                        unsafe_allow_html=True)
    st.caption(f"{turn['generator']} · {timings_line(answer.timings)}")


def _withdrawn_by_reader(answer: Any) -> bool:
    check = answer.grounding.get("reader_check")
    return bool(check) and not check.get("agreed")


def _ask(question: str, index: Any, options: dict[str, Any], turns: list[dict]) -> None:
    if options["kind"] == "adapter" and not options.get("adapter"):
        # answering with the bare base model here would pass it off as the adapter
        st.error("No adapter is chosen: train one on the Fine-tune page, or pick the local model without one.")
        return
    gen, loading = state.generator(options["kind"], adapter=options.get("adapter"),
                                   adapter_scale=options.get("adapter_scale", 1.0),
                                   api_config=options.get("api_config"))
    if loading is not None and loading.running:
        with st.spinner("Loading the local model (once per server, ~10-30 s on a CPU) ..."):
            loading.wait()
    if loading is not None and loading.state == "failed":
        st.error(f"The local model could not be loaded: {loading.error}")
        return
    # Off: neither the topic gate (dense score) nor the support gate (a passage sentence must cover enough of
    # the question) stops the question before the generator; on: RAG's calibrated defaults.
    extra = {} if options["abstain"] else {"min_score": None, "min_support": None}
    if options["kind"] == "adapter" and options.get("check_adapter"):
        extra["fallback"] = api.without_adapter(gen)
    rag = api.RAG(index, gen, k=options["k"], mode=options["mode"], **extra)
    stream = rag.stream(question, history=_history(turns))
    if stream.query != question:
        st.caption(f"Follow-up read as: *{as_typed(stream.query)}*")  # before the answer streams
    shown = st.empty()
    shown.write_stream(iter(stream))
    if stream.answer.grounding.get("fallback") or _withdrawn_by_reader(stream.answer):
        # The model's words were streamed before the grounding check withdrew them: show only what stands,
        # as the history will, and say what was withdrawn and why.
        shown.markdown(stream.answer.text)
    label = gen.name.split("+")[0]
    if options.get("adapter") and options["kind"] == "adapter":
        scale = options.get("adapter_scale", 1.0)
        label += f" + adapter {state.adapter_name(options['adapter'])}"
        label += f" at strength {scale:g}" if scale != 1 else ""
        label += ", checked by the extractive reader" if options.get("check_adapter") else ""
    turn = {"question": question, "text": stream.answer.text, "answer": stream.answer, "generator": label}
    turns.append(turn)
    show_details(turn, rewritten=False)


def render() -> None:
    st.title("Chat with your documents")
    options = sidebar()
    job = state.index_job()
    index = state.shared_index()
    st.write("Ask questions about the indexed documents; answers cite the passages they rest on.")
    if index is None:
        state.wait_for(job, "Opening the index and loading the embedding model ...")
        st.chat_input("Ask a question (the index is still loading)", disabled=True)
        return
    if len(index) == 0:
        st.warning("The index is empty: add documents on the Documents page.")
    turns = st.session_state.setdefault(TURNS, [])
    for turn in turns:
        with st.chat_message("user"):
            st.markdown(as_typed(turn["question"]))
        with st.chat_message("assistant"):
            if turn.get("error"):
                st.error(turn["error"])
                continue
            st.markdown(turn["text"])
            show_details(turn)
    question = st.chat_input("Ask a question about your documents")
    if not question or not question.strip():  # Enter on an empty box asks nothing
        return
    with st.chat_message("user"):
        st.markdown(as_typed(question))
    with st.chat_message("assistant"):
        try:
            _ask(question, index, options, turns)
        except Exception as exc:  # a readable line, never a traceback; kept in the history like an answer
            message = state.error_text(exc)
            st.error(message)
            turns.append({"question": question, "text": "", "error": message})
