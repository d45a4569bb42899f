"""Weighted-sum scoring of the options, with each factor's contribution and the reasons for and against.

The scale (documented in the report too): an option's total is its weighted mean score mapped from the
1..5 scale onto 0..100,

    total(o) = 100 * sum_f w_f * (s_fo - 1) / (4 * sum_f w_f)

so 0 means "scores 1 on every factor", 100 "scores 5 on every factor", and factor f contributes
``100 * w_f * (s_fo - 1) / (4 * W)`` points; an option's contributions sum to its total. When every
weight is 0 (nothing answered yet) every total is 0: nothing separates the options. Ties are broken by
the matrix's option order (API, RAG, fine-tuning, RAG + fine-tuning), which follows the sources' order
of levers: prompt engineering first, then RAG, then fine-tuning.
"""

from __future__ import annotations

from collections.abc import Mapping

from .matrix import SCORE_MAX, SCORE_MIN, Matrix
from .types import Contribution, OptionResult, Reason, RuleRef

ScoreTable = dict[str, dict[str, float]]  # factor id -> option id -> score used


def effective_scores(
    matrix: Matrix,
    deltas: Mapping[str, Mapping[str, float]] | None = None,
    measured: Mapping[str, Mapping[str, float]] | None = None,
) -> ScoreTable:
    """Prior scores plus the questionnaire's adjustments (clamped to 1..5); measured scores replace both."""
    deltas, measured = deltas or {}, measured or {}
    table: ScoreTable = {}
    for f in matrix.factors:
        table[f.id] = {}
        for oid in matrix.option_ids:
            m = measured.get(oid, {}).get(f.id)
            if m is not None:
                table[f.id][oid] = float(m)
            else:
                raw = f.scores[oid].score + deltas.get(oid, {}).get(f.id, 0.0)
                table[f.id][oid] = float(min(max(raw, SCORE_MIN), SCORE_MAX))
    return table


def points(weights: Mapping[str, float], table: ScoreTable, option_id: str) -> dict[str, float]:
    """Each factor's contribution (in 0-100 total points) to ``option_id``."""
    scale = _scale(weights, table)
    return {f: scale * weights[f] * (table[f][option_id] - SCORE_MIN) for f in table}


def _scale(weights: Mapping[str, float], table: ScoreTable) -> float:
    """Points per weight-unit of score above 1; 0 when no factor has weight (every total is then 0)."""
    total_weight = sum(weights[f] for f in table)
    return 100.0 / ((SCORE_MAX - SCORE_MIN) * total_weight) if total_weight > 0 else 0.0


def totals(weights: Mapping[str, float], table: ScoreTable, option_ids: list[str]) -> dict[str, float]:
    return {o: sum(points(weights, table, o).values()) for o in option_ids}


def order(totals_by_option: Mapping[str, float], option_ids: list[str], first: str | None = None) -> list[str]:
    """Option ids best first; equal totals keep the matrix order. Rounding absorbs float noise.
    ``first`` (a firm preference) goes first whatever its total."""
    ranked = sorted(option_ids, key=lambda o: (-round(totals_by_option[o], 9), option_ids.index(o)))
    return [first] + [o for o in ranked if o != first] if first in ranked else ranked


def rank(
    matrix: Matrix,
    weights: Mapping[str, float],
    table: ScoreTable,
    *,
    exclusions: Mapping[str, list[str]] | None = None,
    deltas: Mapping[str, Mapping[str, float]] | None = None,
    measured: Mapping[str, Mapping[str, float]] | None = None,
    n_reasons: int = 3,
    first: str | None = None,
    lever_order: bool = False,
) -> list[OptionResult]:
    """Score every option; eligible ones come first, best first (``first``, a firm preference, leads),
    then the excluded ones. ``lever_order``: the eligible ones in the matrix's order whatever their totals
    (an undetermined result whose totals rest on too few answers, see :mod:`.decide`)."""
    exclusions, deltas, measured = exclusions or {}, deltas or {}, measured or {}
    ids = matrix.option_ids
    tot = totals(weights, table, ids)
    eligible = [o for o in (ids if lever_order else order(tot, ids, first)) if o not in exclusions]
    excluded = [o for o in order(tot, ids) if o in exclusions]
    results = []
    for oid in eligible + excluded:
        pts = points(weights, table, oid)
        contribs = [
            Contribution(
                factor_id=f.id,
                factor_name=f.name,
                weight=weights[f.id],
                score=table[f.id][oid],
                prior_score=f.scores[oid].score,
                adjustment=deltas.get(oid, {}).get(f.id, 0.0),
                measured_score=measured.get(oid, {}).get(f.id),
                points=pts[f.id],
                rationale=f.scores[oid].rationale,
            )
            for f in matrix.factors
        ]
        pro, con = reasons(matrix, weights, table, oid, n=n_reasons, measured=measured)
        results.append(
            OptionResult(
                id=oid,
                name=matrix.option(oid).name,
                total=tot[oid],
                rank=eligible.index(oid) + 1 if oid in eligible else None,
                excluded=oid in exclusions,
                exclusion_reasons=list(exclusions.get(oid, [])),
                contributions=contribs,
                reasons_for=pro,
                reasons_against=con,
                rules=[RuleRef(r, matrix.rules[r].text, matrix.rules[r].source)
                       for r in matrix.option(oid).rules if r in matrix.rules],
            )
        )
    return results


def reasons(
    matrix: Matrix,
    weights: Mapping[str, float],
    table: ScoreTable,
    option_id: str,
    n: int = 3,
    measured: Mapping[str, Mapping[str, float]] | None = None,
) -> tuple[list[Reason], list[Reason]]:
    """The ``n`` factors that gain ``option_id`` the most points against the other options' average score,
    and the ``n`` that lose it the most."""
    others = [o for o in matrix.option_ids if o != option_id]
    scale = _scale(weights, table)
    scored = []
    for f in matrix.factors:
        s = table[f.id][option_id]
        avg = sum(table[f.id][o] for o in others) / len(others)
        impact = scale * weights[f.id] * (s - avg)
        if weights[f.id] > 0 and abs(impact) > 1e-12:
            prior = f.scores[option_id].score
            if (measured or {}).get(option_id, {}).get(f.id) is not None:
                changed = f" (measured in the pilot; matrix score {prior})"
            else:
                changed = "" if s == prior else f" (matrix score {prior}; adjusted for your answers)"
            text = (f"{f.name}: {s:g}/5 against {avg:.1f} for the other options, weight {weights[f.id]:g}{changed}. "
                    f"{f.scores[option_id].rationale}")
            scored.append(Reason(f.id, text, round(impact, 2)))
    pro = sorted((r for r in scored if r.impact > 0), key=lambda r: -r.impact)[:n]
    con = sorted((r for r in scored if r.impact < 0), key=lambda r: r.impact)[:n]
    return pro, con
