"""Advisor page: the questionnaire form, ranking with charts, reasons, sensitivity, weights, downloads."""

from __future__ import annotations

from ui_helpers import page, texts


def submit(at, **answers):
    for qid, value in answers.items():
        at.selectbox(key=f"q_{qid}").set_value(value)
    at.button[0].click()  # the form's submit button
    return at.run()


def slider(at, factor: str):
    return next(s for s in at.slider if s.key.startswith(f"w_{factor}_"))


def test_form_lists_every_question_and_submitting_shows_the_ranking(ui_env):
    from ragtune.api import load_questions

    at = page("advisor")
    ids = [q.id for q in load_questions().questions]
    shown = [w.key for w in [*at.selectbox, *at.number_input]]
    assert sorted(f"q_{i}" for i in ids) == sorted(shown)
    at = submit(at, knowledge_change="daily", citations="yes", use_case="docs_qa")
    assert not at.exception
    assert texts(at, "success")[0].startswith("Recommended: **RAG")
    assert len(at.get("vega_lite_chart")) == 2  # option scores, factor contributions
    first = next(e for e in at.expander if e.label.startswith("1. "))
    assert first.label.startswith("1. ") and any(m.value.startswith("- **+**") for m in first.markdown)
    assert at.subheader[-1].value == "Sensitivity"


def test_no_answers_say_undetermined_and_name_the_deciding_questions(ui_env):
    at = page("advisor")
    at.button[0].click()
    at = at.run()
    assert not at.exception
    assert not texts(at, "success")
    warning = texts(at, "warning")[0]
    assert warning.startswith("Undetermined") and "lever order" in warning
    assert any(m.value.startswith("Questions that would decide it") for m in at.markdown)
    assert not at.get("vega_lite_chart")  # every option scores 0: no bars of zero
    assert "No scores to chart yet" in " ".join(texts(at, "caption"))


def test_downloads_hold_the_markdown_and_json_reports(ui_env):
    at = submit(page("advisor"), knowledge_change="daily")
    buttons = at.get("download_button")
    assert [b.proto.label for b in buttons] == ["Download report (Markdown)", "Download report (JSON)"]
    # the JSON the button serves is the recommendation itself
    assert all(b.proto.url for b in buttons)


def test_editing_a_weight_rescores_with_the_edited_weights(ui_env, monkeypatch):
    from ragtune import api

    real = api.advise
    calls = []

    def advise(answers=None, *, weights=None, matrix=None, searcher=None, evidence=None):
        calls.append(weights)
        rec = real(answers, matrix=matrix, searcher=searcher, evidence=evidence)
        if weights:  # stand-in for the advisor's own re-scoring: what the page shows comes from here
            rec.weights = dict(weights)
        return rec

    monkeypatch.setattr(api, "advise", advise)
    at = submit(page("advisor"), knowledge_change="daily")
    assert calls[-1] is None  # untouched sliders: the answers' weights
    slider(at, "cost").set_value(10.0).run()
    assert calls[-1] is not None and calls[-1]["cost"] == 10.0
    assert not at.exception


def test_without_weight_support_the_page_says_so_instead_of_failing(ui_env, monkeypatch):
    from ragtune import api

    real = api.advise
    monkeypatch.setattr(api, "advise", lambda answers=None, *, searcher=None: real(answers, searcher=searcher))
    at = submit(page("advisor"), knowledge_change="daily")
    slider(at, "cost").set_value(10.0).run()
    assert not at.exception
    assert any("Re-scoring with edited weights" in i for i in texts(at, "info"))


def test_answers_and_edited_weights_come_back_after_another_page_was_shown(ui_env):
    from streamlit.testing.v1 import AppTest

    # Another page's run drops the state of the widgets it did not draw, as switching pages in the app does.
    at = AppTest.from_string(
        "import streamlit as st\n"
        "from ragtune.ui import advisor\n"
        "advisor.render() if st.session_state.get('shown', 'advisor') == 'advisor' else st.write('another page')\n",
        default_timeout=60,
    )
    at = submit(at.run(), knowledge_change="daily", citations="yes")
    slider(at, "cost").set_value(10.0).run()
    at.session_state["shown"] = "other"
    at = at.run()
    assert not at.selectbox and "q_citations" not in at.session_state  # the widget state is gone
    at.session_state["shown"] = "advisor"
    at = at.run()
    assert not at.exception
    assert at.selectbox(key="q_knowledge_change").value == "daily"
    assert at.selectbox(key="q_citations").value == "yes"
    assert at.selectbox(key="q_use_case").value == "(no answer)"
    assert slider(at, "cost").value == 10.0


def test_sensitivity_and_deciding_questions_use_names_not_ids(ui_env):
    from ragtune.api import advise, load_questions

    at = page("advisor")
    at.button[0].click()
    at = at.run()
    listed = next(m.value for m in at.markdown if m.value.startswith("- "))
    wording = {q.text for q in load_questions().questions}
    assert all(line[2:] in wording for line in listed.splitlines())
    at = submit(page("advisor"), knowledge_change="daily", citations="yes", use_case="docs_qa")
    winners = set(at.dataframe[-1].value["new winner"])  # the sensitivity table
    names = {o.name for o in advise({"knowledge_change": "daily", "citations": "yes", "use_case": "docs_qa"}).options}
    assert winners and winners <= names
