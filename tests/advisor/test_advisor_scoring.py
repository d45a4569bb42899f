import pytest

from ragtune.advisor.scoring import effective_scores, rank, totals


def test_totals_match_the_hand_computed_weighted_means(tiny):
    m = tiny()
    table = effective_scores(m)
    # 100 * sum w*(s-1) / (4 * sum w) with w = (3, 1, 1): x = 13/20, y = 10/20, z = 8/20
    assert totals(m.default_weights(), table, m.option_ids) == pytest.approx({"x": 65.0, "y": 50.0, "z": 40.0})


def test_contributions_are_per_factor_points_that_sum_to_the_total(tiny):
    m = tiny()
    results = rank(m, m.default_weights(), effective_scores(m))
    x = results[0]
    assert x.id == "x" and x.rank == 1
    assert [c.points for c in x.contributions] == pytest.approx([60.0, 0.0, 5.0])
    for r in results:
        assert sum(c.points for c in r.contributions) == pytest.approx(r.total)


def test_reasons_compare_with_the_other_options_average(tiny):
    m = tiny()
    x = rank(m, m.default_weights(), effective_scores(m))[0]
    # a: 3*(5 - 2)*100/20 = +45; b: 1*(1 - 4.5)*5 = -17.5; c: 1*(2 - 3.5)*5 = -7.5
    assert [(r.factor_id, r.impact) for r in x.reasons_for] == [("a", 45.0)]
    assert [(r.factor_id, r.impact) for r in x.reasons_against] == [("b", -17.5), ("c", -7.5)]
    assert "x is great at a" in x.reasons_for[0].text


def test_adjustments_are_clamped_to_the_1_to_5_scale_and_measured_scores_win(tiny):
    m = tiny()
    table = effective_scores(m, deltas={"x": {"a": 3}, "z": {"a": -4}}, measured={"y": {"b": 1}})
    assert table["a"]["x"] == 5.0 and table["a"]["z"] == 1.0
    assert table["b"]["y"] == 1.0


def test_excluded_options_rank_last_without_a_rank_number(tiny):
    m = tiny()
    results = rank(m, m.default_weights(), effective_scores(m), exclusions={"x": ["not allowed"]})
    assert [(r.id, r.rank, r.excluded) for r in results] == [("y", 1, False), ("z", 2, False), ("x", None, True)]
    assert results[-1].exclusion_reasons == ["not allowed"]


def test_equal_totals_keep_the_matrix_option_order(tiny):
    m = tiny()
    weights = {"a": 0.0, "b": 1.0, "c": 0.0}  # only b counts; make y and z tie on it
    table = effective_scores(m, deltas={"y": {"b": 1}})
    assert [r.id for r in rank(m, weights, table)] == ["y", "z", "x"]
