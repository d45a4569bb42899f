"""Answer-level sensitivity: which single answer (a change, or answering an open question) changes the
recommendation, and whether the result is a close call.

Weight flip points (:mod:`.sensitivity`) are exact but come in weight units that no answer produces; the
user can act on answers. So every other answer of every question is tried, one at a time, through the
cheap decision core (about 60 runs of a few hundred microseconds each), and each one that changes first
place is reported in the user's terms: "answering `citations`: No puts Fine-tuning first".

A result is a **close call** when
- the lead is under ``CLOSE_MARGIN`` points of 100, or
- changing one given answer to its neighbouring choice (an ordinal question, e.g. weekly -> monthly)
  changes first place through the weighted totals. A neighbouring answer that crosses a documented
  threshold (50 examples, a strict format) and so triggers a hard constraint or firm preference is listed
  in the answer sensitivity but is not a close call: the rule, not a narrow margin, decides it.
"Choosing a model": "When a small change in weights flips the ranking, the options are close and a pilot
on real data should decide."

    >>> from ragtune.advisor.questionnaire import Questionnaire
    >>> changes = answer_changes(Questionnaire({"citations": "yes"}), load_matrix())
    >>> any(c.question_id == "citations" and c.new_winner != "rag" for c in changes)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping

from .decide import Decision, decide
from .matrix import Matrix, load_matrix  # noqa: F401 - load_matrix for the doctest
from .questionnaire import Questionnaire
from .types import AnswerChange

# A lead under 5 of 100 points: one step of a middling answer moves a total by about that much on the
# shipped matrix (one 0-10 weight step on a factor where options differ by 2 score points, among ~8 weighted
# factors, is 100 * 2 / (4 * ~50) = 1-5 points).
CLOSE_MARGIN = 5.0


def answer_changes(
    q: Questionnaire,
    matrix: Matrix,
    *,
    weights: Mapping[str, float] | None = None,
    measured: Mapping[str, Mapping[str, float]] | None = None,
    base: Decision | None = None,
) -> list[AnswerChange]:
    """Every single-answer change (of a given answer, or answering an open one) that changes first place,
    or makes an undetermined result determined. One-step changes first, then in questionnaire order."""
    base = base or decide(q, matrix, weights=weights, measured=measured)
    names = {o.id: o.name for o in matrix.options}
    out = []
    for question in q.questions.questions:
        given = q.answers.get(question.id)
        for value in question.values():
            if given is not None and question.step(value) == question.step(given):
                continue
            trial = Questionnaire({**q.answers, question.id: value}, questions=q.questions)
            d = decide(trial, matrix, weights=weights, measured=measured)
            # The leader counts too: on a sparse questionnaire one more answer decides nothing yet, but which
            # option it puts ahead is what the user needs to choose their next answer.
            if d.winner == base.winner and d.determined == base.determined and d.leader == base.leader:
                continue
            label = question.effects_for(value)[0]
            one_step = (given is not None and question.ordinal
                        and abs(question.step(value) - question.step(given)) == 1)
            by_rule = (d.preferred != base.preferred
                       or set(d.adjustments.exclusions) != set(base.adjustments.exclusions))
            out.append(AnswerChange(question.id, value, label, given, d.winner, one_step, d.determined, by_rule,
                                    _describe(question.id, label, given, question, d, names), d.leader))
    return sorted(out, key=lambda c: not c.one_step)


def _describe(qid: str, label: str, given, question, d: Decision, names: Mapping[str, str]) -> str:
    if given is None:
        what = f"answering `{qid}`: {label}"
    else:
        what = f"changing `{qid}` from {question.effects_for(given)[0]} to {label}"
    if d.winner is None:
        return f"{what} rules out every option"
    if d.leader is not None:
        return (f"{what} leaves it undetermined: {names[d.leader]} leads, on too few answers to decide (lever "
                f"order puts {names[d.winner]} first)")
    if not d.determined:
        return f"{what} leaves it undetermined (lever order puts {names[d.winner]} first)"
    return f"{what} puts {names[d.winner]} first"


def close_call_reasons(base: Decision, changes: list[AnswerChange], names: Mapping[str, str]) -> list[str]:
    """Why the result is a close call (empty list: it is not one). Not applicable when undetermined, and a
    firm preference is decided by a rule, not by a margin."""
    if not base.determined or base.preferred is not None or base.margin is None:
        return []
    reasons = []
    if base.margin < CLOSE_MARGIN:
        runner_up = names[base.ranking[1]]
        reasons.append(f"the lead over {runner_up} is {base.margin:.1f} points, under {CLOSE_MARGIN:g}")
    steps = [c for c in changes if c.one_step and not c.by_rule]
    if steps:
        reasons.append("one step of a given answer changes first place: " + "; ".join(c.text for c in steps))
    return reasons
