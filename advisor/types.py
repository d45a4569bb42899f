"""The advisor's result objects: plain dataclasses that render to Markdown and JSON.

    >>> from ragtune.advisor import advise
    >>> rec = advise({"knowledge_change": "daily", "citations": "yes"})
    >>> rec.winner, [o.id for o in rec.ranked]
    ('rag', ['rag', 'rag_finetune', 'api', 'finetune'])
    >>> rec.option("rag").contribution("grounding").score
    5.0
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Contribution:
    """One factor's share of one option's total."""

    factor_id: str
    factor_name: str
    weight: float
    score: float  # the score used: prior + questionnaire adjustment (clamped), or the measured score
    prior_score: int  # the matrix's score
    adjustment: float = 0.0  # what the answers added to the prior (before clamping)
    measured_score: float | None = None  # from evidence mode, replaces the adjusted score when present
    points: float = 0.0  # contribution to the 0-100 total; an option's points sum to its total
    rationale: str = ""


@dataclass
class Reason:
    """A factor that helps (or hurts) an option compared with the average of the other options."""

    factor_id: str
    text: str
    impact: float  # total-score points gained (+) or lost (-) against the other options' average
    citations: list[int] = field(default_factory=list)  # markers of Quote objects


@dataclass
class RuleRef:
    """A decision rule of the source documents that an option rests on, with the quotes backing it."""

    id: str
    text: str
    source: str = ""  # the title of the document stating it
    citations: list[int] = field(default_factory=list)


@dataclass
class OptionResult:
    id: str
    name: str
    total: float  # 0-100
    rank: int | None  # 1 = recommended; None when excluded
    excluded: bool = False
    exclusion_reasons: list[str] = field(default_factory=list)
    contributions: list[Contribution] = field(default_factory=list)
    reasons_for: list[Reason] = field(default_factory=list)
    reasons_against: list[Reason] = field(default_factory=list)
    rules: list[RuleRef] = field(default_factory=list)  # the source rules saying when the option fits

    @property
    def citations(self) -> list[int]:
        """Markers of the quotes backing the option's rules."""
        return [m for r in self.rules for m in r.citations]

    def contribution(self, factor_id: str) -> Contribution:
        for c in self.contributions:
            if c.factor_id == factor_id:
                return c
        raise KeyError(factor_id)


@dataclass
class Flip:
    """The weight change on one factor that makes another option overtake the winner."""

    factor_id: str
    factor_name: str
    current_weight: float
    flip_weight: float | None = None  # the weight at which the two tie; beyond it ``new_winner`` ranks first
    delta: float | None = None  # flip_weight - current_weight
    new_winner: str | None = None
    note: str = ""


@dataclass
class AnswerChange:
    """One alternative answer that changes first place."""

    question_id: str
    value: str | int
    label: str  # the chosen answer's label
    previous: str | int | None  # the given answer; None when the question was not answered
    new_winner: str | None
    one_step: bool = False  # the neighbouring choice of an answered ordinal question
    determined: bool = True  # whether the new first place is decided (not a tie)
    by_rule: bool = False  # a hard constraint or firm preference changed, not just the weighted totals
    text: str = ""
    leader: str | None = None  # undetermined on too few answers: the option ahead on the totals (not first)


@dataclass
class Quote:
    """A passage of the indexed corpus that supports a rule or reason, cited as [marker]."""

    marker: int
    text: str
    source: str
    section: str | None = None
    page: int | None = None
    chunk_id: str = ""
    query: str = ""


@dataclass
class Recommendation:
    """What :func:`ragtune.advisor.advise` returns."""

    winner: str | None  # option id ranked first, None when every option is excluded
    options: list[OptionResult]  # ranked first to last, then the excluded ones
    # "recommended" | "close_call" | "firm_preference" | "undetermined" (nothing separates the top options:
    # the ranking is the lever order) | "none_eligible"
    status: str = "recommended"
    firm_preference: str = ""  # why a firm preference put the winner first
    close_call_reasons: list[str] = field(default_factory=list)
    answer_changes: list[AnswerChange] = field(default_factory=list)  # single answers that change first place
    robustness: dict[str, float] = field(default_factory=dict)  # option id -> share of perturbed draws won
    robustness_config: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)  # factor id -> weight used
    factor_names: dict[str, str] = field(default_factory=dict)
    sensitivity: list[Flip] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    answer_labels: dict[str, str] = field(default_factory=dict)  # question id -> "question: chosen label"
    unanswered: list[str] = field(default_factory=list)
    weight_sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    citations_note: str = ""  # why citations are missing, when they are
    quotes_dropped: list[str] = field(default_factory=list)  # retrieved quotes that failed the relevance check
    evidence: dict[str, Any] | None = None  # PilotResult.to_dict()
    matrix_version: str = ""
    matrix_origin: str = ""
    scale: str = "total = 100 * sum(weight * (score - 1)) / (4 * sum(weight)); 0 = all scores 1, 100 = all 5"

    @property
    def determined(self) -> bool:
        """False when the answers do not separate the top options (the order shown is the lever order)."""
        return self.status not in ("undetermined", "none_eligible")

    @property
    def close_call(self) -> bool:
        return bool(self.close_call_reasons)

    @property
    def deciding_questions(self) -> list[str]:
        """Unanswered questions one of whose answers would change (or settle) first place."""
        seen: dict[str, None] = {}
        for c in self.answer_changes:
            if c.previous is None:
                seen[c.question_id] = None
        return list(seen)

    @property
    def ranked(self) -> list[OptionResult]:
        return [o for o in self.options if not o.excluded]

    @property
    def excluded(self) -> list[OptionResult]:
        return [o for o in self.options if o.excluded]

    def option(self, option_id: str) -> OptionResult:
        for o in self.options:
            if o.id == option_id:
                return o
        raise KeyError(option_id)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ranking"] = [o.id for o in self.ranked]
        d["determined"] = self.determined
        d["close_call"] = self.close_call
        d["deciding_questions"] = self.deciding_questions
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_markdown(self, chart_path: str | Path | None = None) -> str:
        """The report as Markdown; ``chart_path`` (a PNG written by :meth:`write_chart`) is embedded."""
        from .report import to_markdown

        return to_markdown(self, chart_path=chart_path)

    def write_chart(self, path: str | Path) -> Path:
        """Write a bar chart of the option scores as PNG."""
        from .report import write_chart

        return write_chart(self, path)

    def save(self, md_path: str | Path, *, json_too: bool = False) -> list[Path]:
        """Write ``report.md`` with ``report.png`` next to it (and ``report.json`` if asked)."""
        from .report import save_report

        return save_report(self, md_path, json_too=json_too)
