"""Evidence mode: a small pilot on the user's own documents that replaces prior scores with measurements.

Each arm answers the same questions and is scored with token F1 (SQuAD-style normalisation) and the median
latency:

    arm            stands in for option     measured factors
    without        api (model as is)        domain_accuracy, latency
    rag            rag                      domain_accuracy, latency
    adapter        finetune                 domain_accuracy, latency
    rag_adapter    rag_finetune             domain_accuracy, latency

Measured scores (1-5) come from monotone thresholds:

- grounding, citation precision (share of an arm's citations whose file is the QA item's ``source``; only
  when the items name a source and the arm cites): >= 0.9 -> 5, >= 0.75 -> 4, >= 0.5 -> 3, >= 0.25 -> 2,
  else 1 (the same cut-offs bench/answer.py reports against);

- accuracy, absolute mean F1: >= 0.8 -> 5, >= 0.6 -> 4, >= 0.4 -> 3, >= 0.2 -> 2, else 1;
- latency, p50 relative to the fastest arm (the pilot's hardware is rarely the production hardware, but
  the extra cost of retrieval and longer prompts carries over): <= 1.25x -> 5, <= 2x -> 4, <= 4x -> 3,
  <= 8x -> 2, else 1. The reference is never below 0.5 s: differences under half a second are not felt
  by users, and an arm that answers instantly (a model-free generator without context) would otherwise
  make every other arm look slow.

Inline citation markers such as ``[1]`` are removed from answers before scoring: they are not answer text.

    >>> token_f1("The Eiffel Tower!", ["eiffel tower"])
    1.0
    >>> f1_to_score(0.65), latency_to_score(3.0, fastest=1.0), latency_to_score(0.9, fastest=0.01)
    (4, 3, 4)
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import DatasetError
from ragtune.rag.text import answer_f1

ARM_OPTION = {"without": "api", "rag": "rag", "adapter": "finetune", "rag_adapter": "rag_finetune"}
ACCURACY_FACTOR, LATENCY_FACTOR, GROUNDING_FACTOR = "domain_accuracy", "latency", "grounding"
CITATION_THRESHOLDS = ((0.9, 5), (0.75, 4), (0.5, 3), (0.25, 2))  # (minimum citation precision, score)
F1_THRESHOLDS = ((0.8, 5), (0.6, 4), (0.4, 3), (0.2, 2))  # (minimum F1, score)
LATENCY_RATIO_THRESHOLDS = ((1.25, 5), (2.0, 4), (4.0, 3), (8.0, 2))  # (maximum p50 / fastest p50, score)
LATENCY_FLOOR_S = 0.5  # the fastest p50 is taken as at least this
# The fewest answers whose measurements replace the matrix's priors. The F1 bands are 0.2 wide; with n answers
# one answer can move the mean by up to 1/n, so from 20 on no single question moves an arm by more than a
# quarter of a band. A smaller pilot is shown in the report but keeps the priors (a 3-question pilot had
# replaced them as firmly as a 200-question one).
MIN_PILOT_ANSWERS = 20

_MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")  # [1], [1, 3]

Ask = Callable[[str], Any]  # question -> Answer (anything with .text) or str


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """Best token-overlap F1 of ``prediction`` against any reference answer."""
    return max((answer_f1(prediction, ref) for ref in references), default=0.0)


def f1_to_score(f1: float, thresholds: tuple[tuple[float, int], ...] = F1_THRESHOLDS) -> int:
    for floor, score in thresholds:
        if f1 >= floor:
            return score
    return 1


def citation_precision(answer: Any, source: str | None) -> tuple[int, int]:
    """(citations pointing into ``source``'s file, citations) of one answer; (0, 0) without either."""
    cites = list(getattr(answer, "citations", None) or [])
    if not source or not cites:
        return 0, 0
    name = Path(str(source)).name
    return sum(Path(str(getattr(c, "source", ""))).name == name for c in cites), len(cites)


def latency_to_score(p50: float, fastest: float) -> int:
    ratio = p50 / max(fastest, LATENCY_FLOOR_S)
    for ceiling, score in LATENCY_RATIO_THRESHOLDS:
        if ratio <= ceiling:
            return score
    return 1


@dataclass
class ArmResult:
    arm: str
    option_id: str
    n: int  # questions answered without error
    f1: float  # mean token F1 over answered questions
    latency_p50: float  # seconds
    errors: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)  # question, prediction, f1, seconds
    citation_precision: float | None = None  # None: the arm cited nothing or the QA items name no source


@dataclass
class PilotResult:
    arms: dict[str, ArmResult]
    n_questions: int
    notes: list[str] = field(default_factory=list)
    min_answers: int = MIN_PILOT_ANSWERS

    def measured_scores(self) -> dict[str, dict[str, int]]:
        """``{option_id: {"domain_accuracy": 1-5, "latency": 1-5}}`` for every arm that answered at least
        ``min_answers`` questions (see MIN_PILOT_ANSWERS)."""
        answered = [a for a in self.arms.values() if a.n > 0 and a.n >= self.min_answers]
        if not answered:
            return {}
        fastest = min(a.latency_p50 for a in answered)
        out = {}
        for a in answered:
            out[a.option_id] = {ACCURACY_FACTOR: f1_to_score(a.f1),
                                LATENCY_FACTOR: latency_to_score(a.latency_p50, fastest)}
            if a.citation_precision is not None:
                out[a.option_id][GROUNDING_FACTOR] = f1_to_score(a.citation_precision, CITATION_THRESHOLDS)
        return out

    def missing(self) -> list[str]:
        """What this pilot did not measure, in words for the report (the evidence mode of issue 13 is only
        partly built: measured fine-tuned arms need a trained adapter from tune/, and citation precision is
        not scored yet)."""
        out = []
        small = [a for a in self.arms.values() if 0 < a.n < self.min_answers]
        if small:
            out.append(f"Evidence too small: {', '.join(f'{a.arm} answered {a.n}' for a in small)} of the questions, "
                       f"fewer than {self.min_answers} (with fewer, one answer can move an arm's mean F1 by more "
                       "than a quarter of a score band). Their figures are shown, but the matrix's priors are kept. "
                       f"Give at least {self.min_answers} QA items (and --limit {self.min_answers} or more).")
        if not any(a.option_id in ("finetune", "rag_finetune") for a in self.arms.values()):
            out.append("Evidence gap: the fine-tuned options were not measured (no adapter given); their accuracy "
                       "and latency are the matrix's priors. Train an adapter with ragtune's tune/ workflow and "
                       "pass it with --adapter DIR to measure them.")
        if all(a.citation_precision is None for a in self.arms.values()):
            out.append("Evidence gap: citation precision was not measured (the QA items name no \"source\" file, or "
                       "no arm cited), so the grounding scores are the matrix's priors.")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_questions": self.n_questions,
            "arms": {k: asdict(v) for k, v in self.arms.items()},
            "measured_scores": self.measured_scores(),
            "notes": list(self.notes),
            "missing": self.missing(),
            "min_answers": self.min_answers,
            "thresholds": {"f1": [list(t) for t in F1_THRESHOLDS],
                           "latency_ratio_to_fastest": [list(t) for t in LATENCY_RATIO_THRESHOLDS],
                           "latency_floor_s": LATENCY_FLOOR_S},
        }


def _text(answer: Any) -> str:
    text = answer if isinstance(answer, str) else str(getattr(answer, "text", answer))
    return _MARKER.sub("", text).strip()


def _references(item: dict[str, Any]) -> list[str]:
    refs = item.get("answers", item.get("answer"))
    return [refs] if isinstance(refs, str) else [str(r) for r in refs or []]


def run_pilot(
    qa: list[dict[str, Any]],
    ask_with_rag: Ask,
    ask_without: Ask,
    ask_with_adapter: Ask | None = None,
    ask_with_rag_adapter: Ask | None = None,
    *,
    clock: Callable[[], float] = time.perf_counter,
    keep_samples: int = 5,
    min_answers: int = MIN_PILOT_ANSWERS,
) -> PilotResult:
    """Ask every question of ``qa`` (dicts with ``question`` and ``answer``/``answers``) through each arm.

    A question that raises in one arm is recorded in that arm's ``errors`` and skipped there; an arm with
    fewer than ``min_answers`` successful answers gets no measured score (its figures are still reported).
    """
    arms: dict[str, Ask] = {"without": ask_without, "rag": ask_with_rag}
    if ask_with_adapter is not None:
        arms["adapter"] = ask_with_adapter
    if ask_with_rag_adapter is not None:
        arms["rag_adapter"] = ask_with_rag_adapter
    results = {}
    for name, ask in arms.items():
        f1s, secs, errors, samples = [], [], [], []
        cited = [0, 0]  # citations into the gold source, citations
        for item in qa:
            q = item["question"]
            t0 = clock()
            try:
                answer = ask(q)
                pred = _text(answer)
            except Exception as e:  # one failing question must not abort the pilot; it is reported
                errors.append(f"{q[:60]}: {type(e).__name__}: {e}")
                continue
            dt = clock() - t0
            hit, n = citation_precision(answer, item.get("source"))
            cited = [cited[0] + hit, cited[1] + n]
            f1 = token_f1(pred, _references(item))
            f1s.append(f1)
            secs.append(dt)
            if len(samples) < keep_samples:
                samples.append({"question": q, "prediction": pred[:300], "f1": round(f1, 4), "seconds": round(dt, 4)})
        results[name] = ArmResult(name, ARM_OPTION[name], len(f1s), statistics.fmean(f1s) if f1s else 0.0,
                                  statistics.median(secs) if secs else 0.0, errors, samples,
                                  cited[0] / cited[1] if cited[1] else None)
    notes = [f"arm {a.arm}: every question failed ({a.errors[0]})" for a in results.values() if a.n == 0 and a.errors]
    return PilotResult(results, len(qa), notes, min_answers=min_answers)


def load_qa(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Read a QA set: JSON Lines (or a JSON list) of {"question": ..., "answer": ... | "answers": [...]}."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise DatasetError(f"cannot read QA file {p}: {e.strerror or e}") from None
    if p.suffix.lower() == ".json":
        try:
            rows = list(enumerate(json.loads(text), 1))
        except (json.JSONDecodeError, TypeError) as e:
            raise DatasetError(f"{p}: not a JSON list of QA items: {e}") from None
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DatasetError(f"{p}: line {n}: invalid JSON: {e.msg}") from None
    qa = []
    for n, item in rows:
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not item["question"].strip():
            raise DatasetError(f"{p}: item {n}: needs a non-empty \"question\" string")
        if not _references(item):
            raise DatasetError(f"{p}: item {n}: needs an \"answer\" string or an \"answers\" list")
        qa.append(item)
    if not qa:
        raise DatasetError(f"{p}: no QA items found")
    return qa[:limit] if limit else qa


def pilot_from_folder(
    docs_dir: str | Path,
    qa_path: str | Path,
    generator: str = "local",
    adapter: str | Path | None = None,
    limit: int = 20,
) -> PilotResult:
    """Index ``docs_dir`` in a temporary index and run the pilot with real generators.

    ``generator`` is a ``load_generator`` kind ("local", "extractive", ...). With ``adapter`` (a LoRA
    directory) the adapter arms are added. Heavy imports happen here, not at module import.
    """
    import tempfile

    from ragtune.rag.answer import RAG
    from ragtune.rag.generators import load_generator
    from ragtune.rag.index import Index

    qa = load_qa(qa_path, limit=limit)
    base = load_generator({"kind": generator})

    def plain(gen: Any) -> Ask:
        return lambda q: gen.generate([{"role": "user", "content": q}])

    with tempfile.TemporaryDirectory(prefix="ragtune-pilot-") as tmp:
        index = Index.open(Path(tmp) / "index", create=True)
        index.add([str(docs_dir)])
        tuned = load_generator({"kind": "local", "adapter": str(adapter)}) if adapter else None
        result = run_pilot(
            qa,
            ask_with_rag=RAG(index, base).ask,
            ask_without=plain(base),
            ask_with_adapter=plain(tuned) if tuned else None,
            ask_with_rag_adapter=RAG(index, tuned).ask if tuned else None,
        )
    result.notes.append(
        f"Pilot on {len(qa)} questions from {qa_path} over {docs_dir} with the {getattr(base, 'name', generator)} "
        "generator; the arm without retrieval stands in for a model used as is, so its measured scores describe "
        "that generator, not necessarily the API model you would call."
    )
    return result
