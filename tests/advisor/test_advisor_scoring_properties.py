"""Property tests of the weighted scoring (hypothesis): bounded, monotone, order- and scale-invariant."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragtune.advisor.robustness import robustness
from ragtune.advisor.scoring import order, totals

OPTIONS = ["o0", "o1", "o2", "o3"]


@st.composite
def matrices(draw):
    """(weights {factor: 0..10}, table {factor: {option: 1..5}}, option ids) with at least one weight > 0."""
    n_factors = draw(st.integers(1, 6))
    options = OPTIONS[: draw(st.integers(2, 4))]
    factors = [f"f{i}" for i in range(n_factors)]
    weights = {f: draw(st.floats(0, 10, allow_nan=False)) for f in factors}
    if sum(weights.values()) <= 1e-6:
        weights[factors[0]] = 1.0
    table = {f: {o: draw(st.integers(1, 5)) for o in options} for f in factors}
    return weights, table, options


@settings(max_examples=100, deadline=None)
@given(matrices())
def test_totals_stay_within_0_and_100(m):
    weights, table, options = m
    assert all(-1e-9 <= t <= 100 + 1e-9 for t in totals(weights, table, options).values())


@settings(max_examples=100, deadline=None)
@given(matrices(), st.floats(0.1, 10))
def test_a_winner_stays_first_when_a_factor_it_scores_best_on_gains_weight(m, extra):
    weights, table, options = m
    winner = order(totals(weights, table, options), options)[0]
    favouring = [f for f in table if all(table[f][winner] >= table[f][o] for o in options)]
    for f in favouring:
        raised = dict(weights, **{f: weights[f] + extra})
        assert order(totals(raised, table, options), options)[0] == winner


@settings(max_examples=100, deadline=None)
@given(matrices(), st.randoms(use_true_random=False))
def test_totals_do_not_depend_on_the_order_of_factors_or_options(m, rnd: random.Random):
    weights, table, options = m
    factors = list(table)
    rnd.shuffle(factors)
    shuffled_options = options[:]
    rnd.shuffle(shuffled_options)
    permuted = {f: {o: table[f][o] for o in shuffled_options} for f in factors}
    before, after = totals(weights, table, options), totals(weights, permuted, shuffled_options)
    assert after == pytest.approx(before)


@settings(max_examples=100, deadline=None)
@given(matrices(), st.floats(0.01, 100))
def test_scaling_every_weight_changes_nothing(m, c):
    weights, table, options = m
    scaled = {f: w * c for f, w in weights.items()}
    assert totals(scaled, table, options) == pytest.approx(totals(weights, table, options))


@settings(max_examples=50, deadline=None)
@given(matrices())
def test_robustness_shares_are_a_distribution_and_a_dominant_option_always_wins(m):
    weights, table, options = m
    shares = robustness(weights, table, options)
    assert sum(shares.values()) == pytest.approx(1.0) and all(0 <= s <= 1 for s in shares.values())
    dominant = {f: dict(row, o0=5) for f, row in table.items()}  # o0 scores 5 everywhere: never beaten
    others = {f: {o: min(s, 4) for o, s in row.items()} for f, row in dominant.items()}
    others = {f: dict(row, o0=5) for f, row in others.items()}
    assert robustness(weights, others, options)["o0"] == 1.0
