"""The advisor: should a team call an API model as is, build RAG, fine-tune, or combine them?

A transparent, editable weighted-factor matrix (``matrix.yaml``), a plain-language questionnaire
(``questions.yaml``) whose answers set the weights, hard constraints and the documents' firm preferences
(unanswered questions are neutral), answer- and weight-level sensitivity with a close-call flag, a seeded
robustness figure, quotes from the indexed corpus checked for relevance, an optional pilot that measures
accuracy, citation precision and latency on the team's own documents, and a scenario set
(``scenarios/``) with the documents' expected winners as regression tests.

    >>> from ragtune.advisor import advise
    >>> rec = advise({"knowledge_change": "daily", "citations": "yes", "use_case": "docs_qa"})
    >>> rec.winner
    'rag'
    >>> md = rec.to_markdown()
"""

from .matrix import Matrix, load_matrix
from .questionnaire import Questionnaire, load_questions
from .recommend import advise
from .robustness import RobustnessConfig
from .types import AnswerChange, Flip, OptionResult, Quote, Recommendation

__all__ = [
    "AnswerChange",
    "Flip",
    "Matrix",
    "OptionResult",
    "Questionnaire",
    "Quote",
    "Recommendation",
    "RobustnessConfig",
    "advise",
    "load_matrix",
    "load_questions",
]
