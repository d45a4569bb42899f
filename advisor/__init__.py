"""The advisor: should a team call an API model as is, build RAG, fine-tune, or combine them?

A transparent, editable weighted-factor matrix (``matrix.yaml``), a plain-language questionnaire
(``questions.yaml``) that sets the weights and hard constraints, a sensitivity analysis, quotes from the
indexed corpus, and an optional pilot that measures accuracy and latency on the team's own documents.

    >>> from ragtune.advisor import advise
    >>> rec = advise({"knowledge_change": "daily", "citations": "yes", "use_case": "docs_qa"})
    >>> rec.winner
    'rag'
    >>> md = rec.to_markdown()
"""

from .matrix import Matrix, load_matrix
from .questionnaire import Questionnaire, load_questions
from .recommend import advise
from .types import Flip, OptionResult, Quote, Recommendation

__all__ = [
    "Flip",
    "Matrix",
    "OptionResult",
    "Questionnaire",
    "Quote",
    "Recommendation",
    "advise",
    "load_matrix",
    "load_questions",
]
