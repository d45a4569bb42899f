"""Realistic scenarios with the winner the source documents imply: the advisor's regression set.

Each file in ``scenarios/`` describes a team, gives its full answers, names the 2-4 deciding facts
(``sparse``: the same answers cut to those keys) and justifies the expected winner with a rule quoted
verbatim from a shipped document in ``corpora/`` (the tests check that the quote is really there).

    >>> s = load_scenarios()[0]
    >>> s.expected in ("api", "rag", "finetune", "rag_finetune")
    True
    >>> run_scenario(s).full_ok                                            # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ragtune.errors import AdvisorError

from .datafile import read_data_file

SCENARIOS_DIR = Path(__file__).with_name("scenarios")


class RuleQuote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quote: str = Field(min_length=20, description="verbatim text of the document (markup and line breaks aside)")
    document: str = Field(description="file name in corpora/")
    why: str = Field(default="", description="how the quoted rule decides this scenario")


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    expected: Literal["api", "rag", "finetune", "rag_finetune"]
    rule: RuleQuote
    answers: dict[str, Any]
    sparse: list[str] = Field(min_length=2, max_length=4)
    origin: str = ""
    held_out: bool = False  # in scenarios/holdout/: written after the rules were frozen, never tuned on

    @model_validator(mode="after")
    def _sparse_keys_are_answered(self) -> Scenario:
        missing = [k for k in self.sparse if k not in self.answers]
        if missing:
            raise ValueError(f"sparse names {missing[0]!r}, which the answers do not give")
        return self

    @property
    def sparse_answers(self) -> dict[str, Any]:
        return {k: self.answers[k] for k in self.sparse}


def load_scenario(path: str | Path, *, held_out: bool = False) -> Scenario:
    """Read and validate one scenario file; any mistake is one AdvisorError line naming the file and key."""
    p = Path(path)
    data = read_data_file(p, what="scenario file")
    try:
        return Scenario.model_validate({**(data if isinstance(data, dict) else {"_": data}), "origin": str(p),
                                        "held_out": held_out})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise AdvisorError(f"{p}: {where}: {err['msg']}") from None


def load_scenarios(folder: str | Path | None = None) -> list[Scenario]:
    """Every ``*.yaml`` scenario of ``folder`` (default: the shipped set), sorted by file name, then those of
    its ``holdout/`` subfolder (marked ``held_out``)."""
    root = Path(folder) if folder is not None else SCENARIOS_DIR
    return ([load_scenario(p) for p in sorted(root.glob("*.yaml"))]
            + [load_scenario(p, held_out=True) for p in sorted((root / "holdout").glob("*.yaml"))])


@dataclass
class ScenarioResult:
    name: str
    expected: str
    full_winner: str | None
    full_status: str
    sparse_winner: str | None
    sparse_status: str
    full_robustness: float  # share of perturbed draws the expected option wins (full answers)
    sparse_robustness: float

    @property
    def full_ok(self) -> bool:
        return self.full_winner == self.expected and self.full_status != "undetermined"

    @property
    def sparse_ok(self) -> bool:
        return self.sparse_winner == self.expected and self.sparse_status != "undetermined"


def run_scenario(s: Scenario) -> ScenarioResult:
    from .recommend import advise

    full, sparse = advise(s.answers), advise(s.sparse_answers)
    return ScenarioResult(s.name, s.expected, full.winner, full.status, sparse.winner, sparse.status,
                          full.robustness.get(s.expected, 0.0), sparse.robustness.get(s.expected, 0.0))


def document_text(path: str | Path) -> str:
    """The plain text of a shipped document (Markdown emphasis removed, whitespace collapsed) to check a
    scenario's quote against. Lazy imports: python-docx / pypdf only for those formats."""
    import re

    p = Path(path)
    if p.suffix.lower() == ".docx":
        import docx

        d = docx.Document(str(p))
        parts = [para.text for para in d.paragraphs]
        parts += [cell.text for t in d.tables for row in t.rows for cell in row.cells]
        text = "\n".join(parts)
    elif p.suffix.lower() == ".pdf":
        import pypdf

        text = "\n".join(page.extract_text() or "" for page in pypdf.PdfReader(str(p)).pages)
    else:
        text = p.read_text(encoding="utf-8")
        text = re.sub(r"\*\*|__|`", "", text)
    return " ".join(text.split())
