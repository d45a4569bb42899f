"""The weighted-factor matrix: options x factors, loaded from a versioned YAML/JSON file and validated.

The matrix is data, not code: the default lives next to this module in ``matrix.yaml`` and a team can
edit a copy. Every mistake in a matrix file is reported as an :class:`AdvisorError` that names the
file and the field path, e.g. ``factors[3].scores.rag.score: expected an integer 1-5, got 7``.

    >>> m = load_matrix()                      # the shipped default
    >>> [o.id for o in m.options]
    ['api', 'rag', 'finetune', 'rag_finetune']
    >>> m.factor("grounding").scores["rag"].score
    5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import AdvisorError

from .datafile import cached_parse, read_data_file  # noqa: F401 - read_data_file re-exported

DEFAULT_MATRIX_PATH = Path(__file__).with_name("matrix.yaml")
SCORE_MIN, SCORE_MAX = 1, 5


@dataclass(frozen=True)
class Rule:
    """A decision rule from the source documents, with the title of the document stating it."""

    id: str
    text: str
    source: str = ""  # the document's title
    document: str = ""  # its file name in corpora/, so a quote can be checked to come from it


@dataclass(frozen=True)
class Option:
    id: str
    name: str
    description: str = ""
    rules: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()  # word stems a passage about this option contains (quote relevance)


@dataclass(frozen=True)
class Score:
    score: int  # 1 = serves the factor badly .. 5 = very well
    rationale: str
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Factor:
    id: str
    name: str
    definition: str
    weight: float  # default importance within Matrix.weight_range
    scores: dict[str, Score]  # option id -> Score
    rules: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()  # word stems a passage about this factor contains (quote relevance)


@dataclass(frozen=True)
class Matrix:
    version: str
    options: list[Option]
    factors: list[Factor]
    rules: dict[str, Rule] = field(default_factory=dict)
    weight_range: tuple[float, float] = (0.0, 10.0)
    origin: str = "<memory>"

    @property
    def option_ids(self) -> list[str]:
        return [o.id for o in self.options]

    @property
    def factor_ids(self) -> list[str]:
        return [f.id for f in self.factors]

    def option(self, option_id: str) -> Option:
        for o in self.options:
            if o.id == option_id:
                return o
        raise KeyError(option_id)

    def factor(self, factor_id: str) -> Factor:
        for f in self.factors:
            if f.id == factor_id:
                return f
        raise KeyError(factor_id)

    def default_weights(self) -> dict[str, float]:
        return {f.id: f.weight for f in self.factors}

    def score_table(self) -> dict[str, dict[str, float]]:
        """``{factor_id: {option_id: score}}`` of the matrix's own (prior) scores."""
        return {f.id: {o: float(s.score) for o, s in f.scores.items()} for f in self.factors}


def load_matrix(path: str | Path | None = None) -> Matrix:
    """Load and validate a matrix file (YAML or JSON); ``None`` loads the shipped default."""
    p = Path(path) if path is not None else DEFAULT_MATRIX_PATH
    return cached_parse(p, "matrix file", parse_matrix)


class FieldChecker:
    """Small helpers that raise AdvisorError prefixed with the origin and the field path."""

    def __init__(self, origin: str):
        self.origin = origin

    def fail(self, path: str, msg: str) -> AdvisorError:
        return AdvisorError(f"{self.origin}: {path}: {msg}")

    def mapping(self, value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        return value

    def seq(self, value: Any, path: str, *, nonempty: bool = True) -> list:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_kind(value)}")
        if nonempty and not value:
            raise self.fail(path, "expected a non-empty list")
        return value

    def text(self, obj: dict, key: str, path: str, *, required: bool = True) -> str:
        if key not in obj or obj[key] is None:
            if required:
                raise self.fail(f"{path}.{key}", "missing (required)")
            return ""
        value = obj[key]
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(f"{path}.{key}", f"expected a non-empty string, got {value!r}")
        return value.strip()

    def number(self, value: Any, path: str, lo: float, hi: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise self.fail(path, f"expected a number {lo:g}-{hi:g}, got {value!r}")
        return float(value)

    def keywords(self, obj: dict, path: str) -> tuple[str, ...]:
        words = obj.get("keywords", []) or []
        self.seq(words, f"{path}.keywords", nonempty=False)
        for i, w in enumerate(words):
            if not isinstance(w, str) or not w.strip():
                raise self.fail(f"{path}.keywords[{i}]", f"expected a non-empty string, got {w!r}")
        return tuple(w.strip().lower() for w in words)

    def rule_ids(self, obj: dict, path: str, known: dict[str, Rule]) -> tuple[str, ...]:
        ids = obj.get("rules", []) or []
        self.seq(ids, f"{path}.rules", nonempty=False)
        for i, r in enumerate(ids):
            if r not in known:
                defined = ", ".join(known) or "none"
                raise self.fail(f"{path}.rules[{i}]", f"unknown rule {r!r}; defined rules: {defined}")
        return tuple(ids)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]


def parse_matrix(data: Any, origin: str = "<memory>") -> Matrix:
    """Validate the plain data of a matrix file and build a :class:`Matrix`."""
    c = FieldChecker(origin)
    root = c.mapping(data, "(top level)")
    if "version" not in root or not isinstance(root["version"], (str, int, float)) or isinstance(root["version"], bool):
        raise c.fail("version", "missing or not a string: add e.g. version: \"1.0\"")
    version = str(root["version"])

    wr = root.get("weight_range", [0, 10])
    if not (isinstance(wr, list) and len(wr) == 2):
        raise c.fail("weight_range", f"expected [min, max], got {wr!r}")
    lo = c.number(wr[0], "weight_range[0]", 0, float("inf"))
    hi = c.number(wr[1], "weight_range[1]", lo, float("inf"))
    if hi <= lo:
        raise c.fail("weight_range", f"max must be above min, got {wr!r}")

    rules: dict[str, Rule] = {}
    for rid, r in c.mapping(root.get("rules", {}) or {}, "rules").items():
        r = c.mapping(r, f"rules.{rid}")
        path = f"rules.{rid}"
        rules[str(rid)] = Rule(str(rid), c.text(r, "text", path), c.text(r, "source", path, required=False),
                               c.text(r, "document", path, required=False))

    options: list[Option] = []
    for i, o in enumerate(c.seq(root.get("options"), "options")):
        path = f"options[{i}]"
        o = c.mapping(o, path)
        oid = c.text(o, "id", path)
        if oid in {x.id for x in options}:
            raise c.fail(f"{path}.id", f"duplicate option id {oid!r}")
        description = c.text(o, "description", path, required=False)
        options.append(Option(oid, c.text(o, "name", path), description, c.rule_ids(o, path, rules),
                              c.keywords(o, path)))
    if len(options) < 2:
        raise c.fail("options", "a decision needs at least 2 options")
    option_ids = [o.id for o in options]

    factors: list[Factor] = []
    for i, f in enumerate(c.seq(root.get("factors"), "factors")):
        factor = _parse_factor(c, f, f"factors[{i}]", (lo, hi), option_ids, rules)
        if factor.id in {x.id for x in factors}:
            raise c.fail(f"factors[{i}].id", f"duplicate factor id {factor.id!r}")
        factors.append(factor)
    if sum(f.weight for f in factors) <= 0:
        raise c.fail("factors", "all default weights are 0: give at least one factor a positive weight")
    return Matrix(version, options, factors, rules, (lo, hi), origin)


def _parse_factor(c: FieldChecker, f: Any, path: str, weight_range: tuple[float, float], option_ids: list[str],
                  rules: dict[str, Rule]) -> Factor:
    lo, hi = weight_range
    f = c.mapping(f, path)
    fid = c.text(f, "id", path)
    if "weight" not in f:
        raise c.fail(f"{path}.weight", f"missing (required): a number {lo:g}-{hi:g}")
    weight = c.number(f["weight"], f"{path}.weight", lo, hi)
    raw_scores = c.mapping(f.get("scores"), f"{path}.scores")
    unknown = [k for k in raw_scores if k not in option_ids]
    if unknown:
        raise c.fail(f"{path}.scores.{unknown[0]}", f"unknown option; options are {', '.join(option_ids)}")
    scores: dict[str, Score] = {}
    for oid in option_ids:
        spath = f"{path}.scores.{oid}"
        if oid not in raw_scores:
            raise c.fail(spath, "missing: every factor needs a score for every option")
        s = c.mapping(raw_scores[oid], spath)
        value = s.get("score")
        if isinstance(value, bool) or not isinstance(value, int) or not SCORE_MIN <= value <= SCORE_MAX:
            raise c.fail(f"{spath}.score", f"expected an integer {SCORE_MIN}-{SCORE_MAX}, got {value!r}")
        scores[oid] = Score(value, c.text(s, "rationale", spath), c.rule_ids(s, spath, rules))
    return Factor(fid, c.text(f, "name", path), c.text(f, "definition", path), weight, scores,
                  c.rule_ids(f, path, rules), c.keywords(f, path))
