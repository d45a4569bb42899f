import json

import pytest

from ragtune.advisor import advise
import functools

from ragtune.advisor import evidence
from ragtune.advisor.evidence import f1_to_score, latency_to_score, load_qa, token_f1
from ragtune.errors import DatasetError
from ragtune.rag.types import Answer

QA = [
    {"question": "What does LoRA train?", "answer": "two low-rank matrices"},
    {"question": "What does QLoRA quantise?", "answers": ["the frozen base model", "base model"]},
    {"question": "What is BM25?", "answer": "a lexical ranking function"},
]
# The scoring tests use a 3-question pilot; the minimum pilot size has its own test below.
run_pilot = functools.partial(evidence.run_pilot, min_answers=1)
GOLD = {"What does LoRA train?": "It trains two low-rank matrices.",
        "What does QLoRA quantise?": "The base model.",
        "What is BM25?": "A lexical ranking function."}


def test_token_f1_uses_squad_normalisation_and_the_best_reference():
    assert token_f1("The Eiffel Tower!", ["eiffel tower"]) == 1.0
    assert token_f1("paris", ["London", "Paris"]) == 1.0
    assert token_f1("a big red car", ["red car"]) == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert token_f1("", ["something"]) == 0.0 and token_f1("anything", []) == 0.0


def test_score_thresholds_are_monotone():
    f1_scores = [f1_to_score(x / 100) for x in range(101)]
    assert f1_scores == sorted(f1_scores) and f1_scores[0] == 1 and f1_scores[-1] == 5
    lat_scores = [latency_to_score(1 + x / 10, fastest=1.0) for x in range(120)]
    assert lat_scores == sorted(lat_scores, reverse=True) and lat_scores[0] == 5 and lat_scores[-1] == 1


class FakeClock:
    """Time passes only inside the fake generators: each call takes its arm's number of seconds."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def taking(self, seconds, fn):
        def ask(q):
            self.now += seconds
            return fn(q)
        return ask


def test_run_pilot_measures_f1_and_median_latency_per_arm():
    clock = FakeClock()
    result = run_pilot(
        QA,
        ask_with_rag=clock.taking(2.0, lambda q: Answer(text=GOLD[q])),  # Answer objects are accepted
        ask_without=clock.taking(0.5, lambda q: "I do not know."),
        clock=clock,
    )
    # "it trains" costs precision on Q1: 4 of its 6 words ("low-rank" is two, as everywhere answers are scored)
    assert result.arms["rag"].f1 == pytest.approx((0.8 + 1 + 1) / 3)
    assert result.arms["without"].f1 == 0.0
    assert result.arms["rag"].latency_p50 == pytest.approx(2.0)
    assert result.arms["without"].latency_p50 == pytest.approx(0.5)
    assert result.measured_scores() == {
        "rag": {"domain_accuracy": 5, "latency": 3},  # 2.0 / 0.5 = 4x the fastest arm: the <= 4x band
        "api": {"domain_accuracy": 1, "latency": 5},
    }


def test_a_failing_question_is_recorded_and_skipped_in_that_arm_only():
    def flaky(q):
        if "BM25" in q:
            raise RuntimeError("generator timed out")
        return GOLD[q]

    result = run_pilot(QA, ask_with_rag=flaky, ask_without=lambda q: GOLD[q])
    assert result.arms["rag"].n == 2 and "generator timed out" in result.arms["rag"].errors[0]
    assert result.arms["without"].n == 3 and not result.arms["without"].errors


def test_an_arm_that_always_fails_gets_no_measured_score():
    def broken(q):
        raise RuntimeError("no model")

    result = run_pilot(QA, ask_with_rag=lambda q: GOLD[q], ask_without=broken,
                       ask_with_adapter=lambda q: GOLD[q])
    assert set(result.measured_scores()) == {"rag", "finetune"}
    assert any("every question failed" in n for n in result.notes)


def test_measured_scores_replace_the_prior_and_show_both():
    result = run_pilot(QA, ask_with_rag=lambda q: "I do not know", ask_without=lambda q: GOLD[q])
    answers = {"knowledge_change": "weekly", "stakes": "moderate", "latency_budget": "seconds"}
    plain = advise(answers)
    rec = advise(answers, evidence=result)
    acc = rec.option("rag").contribution("domain_accuracy")
    assert acc.prior_score == 4 and acc.measured_score == 1 and acc.score == 1
    api = rec.option("api").contribution("domain_accuracy")
    assert api.prior_score == 2 and api.measured_score == 5
    assert rec.option("rag").total < plain.option("rag").total
    assert rec.option("api").total > plain.option("api").total
    md = rec.to_markdown()
    assert "4 → **1** (measured)" in md and "## Evidence: pilot on your documents" in md
    assert "fine-tuned options were not measured" in md  # what the pilot cannot measure yet is said
    assert rec.to_dict()["evidence"]["measured_scores"]["api"]["domain_accuracy"] == 5


def test_load_qa_reads_jsonl_and_names_the_bad_line(tmp_path):
    p = tmp_path / "qa.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in QA) + "\n")
    assert load_qa(p, limit=2) == QA[:2]
    p.write_text(json.dumps(QA[0]) + "\n{oops\n")
    with pytest.raises(DatasetError, match="qa.jsonl: line 2: invalid JSON"):
        load_qa(p)
    p.write_text(json.dumps({"question": "Q?"}) + "\n")
    with pytest.raises(DatasetError, match="item 1: needs an \"answer\" string"):
        load_qa(p)


def test_citation_markers_do_not_count_against_an_answer():
    result = run_pilot(QA[:1], ask_with_rag=lambda q: "two low-rank matrices [1]",
                       ask_without=lambda q: "two low-rank matrices [1, 2]")
    assert result.arms["rag"].f1 == 1.0 and result.arms["without"].f1 == 1.0


def test_an_instant_arm_does_not_make_a_sub_second_arm_look_slow():
    clock = FakeClock()
    result = run_pilot(QA, ask_with_rag=clock.taking(0.9, lambda q: GOLD[q]),
                       ask_without=clock.taking(0.0001, lambda q: "The documents do not say."), clock=clock)
    # 0.9 s against the 0.5 s floor is 1.8x (score 4), not 9000x (score 1)
    assert result.measured_scores()["rag"]["latency"] == 4


def test_citation_precision_measures_grounding_when_items_name_their_source():
    from ragtune.rag.types import Citation

    qa = [dict(item, source="corpora/lora_qlora.pdf") for item in QA]

    def cited(q):
        right = Citation(1, "c1", "/data/lora_qlora.pdf")
        wrong = Citation(2, "c2", "/data/rag_pipeline.html")
        return Answer(text=GOLD[q], citations=[right, wrong] if "BM25" in q else [right])

    result = run_pilot(qa, ask_with_rag=cited, ask_without=lambda q: "I do not know.")
    assert result.arms["rag"].citation_precision == pytest.approx(3 / 4)
    assert result.arms["without"].citation_precision is None  # nothing cited: no measurement
    assert result.measured_scores()["rag"]["grounding"] == 4 and "grounding" not in result.measured_scores()["api"]
    rec = advise({"citations": "yes", "stakes": "moderate"}, evidence=result)
    grounding = rec.option("rag").contribution("grounding")
    assert (grounding.prior_score, grounding.measured_score) == (5, 4)
    assert not any("citation precision was not measured" in n for n in rec.notes)


def test_without_sources_the_report_says_citation_precision_is_missing():
    result = run_pilot(QA, ask_with_rag=lambda q: GOLD[q], ask_without=lambda q: "I do not know.")
    rec = advise({"citations": "yes"}, evidence=result)
    assert any("citation precision was not measured" in n for n in rec.notes)
    assert "citation precision was not measured" in rec.to_markdown()


def test_a_pilot_smaller_than_the_minimum_keeps_the_priors_and_says_why():
    small = evidence.run_pilot(QA, ask_with_rag=lambda q: "I do not know", ask_without=lambda q: GOLD[q])
    assert small.min_answers == evidence.MIN_PILOT_ANSWERS == 20 and small.measured_scores() == {}
    answers = {"knowledge_change": "weekly", "stakes": "moderate"}
    rec = advise(answers, evidence=small)
    assert rec.option("rag").total == advise(answers).option("rag").total  # 3 answers move nothing
    assert any("Evidence too small: without answered 3, rag answered 3" in n for n in rec.notes)
    assert "at least 20 QA items" in rec.to_markdown()
    # 21 questions (the same three, seven times): the measurements replace the priors
    big = evidence.run_pilot(QA * 7, ask_with_rag=lambda q: "I do not know", ask_without=lambda q: GOLD[q])
    assert big.measured_scores()["rag"]["domain_accuracy"] == 1
    assert advise(answers, evidence=big).option("rag").contribution("domain_accuracy").measured_score == 1
