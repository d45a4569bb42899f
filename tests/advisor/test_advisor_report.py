import json
import struct

import pytest

from ragtune.advisor import advise, load_matrix

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_chart_is_a_valid_png_image(tmp_path):
    rec = advise({"knowledge_change": "daily", "citations": "yes", "labelled_examples": 10})
    path = rec.write_chart(tmp_path / "chart.png")
    width, height = _png_size(path)
    assert width > 300 and height > 150


def test_markdown_has_a_row_per_factor_with_weights_scores_and_contributions():
    rec = advise({"knowledge_change": "daily", "citations": "yes"})
    md = rec.to_markdown()
    for f in load_matrix().factors:
        row = next(line for line in md.splitlines() if line.startswith(f"| {f.name} |"))
        assert row.count("|") == 2 + 1 + len(rec.options)  # factor, weight, one cell per option
    assert "| Factual grounding and citations | 10 (citations = yes) |" in md
    assert "| 1 | RAG |" in md and "## Sensitivity" in md and "## Your answers" in md
    totals_row = next(line for line in md.splitlines() if line.startswith("| **Total** |"))
    assert f"**{rec.option('rag').total:.1f}**" in totals_row


def test_json_round_trips_with_ranking_contributions_and_sensitivity():
    rec = advise({"knowledge_change": "daily", "citations": "yes", "data_leaves": "no", "self_host_model": "no"})
    data = json.loads(rec.to_json())
    assert data["winner"] == "rag" and data["ranking"][0] == "rag" and "api" not in data["ranking"]
    api = next(o for o in data["options"] if o["id"] == "api")
    assert api["excluded"] is True and api["exclusion_reasons"]
    rag = next(o for o in data["options"] if o["id"] == "rag")
    assert abs(sum(c["points"] for c in rag["contributions"]) - rag["total"]) < 1e-9
    assert {f["factor_id"] for f in data["sensitivity"]} == set(data["weights"])


def test_save_writes_markdown_chart_and_json_side_by_side(tmp_path):
    rec = advise({"deadline": "days"})
    written = rec.save(tmp_path / "advice.md", json_too=True)
    assert [p.name for p in written] == ["advice.md", "advice.png", "advice.json"]
    assert "![Option scores](advice.png)" in (tmp_path / "advice.md").read_text()
    assert json.loads((tmp_path / "advice.json").read_text())["winner"] == rec.winner
    _png_size(tmp_path / "advice.png")


def test_a_report_path_that_is_a_folder_is_refused_before_anything_is_written(tmp_path):
    from ragtune.advisor import advise
    from ragtune.advisor.report import save_report
    from ragtune.errors import AdvisorError

    folder = tmp_path / "adv"
    folder.mkdir()
    with pytest.raises(AdvisorError, match="is a folder; give the Markdown file to write"):
        save_report(advise({}), folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adv"]  # no stray adv.png


def test_a_firm_preference_over_a_higher_score_is_not_called_points_ahead():
    # rag_team.yaml with a strict house format: RAG + fine-tuning is preferred by rule at a lower score. (With
    # 200 examples or more the labelled data also puts RAG + fine-tuning ahead on the totals: 120 keeps the case.)
    answers = {"use_case": "docs_qa", "documents": "yes", "need": "knowledge", "knowledge_change": "weekly",
               "citations": "yes", "labelled_examples": 120, "style_needs": "yes", "gpu": "cloud"}
    rec = advise(answers)
    top, second = rec.ranked[0], rec.ranked[1]
    assert rec.firm_preference and top.total < second.total  # the case this test is about
    lead = rec.to_markdown().split("\n")[2]
    assert "points ahead" not in lead
    assert f"ranked above {second.name} ({second.total:.1f}, {second.total - top.total:.1f} points more)" in lead


def test_robustness_is_not_applicable_to_a_firm_preference():
    answers = {"use_case": "docs_qa", "documents": "yes", "need": "knowledge", "knowledge_change": "weekly",
               "citations": "yes", "labelled_examples": 300, "style_needs": "yes", "gpu": "cloud"}
    rec = advise(answers)
    assert rec.status == "firm_preference"
    section = rec.to_markdown().split("## Robustness", 1)[1].split("\n## ", 1)[0]
    assert "Not applicable" in section and "100%" not in section


def test_data_kept_on_premises_and_an_unsure_self_hosted_model_says_what_the_api_option_means():
    rec = advise({"data_leaves": "no", "self_host_model": "unsure", "use_case": "general"})
    assert any("can only mean an open-weight model you serve yourself" in n for n in rec.notes)
    assert not any("open-weight model you serve" in n for n in advise({"data_leaves": "yes"}).notes)


def test_need_neither_contradicted_by_documents_and_citations_is_flagged_not_preferred():
    answers = {"need": "neither", "use_case": "docs_qa", "citations": "yes", "knowledge_change": "weekly",
               "stakes": "high"}
    rec = advise(answers)
    assert rec.status != "firm_preference" and rec.winner == "rag"  # it was "API model as is, a firm preference"
    assert any(n.startswith("Contradictory answers: need = neither but use_case = docs_qa, citations = yes")
               for n in rec.notes)
    plain = advise({"need": "neither", "use_case": "general"})  # no contradiction: the preference stands
    assert plain.status == "firm_preference" and plain.winner == "api"
