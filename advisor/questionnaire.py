"""The questionnaire: plain-language questions whose answers set factor weights, adjust option scores and
add hard constraints.

The questions are data (``questions.yaml`` next to this module); this module validates them, validates a
team's answers against them, and resolves the answers into :class:`Adjustments` for a given matrix.

    >>> q = Questionnaire({"knowledge_change": "daily", "citations": "yes"})
    >>> q.answers["citations"]
    'yes'
    >>> Questionnaire({"citations": "maybe"})       # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ragtune.errors.AdvisorError: answers: citations: 'maybe' is not a valid choice; valid choices: yes, helpful, no
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import AdvisorError

from .datafile import cached_parse, read_data_file
from .matrix import SCORE_MAX, SCORE_MIN, FieldChecker, Matrix

DEFAULT_QUESTIONS_PATH = Path(__file__).with_name("questions.yaml")


@dataclass(frozen=True)
class Effects:
    weights: dict[str, float] = field(default_factory=dict)  # factor id -> importance
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # option id -> factor id -> delta
    exclude: dict[str, str] = field(default_factory=dict)  # option id -> reason
    prefer: dict[str, str] = field(default_factory=dict)  # option id -> reason (a firm preference, in order)
    note: str = ""


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    effects: Effects


@dataclass(frozen=True)
class Bin:
    """A range of an integer answer: values up to ``max`` (inclusive; None = no upper bound)."""

    max: int | None
    label: str
    effects: Effects


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    type: str = "choice"  # "choice" | "integer"
    choices: dict[str, Choice] = field(default_factory=dict)
    bins: tuple[Bin, ...] = ()
    ordinal: bool = False  # choices (or bins) are listed in order, so a neighbour is "one step" away

    def values(self) -> list[str | int]:
        """One answer per choice, or per bin (its smallest count): what "every answer" means for a what-if."""
        if self.type != "integer":
            return list(self.choices)
        lows, lo = [], 0
        for b in self.bins:
            lows.append(lo)
            lo = (b.max + 1) if b.max is not None else lo
        return lows

    def step(self, value: str | int) -> int:
        """The position of ``value`` among :meth:`values` (its bin for integers)."""
        if self.type != "integer":
            return list(self.choices).index(str(value))
        for i, b in enumerate(self.bins):
            if b.max is None or value <= b.max:  # type: ignore[operator]
                return i
        return len(self.bins) - 1

    def validate(self, value: Any, where: str = "answers") -> str | int:
        """Return the answer in canonical form, or raise AdvisorError saying what is valid."""
        if self.type == "integer":
            # ASCII digits only: "²".isdigit() is True and int("²") raised a traceback
            if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
                value = int(value.strip())
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise AdvisorError(f"{where}: {self.id}: expected a whole number 0 or more, got {value!r}")
            return int(value)  # np.int64 from a dataframe is a whole number too
        # YAML reads an unquoted yes/no as a boolean; map it back for yes/no questions.
        if isinstance(value, bool) and ("yes" if value else "no") in self.choices:
            value = "yes" if value else "no"
        if not isinstance(value, str) or value not in self.choices:
            raise AdvisorError(
                f"{where}: {self.id}: {value!r} is not a valid choice; valid choices: {', '.join(self.choices)}"
            )
        return value

    def effects_for(self, value: str | int) -> tuple[str, Effects]:
        """The label describing ``value`` and the effects it has."""
        if self.type == "integer":
            for b in self.bins:
                if b.max is None or value <= b.max:  # type: ignore[operator]
                    return b.label, b.effects
            return str(value), Effects()
        c = self.choices[str(value)]
        return c.label, c.effects


@dataclass(frozen=True)
class CombinedRule:
    """Effects that apply when several answers hold together (e.g. data stays on premises AND no
    self-hostable model)."""

    id: str
    when: dict[str, tuple[Any, ...] | range]  # choice values, or a range of counts for an integer question
    effects: Effects

    def applies(self, answers: Mapping[str, Any]) -> bool:
        return all(qid in answers and answers[qid] in allowed for qid, allowed in self.when.items())


@dataclass(frozen=True)
class QuestionSet:
    version: str
    questions: list[Question]
    rules: list[CombinedRule] = field(default_factory=list)

    def weighted_factors(self) -> set[str]:
        """Factor ids whose weight some answer or rule of this questionnaire can set."""
        effects = [c.effects for q in self.questions for c in q.choices.values()]
        effects += [b.effects for q in self.questions for b in q.bins] + [r.effects for r in self.rules]
        return {fid for e in effects for fid in e.weights}

    def get(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(qid)


def load_questions(path: str | Path | None = None) -> QuestionSet:
    """Load and validate a questions file; ``None`` loads the shipped default."""
    p = Path(path) if path is not None else DEFAULT_QUESTIONS_PATH
    return cached_parse(p, "questions file", _parse_questions)


def _parse_effects(c: FieldChecker, raw: Any, path: str) -> Effects:
    if raw is None:
        return Effects()
    raw = c.mapping(raw, path)
    unknown = set(raw) - {"weights", "scores", "exclude", "prefer", "note"}
    if unknown:
        raise c.fail(f"{path}.{sorted(unknown)[0]}", "unknown key; expected weights, scores, exclude, prefer or note")
    weights = {str(k): c.number(v, f"{path}.weights.{k}", 0, float("inf"))
               for k, v in c.mapping(raw.get("weights", {}) or {}, f"{path}.weights").items()}
    scores: dict[str, dict[str, float]] = {}
    for oid, per_factor in c.mapping(raw.get("scores", {}) or {}, f"{path}.scores").items():
        per_factor = c.mapping(per_factor, f"{path}.scores.{oid}")
        scores[str(oid)] = {str(f): c.number(d, f"{path}.scores.{oid}.{f}", -SCORE_MAX, SCORE_MAX)
                            for f, d in per_factor.items()}
    exclude = {str(k): str(v).strip() for k, v in c.mapping(raw.get("exclude", {}) or {}, f"{path}.exclude").items()}
    prefer = {str(k): str(v).strip() for k, v in c.mapping(raw.get("prefer", {}) or {}, f"{path}.prefer").items()}
    note = c.text(raw, "note", path, required=False)
    return Effects(weights, scores, exclude, prefer, note)


def _parse_questions(data: Any, origin: str) -> QuestionSet:
    c = FieldChecker(origin)
    root = c.mapping(data, "(top level)")
    questions: list[Question] = []
    for i, q in enumerate(c.seq(root.get("questions"), "questions")):
        path = f"questions[{i}]"
        q = c.mapping(q, path)
        qid = c.text(q, "id", path)
        if any(x.id == qid for x in questions):
            raise c.fail(f"{path}.id", f"duplicate question id {qid!r}")
        qtype = q.get("type", "choice")
        if qtype == "integer":
            bins = []
            for j, b in enumerate(c.seq(q.get("bins"), f"{path}.bins")):
                bpath = f"{path}.bins[{j}]"
                b = c.mapping(b, bpath)
                mx = b.get("max")
                if mx is not None and (isinstance(mx, bool) or not isinstance(mx, int)):
                    raise c.fail(f"{bpath}.max", f"expected a whole number or nothing, got {mx!r}")
                bins.append(Bin(mx, c.text(b, "label", bpath), _parse_effects(c, b.get("effects"), f"{bpath}.effects")))
            questions.append(Question(qid, c.text(q, "text", path), "integer", bins=tuple(bins), ordinal=True))
        elif qtype == "choice":
            choices = {}
            for value, ch in c.mapping(q.get("choices"), f"{path}.choices").items():
                cpath = f"{path}.choices.{value}"
                ch = c.mapping(ch, cpath)
                effects = _parse_effects(c, ch.get("effects"), f"{cpath}.effects")
                choices[str(value)] = Choice(str(value), c.text(ch, "label", cpath), effects)
            questions.append(Question(qid, c.text(q, "text", path), "choice", choices=choices,
                                      ordinal=bool(q.get("ordinal", False))))
        else:
            raise c.fail(f"{path}.type", f"expected 'choice' or 'integer', got {qtype!r}")
    qs = QuestionSet(str(root.get("version", "")), questions)
    for i, r in enumerate(c.seq(root.get("rules", []) or [], "rules", nonempty=False)):
        path = f"rules[{i}]"
        r = c.mapping(r, path)
        when: dict[str, tuple[Any, ...]] = {}
        for qid, allowed in c.mapping(r.get("when"), f"{path}.when").items():
            try:
                question = qs.get(qid)
            except KeyError:
                raise c.fail(f"{path}.when.{qid}", "unknown question id") from None
            if question.type == "integer" and isinstance(allowed, dict):
                when[qid] = _count_range(c, allowed, f"{path}.when.{qid}")
                continue
            values = allowed if isinstance(allowed, list) else [allowed]
            when[qid] = tuple(question.validate(v, where=f"{origin}: {path}.when") for v in values)
        effects = _parse_effects(c, r.get("effects"), f"{path}.effects")
        qs.rules.append(CombinedRule(c.text(r, "id", path), when, effects))
    return qs


def _count_range(c: FieldChecker, raw: dict, path: str) -> range:
    """``{min: 50}`` / ``{max: 49}`` / both -> the range of counts an integer condition accepts."""
    unknown = set(raw) - {"min", "max"}
    if unknown or not raw:
        raise c.fail(path, "expected {min: N} and/or {max: N}")
    lo = int(c.number(raw.get("min", 0), f"{path}.min", 0, float("inf")))
    hi = int(c.number(raw["max"], f"{path}.max", lo, float("inf"))) if "max" in raw else 10**12
    return range(lo, hi + 1)


@dataclass
class Adjustments:
    """What a team's answers do to a matrix."""

    weights: dict[str, float]  # factor id -> weight used for scoring
    score_deltas: dict[str, dict[str, float]]  # option id -> factor id -> summed adjustment
    exclusions: dict[str, list[str]]  # option id -> reasons
    notes: list[str]
    weight_sources: dict[str, str]  # factor id -> the answer that set its weight (absent: nobody did)
    preferences: list[tuple[str, str]] = field(default_factory=list)  # (option id, reason), first applies first


class Questionnaire:
    """A team's validated answers. Unanswered questions have no effect (the matrix defaults stand)."""

    def __init__(self, answers: Mapping[str, Any] | None = None, *, questions: QuestionSet | None = None,
                 origin: str = "answers"):
        self.questions = questions or load_questions()
        self.origin = origin
        if answers is not None and not isinstance(answers, Mapping):
            raise AdvisorError(f"{origin}: expected a mapping of question id to answer, got {type(answers).__name__}")
        raw = dict(answers or {})
        if set(raw) == {"answers"} and isinstance(raw["answers"], Mapping):
            raw = dict(raw["answers"])  # accept a file with a top-level `answers:` key
        ids = [q.id for q in self.questions.questions]
        self.answers: dict[str, str | int] = {}
        for key, value in raw.items():
            if key not in ids:
                raise AdvisorError(f"{origin}: unknown question {key!r}; questions are: {', '.join(ids)}")
            if value is not None:
                self.answers[key] = self.questions.get(key).validate(value, where=origin)

    @property
    def unanswered(self) -> list[str]:
        return [q.id for q in self.questions.questions if q.id not in self.answers]

    @classmethod
    def from_file(cls, path: str | Path, *, questions: QuestionSet | None = None) -> Questionnaire:
        p = Path(path)
        data = read_data_file(p, what="answers file")
        return cls(data if data is not None else {}, questions=questions, origin=str(p))

    @classmethod
    def interactive(cls, *, input_fn: Callable[[str], str] | None = None,
                    print_fn: Callable[[str], None] | None = None,
                    questions: QuestionSet | None = None) -> Questionnaire:
        """Ask every question in the terminal (``input``/``print`` unless given); Enter skips one."""
        input_fn = input_fn or input
        print_fn = print_fn or print
        qs = questions or load_questions()
        answers: dict[str, Any] = {}
        n = len(qs.questions)
        for i, q in enumerate(qs.questions, 1):
            print_fn(f"\n[{i}/{n}] {q.text}")
            values = list(q.choices)
            for j, v in enumerate(values, 1):
                print_fn(f"  {j}) {q.choices[v].label}")
            prompt = "Number (Enter to skip): " if q.type == "integer" else f"Choice 1-{len(values)} (Enter to skip): "
            while True:
                try:
                    reply = input_fn(prompt).strip()
                except EOFError:
                    raise AdvisorError("input ended before the questionnaire was finished; "
                                       "pass answers with --answers FILE.yaml instead") from None
                if not reply:
                    break
                if q.type == "choice" and reply.isascii() and reply.isdigit():
                    if not 1 <= int(reply) <= len(values):
                        print_fn(f"  {reply} is not one of the choices: type a number from 1 to {len(values)}, "
                                 "or Enter to skip")
                        continue
                    reply = values[int(reply) - 1]
                try:
                    answers[q.id] = q.validate(reply, where="input")
                    break
                except AdvisorError as e:
                    print_fn(f"  {e}")
        return cls(answers, questions=qs, origin="input")

    def applied_effects(self) -> list[tuple[str, Effects]]:
        """(source, effects) of every answer given and every combined rule that holds, in file order."""
        applied: list[tuple[str, Effects]] = []
        for q in self.questions.questions:
            if q.id in self.answers:
                applied.append((f"{q.id} = {self.answers[q.id]}", q.effects_for(self.answers[q.id])[1]))
        applied += [(f"rule {r.id}", r.effects) for r in self.questions.rules if r.applies(self.answers)]
        return applied

    def resolve(self, matrix: Matrix) -> Adjustments:
        """Turn the answers into weights, score adjustments, exclusions, preferences and notes for ``matrix``.

        Neutral start: a factor that some question could weigh gets weight 0 until an answer states its
        importance, so an unanswered question favours no option (the matrix's default weights used to
        stand in, and RAG, with the best mean score, won every sparse questionnaire). Factors no question
        can reach (added in a custom matrix) keep the matrix's weight. Effects that name a factor or
        option the matrix lacks are skipped with a note.
        """
        reachable = self.questions.weighted_factors()
        weights = {f.id: (0.0 if f.id in reachable else f.weight) for f in matrix.factors}
        out = Adjustments(weights, {}, {}, [], {})
        skipped: list[str] = []
        set_by: dict[str, tuple[float, str]] = {}
        for source, eff in self.applied_effects():
            skipped += _apply(eff, source, matrix, out, set_by)
        for answer, others, why in _contradictions(self.answers):
            # A firm preference resting on an answer the others contradict would settle the question silently
            # ("API model as is, a firm preference" for a team that must cite its weekly-changing documents):
            # it is dropped, the weighted totals decide, and the report says which answers disagree.
            out.preferences = [(o, r) for o, r in out.preferences if not r.endswith(f"({answer})")]
            out.notes.append(f"Contradictory answers: {answer} but {', '.join(others)}: {why} The preference "
                             f"of '{answer}' is not applied; check these answers.")
        for fid, (w, src) in set_by.items():
            out.weights[fid] = w
            out.weight_sources[fid] = src
        if skipped:
            out.notes.append("Ignored effects naming factors or options this matrix does not have: "
                             + "; ".join(skipped))
        return out


# Answers that cannot both hold: (answer, any of these answers, why). "Neither" says a general model with a
# good prompt already does the task; a general model has not seen the team's documents, so it can neither
# answer from them nor cite them.
_CONTRADICTIONS = (
    ("need", "neither", {"use_case": "docs_qa", "citations": "yes"},
     "a general model has not seen your documents, so it can neither answer from them nor cite them."),
)


def _contradictions(answers: dict) -> list[tuple[str, list[str], str]]:
    found = []
    for qid, value, against, why in _CONTRADICTIONS:
        if answers.get(qid) != value:
            continue
        others = [f"{k} = {v}" for k, v in against.items() if answers.get(k) == v]
        if others:
            found.append((f"{qid} = {value}", others, why))
    return found


def _apply(eff: Effects, source: str, matrix: Matrix, out: Adjustments,
           set_by: dict[str, tuple[float, str]]) -> list[str]:
    """Fold one answer's effects into ``out``; returns what it named that the matrix lacks."""
    lo, hi = matrix.weight_range
    skipped = []
    for fid, w in eff.weights.items():
        if fid not in out.weights:
            skipped.append(f"{source}: factor {fid!r}")
            continue
        w = min(max(w, lo), hi)
        if fid not in set_by or w > set_by[fid][0]:  # the largest stated importance wins
            set_by[fid] = (w, source)
    for oid, per_factor in eff.scores.items():
        for fid, d in per_factor.items():
            if oid not in matrix.option_ids or fid not in out.weights:
                skipped.append(f"{source}: score of {oid!r} on {fid!r}")
                continue
            out.score_deltas.setdefault(oid, {})
            out.score_deltas[oid][fid] = out.score_deltas[oid].get(fid, 0.0) + d
    for kind, mapping in (("exclusion", eff.exclude), ("preference", eff.prefer)):
        for oid, reason in mapping.items():
            if oid not in matrix.option_ids:
                skipped.append(f"{source}: {kind} of {oid!r}")
            elif kind == "exclusion":
                out.exclusions.setdefault(oid, []).append(f"{reason} ({source})")
            else:
                out.preferences.append((oid, f"{reason} ({source})"))
    if eff.note:
        out.notes.append(f"{eff.note} ({source})")
    return skipped


def clamp_score(value: float) -> float:
    return float(min(max(value, SCORE_MIN), SCORE_MAX))


def stdin_is_interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()
