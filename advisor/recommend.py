"""``advise()``: answers -> weights and adjusted scores -> ranking -> sensitivity -> citations.

    >>> from ragtune.advisor import advise
    >>> rec = advise({"knowledge_change": "daily", "citations": "yes", "use_case": "docs_qa"})
    >>> rec.winner
    'rag'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragtune.errors import AdvisorError

from .cite import Searcher, attach_citations
from .evidence import PilotResult
from .matrix import Matrix, load_matrix
from .questionnaire import Questionnaire
from .scoring import effective_scores, rank
from .sensitivity import analyse
from .types import Recommendation


def advise(
    answers: Mapping[str, Any] | Questionnaire | None = None,
    *,
    matrix: Matrix | str | Path | None = None,
    searcher: Searcher | None = None,
    evidence: PilotResult | None = None,
) -> Recommendation:
    """Rank the options for a team's answers.

    ``answers`` maps question ids to answers (see ``questions.yaml``) or is a :class:`Questionnaire`;
    ``matrix`` a :class:`Matrix` or a matrix file (default: the shipped one); ``searcher`` anything with
    ``search(query, k)`` over the corpus to quote (None: no citations); ``evidence`` a pilot's measurements,
    which replace the prior accuracy and latency scores of the options it measured.
    """
    if not isinstance(matrix, Matrix):
        matrix = load_matrix(matrix)
    q = answers if isinstance(answers, Questionnaire) else Questionnaire(answers)
    adj = q.resolve(matrix)
    notes = list(adj.notes)

    measured: dict[str, dict[str, float]] = {}
    if evidence is not None:
        for oid, per_factor in evidence.measured_scores().items():
            for fid, score in per_factor.items():
                if oid in matrix.option_ids and fid in matrix.factor_ids:
                    measured.setdefault(oid, {})[fid] = float(score)
                else:
                    notes.append(f"Measured {fid} of {oid} ignored: the matrix has no such option or factor.")
        notes += evidence.notes

    table = effective_scores(matrix, adj.score_deltas, measured)
    options = rank(matrix, adj.weights, table, exclusions=adj.exclusions, deltas=adj.score_deltas,
                   measured=measured)
    eligible = [o.id for o in options if not o.excluded]
    winner = eligible[0] if eligible else None
    if winner is None:
        notes.append("Every option is ruled out by a hard constraint; revisit the constraints listed below.")
    sensitivity = []
    if winner is not None and len(eligible) > 1:
        # challengers in matrix order, which is the tie-break order
        challengers = [o for o in matrix.option_ids if o in eligible and o != winner]
        sensitivity = analyse(adj.weights, table, winner=winner, challengers=challengers,
                              weight_range=matrix.weight_range, factor_names={f.id: f.name for f in matrix.factors})

    labels = {}
    for qid, value in q.answers.items():
        question = q.questions.get(qid)
        labels[qid] = f"{question.text} {question.effects_for(value)[0]}"
    rec = Recommendation(
        winner=winner,
        options=options,
        weights=dict(adj.weights),
        factor_names={f.id: f.name for f in matrix.factors},
        sensitivity=sensitivity,
        answers=dict(q.answers),
        answer_labels=labels,
        unanswered=q.unanswered,
        weight_sources=adj.weight_sources,
        notes=notes,
        evidence=evidence.to_dict() if evidence is not None else None,
        matrix_version=matrix.version,
        matrix_origin=matrix.origin,
    )
    if searcher is not None:
        attach_citations(rec, matrix, searcher)
    else:
        rec.citations_note = "Citations not requested (no corpus searcher given)."
    return rec


def load_answers(path: str | Path) -> Questionnaire:
    """Read an answers file (YAML or JSON mapping of question id to answer)."""
    q = Questionnaire.from_file(path)
    if not q.answers:
        raise AdvisorError(f"{path}: no answers found; write one `question_id: answer` per line")
    return q
