"""Sensitivity analysis: which single weight change flips the recommendation, and by how much.

Totals are weighted means, so whether the winner A still beats a challenger B depends only on the sign of

    N_AB(w) = sum_g w_g * (s_gA - s_gB)              (>= 0 while A ranks above B)

(the shared positive factor 100 / (4 * sum w) drops out). Changing the weight of one factor f by delta
changes N_AB by delta * d_f with d_f = s_fA - s_fB, which is linear, so the two options tie exactly at

    delta = -N_AB / d_f

For each factor we solve this for every eligible challenger, keep the solutions whose new weight stays
within the matrix's weight range, and report the one with the smallest |delta|: moving the weight that
far makes that challenger tie with A, and any further makes it rank first (no other challenger can have
overtaken A before, or its own |delta| would be smaller). Factors where the winner and every challenger
score alike (d_f = 0) or where the needed weight is out of range cannot flip the result on their own.

    >>> flips = analyse({"a": 1.0, "b": 1.0}, {"a": {"x": 5, "y": 1}, "b": {"x": 1, "y": 4}},
    ...                 winner="x", challengers=["y"], weight_range=(0, 10))
    >>> [(f.factor_id, f.flip_weight, f.new_winner) for f in flips]
    [('a', 0.75, 'y'), ('b', 1.333333, 'y')]
"""

from __future__ import annotations

from collections.abc import Mapping

from .types import Flip

_EPS = 1e-12


def analyse(
    weights: Mapping[str, float],
    table: Mapping[str, Mapping[str, float]],
    *,
    winner: str,
    challengers: list[str],
    weight_range: tuple[float, float],
    factor_names: Mapping[str, str] | None = None,
) -> list[Flip]:
    """One :class:`Flip` per factor, in factor order (see the module docstring for the method).

    ``challengers`` are the other eligible options in tie-break order (the matrix order): at an exact tie
    the earlier option ranks first, so ``flip_weight`` is the boundary itself.
    """
    lo, hi = weight_range
    names = factor_names or {}
    flips = []
    for f in table:
        w = float(weights[f])
        best: tuple[float, str] | None = None  # (delta, challenger)
        for b in challengers:
            margin = sum(weights[g] * (table[g][winner] - table[g][b]) for g in table)  # N_AB >= 0
            d = table[f][winner] - table[f][b]
            if abs(d) < _EPS:
                continue  # this factor scores A and B alike: its weight cannot separate them
            delta = -margin / d
            new_w = w + delta
            if new_w < lo - _EPS or new_w > hi + _EPS:
                continue
            # At the range's end there is no room to go past the tie, and a tie is not a flip when the matrix
            # order keeps the winner first: "0 -> 10.00 puts X first" listed a change that only tied.
            if (delta > 0 and new_w > hi - _EPS) or (delta < 0 and new_w < lo + _EPS):
                continue
            if sum(weights.values()) - w + new_w <= _EPS:
                continue  # every weight would be 0: no ranking at all
            if best is None or abs(delta) < abs(best[0]) - _EPS:
                best = (delta, b)
        if best is None:
            flips.append(Flip(f, names.get(f, f), w, note=f"no weight within [{lo:g}, {hi:g}] flips it"))
        else:
            delta, b = best
            direction = "raising" if delta > 0 else "lowering"
            flips.append(
                Flip(f, names.get(f, f), w, flip_weight=round(w + delta, 6), delta=round(delta, 6), new_winner=b,
                     note=f"{direction} the weight from {w:g} past {w + delta:.2f} puts {b} first")
            )
    return flips


def nearest(flips: list[Flip]) -> list[Flip]:
    """The flips sorted by how small a weight change they need (factors that cannot flip it last)."""
    return sorted(flips, key=lambda fl: (fl.delta is None, abs(fl.delta) if fl.delta is not None else 0.0))
