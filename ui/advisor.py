"""Advisor: the questionnaire as a form; ranking, factor contributions, reasons with cited passages,
sensitivity, editable weights with live re-scoring, and the report as Markdown/JSON downloads."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ragtune import api

from . import state

ANSWERS = "advisor_answers"
WEIGHTS = "advisor_weights"  # edited slider values, by slider key
SKIP = "(no answer)"


def questionnaire() -> dict[str, Any] | None:
    """The form; returns the submitted answers (unanswered questions left out), else None."""
    questions = api.load_questions()
    submitted_before = st.session_state.get(ANSWERS) or {}
    with st.form("advisor_form"):
        answers: dict[str, Any] = {}
        for q in questions.questions:
            if f"q_{q.id}" not in st.session_state:
                # Streamlit drops a widget's state when another page is shown; the form comes back with the
                # answers that were submitted, which are the ones the recommendation beside it shows.
                st.session_state[f"q_{q.id}"] = submitted_before.get(q.id, None if q.type == "integer" else SKIP)
            if q.type == "integer":
                value = st.number_input(q.text, min_value=0, step=1, value=None, key=f"q_{q.id}",
                                        placeholder="leave empty if unsure")
            else:
                labels = {v: c.label for v, c in q.choices.items()}
                value = st.selectbox(q.text, [SKIP, *labels], key=f"q_{q.id}",
                                     format_func=lambda v, labels=labels: labels.get(v, v))
                value = None if value == SKIP else value
            if value is not None:
                answers[q.id] = int(value) if q.type == "integer" else value
        submitted = st.form_submit_button("Recommend", type="primary")
    return answers if submitted else None


def weight_editor(base: Any) -> dict[str, float] | None:
    """Sliders over the answer-derived weights; returns the edited weights if any differs, else None."""
    edited: dict[str, float] = {}
    kept = st.session_state.setdefault(WEIGHTS, {})
    with st.expander("Weights: edit to re-score", expanded=False):
        st.caption("Each factor's importance (0-10), as your answers set it. Moving a slider re-ranks at once.")
        for fid, weight in base.weights.items():
            # One key per factor and answer-set weight: new answers start from their own weights, and an edit
            # is kept (outside the widget, whose state Streamlit drops on a page switch) while they stand.
            key = f"w_{fid}_{float(weight):g}"
            if key not in st.session_state and key in kept:
                st.session_state[key] = kept[key]
            edited[fid] = st.slider(base.factor_names.get(fid, fid), 0.0, 10.0, float(weight), 0.5, key=key,
                                    on_change=_keep_weight, args=(key,))
    if all(abs(edited[f] - float(w)) < 1e-9 for f, w in base.weights.items()):
        return None
    if not api.supports(api.advise, "weights"):
        st.info("Re-scoring with edited weights arrives with the advisor update; the ranking shown uses "
                "the weights your answers set.")
        return None
    return edited


def _question_texts() -> dict[str, str]:
    """Question id -> its wording, for naming questions to the user."""
    return {q.id: q.text for q in api.load_questions().questions}


def _keep_weight(key: str) -> None:
    st.session_state[WEIGHTS][key] = st.session_state[key]


def charts(rec: Any) -> None:
    import pandas as pd

    ranked = rec.ranked
    if not any(o.total for o in ranked):  # nothing answered that weighs: bars of zero say nothing
        st.caption("No scores to chart yet: every option scores 0 on the answers given.")
        return
    totals = pd.DataFrame({"option": [o.name for o in ranked], "score (0-100)": [o.total for o in ranked]})
    st.bar_chart(totals, x="option", y="score (0-100)", horizontal=True)
    rows = [{"option": o.name, "factor": c.factor_name, "points": c.points} for o in ranked for c in o.contributions]
    if rows:
        st.caption("Factor contributions: each bar is one option's total, split by factor")
        st.bar_chart(pd.DataFrame(rows), x="option", y="points", color="factor", horizontal=True)


def explanation(rec: Any) -> None:
    for o in rec.options:
        title = f"{o.rank}. {o.name} - {o.total:.0f}" if not o.excluded else f"{o.name} - ruled out"
        with st.expander(title, expanded=o.id == rec.winner):
            for reason in o.exclusion_reasons:
                st.markdown(f"- ruled out: {reason}")
            for r in o.reasons_for:
                st.markdown(f"- **+** {r.text} {_markers(r.citations)}")
            for r in o.reasons_against:
                st.markdown(f"- **-** {r.text} {_markers(r.citations)}")
            for rule in o.rules:
                st.markdown(f"- rule: {rule.text} {_markers(rule.citations)}")
    if rec.quotes:
        st.subheader("Cited passages")
        for q in rec.quotes:
            where = f"{q.source}" + (f", p. {q.page}" if q.page else "") + (f", § {q.section}" if q.section else "")
            st.markdown(f"**[{q.marker}]** {q.text}  \n*{where}*")
    elif rec.citations_note:
        st.caption(rec.citations_note)


def _markers(numbers: list[int]) -> str:
    return " ".join(f"[{n}]" for n in numbers)


def sensitivity(rec: Any) -> None:
    flips = [f for f in rec.sensitivity if f.new_winner]
    st.subheader("Sensitivity")
    if not flips:
        st.write("No single weight change within 0-10 changes the recommendation.")
        return
    names = {o.id: o.name for o in rec.options}
    st.dataframe([{"factor": f.factor_name, "weight now": f.current_weight, "flips at": f.flip_weight,
                   "new winner": names.get(f.new_winner, f.new_winner)} for f in flips], hide_index=True)


def results(answers: dict[str, Any]) -> None:
    index = state.shared_index()  # quotes come from the index when it is ready; the ranking never waits
    shown, editor = st.container(), st.container()  # results above the weight sliders that drive them
    base = api.advise(answers)
    with editor:
        weights = weight_editor(base)
    with shown:
        _show(api.advise(answers, searcher=index, **({"weights": weights} if weights else {})))


def headline(rec: Any) -> None:
    """The verdict, and how far to trust it: undetermined, a close call, or robust under weight changes."""
    winner = next((o for o in rec.ranked if o.id == rec.winner), None)
    if winner is None:
        st.error("Every option is ruled out by your constraints; see the notes below.")
        return
    names = {o.id: o.name for o in rec.options}
    if not getattr(rec, "determined", True):
        st.warning("Undetermined: your answers do not separate the options yet. The order shown is the documents' "
                   "lever order (prompt an API model first, then RAG, then fine-tuning).")
        deciding = getattr(rec, "deciding_questions", [])
        if deciding:
            texts = _question_texts()
            st.write("Questions that would decide it:")
            st.markdown("\n".join(f"- {texts.get(q, q)}" for q in deciding))
        return
    st.success(f"Recommended: **{winner.name}** ({winner.total:.0f}/100)")
    if getattr(rec, "firm_preference", ""):
        st.info(rec.firm_preference)
    for reason in getattr(rec, "close_call_reasons", []):
        st.warning(f"Close call: {reason}")
    robustness = getattr(rec, "robustness", {}) or {}
    if robustness:
        share = robustness.get(rec.winner, 0.0)
        st.caption(f"{names.get(rec.winner, rec.winner)} stays first in {share:.0%} of draws with every weight "
                   "perturbed by up to 30%.")
    changes = [c for c in getattr(rec, "answer_changes", []) if c.previous is not None][:5]
    if changes:
        texts = _question_texts()
        # The texts name questions by id (what `ragtune advise --answer ID=VALUE` takes); here, by their wording.
        said = [c.text.replace(f"`{c.question_id}`", f"“{texts.get(c.question_id, c.question_id)}”")
                for c in changes if c.text]
        st.caption("Answers that would change the result: " + "; ".join(said))


def _show(rec: Any) -> None:
    headline(rec)
    charts(rec)
    explanation(rec)
    sensitivity(rec)
    for note in rec.notes:
        st.caption(note)
    c1, c2 = st.columns(2)
    c1.download_button("Download report (Markdown)", rec.to_markdown(), "ragtune-advice.md", "text/markdown")
    c2.download_button("Download report (JSON)", rec.to_json(), "ragtune-advice.json", "application/json")


def render() -> None:
    st.title("Advisor: API, RAG or fine-tuning?")
    st.write("Answer what you can; unanswered questions count as neutral.")
    state.index_job()  # the reasons quote the indexed documents once it is open
    form, report = st.columns([2, 3], gap="large")  # the ranking stays in view beside the questions
    with form:
        submitted = questionnaire()
    if submitted is not None:
        st.session_state[ANSWERS] = submitted
    answers = st.session_state.get(ANSWERS)
    if answers is None:
        report.info("Submit the questions (any subset) to see the recommendation here.")
        return
    with report:
        try:
            results(answers)
        except Exception as exc:
            state.error(exc)
