"""The decision core: answers (+ optional weight overrides and measurements) -> the ranking, and whether
the answers decide it at all.

This is the cheap inner loop that the what-if analysis (every alternative answer) and the robustness
draws call many times; :func:`ragtune.advisor.advise` wraps it with reasons, sensitivity and quotes.

How the first place is decided, in order (the sources' procedure: hard constraints first, then the
documents' firm rules, then the weighted matrix; "Choosing a model" and "API, RAG or fine-tuning"):

1. options ruled out by a hard constraint drop out;
2. a firm preference (e.g. a strict format with at least 50 good examples -> fine-tuning) puts its option
   first when that option is still in;
3. otherwise the highest weighted total wins. When the top totals tie (nothing answered yet, or the
   answers weigh only factors the options share) the result is *undetermined* and the order falls back
   on the documents' lever order: prompting an API model first, then RAG, then fine-tuning. It is
   undetermined too, with the same fallback, when fewer than ``MIN_GROUNDS`` answers bear on the choice
   (see :func:`grounds`): one answer weighs only the factors it speaks to, so its favourite scores up to
   100/100 on them and no weight perturbation can move it, which restates the answer rather than weighing
   the options against each other.

    >>> from ragtune.advisor.questionnaire import Questionnaire
    >>> d = decide(Questionnaire({}), load_matrix())
    >>> d.determined, d.ranking
    (False, ['api', 'rag', 'finetune', 'rag_finetune'])
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

from ragtune.errors import AdvisorError

from .matrix import Matrix, load_matrix  # noqa: F401 - load_matrix for the doctest
from .questionnaire import Adjustments, Questionnaire
from .scoring import ScoreTable, effective_scores, order, totals

TIE_EPS = 1e-9  # totals closer than this are equal (float noise of the weighted sums)
# Answers that must bear on the choice before the weighted totals decide it. "Choosing a model" compares the
# options on several important factors; one answer is one concern. Two is the least that is a comparison, and
# the scenario set's deciding facts (advisor/scenarios: 2-4 answers each) show that two can settle it.
MIN_GROUNDS = 2


@dataclass
class Decision:
    adjustments: Adjustments
    weights: dict[str, float]
    table: ScoreTable
    totals: dict[str, float]
    ranking: list[str]  # eligible option ids, first place first
    preferred: str | None = None  # the option a firm preference put first
    preference_reason: str = ""
    tied: list[str] = field(default_factory=list)  # options sharing the top total when undetermined
    grounds: list[str] = field(default_factory=list)  # what the choice rests on (see grounds())
    too_few_grounds: bool = False  # a strictly higher total, but resting on fewer than MIN_GROUNDS answers

    @property
    def winner(self) -> str | None:
        return self.ranking[0] if self.ranking else None

    @property
    def determined(self) -> bool:
        """True when a firm preference, or a strictly higher total resting on enough answers, puts one option
        first (or the hard constraints leave only one)."""
        return self.winner is not None and (self.preferred is not None
                                            or not (self.tied or self.too_few_grounds))

    @property
    def leader(self) -> str | None:
        """The option ahead on the totals when too few answers bear on them to decide (None otherwise): what
        the answers given lean to, shown to the user but not recommended."""
        if not self.too_few_grounds:
            return None
        return max(self.ranking, key=lambda o: self.totals[o])  # ranking is the lever order: ties keep it

    @property
    def margin(self) -> float | None:
        """Points between first and second place by total (None with fewer than two options)."""
        if len(self.ranking) < 2:
            return None
        return self.totals[self.ranking[0]] - self.totals[self.ranking[1]]


def check_weights(weights: Mapping[str, float], matrix: Matrix, origin: str = "weights") -> dict[str, float]:
    """Validate caller-supplied weights (the UI's editable weights): known factors, numbers in range."""
    lo, hi = matrix.weight_range
    if not isinstance(weights, Mapping):
        raise AdvisorError(f"{origin}: expected a mapping of factor to weight such as {{'cost': 8}}, "
                           f"got {type(weights).__name__}")
    out = {}
    for fid, w in weights.items():
        if fid not in matrix.factor_ids:
            raise AdvisorError(f"{origin}: unknown factor {fid!r}; factors are: {', '.join(matrix.factor_ids)}")
        # numpy's and Decimal's numbers are numbers too (a weight read from a dataframe is np.int64)
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not lo <= w <= hi:
            raise AdvisorError(f"{origin}: {fid}: expected a number {lo:g}-{hi:g}, got {w!r}")
        out[fid] = float(w)
    return out


def decide(
    q: Questionnaire,
    matrix: Matrix,
    *,
    weights: Mapping[str, float] | None = None,
    measured: Mapping[str, Mapping[str, float]] | None = None,
) -> Decision:
    """Rank the eligible options for ``q``'s answers; ``weights`` override the answer-derived ones."""
    adj = q.resolve(matrix)
    used = dict(adj.weights)
    if weights:
        used.update(check_weights(weights, matrix))
    table = effective_scores(matrix, adj.score_deltas, measured)
    tot = totals(used, table, matrix.option_ids)
    eligible = [o for o in matrix.option_ids if o not in adj.exclusions]
    preferred, reason = next(((o, r) for o, r in adj.preferences if o in eligible), (None, ""))
    ranking = order({o: tot[o] for o in eligible}, eligible, first=preferred)
    tied: list[str] = []
    if preferred is None and ranking:
        top = tot[ranking[0]]
        tied = [o for o in ranking if top - tot[o] <= TIE_EPS]
        tied = tied if len(tied) > 1 else []
    hand_set = [f for f, w in used.items() if abs(w - adj.weights.get(f, 0.0)) > 1e-9]
    found = grounds(q, used, table, eligible, hand_set=hand_set)
    too_few = preferred is None and len(ranking) > 1 and not tied and len(found) < MIN_GROUNDS
    if too_few:
        ranking = list(eligible)  # the lever order (the matrix's option order), as for a tie
    return Decision(adj, used, table, tot, ranking, preferred, reason, tied, found, too_few)


def grounds(q: Questionnaire, weights: Mapping[str, float], table: ScoreTable, eligible: list[str], *,
            hand_set: list[str] | tuple[str, ...] = ()) -> list[str]:
    """What the choice among ``eligible`` rests on: the ids of the answers that rule an option out, or that
    weigh or adjust a factor on which the eligible options score differently (and whose weight is above 0);
    the questions of a combined rule whose effects do so; and, as ``weight of <factor>``, each such factor
    whose weight was set by hand (``hand_set``) or comes from the matrix because no question reaches it.

    An answer whose effects change nothing here (``self_host_model`` alone, ``citations: no``) is no ground:
    it left the totals as they were.
    """
    separating = {f for f, row in table.items()
                  if weights.get(f, 0.0) > 0 and len({row[o] for o in eligible}) > 1}

    def bears(eff) -> bool:
        return (bool(eff.exclude) or any(w > 0 and f in separating for f, w in eff.weights.items())
                or any(f in separating for per_factor in eff.scores.values() for f in per_factor))

    found = [question.id for question in q.questions.questions
             if question.id in q.answers and bears(question.effects_for(q.answers[question.id])[1])]
    for rule in q.questions.rules:
        if rule.applies(q.answers) and bears(rule.effects):
            found += [qid for qid in rule.when if qid not in found]
    reachable = q.questions.weighted_factors()
    found += [f"weight of {f}" for f in table if f in separating and (f in hand_set or f not in reachable)]
    return found
