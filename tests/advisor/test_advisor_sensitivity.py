import pytest

from ragtune.advisor import advise, load_matrix
from ragtune.advisor.scoring import effective_scores, order, totals
from ragtune.advisor.sensitivity import analyse


def _winner(m, weights, table):
    return order(totals(weights, table, m.option_ids), m.option_ids)[0]


def _flips(m, weight_range=(0, 10)):
    table = effective_scores(m)
    return table, {f.factor_id: f for f in analyse(m.default_weights(), table, winner="x", challengers=["y", "z"],
                                                   weight_range=weight_range)}


def test_flip_points_match_the_hand_solution(tiny):
    m = tiny()
    _, flips = _flips(m)
    # a: x-y needs -3/2, x-z needs -5/4 -> z overtakes first, at 1.75 (not the runner-up y)
    assert (flips["a"].flip_weight, flips["a"].delta, flips["a"].new_winner) == (1.75, -1.25, "z")
    # b: x-y needs +1, x-z +1.25 -> y at 2
    assert (flips["b"].flip_weight, flips["b"].delta, flips["b"].new_winner) == (2.0, 1.0, "y")
    # c: x and y score alike on c; x-z needs +5/3
    assert flips["c"].flip_weight == pytest.approx(1 + 5 / 3, abs=1e-6) and flips["c"].new_winner == "z"


@pytest.mark.parametrize("factor", ["a", "b", "c"])
def test_the_reported_flip_weight_is_the_true_flip_point(factor, tiny):
    m = tiny()
    table, flips = _flips(m)
    fl = flips[factor]
    step = 1e-6 if fl.delta > 0 else -1e-6
    before = dict(m.default_weights(), **{factor: fl.flip_weight - step})
    after = dict(m.default_weights(), **{factor: fl.flip_weight + step})
    assert _winner(m, before, table) == "x"
    assert _winner(m, after, table) == fl.new_winner


def test_a_flip_outside_the_weight_range_is_reported_as_none(tiny):
    m = tiny()
    _, flips = _flips(m, weight_range=(0, 2))
    assert flips["c"].flip_weight is None and flips["c"].delta is None
    assert "no weight within [0, 2] flips it" in flips["c"].note
    # b ties x with y exactly at the range's end, 2: no weight in range goes past it, so nothing flips
    # (a tie keeps the winner first in matrix order; listing it as a flip was wrong)
    assert flips["b"].flip_weight is None and "no weight within [0, 2] flips it" in flips["b"].note
    assert _flips(m, weight_range=(0, 2.5))[1]["b"].flip_weight == 2.0  # with room past it, it flips


def test_every_reported_flip_in_a_recommendation_really_changes_the_winner():
    rec = advise({"use_case": "general", "deadline": "days"})  # a close call between RAG and an API model
    movable = [f for f in rec.sensitivity if f.delta is not None]
    assert len(movable) >= 3, "expected several factors that can flip this close call"
    # the score table the recommendation used, per factor and eligible option, in matrix (tie-break) order
    ids = [o for o in load_matrix().option_ids if not rec.option(o).excluded]
    table = {fid: {o: rec.option(o).contribution(fid).score for o in ids} for fid in rec.weights}
    assert order(totals(rec.weights, table, ids), ids)[0] == rec.winner
    for fl in movable:
        step = 1e-6 if fl.delta > 0 else -1e-6
        before = dict(rec.weights, **{fl.factor_id: fl.flip_weight - step})
        after = dict(rec.weights, **{fl.factor_id: fl.flip_weight + step})
        assert order(totals(before, table, ids), ids)[0] == rec.winner, fl
        assert order(totals(after, table, ids), ids)[0] == fl.new_winner != rec.winner, fl
