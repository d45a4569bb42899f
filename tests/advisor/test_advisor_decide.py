"""Neutral start, gating questions, hard constraints and firm preferences, caller-supplied weights."""

import pytest

from ragtune.advisor import Questionnaire, advise, load_matrix, load_questions
from ragtune.advisor.decide import decide
from ragtune.errors import AdvisorError

LEVER_ORDER = ["api", "rag", "finetune", "rag_finetune"]  # prompt engineering first, then RAG, then fine-tuning


def _single_answers():
    for q in load_questions().questions:
        for v in q.values():
            yield q.id, v


def test_no_answers_is_undetermined_in_lever_order_and_names_the_deciding_questions():
    rec = advise({})
    assert rec.status == "undetermined" and not rec.determined
    assert [o.id for o in rec.ranked] == LEVER_ORDER
    assert all(o.total == 0 for o in rec.ranked) and rec.robustness == {}
    assert {"need", "knowledge_change", "citations", "deadline", "style_needs"} <= set(rec.deciding_questions)
    assert "self_host_model" not in rec.deciding_questions  # no answer of it separates the options alone
    md = rec.to_markdown()
    assert "undetermined" in md and "## Deciding questions" in md
    # one answer decides nothing yet (too few grounds), but the list says which option each answer puts ahead
    assert "Every day or faster → RAG ahead (still open)" in md
    assert "- `need`: Knowledge: facts it does not have → RAG ahead (still open);" in md
    assert "Neither - a good prompt to a general model already does the task → API model as is\n" in md  # a rule


@pytest.mark.parametrize("qid, value", list(_single_answers()))
def test_a_single_answer_weighs_only_the_factors_it_speaks_to(qid, value):
    question = load_questions().get(qid)
    stated = set(question.effects_for(value)[1].weights)
    d = decide(Questionnaire({qid: value}), load_matrix())
    assert {f for f, w in d.weights.items() if w > 0} <= stated


def test_single_answers_do_not_all_favour_one_option():
    winners = {}
    for qid, value in _single_answers():
        d = decide(Questionnaire({qid: value}), load_matrix())
        if d.determined or d.leader is not None:  # decided by a rule, or ahead on that one answer's factors
            winners.setdefault(d.leader or d.winner, []).append(f"{qid}={value}")
    assert set(winners) == set(LEVER_ORDER), winners  # each option is some single answer's pick
    assert max(len(v) for v in winners.values()) < sum(len(v) for v in winners.values()) / 2


def test_an_answer_without_effects_leaves_the_result_undetermined():
    assert advise({"self_host_model": "yes"}).status == "undetermined"
    assert advise({"citations": "no"}).status == "undetermined"  # citations do not matter: neutral, not pro-RAG


@pytest.mark.parametrize("qid, value", list(_single_answers()))
def test_one_answer_alone_never_gives_a_weighted_recommendation(qid, value):
    # README: with too few answers the result is undetermined. One answer weighs only the factors it speaks to,
    # so its favourite had scored up to 100/100, "recommended" and 100% robust (deadline: days -> API).
    rec = advise({qid: value})
    assert rec.status not in ("recommended", "close_call"), (rec.status, rec.winner)
    if rec.status == "undetermined":
        assert rec.robustness == {} and rec.sensitivity == []


def test_one_answer_is_undetermined_with_its_leader_named_and_a_second_answer_decides():
    rec = advise({"deadline": "days"})
    assert rec.status == "undetermined" and rec.robustness == {}
    assert [o.id for o in rec.ranked] == LEVER_ORDER  # the fallback, as when nothing separates the options
    assert "API model as is leads on them with 100.0/100" in rec.notes[-1]
    assert "only `deadline` bears on the choice" in rec.notes[-1]
    assert "Recommendation:" not in rec.to_markdown() and "## Deciding questions" in rec.to_markdown()
    # an answer that changes nothing is no ground; one that weighs another factor is, as is a weight set by hand
    assert advise({"deadline": "days", "self_host_model": "yes"}).status == "undetermined"
    two = advise({"deadline": "days", "budget": "minimal"})
    assert (two.winner, two.status, two.robustness["api"]) == ("api", "recommended", 1.0)
    assert advise({"deadline": "days"}, weights={"cost": 8}).status == "recommended"
    assert advise({}, weights={"cost": 8}).status == "undetermined"


def test_a_robustness_figure_on_few_answers_says_the_unanswered_questions_are_not_in_it():
    section = advise({"knowledge_change": "daily", "citations": "yes"}).to_markdown().split("## Robustness")[1]
    assert "RAG 100%" in section
    assert "The draws vary only the weights of the answers given. 15 questions are unanswered" in section
    assert "answering `documents`, `need`, `labelled_examples`, `style_needs` could change first place" in section


def test_no_document_collection_rules_out_both_retrieval_options():
    rec = advise({"documents": "no"})
    assert {o.id for o in rec.excluded} == {"rag", "rag_finetune"}
    assert "no document collection to retrieve from" in rec.option("rag").exclusion_reasons[0]


def test_knowledge_need_puts_rag_ahead_and_behaviour_need_puts_fine_tuning_ahead():
    # alone, the answer decides nothing (one ground), but it leans the way the sources say
    for need, leader in (("knowledge", "rag"), ("behaviour", "finetune"), ("both", "rag_finetune")):
        d = decide(Questionnaire({"need": need}), load_matrix())
        assert (d.determined, d.leader) == (False, leader)
    assert advise({"need": "knowledge", "knowledge_change": "quarterly"}).winner == "rag"
    assert advise({"need": "behaviour", "style_needs": "somewhat"}).winner == "finetune"
    neither = advise({"need": "neither"})
    assert neither.winner == "api" and neither.status == "firm_preference"


@pytest.mark.parametrize("examples, winner, status", [
    (49, "api", "recommended"),  # below the floor: both fine-tuning options are ruled out
    (50, "finetune", "firm_preference"),
    (20000, "finetune", "firm_preference"),
])
def test_strict_format_with_at_least_50_examples_is_a_firm_preference_for_fine_tuning(examples, winner, status):
    rec = advise({"style_needs": "yes", "labelled_examples": examples, "deadline": "days"})
    assert (rec.winner, rec.status) == (winner, status)
    if status == "firm_preference":
        assert "prompting cannot hold" in rec.firm_preference and "## Firm preference" in rec.to_markdown()
        assert rec.sensitivity == [] and rec.robustness[winner] == 1.0


def test_strict_format_with_citations_prefers_rag_plus_fine_tuning_unless_there_are_no_documents():
    base = {"style_needs": "yes", "labelled_examples": 300, "citations": "yes"}
    assert advise(base).winner == "rag_finetune"
    assert advise({**base, "knowledge_change": "monthly", "citations": "no"}).winner == "rag_finetune"
    # the more specific preference cannot apply without documents: the next one does
    assert advise({**base, "documents": "no"}).winner == "finetune"


def test_monthly_changing_knowledge_rules_out_fine_tuning_alone():
    rec = advise({"need": "knowledge", "knowledge_change": "monthly", "labelled_examples": 500})
    assert rec.option("finetune").excluded and "facts that change monthly" in rec.option("finetune").exclusion_reasons[0]
    assert rec.winner == "rag"
    assert not advise({"need": "knowledge", "knowledge_change": "quarterly"}).option("finetune").excluded


def test_caller_weights_override_the_answer_weights_and_are_marked():
    answers = {"knowledge_change": "weekly", "deadline": "days"}
    plain = advise(answers)
    rec = advise(answers, weights={"knowledge_freshness": 0, "time_to_deploy": 10})
    assert plain.winner == "rag" and rec.winner == "api"
    assert rec.weights["knowledge_freshness"] == 0 and rec.weight_sources["knowledge_freshness"] == "set by you"
    # a UI sends every slider; an unchanged one keeps saying which answer set it
    same = advise(answers, weights={**plain.weights, "cost": 4})
    assert same.weight_sources["knowledge_freshness"] == "knowledge_change = weekly"
    assert same.weight_sources["cost"] == "set by you"


@pytest.mark.parametrize("weights, message", [
    ({"colour": 3}, "weights: unknown factor 'colour'; factors are: use_case_fit"),
    ({"cost": 11}, "weights: cost: expected a number 0-10, got 11"),
    ({"cost": "high"}, "weights: cost: expected a number 0-10, got 'high'"),
])
def test_bad_caller_weights_are_one_clear_error_naming_the_factor(weights, message):
    with pytest.raises(AdvisorError, match=message):
        advise({}, weights=weights)


def test_numpy_numbers_are_numbers_and_a_list_of_pairs_is_refused_clearly():
    import numpy as np

    from ragtune.advisor import advise
    from ragtune.errors import AdvisorError

    a = advise({"labelled_examples": np.int64(300)}, weights={"cost": np.int64(8)})
    b = advise({"labelled_examples": 300}, weights={"cost": 8})
    assert [(o.id, round(o.total, 6)) for o in a.options] == [(o.id, round(o.total, 6)) for o in b.options]
    with pytest.raises(AdvisorError, match="expected a mapping of factor to weight"):
        advise({}, weights=[("cost", 8)])
