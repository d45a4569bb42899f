"""``advise()``: answers -> weights and adjusted scores -> ranking -> sensitivity (weights and answers),
robustness and the close-call flag -> citations.

    >>> from ragtune.advisor import advise
    >>> rec = advise({"knowledge_change": "daily", "citations": "yes", "use_case": "docs_qa"})
    >>> rec.winner, rec.status
    ('rag', 'recommended')
    >>> advise({}).status                     # nothing answered: nothing decided
    'undetermined'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragtune.errors import AdvisorError

from .cite import Searcher, attach_citations
from .decide import MIN_GROUNDS, Decision, decide
from .evidence import PilotResult
from .matrix import Matrix, load_matrix
from .questionnaire import Questionnaire
from .robustness import RobustnessConfig, robustness
from .scoring import rank
from .sensitivity import analyse
from .types import Recommendation
from .whatif import answer_changes, close_call_reasons


def advise(
    answers: Mapping[str, Any] | Questionnaire | None = None,
    *,
    weights: Mapping[str, float] | None = None,
    matrix: Matrix | str | Path | None = None,
    searcher: Searcher | None = None,
    evidence: PilotResult | None = None,
    robustness_config: RobustnessConfig | None = None,
) -> Recommendation:
    """Rank the options for a team's answers.

    ``answers`` maps question ids to answers (see ``questions.yaml``) or is a :class:`Questionnaire`;
    unanswered questions are neutral. ``weights`` ({factor_id: weight}) override the answer-derived
    weights (a UI's editable weights). ``matrix`` a :class:`Matrix` or a matrix file (default: the shipped
    one); ``searcher`` anything with ``search(query, k)`` over the corpus to quote (None: no citations);
    ``evidence`` a pilot's measurements, which replace the prior scores of the factors it measured.
    """
    if not isinstance(matrix, Matrix):
        matrix = load_matrix(matrix)
    q = answers if isinstance(answers, Questionnaire) else Questionnaire(answers)
    measured, notes = _measured(evidence, matrix)
    d = decide(q, matrix, weights=weights, measured=measured)
    notes = list(d.adjustments.notes) + notes
    names = {o.id: o.name for o in matrix.options}
    changes = answer_changes(q, matrix, weights=weights, measured=measured, base=d)
    config = robustness_config or RobustnessConfig()
    rec = Recommendation(
        winner=d.winner,
        options=rank(matrix, d.weights, d.table, exclusions=d.adjustments.exclusions,
                     deltas=d.adjustments.score_deltas, measured=measured, first=d.preferred,
                     lever_order=d.too_few_grounds),
        status=_status(d, changes, names),
        firm_preference=d.preference_reason,
        close_call_reasons=close_call_reasons(d, changes, names),
        answer_changes=changes,
        robustness=robustness(d.weights, d.table, d.ranking, preferred=d.preferred, config=config)
        if d.determined else {},
        robustness_config=config.model_dump(),
        weights=dict(d.weights),
        factor_names={f.id: f.name for f in matrix.factors},
        sensitivity=_weight_flips(d, matrix),
        answers=dict(q.answers),
        answer_labels={qid: f"{q.questions.get(qid).text} {q.questions.get(qid).effects_for(v)[0]}"
                       for qid, v in q.answers.items()},
        unanswered=q.unanswered,
        weight_sources=dict(d.adjustments.weight_sources),
        notes=notes + _status_notes(d, names),
        evidence=evidence.to_dict() if evidence is not None else None,
        matrix_version=matrix.version,
        matrix_origin=matrix.origin,
    )
    for fid, w in (weights or {}).items():  # a UI sends every slider: mark only the weights actually changed
        if abs(float(w) - d.adjustments.weights.get(fid, 0.0)) > 1e-9:
            rec.weight_sources[fid] = "set by you"
    if searcher is not None:
        attach_citations(rec, matrix, searcher)
    else:
        rec.citations_note = "Citations not requested (no corpus searcher given)."
    return rec


def _measured(evidence: PilotResult | None, matrix: Matrix) -> tuple[dict[str, dict[str, float]], list[str]]:
    measured: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    if evidence is None:
        return measured, notes
    for oid, per_factor in evidence.measured_scores().items():
        for fid, score in per_factor.items():
            if oid in matrix.option_ids and fid in matrix.factor_ids:
                measured.setdefault(oid, {})[fid] = float(score)
            else:
                notes.append(f"Measured {fid} of {oid} ignored: the matrix has no such option or factor.")
    return measured, notes + list(evidence.notes) + evidence.missing()


def _status(d: Decision, changes: list, names: Mapping[str, str]) -> str:
    if d.winner is None:
        return "none_eligible"
    if d.preferred is not None:
        return "firm_preference"
    if not d.determined:
        return "undetermined"
    return "close_call" if close_call_reasons(d, changes, names) else "recommended"


def _status_notes(d: Decision, names: Mapping[str, str]) -> list[str]:
    if d.winner is None:
        return ["Every option is ruled out by a hard constraint; revisit the constraints listed below."]
    if d.leader is not None:
        on = ", ".join(f"`{g}`" for g in d.grounds)
        return [f"Undetermined: only {on} bears on the choice (at least {MIN_GROUNDS} answers that bear on it are "
                f"needed), and alone it weighs only the factors it speaks to: {names[d.leader]} leads on them with "
                f"{d.totals[d.leader]:.1f}/100, which restates it rather than weighing the options against each "
                "other. The order shown is the sources' lever order (prompt engineering on an API model first, "
                "then RAG, then fine-tuning); answer the deciding questions listed to settle it."]
    if not d.determined:
        tied = ", ".join(names[o] for o in d.tied)
        return [f"Undetermined: the answers given do not separate {tied}. The order shown is the sources' lever "
                "order (prompt engineering on an API model first, then RAG, then fine-tuning); answer the "
                "deciding questions listed to settle it."]
    return []


def _weight_flips(d: Decision, matrix: Matrix) -> list:
    """Weight flip points; none for a firm preference (no weight moves it) or an undetermined result."""
    if not d.determined or d.preferred is not None or len(d.ranking) < 2:
        return []
    challengers = [o for o in matrix.option_ids if o in d.ranking and o != d.winner]  # tie-break order
    return analyse(d.weights, d.table, winner=d.winner, challengers=challengers,
                   weight_range=matrix.weight_range, factor_names={f.id: f.name for f in matrix.factors})


def load_answers(path: str | Path) -> Questionnaire:
    """Read an answers file (YAML or JSON mapping of question id to answer)."""
    q = Questionnaire.from_file(path)
    if not q.answers:
        raise AdvisorError(f"{path}: no answers found; write one `question_id: answer` per line")
    return q
