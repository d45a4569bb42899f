"""Answer-level sensitivity, the close-call flag and the robustness figure."""

import pytest
from pydantic import ValidationError

from ragtune.advisor import advise
from ragtune.advisor.robustness import RobustnessConfig, robustness


def test_changing_one_answer_that_flips_the_result_is_reported_in_answer_terms():
    # three answers that bear on the choice: without citations two remain, enough to decide (see below)
    rec = advise({"use_case": "specialised", "citations": "yes", "style_needs": "somewhat"})
    assert rec.winner == "rag_finetune"
    change = next(c for c in rec.answer_changes if c.question_id == "citations" and c.value == "no")
    assert change.new_winner == "finetune" and change.previous == "yes"
    assert change.text == "changing `citations` from Yes, always to No puts Fine-tuning (LoRA/QLoRA) first"
    assert change.text in rec.to_markdown()


def test_a_change_that_leaves_one_answer_bearing_is_undetermined_and_names_the_leader():
    rec = advise({"use_case": "specialised", "citations": "yes"})
    assert rec.winner == "rag_finetune" and rec.status == "recommended"
    change = next(c for c in rec.answer_changes if c.question_id == "citations" and c.value == "no")
    assert (change.new_winner, change.determined, change.leader) == ("api", False, "finetune")
    assert change.text == ("changing `citations` from Yes, always to No leaves it undetermined: Fine-tuning "
                           "(LoRA/QLoRA) leads, on too few answers to decide (lever order puts API model as is first)")


def test_answering_an_open_question_that_flips_the_result_is_reported():
    rec = advise({"use_case": "specialised", "citations": "yes"})
    opened = [c for c in rec.answer_changes if c.previous is None]
    assert any(c.question_id == "documents" and c.value == "no" and c.new_winner == "finetune" for c in opened)
    assert "documents" in rec.deciding_questions
    assert all(c.new_winner != rec.winner or c.determined != rec.determined for c in rec.answer_changes)


def test_a_lead_under_the_margin_is_flagged_as_a_close_call():
    rec = advise({"use_case": "docs_qa", "ml_expertise": "none"})  # API 2.5 points ahead of RAG
    lead = rec.ranked[0].total - rec.ranked[1].total
    assert lead < 5, lead
    assert rec.status == "close_call" and any("under 5" in r for r in rec.close_call_reasons)
    md = rec.to_markdown()
    assert "a close call" in md and "## Close call" in md and "a pilot on real data should decide" in md


def test_one_step_of_an_ordinal_answer_that_flips_the_scores_is_a_close_call():
    rec = advise({"knowledge_change": "quarterly", "deadline": "days", "context_size": "some"})
    steps = [c for c in rec.answer_changes if c.one_step and not c.by_rule]
    assert steps, [c.text for c in rec.answer_changes]
    assert rec.close_call and any("one step of a given answer" in r for r in rec.close_call_reasons)


def test_a_clear_lead_with_no_one_step_flip_is_not_a_close_call():
    rec = advise({"documents": "yes", "knowledge_change": "weekly", "citations": "yes"})
    assert rec.winner == "rag" and rec.status == "recommended" and not rec.close_call
    assert rec.robustness["rag"] == 1.0


def test_robustness_is_seeded_sums_to_one_and_splits_a_near_tie():
    weights = {"a": 1.0, "b": 1.0}
    table = {"a": {"x": 5, "y": 1}, "b": {"x": 1, "y": 4.9}}  # x leads by 0.1 weighted point
    first = robustness(weights, table, ["x", "y"])
    assert first == robustness(weights, table, ["x", "y"])  # same seed, same figure
    assert sum(first.values()) == pytest.approx(1.0)
    assert 0.3 < first["x"] < 0.7  # a coin toss under +/-30% weights
    assert robustness(weights, table, ["x", "y"], config=RobustnessConfig(seed=1)) != first
    assert robustness(weights, table, ["x", "y"], preferred="y") == {"x": 0.0, "y": 1.0}


def test_zero_weights_stay_zero_under_perturbation():
    table = {"a": {"x": 5, "y": 1}, "b": {"x": 1, "y": 5}}
    assert robustness({"a": 1.0, "b": 0.0}, table, ["x", "y"]) == {"x": 1.0, "y": 0.0}


@pytest.mark.parametrize("bad", [{"spread": 1.5}, {"draws": 10}, {"seed": -1}, {"sprad": 0.2}])
def test_robustness_settings_are_validated(bad):
    with pytest.raises(ValidationError):
        RobustnessConfig(**bad)


def test_the_report_states_the_robustness_figure_and_its_settings():
    rec = advise({"documents": "yes", "knowledge_change": "weekly", "citations": "yes"})
    md = rec.to_markdown()
    assert "## Robustness" in md and "[0.7, 1.3] (2000 draws, seed 0): RAG 100%" in md
    assert rec.to_dict()["robustness_config"] == {"spread": 0.3, "draws": 2000, "seed": 0}
