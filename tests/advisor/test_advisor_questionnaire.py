import pytest

from ragtune.advisor import Questionnaire, load_matrix, load_questions
from ragtune.advisor.matrix import parse_matrix
from ragtune.advisor.questionnaire import _parse_questions
from ragtune.errors import AdvisorError


def test_default_questionnaire_has_10_to_18_plain_questions():
    qs = load_questions()
    assert 10 <= len(qs.questions) <= 18
    ids = [q.id for q in qs.questions]
    for expected in ("knowledge_change", "citations", "data_leaves", "labelled_examples", "latency_budget",
                     "budget", "gpu", "documents", "need"):
        assert expected in ids
    assert all(q.text.endswith("?") for q in qs.questions)


def test_every_answer_only_names_factors_and_options_of_the_default_matrix():
    m = load_matrix()
    qs = load_questions()
    for q in qs.questions:
        values = list(q.choices) if q.type == "choice" else [0, 60, 300, 5000]
        for v in values:
            adj = Questionnaire({q.id: v}, questions=qs).resolve(m)
            assert not any(n.startswith("Ignored effects") for n in adj.notes), (q.id, v, adj.notes)


def test_invalid_choice_lists_the_valid_choices():
    with pytest.raises(AdvisorError) as err:
        Questionnaire({"citations": "maybe"})
    assert str(err.value) == "answers: citations: 'maybe' is not a valid choice; valid choices: yes, helpful, no"


def test_unknown_question_lists_the_question_ids():
    with pytest.raises(AdvisorError, match="unknown question 'colour'; questions are: use_case, documents, need, "):
        Questionnaire({"colour": "blue"})


@pytest.mark.parametrize("value", [-3, "many", 2.5, True])
def test_integer_question_rejects_non_counts(value):
    with pytest.raises(AdvisorError, match="labelled_examples: expected a whole number 0 or more"):
        Questionnaire({"labelled_examples": value})


def test_yaml_booleans_are_read_as_yes_and_no(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("citations: yes\ndata_leaves: no\nlabelled_examples: '120'\n")  # unquoted yes/no -> booleans
    q = Questionnaire.from_file(p)
    assert q.answers == {"citations": "yes", "data_leaves": "no", "labelled_examples": 120}


def test_answers_file_errors_name_the_file_and_field(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("answers:\n  budget: unlimited\n")
    with pytest.raises(AdvisorError, match=rf"^{p}: budget: 'unlimited' is not a valid choice; valid choices: "
                                            "minimal, moderate, substantial$"):
        Questionnaire.from_file(p)
    p.write_text("- budget\n")
    with pytest.raises(AdvisorError, match="expected a mapping of question id to answer"):
        Questionnaire.from_file(p)


def test_answers_set_weights_and_the_largest_stated_importance_wins():
    m = load_matrix()
    adj = Questionnaire({"gpu": "cloud", "ml_expertise": "none", "citations": "no"}).resolve(m)
    assert adj.weights["compute_expertise"] == 8  # gpu says 4, expertise says 8
    assert adj.weight_sources["compute_expertise"] == "ml_expertise = none"
    assert adj.weights["grounding"] == 0 and adj.weight_sources["grounding"] == "citations = no"
    assert adj.weights["latency"] == 0 and "latency" not in adj.weight_sources  # unanswered: neutral


def test_score_adjustments_add_up_across_answers():
    adj = Questionnaire({"gpu": "on_prem", "ml_expertise": "strong"}).resolve(load_matrix())
    assert adj.score_deltas["finetune"]["compute_expertise"] == 2
    assert adj.score_deltas["finetune"]["data_privacy"] == 1


def test_integer_answers_fall_into_bins():
    m = load_matrix()
    few = Questionnaire({"labelled_examples": 49}).resolve(m)
    assert set(few.exclusions) == {"finetune", "rag_finetune"}
    some = Questionnaire({"labelled_examples": 50}).resolve(m)
    assert not some.exclusions and some.score_deltas["finetune"]["training_data"] == 1
    many = Questionnaire({"labelled_examples": 4000}).resolve(m)
    assert many.score_deltas["finetune"]["training_data"] == 3


@pytest.mark.parametrize("base", [
    {"use_case": "specialised", "deadline": "weeks"},
    {"knowledge_change": "quarterly", "citations": "helpful"},
    {"need": "both", "budget": "moderate", "stakes": "moderate"},
])
def test_many_labelled_examples_help_the_fine_tuning_options_and_few_hurt_against_a_blank(base):
    from ragtune.advisor.decide import decide

    def lead(answers, option):  # raw weighted lead over the better of API and RAG: what orders the options
        d = decide(Questionnaire(answers), load_matrix())
        raw = {o: sum(d.weights[f] * (d.table[f][o] - 1) for f in d.table) for o in ("api", "rag", option)}
        return raw[option] - max(raw["api"], raw["rag"])

    # "Fine-tune when ... you have a specific high-quality dataset": with the API and RAG scoring 5 whatever the
    # count, any answer had lowered fine-tuning against leaving the question blank, even 5000 examples.
    for option in ("finetune", "rag_finetune"):
        blank = lead(base, option)
        assert lead({**base, "labelled_examples": 60}, option) < blank  # just above the floor: overfitting risk
        assert blank < lead({**base, "labelled_examples": 300}, option) < lead({**base, "labelled_examples": 5000},
                                                                              option)


def test_a_large_labelled_dataset_can_put_fine_tuning_first():
    from ragtune.advisor import advise

    answers = {"use_case": "specialised", "deadline": "weeks"}
    assert advise(answers).winner == "api"
    assert advise({**answers, "labelled_examples": 5000}).winner == "finetune"


def test_data_on_premises_without_a_self_hostable_model_rules_out_the_api():
    m = load_matrix()
    adj = Questionnaire({"data_leaves": "no", "self_host_model": "no"}).resolve(m)
    assert list(adj.exclusions) == ["api"]
    assert "may not leave your premises" in adj.exclusions["api"][0]
    # either condition alone is not a hard constraint
    assert not Questionnaire({"data_leaves": "no", "self_host_model": "yes"}).resolve(m).exclusions
    assert not Questionnaire({"data_leaves": "yes", "self_host_model": "no"}).resolve(m).exclusions


def test_a_custom_matrix_without_a_factor_gets_a_note_not_a_crash(tiny):
    adj = Questionnaire({"citations": "yes"}).resolve(tiny())
    assert adj.weights == {"a": 3, "b": 1, "c": 1}
    assert "Ignored effects" in adj.notes[-1] and "'grounding'" in adj.notes[-1]


def test_weights_from_answers_are_clamped_to_the_matrix_weight_range():
    m = load_matrix()
    data = {
        "version": "1", "weight_range": [0, 5],
        "options": [{"id": o.id, "name": o.name} for o in m.options],
        "factors": [{"id": "grounding", "name": "G", "definition": "d", "weight": 2,
                     "scores": {o.id: {"score": 3, "rationale": "r"} for o in m.options}}],
    }
    adj = Questionnaire({"citations": "yes"}).resolve(parse_matrix(data))
    assert adj.weights["grounding"] == 5


def test_a_questions_file_with_an_unknown_rule_question_names_it():
    data = {"questions": [{"id": "q", "text": "Q?", "choices": {"a": {"label": "A"}}}],
            "rules": [{"id": "r", "when": {"nope": "a"}, "effects": {"note": "x"}}]}
    with pytest.raises(AdvisorError, match=r"q.yaml: rules\[0\].when.nope: unknown question id"):
        _parse_questions(data, "q.yaml")


def test_interactive_accepts_numbers_and_ids_retries_on_bad_input_and_skips_on_enter():
    qs = load_questions()
    n = len(qs.questions)
    replies = iter(["1", "", "", "weekly", "7", "yes"] + [""] * (n - 5))  # "7" is out of range: asked again
    shown = []
    q = Questionnaire.interactive(input_fn=lambda prompt: next(replies), print_fn=shown.append, questions=qs)
    assert q.answers == {"use_case": "docs_qa", "knowledge_change": "weekly", "citations": "yes"}
    assert any("7 is not one of the choices: type a number from 1 to 3" in s for s in shown)
    assert any("1) Answer questions from our own documents" in s for s in shown)


def test_interactive_input_ending_early_is_a_clear_error():
    def eof(prompt):
        raise EOFError

    with pytest.raises(AdvisorError, match="pass answers with --answers"):
        Questionnaire.interactive(input_fn=eof, print_fn=lambda s: None)
