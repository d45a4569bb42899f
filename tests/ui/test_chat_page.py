"""Chat page: streamed, cited answers; passages open with matched terms marked; abstention; follow-ups."""

from __future__ import annotations

from ui_helpers import page, texts


def ask(at, question: str):
    at.chat_input[0].set_value(question)
    return at.run()


def test_question_gets_an_answer_citing_the_passage_it_rests_on(ui_env):
    at = ask(page("chat"), "What does QLoRA quantise the base model to?")
    assert not at.exception
    answer = at.chat_message[1].markdown[0].value
    assert "4-bit" in answer and "[1]" in answer
    labels = [e.label for e in at.expander]
    assert labels and labels[0].startswith("[1] lora.md")
    passage = at.expander[0].markdown[0].value
    assert 'white-space: pre-wrap' in passage and "<mark>QLoRA</mark>" in passage and "<mark>quantises</mark>" in passage
    assert any("first token" in c and "ms" in c for c in texts(at, "caption"))


def test_off_topic_question_says_the_documents_do_not_say(ui_env):
    at = ask(page("chat"), "What is the capital of France?")
    assert not at.exception
    assert any("The documents do not say" in i for i in texts(at, "info"))
    assert not at.expander  # nothing cited


def test_follow_up_is_rewritten_and_shown_and_history_stays_per_session(ui_env):
    at = ask(page("chat"), "What is QLoRA?")
    at = ask(at, "How much memory does it save?")
    assert any(c.startswith("Follow-up read as:") and "QLoRA" in c for c in texts(at, "caption"))
    assert len(at.chat_message) == 4  # two turns kept in this session
    other = page("chat")  # another browser session starts empty
    assert len(other.chat_message) == 0


def test_the_rewritten_follow_up_stays_shown_on_later_turns(ui_env):
    at = ask(page("chat"), "What is QLoRA?")
    at = ask(at, "How much memory does it save?")
    at = ask(at, "What is BM25?")
    shown = [c for c in texts(at, "caption") if c.startswith("Follow-up read as:")]
    assert len(shown) == 1 and "QLoRA" in shown[0]  # the second turn's, drawn again; none for the others


def test_a_blank_question_asks_nothing(ui_env):
    at = ask(page("chat"), "   ")
    assert not at.exception
    assert len(at.chat_message) == 0 and not texts(at, "error")


def test_the_question_is_shown_as_typed_not_as_markdown(ui_env):
    at = ask(page("chat"), "# What is **QLoRA**?")
    shown = at.chat_message[0].markdown[0].value
    assert shown == r"\# What is \*\*QLoRA\*\*?"


def test_a_question_that_failed_stays_in_the_history_with_its_error(ui_env):
    at = page("chat")
    at.sidebar.radio[0].set_value("api").run()
    at.sidebar.text_input[0].set_value("http://127.0.0.1:9/v1").run()
    at.sidebar.checkbox[0].uncheck().run()
    at = ask(at, "What does QLoRA quantise the base model to?")
    first = texts(at, "error")
    assert len(first) == 1
    at.sidebar.radio[0].set_value("extractive").run()
    at = ask(at, "What is BM25?")
    assert texts(at, "error") == first  # the failed turn is drawn again, with its error
    assert len(at.chat_message) == 4
    assert "BM25" in at.chat_message[3].markdown[0].value


def test_unticking_abstention_turns_off_both_gates_before_the_generator(ui_env, monkeypatch):
    from ragtune import api

    seen = []
    real = api.RAG

    class Spy(real):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(api, "RAG", Spy)
    at = ask(page("chat"), "What is BM25?")
    assert seen[-1] == {"k": 5, "mode": "hybrid"}  # ticked: RAG's calibrated defaults
    at.sidebar.checkbox[0].uncheck().run()
    ask(at, "What is the capital of France?")
    assert seen[-1].get("min_score", 0) is None and seen[-1].get("min_support", 0) is None


def test_sidebar_offers_every_generator_and_retrieval_settings(ui_env):
    at = page("chat")
    assert at.sidebar.radio[0].options == [
        "Extractive (no model, instant)", "Local model (SmolLM2-135M)", "Local model + LoRA adapter",
        "API (OpenAI-compatible)",
    ]
    at.sidebar.radio[0].set_value("adapter").run()
    assert any("No adapter yet" in i for i in texts(at, "info"))
    assert at.sidebar.selectbox[0].options == ["hybrid", "dense", "bm25"]


def test_an_unreachable_api_generator_is_one_readable_error(ui_env):
    at = page("chat")
    at.sidebar.radio[0].set_value("api").run()
    at.sidebar.text_input[0].set_value("http://127.0.0.1:9/v1").run()
    at.sidebar.checkbox[0].uncheck().run()  # the hash embedder's cosines are not calibrated: never abstain
    at = ask(at, "What does QLoRA quantise the base model to?")
    assert not at.exception
    errors = texts(at, "error")
    assert len(errors) == 1 and "Traceback" not in errors[0]


CHOICE_SCRIPT = """
import streamlit as st
from ragtune.ui import state
page = st.session_state.get("page", "chat")
if page == "chat":  # another page draws no such widget
    if BOUND:
        state.bound(st.radio, "Generator", "generator", "extractive", options=["extractive", "local", "adapter"])
    else:
        st.radio("Generator", ["extractive", "local", "adapter"], key="generator_kind")
elif page == "finetune" and st.session_state.get("use_adapter"):
    state.choose("generator", "adapter")  # what the Fine-tune page's "use this adapter in Chat" does
"""


def leave_and_return(bound: bool, *, chosen_elsewhere: bool = False):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(CHOICE_SCRIPT.replace("BOUND", str(bound))).run()
    at.radio[0].set_value("local" if chosen_elsewhere else "adapter").run()
    at.session_state["page"] = "finetune"
    at.session_state["use_adapter"] = chosen_elsewhere
    at.run()
    at.run()  # a second run on the other page: the widget's own state is gone by now
    at.session_state["page"] = "chat"
    return at.run().radio[0].value


def test_the_generator_choice_survives_a_visit_to_another_page():
    assert leave_and_return(bound=True) == "adapter"
    assert leave_and_return(bound=False) == "extractive"  # what Streamlit does to a widget's own key


def test_a_choice_made_on_another_page_shows_when_chat_is_drawn_again():
    assert leave_and_return(bound=True, chosen_elsewhere=True) == "adapter"


def test_a_default_adapter_of_the_local_model_is_listed_and_plain_local_answers_without_it(ui_env, monkeypatch,
                                                                                            tmp_path):
    from ragtune import api

    shipped = tmp_path / "smollm2-raft"
    shipped.mkdir()
    (shipped / "adapter_config.json").write_text("{}")
    real = api.load_generator
    monkeypatch.setattr(api, "load_generator", lambda config: real({**config, "adapter": str(shipped)})
                        if isinstance(config, dict) and config.get("kind") == "local" else real(config))
    at = page("chat")
    at.sidebar.radio[0].set_value("local").run()
    assert any("without the default adapter smollm2-raft" in c for c in texts(at.sidebar, "caption"))
    at.sidebar.radio[0].set_value("adapter").run()
    assert at.sidebar.selectbox[0].options == ["smollm2-raft"]
    assert any("adapter **smollm2-raft**" in c for c in texts(at.sidebar, "markdown") + texts(at.sidebar, "caption"))
    strength = [s for s in at.sidebar.slider if s.label == "Adapter strength"]
    assert len(strength) == 1 and strength[0].value == 1.0  # as trained, unless the user lowers it
    strength[0].set_value(0.5).run()
    assert [s.value for s in at.sidebar.slider if s.label == "Adapter strength"] == [0.5]
    at.sidebar.radio[0].set_value("local").run()
    assert not [s for s in at.sidebar.slider if s.label == "Adapter strength"]  # no adapter, nothing to scale


def test_a_withdrawn_model_answer_is_replaced_on_screen_and_the_withdrawal_is_said(ui_env, monkeypatch):
    from _answer_fakes import FakeGenerator

    from ragtune.ui import state

    monkeypatch.setattr(state, "generator", lambda *a, **k: (FakeGenerator(["QLoRA quantises it to 8-bit [1]."]), None))
    at = page("chat")
    at.sidebar.radio[0].set_value("api").run()
    at = ask(at, "What does QLoRA quantise the base model to?")
    assert not at.exception
    shown = at.chat_message[1].markdown[0].value
    assert "8-bit" not in shown and "4-bit" in shown  # only the replacement stands on screen
    assert any(c.startswith("The model's answer was withdrawn:") and "8" in c for c in texts(at, "caption"))


def test_a_checked_adapter_answer_the_passages_do_not_say_is_replaced_by_the_base_models(ui_env, monkeypatch,
                                                                                         tmp_path):
    from _answer_fakes import FakeGenerator

    from ragtune import api
    from ragtune.ui import state

    adapter = tmp_path / "my-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(state, "adapters", lambda: [adapter])
    # in the passages (so the grounding check keeps it), but not where the passage that answers is
    monkeypatch.setattr(state, "generator", lambda *a, **k: (FakeGenerator(["two low-rank matrices A and B"],
                                                                           name="local+my-adapter"), None))
    asked_base = []
    monkeypatch.setattr(api, "without_adapter", lambda gen: asked_base.append(gen) or FakeGenerator(
        ["QLoRA quantises the base model to 4-bit [1]."], name="local"))
    at = page("chat")
    at.sidebar.radio[0].set_value("adapter").run()
    box = [c for c in at.sidebar.checkbox if c.label.startswith("Check the adapter")]
    assert len(box) == 1 and box[0].value is False  # off unless asked for
    box[0].check().run()
    at = ask(at, "What does QLoRA quantise the base model to?")
    assert not at.exception and len(asked_base) == 1
    shown = at.chat_message[1].markdown[0].value
    assert "4-bit" in shown and "low-rank" not in shown
    assert any("was withdrawn: the passage that answers does not say it" in c for c in texts(at, "caption"))
